"""`make demo`: harvest the bundled sample feeds from a local replay server into demo/inbox.db.

Starts the replay server (feeds, a t.me/s page, a municipal site), the local VK API server
(tests/vk_server.py, serving the made-up community wall in examples/replay/vk/), the local OK
API server (tests/ok_server.py, the made-up group in examples/replay/ok/) and the local MAX Bot
API server (tests/max_server.py, the made-up channel in examples/replay/max/) on free loopback
ports, writes demo/sources.yaml (the example sources pointed at those servers; VK_TOKEN=demo,
MAX_BOT_TOKEN=demo and made-up OK credentials, which only the local servers see; Telegram
through the stand-in of tests/telegram_fakes.py), runs `glas run` twice (the second run finds
nothing new), then `glas stats`, imports a made-up fortnight of complaints and official answers
(examples/replay/report/history.jsonl, moved to end now) and writes the situation report
demo/report.html with `glas report`, and stops the servers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.max_server import MaxServer, load_chat  # noqa: E402
from tests.ok_server import APP_KEY, APP_SECRET, TOKEN, OkServer, load_group  # noqa: E402
from tests.replay import ReplayServer  # noqa: E402
from tests.vk_server import VkServer, load_wall  # noqa: E402
from tests.webhook_receiver import Receiver  # noqa: E402

PLACEHOLDER = "http://replay.invalid"
VK_PLACEHOLDER = "http://vk-api.invalid"
OK_PLACEHOLDER = "http://ok-api.invalid"
MAX_PLACEHOLDER = "http://max-api.invalid"
HISTORY = ROOT / "examples" / "replay" / "report" / "history.jsonl"
HISTORY_END = datetime(2026, 11, 27, 12, tzinfo=UTC)  # the file's "now"
UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def recent_history(out: Path) -> Path:
    """history.jsonl with its times moved so that its "now" is this hour (the report's
    default period is the last 7 days)."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    shift = now - HISTORY_END
    lines = []
    for line in HISTORY.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        at = datetime.strptime(row["published_at"], UTC_FORMAT).replace(tzinfo=UTC)
        row["published_at"] = (at + shift - timedelta(hours=1)).strftime(UTC_FORMAT)
        lines.append(json.dumps(row, ensure_ascii=False))
    path = out / "history.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


HOOK_PLACEHOLDER = "http://hooks.invalid/glas"


def main() -> int:
    out = ROOT / "demo"
    out.mkdir(exist_ok=True)
    # the last demo's inbox, WAL files, lock directory and report
    for stale in [*out.glob("inbox.db*"), *out.glob("report.html*")]:
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    glas = [sys.executable, str(ROOT / "bin" / "glas")]
    env = {
        **os.environ,
        "GLAS_SOURCES": str(out / "sources.yaml"),
        "GLAS_DB": str(out / "inbox.db"),
        "VK_TOKEN": "demo",  # the local VK server accepts any token; never a real one here
        # made-up OK application and token: the local OK server checks signatures with them
        "OK_APP_KEY": APP_KEY,
        "OK_APP_SECRET_KEY": APP_SECRET,
        "OK_ACCESS_TOKEN": TOKEN,
        "MAX_BOT_TOKEN": "demo",  # so does the local MAX server
        # Telegram's MTProto cannot be replayed: a stand-in serves the made-up channel as real
        # Telethon objects (tests/telegram_fakes.py), so no account or session is needed.
        "TELEGRAM_API_ID": "1",
        "TELEGRAM_API_HASH": "demo",
        "TELEGRAM_SESSION": "demo",
        "GLAS_TELEGRAM_GATEWAY": "tests.telegram_fakes:demo",
    }
    replay = ROOT / "examples" / "replay"
    with (
        ReplayServer(replay) as server,
        VkServer() as vk,
        OkServer() as ok,
        MaxServer() as max_api,
        Receiver() as hooks,
    ):
        for wall in sorted((replay / "vk").glob("*.json")):
            vk.add_wall(load_wall(wall, newest=time.time() - 3600))  # dates: the last hours
        for group in sorted((replay / "ok").glob("*.json")):
            ok.add_group(load_group(group, newest=time.time() - 3600))
        for chat in sorted((replay / "max").glob("*.json")):
            max_api.add_chat(load_chat(chat, newest=time.time() - 1800))
        template = (ROOT / "examples" / "demo-sources.yaml").read_text(encoding="utf-8")
        config = (
            template.replace(PLACEHOLDER, server.url)
            .replace(VK_PLACEHOLDER, vk.url)
            .replace(OK_PLACEHOLDER, ok.url)
            .replace(MAX_PLACEHOLDER, max_api.url)
            .replace(HOOK_PLACEHOLDER, hooks.url)
        )
        (out / "sources.yaml").write_text(config, "utf-8")
        print(f"replay server: {server.url} serving examples/replay/")
        print(f"VK API server: {vk.url} serving examples/replay/vk/")
        print(f"OK API server: {ok.url} serving examples/replay/ok/")
        print(f"MAX Bot API server: {max_api.url} serving examples/replay/max/")
        print(f"webhook receiver: {hooks.url} (alerts are POSTed here)")
        print(
            f"sources: demo/sources.yaml (examples/demo-sources.yaml pointed at {server.url})\n",
            flush=True,
        )
        steps = [
            ("glas check", ["check"]),
            ("glas run (first harvest)", ["run", "--all", "--progress"]),
            (
                "glas run (again: nothing new; feeds answer 304, cursors skip what is stored)",
                ["run", "--all", "--progress"],
            ),
            ("glas stats", ["stats"]),
            ("glas alerts (surges, and their webhook deliveries)", ["alerts"]),
            (
                "glas export --format open311 --complaints-only --limit 2 (cases for routing)",
                ["export", "--format", "open311", "--complaints-only", "--limit", "2"],
            ),
            (
                "glas import demo/history.jsonl (a made-up fortnight of complaints and answers)",
                ["import", str(recent_history(out))],
            ),
            (
                "glas report (the situation picture of the last 7 days)",
                ["report", "-o", str(out / "report.html")],
            ),
        ]
        for title, argv in steps:
            print(f"$ {title}", flush=True)
            code = subprocess.call([*glas, *argv], env=env, cwd=ROOT)
            print(flush=True)
            if code != 0:
                print(f"demo: `{' '.join(argv)}` exited {code}", file=sys.stderr)
                return code
        for request in hooks.requests:
            body = request["body"]
            print(
                f"webhook receiver got {body['id']} (Idempotency-Key "
                f"{request['headers'].get('idempotency-key')}): rule {body['rule']}, "
                f"{body['residents']} residents, cases {body['cases']}"
            )
    print("The inbox is demo/inbox.db: try `sqlite3 demo/inbox.db 'select * from inbox'`")
    print("or `bin/glas --db demo/inbox.db export --table clusters`.")
    print(f"The situation report: {out / 'report.html'} (open it in a browser)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

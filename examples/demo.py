"""`make demo`: harvest the bundled sample feeds from a local replay server into demo/inbox.db.

Starts the replay server on a free loopback port, writes demo/sources.yaml (the example
sources pointed at that server), runs `glas run` twice (the second run shows conditional GET:
nothing new), then `glas stats`, and stops the server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.replay import ReplayServer  # noqa: E402

PLACEHOLDER = "http://replay.invalid"


def main() -> int:
    out = ROOT / "demo"
    out.mkdir(exist_ok=True)
    for stale in out.glob("inbox.db*"):
        stale.unlink()
    glas = [sys.executable, str(ROOT / "bin" / "glas")]
    env = {
        **os.environ,
        "GLAS_SOURCES": str(out / "sources.yaml"),
        "GLAS_DB": str(out / "inbox.db"),
    }
    with ReplayServer(ROOT / "examples" / "replay") as server:
        template = (ROOT / "examples" / "demo-sources.yaml").read_text(encoding="utf-8")
        (out / "sources.yaml").write_text(template.replace(PLACEHOLDER, server.url), "utf-8")
        print(f"replay server: {server.url} serving examples/replay/")
        print(
            f"sources: demo/sources.yaml (examples/demo-sources.yaml pointed at {server.url})\n",
            flush=True,
        )
        steps = [
            ("glas check", ["check"]),
            ("glas run (first harvest)", ["run", "--progress"]),
            (
                "glas run (again: feeds unchanged, conditional GET answers 304)",
                ["run", "--progress"],
            ),
            ("glas stats", ["stats"]),
        ]
        for title, argv in steps:
            print(f"$ {title}", flush=True)
            code = subprocess.call([*glas, *argv], env=env, cwd=ROOT)
            print(flush=True)
            if code != 0:
                print(f"demo: `{' '.join(argv)}` exited {code}", file=sys.stderr)
                return code
    print("The inbox is demo/inbox.db: try `sqlite3 demo/inbox.db 'select * from inbox'`")
    print("or `bin/glas --db demo/inbox.db export --table clusters`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The warm harvester under `glas run`: one crawler for every web source (politeness per site,
robots.txt once per site), each collection isolated (limits, crashes, oversized answers,
redirect loops), and a stop that takes effect at once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from crawler import reactor
from crawler.config import load_config
from crawler.harvester import Harvester
from crawler.model import Post, SourceConfig
from spiders import SourceType, source_types
from spiders.base import GlasSpider
from storage.sqlite import SqliteInbox
from tests.conftest import REPO, Background, glas_env
from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss

Glas = Callable[..., subprocess.CompletedProcess[str]]
PEAK = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print('peak', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(code)"
)


def statuses(db: Path) -> dict[str, tuple[str, str | None]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT source_id, status, error FROM runs ORDER BY run_id")
        return {source: (status, error) for source, status, error in rows}
    finally:
        conn.close()


def test_sources_of_one_site_share_its_politeness_and_its_robots_txt(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas, tmp_path: Path
) -> None:
    feeds = [f"town-{n}" for n in range(12)]
    for name in feeds:
        replay.route(f"/{name}.xml", make_rss(name, 2))
        replay.fault(f"/{name}.xml", delay=0.3)
    entries = "\n".join(
        f"  - {{id: {name}, type: rss, url: '{replay.url}/{name}.xml'}}" for name in feeds
    )
    write_sources(
        "defaults: {request_delay: 0s, per_site: 12}\n"
        "sites:\n  127.0.0.1: {concurrency: 2}\n"
        f"sources:\n{entries}\n"
    )
    result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("glas run: 12 sources, 12 ok")
    assert replay.peak_in_flight == 2, "twelve sources, one site: two requests at a time"
    assert replay.hits("/robots.txt") == 1, "robots.txt once for the site, not per source"


def test_oversized_answers_and_a_gzip_bomb_fail_their_source_in_bounded_memory(
    replay: ReplayServer, write_sources: Callable[..., Path], tmp_path: Path
) -> None:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip: 400 MB of zeros in ~400 KB
    bomb = b"".join(squeeze.compress(bytes(1 << 20)) for _ in range(400)) + squeeze.flush()
    replay.route(
        "/bomb.xml", bomb, content_type="application/rss+xml", headers={"Content-Encoding": "gzip"}
    )
    replay.route("/long.xml", b"<rss>" + b" " * 6_000_000 + b"</rss>")
    replay.route_stream("/endless/", 2_000_000_000)  # 2 GB, chunked, no length
    replay.route("/fine.xml", make_rss("fine", 2))
    write_sources(f"""
        defaults: {{request_delay: 0s, max_response_size: 5MB}}
        sources:
          - {{id: bomb, type: rss, url: "{replay.url}/bomb.xml"}}
          - {{id: long, type: rss, url: "{replay.url}/long.xml"}}
          - {{id: endless, type: html, url: "{replay.url}/endless/", item: p}}
          - {{id: fine, type: rss, url: "{replay.url}/fine.xml"}}
    """)
    run = subprocess.run(
        [sys.executable, "-c", PEAK, sys.executable, str(REPO / "bin" / "glas"), "run", "--all"],
        cwd=tmp_path,
        env=glas_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    peak_kb = int(run.stderr.rsplit("peak ", 1)[1])
    assert peak_kb < 450_000, f"{peak_kb} KB resident: the bodies were not cut at 5 MB"
    found = statuses(tmp_path / "inbox.db")
    limit = "the limit of 5 MB (max_response_size)"
    bomb_error = f"the answer from {replay.url}/bomb.xml unpacks to more than {limit}"
    assert found["bomb"] == ("failed", bomb_error)
    assert found["long"] == (
        "failed",
        f"the answer from {replay.url}/long.xml is more than {limit}",
    )
    assert found["endless"] == (
        "failed",
        f"the answer from {replay.url}/endless/ is more than {limit}",
    )
    assert found["fine"] == ("ok", None)
    assert "Traceback" not in run.stderr


def test_redirect_loops_fail_with_one_line_naming_the_loop(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas, tmp_path: Path
) -> None:
    replay.route("/a.xml", b"", status=302, headers={"Location": f"{replay.url}/b.xml"})
    replay.route("/b.xml", b"", status=302, headers={"Location": f"{replay.url}/a.xml"})
    replay.route("/self.xml", b"", status=301, headers={"Location": "/self.xml"})
    write_sources(f"""
        defaults: {{request_delay: 0s}}
        sources:
          - {{id: pair, type: rss, url: "{replay.url}/a.xml"}}
          - {{id: self, type: rss, url: "{replay.url}/self.xml"}}
    """)
    result = glas("run", "--all")
    assert result.returncode == 1
    a, b, own = (f"{replay.url}/{name}.xml" for name in ("a", "b", "self"))
    assert sorted(result.stderr.splitlines()) == [
        f"glas: pair: failed: redirect loop: {a} -> {b} -> {a}",
        f"glas: self: failed: redirect loop: {own} -> {own}",
    ]


def test_sigint_during_a_hang_stops_at_once_and_leaves_no_run_running(
    replay: ReplayServer, write_sources: Callable[..., Path], tmp_path: Path
) -> None:
    replay.route("/hang.xml", make_rss("hang", 2))
    replay.fault("/hang.xml", hang=True)
    write_sources(f"""
        defaults: {{request_delay: 0s, timeout: 600}}
        sources:
          - {{id: hang, type: rss, url: "{replay.url}/hang.xml"}}
    """)
    run = Background(("run", "--all"), tmp_path)
    try:
        run.wait_until(lambda: replay.hits("/hang.xml") > 0, "the hanging request sent")
        run.process.send_signal(signal.SIGINT)
        began = time.monotonic()
        code, out, err = run.finish(timeout=20)
        stopped_in = time.monotonic() - began
    finally:
        run.reap()
    assert stopped_in < 2, f"took {stopped_in:.1f}s to stop"
    assert code == 1
    assert err.splitlines()[0] == "glas: stopping… (what was collected so far is kept)"
    assert "(interrupted: hang)" in out
    assert statuses(tmp_path / "inbox.db") == {"hang": ("interrupted", None)}


# -- isolation inside one harvester --------------------------------------------------------------
class BoomOptions(SourceConfig):
    """A web source type of this test only: its collector crashes after its first post."""

    type: Literal["boom"]
    url: str


class BoomSpider(GlasSpider):
    handle_httpstatus_list: ClassVar[list[int]] = []

    async def start(self) -> Any:
        yield self.request(self.options.url, callback=self.parse)

    def parse(self, response: Any) -> Iterator[Any]:
        yield Post(platform="web", native_id=f"{response.url}#1", text="первая запись")
        raise ValueError("unexpected markup")


def test_a_collector_that_raises_fails_its_source_only(
    replay: ReplayServer, write_sources: Callable[..., Path], tmp_path: Path
) -> None:
    replay.route("/boom.html", "<html><body><p>x</p></body></html>")
    replay.route("/calm.xml", make_rss("calm", 3))
    replay.fault("/calm.xml", delay=0.5)  # still collecting when the other one crashes
    path = write_sources(f"""
        defaults: {{request_delay: 0s}}
        sources:
          - {{id: calm, type: rss, url: "{replay.url}/calm.xml"}}
    """)
    config = load_config(path)
    config.sources.append(BoomOptions(id="boom", type="boom", url=f"{replay.url}/boom.html"))
    module = type(sys)("boom")
    module.Options, module.Spider = BoomOptions, BoomSpider  # type: ignore[attr-defined]
    types = {**source_types(), "boom": SourceType("boom", module)}
    inbox = SqliteInbox(tmp_path / "inbox.db")
    harvester = Harvester(config, inbox, types=types)

    async def both() -> list[Any]:
        await harvester.open()
        records = await asyncio.gather(*(harvester.collect(s) for s in config.sources))
        await harvester.close()
        return records

    try:
        records = {r.source_id: r for r in reactor.run(both)}
        stored = dict(inbox.conn.execute("SELECT source_id, count(*) FROM posts GROUP BY 1"))
    finally:
        inbox.close()
    assert (records["boom"].status, records["boom"].error) == (
        "failed",
        "collector error: ValueError: unexpected markup",
    )
    assert (records["calm"].status, records["calm"].stored.new) == ("ok", 3)
    assert stored == {"boom": 1, "calm": 3}, "what came before the crash is kept"


@pytest.fixture(autouse=True)
def _no_leftover_signals() -> Iterator[None]:
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_robots_txt_is_kept_for_its_lifetime_then_fetched_again(
    replay: ReplayServer,
    write_sources: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import crawler.hub

    monkeypatch.setattr(crawler.hub, "ROBOTS_TTL", 1.0)  # a day in production
    replay.route("/feed.xml", make_rss("feed", 2))
    path = write_sources(f"""
        defaults: {{request_delay: 0s}}
        sources:
          - {{id: feed, type: rss, url: "{replay.url}/feed.xml"}}
    """)
    config = load_config(path)
    inbox = SqliteInbox(tmp_path / "inbox.db")
    harvester = Harvester(config, inbox)

    async def three_runs() -> list[int]:
        await harvester.open()
        seen = []
        for pause in (0.0, 0.2, 1.2):
            await asyncio.sleep(pause)
            await harvester.collect(config.sources[0])
            seen.append(replay.hits("/robots.txt"))
        await harvester.close()
        return seen

    try:
        assert reactor.run(three_runs) == [1, 1, 2]
    finally:
        inbox.close()

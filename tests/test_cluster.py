"""`glas worker` end to end: three workers as separate processes on one real PostgreSQL
(tests/pg_server.py), many RSS sources on the replay server; one worker SIGKILLed mid-run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import REPO, glas_env
from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss
from tests.vk_server import VkServer

pytestmark = pytest.mark.slow
ITEMS = 3  # entries per feed


def feeds(replay: ReplayServer, count: int, *, delay: float = 0.0) -> list[str]:
    """``count`` feeds of ITEMS distinct entries each; their ids (``f0``, ``f1``, …)."""
    ids = [f"f{n}" for n in range(count)]
    for source_id in ids:
        replay.route(f"/feeds/{source_id}.xml", make_rss(source_id, ITEMS))
        if delay:
            replay.fault(f"/feeds/{source_id}.xml", delay=delay)
    return ids


def sources_yaml(
    path: Path, replay: ReplayServer, ids: list[str], every: str, parallel: int = 24
) -> Path:
    """Sources first spread over ``every`` (more than ``parallel`` are new), then every
    ``every``."""
    lines = [
        "defaults:",
        "  request_delay: 0s",
        "  retry_backoff: 0s",
        f"  parallel: {parallel}",
        f"  schedule: {{every: {every}}}",
        "sites:",
        "  127.0.0.1: {concurrency: 24, delay: 0s, collections: 100}",
        "sources:",
    ]
    for source_id in ids:
        lines += [
            f"  - id: {source_id}",
            "    type: rss",
            f"    url: {replay.url}/feeds/{source_id}.xml",
            "    municipality: Москва",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Workers:
    """`glas worker` processes in the background, and a watch on the runs table."""

    def __init__(self, cwd: Path, db: str) -> None:
        self.cwd = cwd
        self.db = db
        self.processes: list[subprocess.Popen[str]] = []
        self.overlaps: list[tuple[str, int]] = []  # seen: a source with two runs 'running'
        self._watching = True
        self._watch = threading.Thread(target=self._look, daemon=True)

    def start(self, count: int, *extra: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, str(REPO / "bin" / "glas"), "--db", self.db, "worker"]
        for _ in range(count):
            self.processes.append(
                subprocess.Popen(
                    [*command, "--heartbeat", "1", *extra],
                    cwd=self.cwd,
                    env=env or glas_env(self.cwd),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        if not self._watch.is_alive():
            self._watch.start()

    def _look(self) -> None:
        """Every 0.1 s: no source has two runs 'running' at once."""
        conn = None
        while self._watching:
            try:
                conn = conn or psycopg.connect(self.db, autocommit=True)
                rows = conn.execute(
                    "SELECT source_id, count(*) FROM runs WHERE status = 'running' "
                    "GROUP BY source_id HAVING count(*) > 1"
                ).fetchall()
                self.overlaps += rows
            except psycopg.Error:
                pass  # the schema is not there yet
            time.sleep(0.1)
        if conn is not None:
            conn.close()

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for process in self.processes:
                if process.poll() not in (None, -signal.SIGKILL):
                    raise AssertionError(f"a worker ended: {process.communicate()[1]}")
            assert time.monotonic() < deadline, f"timed out waiting: {what}"
            time.sleep(0.2)

    def stop(self) -> list[tuple[int, str]]:
        """SIGTERM every worker still running; their exit status and stderr."""
        self._watching = False
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        ends = []
        for process in self.processes:
            try:
                _, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                _, err = process.communicate()
            ends.append((process.returncode, err))
        return ends


@pytest.fixture
def workers(tmp_path: Path, pg_url: str) -> Iterator[Workers]:
    group = Workers(tmp_path, pg_url)
    yield group
    group._watching = False
    for process in group.processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def query(db: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(db, autocommit=True) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def collected(db: str) -> set[str]:
    return {r[0] for r in query(db, "SELECT DISTINCT source_id FROM runs WHERE status = 'ok'")}


def check_inbox(db: str, ids: list[str]) -> None:
    """Every served entry stored exactly once; no two runs of one source overlap."""
    counts = dict(query(db, "SELECT source_id, count(*) FROM posts GROUP BY source_id"))
    assert {i: counts.get(i, 0) for i in ids} == {i: ITEMS for i in ids}
    assert not query(
        db, "SELECT native_id FROM posts GROUP BY platform, native_id HAVING count(*) > 1"
    )
    overlapping = query(
        db,
        "SELECT a.source_id, a.run_id, b.run_id FROM runs a JOIN runs b "
        "ON a.source_id = b.source_id AND a.run_id < b.run_id "
        "AND b.started_at < coalesce(a.finished_at, now())",
    )
    assert not overlapping, overlapping


def test_three_workers_collect_every_source_once_at_a_time(
    workers: Workers, tmp_path: Path, replay: ReplayServer, pg_url: str
) -> None:
    ids = feeds(replay, 300)
    sources = sources_yaml(tmp_path / "sources.yaml", replay, ids, every="10s")
    workers.start(3, "--sources", str(sources))
    workers.wait_until(lambda: collected(pg_url) >= set(ids), "every source collected", 50)
    glas = [sys.executable, str(REPO / "bin" / "glas"), "--db", pg_url]
    status = subprocess.run(
        [*glas, "status", "--sources", str(sources)],
        cwd=tmp_path,
        env=glas_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "cluster: 3 workers" in status.stdout, status.stdout + status.stderr
    table = status.stdout.split("cluster: 3 workers", 1)[1]
    for process in workers.processes:  # each with its host, pid and a fresh heartbeat
        assert re.search(rf"\S+\s+{process.pid}\s+[0-2]s ago", table), table
    assert re.search(r"cluster backlog: \d+ collections? queued, \d+ due", table), table
    ends = workers.stop()
    assert [code for code, _ in ends] == [0, 0, 0], ends
    assert not workers.overlaps
    check_inbox(pg_url, ids)
    pids = {r[0] for r in query(pg_url, "SELECT DISTINCT pid FROM runs WHERE status = 'ok'")}
    assert len(pids) == 3  # the work was shared
    assert not query(pg_url, "SELECT run_id FROM runs WHERE status = 'running'")


def test_a_killed_worker_s_sources_are_collected_by_the_others(
    workers: Workers, tmp_path: Path, replay: ReplayServer, pg_url: str
) -> None:
    ids = feeds(replay, 60, delay=1.5)
    sources = sources_yaml(tmp_path / "sources.yaml", replay, ids, every="6s", parallel=8)
    workers.start(3, "--sources", str(sources))
    victim = workers.processes[0]

    def victim_running() -> list[str]:
        return [
            r[0]
            for r in query(
                pg_url,
                "SELECT source_id FROM runs WHERE status = 'running' AND pid = %s",
                (victim.pid,),
            )
        ]

    workers.wait_until(lambda: bool(victim_running()), "the victim collecting", 30)
    time.sleep(0.3)
    held = victim_running()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    workers.wait_until(lambda: collected(pg_url) >= set(ids), "every source collected", 40)
    ends = workers.stop()
    assert [code for code, _ in ends[1:]] == [0, 0], ends
    assert "its worker stopped answering: collected again" in ends[1][1] + ends[2][1]
    assert not workers.overlaps
    check_inbox(pg_url, ids)
    statuses = dict(
        query(
            pg_url,
            "SELECT source_id, status FROM runs WHERE pid = %s AND source_id = ANY(%s)",
            (victim.pid, held),
        )
    )
    assert set(statuses.values()) <= {"interrupted", "ok"}, statuses
    assert "interrupted" in statuses.values()


def test_a_sqlite_inbox_keeps_the_single_daemon(
    glas: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path, replay: ReplayServer
) -> None:
    sources = sources_yaml(tmp_path / "sources.yaml", replay, feeds(replay, 1), every="1h")
    done = glas("--db", "inbox.db", "worker", "--sources", str(sources))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "glas: glas worker needs a PostgreSQL inbox (--db postgresql://…); a SQLite inbox has "
        "one harvester: use glas daemon"
    ]
    assert not (tmp_path / "inbox.db").exists()


def vk_walls(vk: VkServer, count: int, posts: int) -> list[int]:
    """``count`` user walls of ``posts`` posts, each with a comment: several requests each."""
    owners = [100001 + n for n in range(count)]
    now = int(time.time())
    for owner in owners:
        for number in range(1, posts + 1):
            vk.add_post(
                owner,
                {
                    "id": number,
                    "owner_id": owner,
                    "from_id": owner,
                    "date": now - 600 * number,
                    "text": f"Пост {number} на стене {owner}: во дворе не убран снег.",
                    "comments": {"count": 1},
                },
            )
            vk.add_comment(
                owner,
                number,
                {
                    "id": 1000 + number,
                    "from_id": 700000001,
                    "post_id": number,
                    "owner_id": owner,
                    "parents_stack": [],
                    "date": now - 600 * number + 60,
                    "text": f"Комментарий к посту {number}: и у нас тоже.",
                },
            )
    return owners


def test_a_vk_token_s_rate_holds_for_the_whole_cluster(
    workers: Workers, tmp_path: Path, pg_url: str
) -> None:
    with VkServer() as vk:
        owners = vk_walls(vk, 9, posts=25)
        lines = [
            "defaults:",
            f"  vk_api_url: {vk.url}",
            "  parallel: 3",  # so that every worker gets walls
            "  schedule: {every: 8s}",  # the first collections spread over 8 s
            "sources:",
        ]
        for owner in owners:
            lines += [f"  - id: wall-{owner}", "    type: vk_wall", f"    owner: {owner}"]
        sources = tmp_path / "sources.yaml"
        sources.write_text("\n".join(lines) + "\n", encoding="utf-8")
        env = glas_env(tmp_path, VK_TOKEN="vk1.a.cluster-test-token")
        workers.start(3, "--sources", str(sources), env=env)
        ids = {f"wall-{owner}" for owner in owners}
        workers.wait_until(lambda: collected(pg_url) >= ids, "every wall collected", 50)
        ends = workers.stop()
        times = sorted(call.time for call in vk.calls if not call.inner)
    assert [code for code, _ in ends] == [0, 0, 0], ends
    pids = query(pg_url, "SELECT count(DISTINCT pid) FROM runs WHERE status = 'ok'")[0][0]
    assert pids >= 2  # the walls were shared, so the limit was too
    assert len(times) >= 10
    busiest = max(sum(t <= u < t + 0.95 for u in times) for t in times)
    assert busiest <= 3, busiest
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate <= 3.1, rate
    posts = query(pg_url, "SELECT count(*) FROM posts WHERE platform = 'vk'")[0][0]
    assert posts == 9 * 25 * 2  # every post and comment, once
    assert not query(pg_url, "SELECT 1 FROM glas_rate_slots WHERE key LIKE '%%cluster-test%%'")


COMPLAINTS = [
    "Во дворе дома {n} по улице Лесной третью неделю не вывозят мусор, контейнеры переполнены",
    "На остановке у школы номер {n} второй месяц не горит фонарь, дети идут в темноте",
    "В подъезде дома {n} на Садовой протекает крыша, вода течёт по стенам до первого этажа",
]


def test_two_harvesters_storing_one_case_at_the_same_moment_make_one_case(pg_url: str) -> None:
    """Two harvesters (two connections, two indexes of recent posts, as on two machines)
    store two reports of one complaint at once: each batch meets the other just before
    storing. The near-duplicate stage runs under the write lock, so the second sees the
    first: one case (without it, both were matched against an index without the other)."""
    from crawler.model import Post, SourceConfig
    from crawler.pipeline import Ingest, near_duplicates
    from dedupe.exact import add_exact_keys
    from storage import open_inbox

    meeting = threading.Barrier(2, timeout=20)

    def meet(posts: list[Post]) -> list[Post]:
        meeting.wait()
        return posts

    def harvest(name: str, text: str, inbox: Any) -> None:
        source = SourceConfig(id=name, type="rss", municipality="Москва")
        ingest = Ingest(inbox, source, stages=[add_exact_keys, near_duplicates(inbox), meet])
        ingest.add(Post(platform="rss", native_id=f"{name}-1", text=text))
        ingest.close()

    text = COMPLAINTS[0].format(n=12)
    inboxes = [open_inbox(pg_url), open_inbox(pg_url)]
    try:
        for inbox in inboxes:
            near_duplicates(inbox).catch_up()  # both indexes warm, and empty
        threads = [
            threading.Thread(target=harvest, args=(name, text + tail, inbox))
            for name, tail, inbox in zip(("a", "b"), (".", "! Примите меры."), inboxes, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        for inbox in inboxes:
            inbox.close()
    cases = query(pg_url, "SELECT DISTINCT cluster_id FROM posts")
    assert len(cases) == 1, cases
    assert query(pg_url, "SELECT count(*) FROM posts") == [(2,)]


def test_workers_fire_a_surge_alert_and_deliver_it_once(
    workers: Workers, tmp_path: Path, pg_url: str
) -> None:
    """The alert of tests/test_alerts_e2e.py, fired by a worker's pipeline and delivered by
    the webhook threads of two workers: sent once, not once per worker."""
    from tests.conftest import FIXTURES
    from tests.test_alerts_e2e import sources as alert_sources
    from tests.vk_server import load_wall
    from tests.webhook_receiver import Receiver

    with VkServer() as vk, Receiver() as receiver:
        vk.add_wall(load_wall(FIXTURES / "vk" / "zarechny_wall.json", newest=time.time() - 3600))
        sources = tmp_path / "sources.yaml"
        sources.write_text(textwrap.dedent(alert_sources(vk, receiver)), "utf-8")
        env = glas_env(tmp_path, VK_TOKEN="vk1.a.demo-token", GLAS_HOOK_TOKEN="hook-0123456789")
        workers.start(2, "--sources", str(sources), env=env)
        workers.wait_until(lambda: len(receiver.requests) >= 1, "the delivery", 40)
        time.sleep(2.5)  # another round of both workers' delivery threads (every 2 s)
        ends = workers.stop()
        keys = [r["headers"]["idempotency-key"] for r in receiver.requests]
    assert [code for code, _ in ends] == [0, 0], ends
    assert keys == ["glas-alert-1"]
    rows = query(pg_url, "SELECT attempts, delivered_at IS NOT NULL FROM alert_deliveries")
    assert rows == [(1, True)]


def one_site_on_three_workers(
    workers: Workers, tmp_path: Path, replay: ReplayServer, pg_url: str, ids: list[str], site: str
) -> None:
    """Collect the feeds ``ids`` of one site with the ``site`` settings on three workers; the
    feeds are shared among at least two of them (so are the site's limits)."""
    sources = sources_yaml(tmp_path / "sources.yaml", replay, ids, every="1h", parallel=30)
    text = sources.read_text(encoding="utf-8")
    sources.write_text(
        text.replace("{concurrency: 24, delay: 0s, collections: 100}", site), encoding="utf-8"
    )
    workers.start(3, "--sources", str(sources), "--parallel", "4")
    workers.wait_until(lambda: collected(pg_url) >= set(ids), "every source collected", 40)
    ends = workers.stop()
    assert [code for code, _ in ends] == [0, 0, 0], ends
    pids = query(pg_url, "SELECT count(DISTINCT pid) FROM runs WHERE status = 'ok'")[0][0]
    assert pids >= 2


def test_a_site_s_delay_holds_for_the_whole_cluster(
    workers: Workers, tmp_path: Path, replay: ReplayServer, pg_url: str
) -> None:
    """16 feeds on one site with ``delay: 0.3s``, three workers: the requests reach the site
    one per 0.3 s on the whole, whichever worker sends them (9 in 0.85 s without the shared
    turns). A turn is kept on the server's clock; a worker slowed by a loaded machine may send
    its request late, next to the following one on time: one more in a window, not three."""
    one_site_on_three_workers(
        workers, tmp_path, replay, pg_url, feeds(replay, 16), "{concurrency: 4, delay: 0.3s}"
    )
    times = sorted(r.time for r in replay.requests)
    busiest = max(sum(t <= u < t + 0.85 for u in times) for t in times)
    assert busiest <= 4, busiest
    assert (len(times) - 1) / (times[-1] - times[0]) <= 1 / 0.3 + 0.1


def test_a_site_s_concurrency_holds_for_the_whole_cluster(
    workers: Workers, tmp_path: Path, replay: ReplayServer, pg_url: str
) -> None:
    """12 feeds on one site with ``concurrency: 1``, each answering in 0.3 s, three workers:
    the site has at most one request in flight at any moment, whichever worker sends it
    (2 or 3 at once without the cluster's flights: one per worker, in three runs)."""
    ids = feeds(replay, 12, delay=0.3)
    one_site_on_three_workers(workers, tmp_path, replay, pg_url, ids, "{concurrency: 1, delay: 0s}")
    assert len(replay.requests) >= len(ids)
    assert replay.peak_in_flight == 1
    assert not query(pg_url, "SELECT id FROM glas_flights")  # every flight given back


def test_a_site_s_flights_are_given_back_expire_and_fall_back_without_a_database(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The flights of two workers (two pacers): at most ``limit`` live, free again when
    landed or when their lease ends (a SIGKILLed worker's), a free one to the worker waiting
    longest, not to the one that just landed; no database: None, said once."""
    import psycopg

    from crawler.cluster_limits import FLIGHTS_SQL, SharedPacer

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(FLIGHTS_SQL)
    a, b = SharedPacer(pg_url, holder="worker a"), SharedPacer(pg_url, holder="worker b")
    try:
        first = a.board("site:example.ru", 2, lease=30)
        second = b.board("site:example.ru", 2, lease=0.3)
        assert first and second
        assert b.board("site:example.ru", 2, lease=30) == 0  # both taken: b waits in line
        assert a.board("site:other.ru", 2, lease=30)  # another site: its own flights
        a.land(first)
        assert a.board("site:example.ru", 2, lease=30) == 0  # b has waited longer
        assert b.board("site:example.ru", 2, lease=30)
        assert a.board("site:example.ru", 2, lease=30) == 0  # both taken again: a waits
        time.sleep(0.4)  # b's flight of 0.3 s is dead: as if b had been killed
        assert a.board("site:example.ru", 2, lease=30)
    finally:
        a.close()
        b.close()
    assert not query(pg_url, "SELECT id FROM glas_flights")  # closing gives back the rest
    gone = SharedPacer("postgresql://glas@127.0.0.1:1/none?connect_timeout=1")
    assert gone.board("site:example.ru", 2, lease=30) is None
    assert gone.board("site:example.ru", 2, lease=30) is None
    gone.land(1)
    gone.close()
    said = [r for r in caplog.records if "shared request limits unavailable" in r.message]
    assert len(said) == 1

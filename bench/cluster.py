"""`make bench`: collections per minute with 1, 2 and 3 `glas worker`s on one PostgreSQL.

A latency-bound load: 480 RSS feeds on the replay server, each answering in 200–500 ms
(fixed per feed), every feed due every 20 s, each worker collecting at most ``--parallel``
(2) sources at once, so one worker cannot keep up and the backlog is never empty. For each
number of workers, on a fresh database: the workers are started, given ``--warm`` seconds,
then collections finished during ``--seconds`` are counted. Printed: collections per minute,
the speed-up against one worker, the share of collections started on time (within 2 s of
their due time: a tenth of the interval) and the inbox's consistency afterwards (every entry
once, no two runs of one source overlapping). Prints figures; asserts nothing.

    python bench/cluster.py [--seconds 30] [--warm 8]
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FEEDS = 480
ITEMS = 3
EVERY = 20


def rss(name: str) -> str:
    items = "".join(
        f"<item><title>{name} {n}</title><guid isPermaLink='false'>{name}-{n}</guid>"
        f"<link>https://feeds.example/{name}/{n}</link><description>Жалоба {n} из ленты "
        f"{name}: во дворе не убирают снег.</description>"
        f"<pubDate>Mon, 02 Mar 2026 1{n}:00:00 +0000</pubDate></item>"
        for n in range(ITEMS)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{name}</title><link>https://feeds.example/{name}/</link>"
        f"<description>bench</description>{items}</channel></rss>"
    )


def sources(path: Path, url: str, parallel: int) -> None:
    lines = [
        "defaults:",
        "  request_delay: 0s",
        f"  parallel: {parallel}",
        f"  schedule: {{every: {EVERY}s}}",
        "sites:",
        "  127.0.0.1: {concurrency: 32, delay: 0s, collections: 1000}",
        "sources:",
    ]
    for n in range(FEEDS):
        lines += [f"  - id: f{n}", "    type: rss", f"    url: {url}/f{n}.xml"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def measure(db: str, config: Path, workers: int, warm: float, seconds: float) -> dict[str, float]:
    import psycopg

    from tests.conftest import glas_env

    work = config.parent
    command = [sys.executable, str(ROOT / "bin" / "glas"), "--db", db, "worker"]
    command += ["--sources", str(config), "--heartbeat", "2"]
    processes = [
        subprocess.Popen(command, cwd=work, env=glas_env(work), stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        time.sleep(warm)
        with psycopg.connect(db, autocommit=True) as conn:
            begin = conn.execute("SELECT now()").fetchone()[0]
            time.sleep(seconds)
            end = conn.execute("SELECT now()").fetchone()[0]
            done = conn.execute(
                "SELECT count(*) FROM runs WHERE status = 'ok' AND finished_at > %s "
                "AND finished_at <= %s",
                (begin, end),
            ).fetchone()[0]
            on_time = conn.execute(
                "SELECT count(*) FILTER (WHERE e.at - j.scheduled_at <= interval '2 seconds'), "
                "count(*) FROM procrastinate_jobs j JOIN procrastinate_events e "
                "ON e.job_id = j.id AND e.type = 'started' WHERE e.at > %s AND e.at <= %s",
                (begin, end),
            ).fetchone()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
    with psycopg.connect(db, autocommit=True) as conn:
        doubles = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM posts GROUP BY platform, native_id "
            "HAVING count(*) > 1) d"
        ).fetchone()[0]
        wrong = conn.execute(
            "SELECT count(*) FROM (SELECT source_id FROM posts GROUP BY source_id "
            "HAVING count(*) <> %s) w",
            (ITEMS,),
        ).fetchone()[0]
        overlaps = conn.execute(
            "SELECT count(*) FROM runs a JOIN runs b ON a.source_id = b.source_id "
            "AND a.run_id < b.run_id AND b.started_at < a.finished_at"
        ).fetchone()[0]
    return {
        "per_minute": done * 60 / (end - begin).total_seconds(),
        "on_time": on_time[0] / on_time[1] if on_time[1] else 0.0,
        "doubles": doubles,
        "wrong": wrong,
        "overlaps": overlaps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warm", type=float, default=8.0)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    import psycopg

    from tests.pg_server import PgServer
    from tests.replay import ReplayServer

    rng = random.Random(20)
    with tempfile.TemporaryDirectory() as tmp, PgServer() as pg, ReplayServer() as replay:
        for n in range(FEEDS):
            replay.route(f"/f{n}.xml", rss(f"f{n}"))
            replay.fault(f"/f{n}.xml", delay=rng.uniform(0.2, 0.5))
        config = Path(tmp) / "sources.yaml"
        sources(config, replay.url, args.parallel)
        base = None
        print(
            f"cluster: {FEEDS} feeds answering in 200-500 ms, due every {EVERY}s, "
            f"{args.parallel} collections at once per worker, {args.seconds:.0f}s measured"
        )
        for workers in (1, 2, 3):
            with psycopg.connect(pg.url, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE w{workers}")
            db = pg.url_for(f"w{workers}")
            got = measure(db, config, workers, args.warm, args.seconds)
            base = base or got["per_minute"]
            print(
                f"  {workers} worker{'s' if workers > 1 else ' '}: "
                f"{got['per_minute']:6.0f} collections/min ({got['per_minute'] / base:.2f}x), "
                f"{got['on_time']:4.0%} started on time; inbox: {got['doubles']} entries "
                f"twice, {got['wrong']} sources with missing entries, {got['overlaps']} "
                "overlapping runs"
            )


if __name__ == "__main__":
    main()

"""The cluster's engine, measured (issue 20): what choosing it rests on.

On a throwaway PostgreSQL (tests/pg_server.py), Procrastinate 3 with worker processes:

- dispatch: 500 empty jobs deferred in one batch, one worker (concurrency 10) runs them;
  milliseconds of engine overhead per job;
- recovery: a worker SIGKILLed while its job (lock ``s1``) runs; a second worker (heartbeat
  1 s, stalled after 3 s, Glas's recovery: ``get_stalled_jobs`` + ``retry_job``) runs the job
  again; seconds from the kill to the job running again;
- exactly once under lock: three workers, 300 jobs on 30 locks (30 ms each); every job run
  once and no two jobs of one lock at once (checked from what the jobs wrote).

With ``--celery PYTHON`` (a Python with celery[redis] installed) and a ``redis-server`` on
PATH, the same dispatch and recovery for Celery 5 + Redis (``acks_late``, the Redis
transport's ``visibility_timeout`` 5 s: Celery has no per-key lock, so exactly once under a
lock needs a home-made one). Prints figures; asserts nothing.

    python bench/cluster_engines.py [--celery /path/to/python]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKER = """
import asyncio, os, sys, time
import procrastinate, psycopg
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["DB"]))

@app.task(name="noop", queue="bench")
async def noop(n: int) -> None:
    pass

@app.task(name="mark", queue="bench")
async def mark(n: int, lock: str, sleep: float) -> None:
    started = time.time()
    await asyncio.sleep(sleep)
    async with await psycopg.AsyncConnection.connect(os.environ["DB"], autocommit=True) as c:
        await c.execute("INSERT INTO marks VALUES (%s, %s, %s, %s, %s)",
                        (n, lock, started, time.time(), os.getpid()))

async def recover():
    while True:
        for job in await app.job_manager.get_stalled_jobs(queue="bench", seconds_since_heartbeat=3):
            try:
                await app.job_manager.retry_job(job)
            except Exception:
                pass
        await asyncio.sleep(0.5)

async def main():
    async with app.open_async():
        keeper = asyncio.ensure_future(recover())
        await app.run_worker_async(queues=["bench"], concurrency=10, update_heartbeat_interval=1,
                                   stalled_worker_timeout=3, fetch_job_polling_interval=0.2,
                                   wait=os.environ.get("WAIT") == "1")
        keeper.cancel()

asyncio.run(main())
"""


def _worker(path: Path, db: str, *, wait: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DB": db, "WAIT": "1" if wait else "0", "PYTHONPATH": str(path.parent)}
    return subprocess.Popen(
        [sys.executable, str(path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _defer(db: str, jobs: list[tuple[str, dict]], lock: bool = False) -> None:
    import logging

    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # "App in the main module"
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=db))
    noop = app.task(name="noop", queue="bench")(_nothing)
    mark = app.task(name="mark", queue="bench")(_nothing)
    async with app.open_async():
        for name, kwargs in jobs:
            task = noop if name == "noop" else mark
            locks = {"lock": kwargs["lock"]} if lock else {}
            await task.configure(**locks).defer_async(**kwargs)


async def _nothing(**kwargs: object) -> None:
    pass


def _count(db: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        return int(conn.execute(sql).fetchone()[0])


def procrastinate_figures(db: str, script: Path) -> None:
    import psycopg
    from procrastinate.schema import SchemaManager

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SchemaManager.get_schema())
        conn.execute("CREATE TABLE marks (n int, lock text, t0 float8, t1 float8, pid int)")
    # dispatch
    asyncio.run(_defer(db, [("noop", {"n": n}) for n in range(500)]))
    _worker(script, db, wait=False).wait()
    with psycopg.connect(db, autocommit=True) as conn:
        spent = conn.execute(
            "SELECT extract(epoch FROM max(at) - min(at)) FROM procrastinate_events "
            "WHERE type IN ('started', 'succeeded')"
        ).fetchone()[0]
    spent = float(spent)
    print(f"procrastinate dispatch: 500 jobs in {spent:.2f}s ({spent * 2:.2f} ms/job, one worker, "
          "first start to last end)")  # fmt: skip
    # recovery of a SIGKILLed worker's job
    victim = _worker(script, db, wait=True)
    asyncio.run(_defer(db, [("mark", {"n": 0, "lock": "s1", "sleep": 30.0})], lock=True))
    doing = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
    while not _count(db, doing):
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed = time.perf_counter()
    rescuer = _worker(script, db, wait=True)
    retried = "SELECT count(*) FROM procrastinate_events WHERE type = 'deferred_for_retry'"
    while not _count(db, retried):
        time.sleep(0.05)
    while not _count(db, doing):
        time.sleep(0.05)
    print(f"procrastinate recovery: the killed worker's job running again after "
          f"{time.perf_counter() - killed:.1f}s (heartbeat 1s, stalled after 3s)")  # fmt: skip
    rescuer.kill()
    rescuer.wait()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DELETE FROM procrastinate_jobs")
    # exactly once under lock
    jobs = [("mark", {"n": n, "lock": f"l{n % 30}", "sleep": 0.03}) for n in range(1, 301)]
    asyncio.run(_defer(db, jobs, lock=True))
    began = time.perf_counter()
    workers = [_worker(script, db, wait=False) for _ in range(3)]
    for worker in workers:
        worker.wait()
    spent = time.perf_counter() - began
    with psycopg.connect(db, autocommit=True) as conn:
        runs = conn.execute("SELECT n, count(*) FROM marks WHERE n > 0 GROUP BY n").fetchall()
        overlaps = conn.execute(
            "SELECT count(*) FROM marks a JOIN marks b ON a.lock = b.lock AND a.n < b.n "
            "AND a.t0 < b.t1 AND b.t0 < a.t1"
        ).fetchone()[0]
        pids = conn.execute("SELECT count(DISTINCT pid) FROM marks WHERE n > 0").fetchone()[0]
    once = sum(c == 1 for _, c in runs)
    print(f"procrastinate under lock: {once}/300 jobs run exactly once, {overlaps} overlaps of "
          f"one lock, on {pids} workers, {spent:.1f}s")  # fmt: skip


CELERY_APP = """
import os, time
from celery import Celery
app = Celery("bench", broker=os.environ["REDIS"], backend=None)
app.conf.task_acks_late = True
app.conf.task_reject_on_worker_lost = True
app.conf.worker_prefetch_multiplier = 1
app.conf.broker_transport_options = {"visibility_timeout": 5}

@app.task(name="noop")
def noop(n):
    pass

@app.task(name="long")
def long(n):
    with open(os.environ["MARKS"], "a") as f:
        f.write(f"{time.time()} {os.getpid()}\\n")
    time.sleep(30)
"""


def celery_figures(python: str, workdir: Path) -> None:
    import shutil
    import socket

    server = shutil.which("redis-server")
    if server is None:
        print("celery: redis-server not installed: skipped")
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    redis = subprocess.Popen(
        [server, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    (workdir / "benchcelery.py").write_text(CELERY_APP)
    marks = workdir / "marks"
    env = {**os.environ, "REDIS": f"redis://127.0.0.1:{port}/0", "MARKS": str(marks)}
    env["PYTHONPATH"] = str(workdir)

    def run(code: str) -> None:
        subprocess.run([python, "-c", code], env=env, check=True, cwd=workdir)

    def worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [python, "-m", "celery", "-A", "benchcelery", "worker", "-P", "threads", "-c", "10",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "ERROR"],
            env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    try:
        run("import benchcelery as b\nfor n in range(500): b.noop.delay(n)")
        began = time.perf_counter()
        w = worker()
        length = "import benchcelery as b, sys; sys.exit(b.app.connection().default_channel"
        length += ".client.llen('celery'))"
        while subprocess.run([python, "-c", length], env=env, cwd=workdir).returncode:
            time.sleep(0.05)
        spent = time.perf_counter() - began  # includes the worker's start, as above
        print(f"celery dispatch: 500 jobs in {spent:.2f}s ({spent * 2:.2f} ms/job, one worker, "
              "its start included)")  # fmt: skip
        w.kill()
        w.wait()
        victim = worker()
        run("import benchcelery as b; b.long.delay(1)")
        while not marks.exists():
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        killed = time.perf_counter()
        rescuer = worker()
        while len(marks.read_text().splitlines()) < 2 and time.perf_counter() - killed < 120:
            time.sleep(0.1)
        print(f"celery recovery: the killed worker's job running again after "
              f"{time.perf_counter() - killed:.1f}s (visibility_timeout 5s; a job running longer "
              "than it is delivered twice)")  # fmt: skip
        rescuer.kill()
        rescuer.wait()
    finally:
        redis.terminate()
        redis.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--celery", metavar="PYTHON", help="a Python with celery[redis]")
    args = parser.parse_args()
    from tests.pg_server import PgServer

    with tempfile.TemporaryDirectory() as tmp, PgServer() as pg:
        script = Path(tmp) / "benchworker.py"
        script.write_text(WORKER)
        procrastinate_figures(pg.url, script)
        if args.celery:
            celery_figures(args.celery, Path(tmp))


if __name__ == "__main__":
    main()

"""`make bench`: the whole ingest pipeline on the real St Petersburg appeals (read in place).

Prints figures; asserts nothing. Each figure is measured in a process of its own (so its peak
memory is its own), CPU time of that process beside wall-clock time:
- normalise and exact-duplicate key alone; feedparser + mapping of the real mos.ru feed;
- the whole pipeline (normalise, exact and near-duplicates, flagging, storage; batches of
  200) into a fresh SQLite inbox and a fresh PostgreSQL one (a throwaway local server,
  tests/pg_server.py), then the same posts collected again (unchanged), in a warm process
  (its start is timed apart: the harvester pays it once);
- ``glas import`` of the same appeals written as a JSONL file into a fresh inbox (rows read
  and checked, then the pipeline in one transaction, batches of 500);
- the same 59,889 posts arriving in an inbox that holds a million earlier posts already
  (generated from the appeals: words altered, dates moved back half a year per copy; stored
  without flagging to build it quickly), to show that the cost per post does not grow with
  the inbox.

    .venv/bin/python bench/ingest.py [--backend sqlite|postgresql|both] [--history N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.model import Post, SourceConfig  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
APPEALS = DATA / "appeals" / "spb_nash_gorod.jsonl.gz"
MOS_RSS = DATA / "fixtures" / "rss_mos_ru_news_2022-07-27.xml"
SOURCE = SourceConfig(id="nash-gorod", type="import", timezone="Europe/Moscow")
BATCH = 200
POST_FIELDS = ("platform", "native_id", "source_id", "author_id", "title", "text", "raw")
HALF_YEAR = timedelta(days=183)


def load_appeals() -> list[dict]:
    with gzip.open(APPEALS, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def to_posts(appeals: list[dict]) -> list[Post]:
    return [
        Post(
            platform="web",
            native_id=str(a["id"]),
            source_id="nash-gorod",
            author_id=a["author"],
            title=a["reason"],
            text=a["text"],
            published_at=datetime.fromisoformat(a["created_dt"]),
            raw={"category": a["category"], "district": a["district"]},
        )
        for a in appeals
    ]


def history(appeals: list[dict], size: int) -> Iterator[Post]:
    """``size`` earlier posts: copies of the appeals, each copy half a year earlier than the
    one after it, with ids of their own and two words of each text replaced."""
    rng = random.Random(7)
    words = [w for a in appeals[:2000] for w in a["text"].split() if len(w) > 4]
    made = 0
    for copy in range(1, size // len(appeals) + 2):
        for post in to_posts(appeals):
            if made == size:
                return
            tokens = post.text.split()
            for _ in range(2):
                if tokens:
                    tokens[rng.randrange(len(tokens))] = rng.choice(words)
            post.native_id = f"h{copy}-{post.native_id}"
            post.text = " ".join(tokens)
            post.published_at = post.published_at - copy * HALF_YEAR  # type: ignore[operator]
            made += 1
            yield post


def ingest(url: str, appeals: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    """The pipeline as `glas import` and every collection run it, in a warm process as the
    harvester keeps one: the start (opening the inbox, lexicons and models, the
    near-duplicate index of the window's stored posts) and the posts are timed apart. The
    posts are made inside the timing, as a collector would."""
    from crawler.pipeline import Ingest, near_duplicates
    from storage import open_inbox

    with open_inbox(url) as inbox:
        start = measured(
            lambda: near_duplicates(inbox).catch_up() + len(Ingest(inbox, SOURCE).stages)
        )

        def run() -> None:
            pipeline = Ingest(inbox, SOURCE, batch_size=BATCH)
            for post in to_posts(appeals):
                pipeline.add(post)
            pipeline.close()

        return start, measured(run)


def build_history(url: str, size: int) -> None:
    """Store ``size`` earlier posts quickly: normalised, exact keys, no flagging."""
    from zoneinfo import ZoneInfo

    from crawler.normalize import normalise
    from dedupe.exact import add_exact_keys
    from storage import open_inbox

    zone = ZoneInfo("Europe/Moscow")
    with open_inbox(url) as inbox:
        batch: list[Post] = []
        for post in history(load_appeals(), size):
            batch.append(normalise(post, zone))
            if len(batch) == 2000:
                inbox.store("history", add_exact_keys(batch))
                batch = []
        if batch:
            inbox.store("history", add_exact_keys(batch))


def measured(func: Callable[[], Any]) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    func()
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def job_pipeline(url: str) -> list[tuple[str, dict[str, float]]]:
    """Fresh, then unchanged, in one process (the second needs the first's inbox)."""
    appeals = load_appeals()
    start, fresh = ingest(url, appeals)
    fresh["peak"] = start["peak"] = peak_mib()
    _, again = ingest(url, appeals)
    again["peak"] = peak_mib()
    return [("start", start), ("fresh", fresh), ("again", again)]


def job_import(url: str, folder: str) -> list[tuple[str, dict[str, float]]]:
    """``glas import`` of the appeals written as a Post-shaped JSONL file: reading and
    checking each row, then the pipeline in one transaction (batches of 500)."""
    from crawler.importer import import_file
    from crawler.pipeline import Ingest, near_duplicates
    from storage import open_inbox

    path = Path(folder) / "appeals.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for post in to_posts(load_appeals()):
            row = {name: getattr(post, name) for name in POST_FIELDS}
            row["published_at"] = post.published_at.isoformat()  # type: ignore[union-attr]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open_inbox(url) as inbox:
        start = measured(
            lambda: near_duplicates(inbox).catch_up() + len(Ingest(inbox, SOURCE).stages)
        )
        figure = measured(lambda: import_file(inbox, path, source_id=SOURCE.id))
    figure["peak"] = start["peak"] = peak_mib()
    return [("start", start), ("import", figure)]


def job_history_next(url: str) -> list[tuple[str, dict[str, float]]]:
    start, figure = ingest(url, load_appeals())
    figure["peak"] = start["peak"] = peak_mib()
    return [("start", start), ("after history", figure)]


def job_steps() -> list[tuple[str, dict[str, float]]]:
    from zoneinfo import ZoneInfo

    from crawler.normalize import normalise
    from dedupe.exact import add_exact_keys
    from spiders.rss import parse_feed

    posts = to_posts(load_appeals())
    zone = ZoneInfo("Europe/Moscow")
    out = [("normalise", measured(lambda: [normalise(p, zone) for p in posts]))]
    out.append(("exact key", measured(lambda: add_exact_keys(posts))))
    body = MOS_RSS.read_bytes()
    feed = "https://www.mos.ru/rss"
    out.append(("rss", measured(lambda: [parse_feed(body, feed) for _ in range(300)])))
    for _, figure in out:
        figure["peak"] = peak_mib()
    return out


def in_child(job: Callable[..., Any], *args: Any) -> Any:
    """Run ``job`` in a fresh process (its own imports, caches and peak memory)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(job, args)


def line(label: str, n: int, figure: dict[str, float], unit: str = "posts") -> float:
    rate = n / figure["cpu"]
    print(
        f"  {label:<54} {rate:>9,.0f} {unit}/s CPU  {n / figure['wall']:>9,.0f} wall"
        f"  ({figure['cpu']:6.2f} s CPU, {figure['wall']:6.2f} s)  peak {figure['peak']:,.0f} MiB"
    )
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--history", type=int, default=1_000_000, help="0 to skip")
    args = parser.parse_args()
    if not APPEALS.exists():
        print(f"bench: {APPEALS} is missing (../shared/data beside the checkout)", file=sys.stderr)
        return 1
    n = len(load_appeals())
    print(f"corpus: {n:,} real appeals from {APPEALS.name}; one core; load {load()}\n")
    steps = dict(in_child(job_steps))
    line("normalise (plain text, whitespace, UTC)", n, steps["normalise"])
    line("exact-duplicate key", n, steps["exact key"])
    line("RSS parse + map (real mos.ru feed, 10 entries)", 3000, steps["rss"], unit="entries")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            with database(backend, Path(tmp), "fresh") as url:
                figures = dict(in_child(job_pipeline, url))
            print(f"\n{backend}: the whole pipeline, batches of {BATCH}")
            print(
                f"  (start: lexicons, models, an empty index: {figures['start']['cpu']:.2f} s CPU)"
            )
            fresh = line("into a fresh inbox", n, figures["fresh"])
            line("the same posts again (unchanged)", n, figures["again"])
            with database(backend, Path(tmp), "import") as url:
                figures = dict(in_child(job_import, url, tmp))
            line("glas import: a JSONL file, one transaction", n, figures["import"])
            if not args.history:
                continue
            with database(backend, Path(tmp), "history") as url:
                built = measured(lambda u=url: in_child(build_history, u, args.history))
                print(f"  (a {args.history:,}-post inbox built in {built['wall']:.0f} s)")
                figures = dict(in_child(job_history_next, url))
            start = figures["start"]
            print(
                f"  (start: the index of the window's {args.history:,}-post inbox: "
                f"{start['cpu']:.2f} s CPU, {start['wall']:.2f} s)"
            )
            rate = line(f"into an inbox of {args.history:,} posts", n, figures["after history"])
            print(f"  {'':<54} {rate / fresh:>9.0%} of the fresh-inbox rate")
    return 0


class database:
    """A URL for a new inbox of ``backend`` (a file, or a database on a throwaway server)."""

    server: Any = None

    def __init__(self, backend: str, tmp: Path, name: str) -> None:
        self.backend, self.tmp, self.name = backend, tmp, name

    def __enter__(self) -> str:
        if self.backend == "sqlite":
            return str(self.tmp / f"{self.name}.db")
        from tests.pg_server import PgServer

        self.server = PgServer()
        self.server.__enter__()
        return self.server.url

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.__exit__(*exc)


def load() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


if __name__ == "__main__":
    sys.exit(main())

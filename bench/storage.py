"""`make bench`: posts/s into PostgreSQL vs SQLite for the same batches (real appeals).

Prints figures; asserts nothing. The storage step alone (no flagging, no near-duplicates):
the real St Petersburg appeals with their exact-duplicate keys, stored in batches as the
pipeline does, into a fresh inbox of each backend, then the same posts again (unchanged),
then exported. PostgreSQL is a throwaway local server (tests/pg_server.py: initdb + pg_ctl,
loopback TCP, fsync off as in the tests), so the figures show the backend's cost per post,
not a disk's.

    .venv/bin/python bench/storage.py [--posts 20000] [--batch 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import load_appeals, to_posts  # noqa: E402
from crawler.model import Post  # noqa: E402
from dedupe.exact import add_exact_keys  # noqa: E402
from storage import open_inbox  # noqa: E402
from storage.inbox import Inbox  # noqa: E402
from tests.pg_server import PgServer  # noqa: E402

MOSCOW = ZoneInfo("Europe/Moscow")


def store_all(inbox: Inbox, posts: list[Post], batch: int) -> None:
    for start in range(0, len(posts), batch):
        inbox.store("nash-gorod", posts[start : start + batch])


def rate(n: int, func: Callable[[], object]) -> float:
    began = time.perf_counter()
    func()
    return n / (time.perf_counter() - began)


def measure(url: str, posts: list[Post], batch: int) -> dict[str, float]:
    with open_inbox(url) as inbox:
        fresh = rate(len(posts), lambda: store_all(inbox, posts, batch))
        again = rate(len(posts), lambda: store_all(inbox, posts, batch))
        exported = rate(len(posts), lambda: sum(1 for _ in inbox.export()))
    return {"fresh": fresh, "again": again, "export": exported}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    posts = to_posts(load_appeals()[: args.posts])
    for post in posts:  # the pipeline reads naive times in the source's zone
        if post.published_at is not None and post.published_at.tzinfo is None:
            post.published_at = post.published_at.replace(tzinfo=MOSCOW)
    add_exact_keys(posts)
    print(f"storage: {len(posts):,} real appeals in batches of {args.batch} (posts/s, one core)")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = measure(str(Path(tmp) / "bench.db"), posts, args.batch)
    with PgServer() as pg:
        postgres = measure(pg.url, posts, args.batch)
    print(f"  {'':28}{'SQLite':>12}{'PostgreSQL':>14}")
    for key, label in (
        ("fresh", "store into a fresh inbox"),
        ("again", "same posts again (unchanged)"),
        ("export", "export posts (seq order)"),
    ):
        print(f"  {label:28}{sqlite[key]:>12,.0f}{postgres[key]:>14,.0f}")


if __name__ == "__main__":
    main()

"""`make bench`: ingest throughput on the real St Petersburg appeals (read in place).

Prints figures; asserts nothing. Measures, on one core:
- normalise + exact-duplicate key, posts/s;
- store into a fresh SQLite inbox through the pipeline (batches of 200), posts/s;
- the same posts collected again (all unchanged, no new seq), posts/s;
- feedparser + mapping of the real mos.ru feed, entries/s;
- peak memory of the process.
"""

from __future__ import annotations

import gzip
import json
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.model import Post, SourceConfig  # noqa: E402
from crawler.normalize import normalise  # noqa: E402
from crawler.pipeline import Ingest  # noqa: E402
from dedupe.exact import add_exact_keys  # noqa: E402
from spiders.rss import parse_feed  # noqa: E402
from storage.sqlite import SqliteInbox  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
APPEALS = DATA / "appeals" / "spb_nash_gorod.jsonl.gz"
MOS_RSS = DATA / "fixtures" / "rss_mos_ru_news_2022-07-27.xml"


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


def timed(label: str, n: int, func, unit: str = "posts") -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    func()
    seconds = time.perf_counter() - began
    print(f"{label:<48} {n:>8,} {unit} in {seconds:6.2f}s = {n / seconds:>10,.0f} {unit}/s")
    return seconds


def main() -> int:
    if not APPEALS.exists():
        print(f"bench: {APPEALS} is missing (../shared/data beside the checkout)", file=sys.stderr)
        return 1
    appeals = load_appeals()
    n = len(appeals)
    print(f"corpus: {n:,} real appeals from {APPEALS.name}\n")
    source = SourceConfig(id="nash-gorod", type="import", timezone="Europe/Moscow")
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Moscow")
    posts = to_posts(appeals)
    timed("normalise (plain text, whitespace, UTC)", n, lambda: [normalise(p, zone) for p in posts])
    timed("exact-duplicate key", n, lambda: add_exact_keys(posts))

    with tempfile.TemporaryDirectory() as tmp:
        inbox = SqliteInbox(Path(tmp) / "bench.db")

        def ingest_all() -> None:
            ingest = Ingest(inbox, source, batch_size=200)
            for post in to_posts(appeals):
                ingest.add(post)
            ingest.close()

        timed("pipeline into a fresh SQLite inbox (batch 200)", n, ingest_all)
        seq = inbox.last_seq()
        timed("same posts again (unchanged: no writes)", n, ingest_all)
        assert inbox.last_seq() == seq
        clusters = inbox.conn.execute("SELECT count(*) FROM clusters WHERE size > 1").fetchone()
        size = (Path(tmp) / "bench.db").stat().st_size
        print(f"{'':<48} repeated cases: {clusters[0]:,}; inbox file {size / 2**20:.0f} MiB")
        inbox.close()

    body = MOS_RSS.read_bytes()
    rounds = 300
    timed(
        "RSS parse + map (real mos.ru feed, 10 entries)",
        rounds * 10,
        lambda: [parse_feed(body, "https://www.mos.ru/rss") for _ in range(rounds)],
        unit="entries",
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory (RSS): {peak:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`: `glas report` over an inbox of a million posts, SQLite and PostgreSQL.

Prints figures; asserts nothing. The inbox is generated (made-up residents of 40
municipalities writing about 20 topics and 2,000 streets over 14 days; cases of one to five
posts; a third of them answered by an official account; texts and raw objects of a real
post's width) and written straight into the tables, with the schema's indexes, so that it
builds in about a minute. Every post lies in the report's week or the week before it: the
whole inbox is counted. The report (figures and the HTML page) runs in a fresh process of its
own: its CPU time, wall-clock time and peak memory are the report's.

    .venv/bin/python bench/report.py [--backend sqlite|postgresql|both] [--posts N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.cases import SUMMARY_COLUMNS  # noqa: E402

UNTIL = datetime(2026, 11, 27, tzinfo=UTC)
DAYS = 14
TOPICS = [
    "housing",
    "roads",
    "transport",
    "landscaping",
    "waste",
    "ecology",
    "energy",
    "healthcare",
    "education",
    "social",
    "safety",
    "construction",
    "culture",
    "sport",
    "communications",
    "trade",
    "labour",
    "animals",
    "public_services",
    "other",
]
PLATFORMS = ("vk", "ok", "telegram", "max", "web")
FILLER = (
    "Здравствуйте! Третью неделю во дворе дома не вывозят мусор, контейнеры переполнены, "
    "жители обращались в управляющую компанию, но ответа нет. Просим разобраться и принять меры. "
)
POST_COLUMNS = [
    "id",
    "platform",
    "native_id",
    "source_id",
    "kind",
    "url",
    "author_id",
    "author_name",
    "author_is_official",
    "text",
    "published_at",
    "raw",
    "dedupe_key",
    "cluster_id",
    "is_canonical",
    "complaint_score",
    "is_complaint",
    "topics",
    "places",
    "municipality",
    "answered_at",
    "answered_by",
    "response_seconds",
    "content_hash",
    "first_seen_at",
    "updated_at",
    "seq",
]
CASE_COLUMNS = ["cluster_id", *SUMMARY_COLUMNS, "updated_at", "seq"]


def _t(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(posts: int, seed: int = 19) -> Iterator[tuple[list[tuple], list[tuple]]]:
    """Batches of (post rows, case rows), in the order of the columns above."""
    rng = random.Random(seed)
    start = UNTIL - timedelta(days=DAYS)
    towns = [f"Муниципалитет {n}" for n in range(40)]
    streets = [f"улица {n}-я Линия" for n in range(2000)]
    made = case_id = 0
    post_rows: list[tuple] = []
    case_rows: list[tuple] = []
    while made < posts:
        case_id += 1
        size = min(rng.choice((1, 1, 1, 2, 2, 3, 5)), posts - made)
        town = rng.choice(towns)
        topics = rng.sample(TOPICS, rng.choice((1, 1, 2)))
        street = rng.randrange(len(streets))
        places = [{"kind": "street", "name": streets[street]}] if rng.random() < 0.7 else []
        if places and rng.random() < 0.3:
            places.append({"kind": "district", "name": f"район {street % 50}"})
        first = start + timedelta(seconds=rng.randrange(DAYS * 86400 - 3600))
        answered = first + timedelta(hours=rng.expovariate(1 / 20)) if rng.random() < 0.35 else None
        times = sorted(
            first + timedelta(seconds=rng.randrange(3 * 86400) if n else 0) for n in range(size)
        )
        times = [min(t, UNTIL - timedelta(seconds=1)) for t in times]
        platforms: set[str] = set()
        authors: set[str] = set()
        for n, at in enumerate(times):
            made += 1
            platform = rng.choice(PLATFORMS)
            author = str(rng.randrange(300_000))
            platforms.add(platform)
            authors.add(author)
            native = f"{case_id}_{n}"
            text = f"{FILLER}{streets[street]}, {town}. Обращение {native}."
            raw = json.dumps({"id": native, "text": text, "from_id": author}, ensure_ascii=False)
            answer = answered if n == 0 else None
            post_rows.append(
                (
                    made, platform, native, f"src-{platform}-{street % 100}", "post",
                    f"https://example.invalid/{platform}/{native}", author, f"Житель {author}", 0,
                    text, _t(at), raw, f"k{case_id}", case_id, 1 if n == 0 else 0, 0.8, 1,
                    json.dumps(topics), json.dumps(places, ensure_ascii=False), town,
                    _t(answer) if answer else None, "official" if answer else None,
                    int((answer - at).total_seconds()) if answer else None, f"h{made}", _t(at),
                    _t(at), made,
                )
            )  # fmt: skip
        case_rows.append(
            (
                case_id, "vk", f"{case_id}_0", size, len(authors), json.dumps(sorted(platforms)),
                json.dumps([]), _t(times[0]), _t(times[-1]), json.dumps(topics), town, 0.8, 1,
                _t(answered) if answered else None, _t(times[-1]), posts + case_id,
            )
        )  # fmt: skip
        if len(post_rows) >= 20_000:
            yield post_rows, case_rows
            post_rows, case_rows = [], []
    if post_rows:
        yield post_rows, case_rows


def build_inbox(url: str, posts: int) -> float:
    """Fill an empty inbox at ``url``; seconds taken."""
    from storage import open_inbox

    began = time.perf_counter()
    inbox: Any = open_inbox(url)
    with inbox.transaction():
        for post_rows, case_rows in generate(posts):
            # the canonical platform is the first post's
            first = {row[13]: row[1] for row in post_rows if row[14] == 1}
            case_rows = [(r[0], first[r[0]], *r[2:]) for r in case_rows]
            inbox._insert_rows("posts", POST_COLUMNS, post_rows)
            inbox._insert_rows("clusters", CASE_COLUMNS, case_rows)
        inbox._execute("UPDATE counters SET value = ? WHERE name = 'seq'", (posts * 3,))
    if inbox.dialect == "postgresql":
        inbox._execute("ANALYZE")
    inbox.close()
    return time.perf_counter() - began


def job_report(url: str, out: str) -> dict[str, float]:
    """The report as `glas report` makes it: figures, then the HTML page."""
    cpu, wall = time.process_time(), time.perf_counter()
    from crawler.norms import NormRule, NormSettings
    from crawler.routing import RoutingRule, RoutingSettings, topic_labels
    from crawler.situation import Period, build
    from crawler.situation_html import render
    from storage import open_inbox

    inbox = open_inbox(url, create=False)
    report = build(
        inbox,
        Period(UNTIL - timedelta(days=7), UNTIL),
        norms=NormSettings(rules=[NormRule(topic="roads", within="48h")]),
        routing=RoutingSettings(
            default="ЦУР", rules=[RoutingRule(topic="roads", agency="Дорожный комитет")]
        ),
        labels=topic_labels(),
    )
    figures = time.perf_counter() - wall
    Path(out).write_text(render(report), encoding="utf-8")
    inbox.close()
    return {
        "cpu": time.process_time() - cpu,
        "wall": time.perf_counter() - wall,
        "figures_wall": figures,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "residents": report["totals"]["residents"],
        "cases": report["totals"]["cases"],
    }


def in_child(url: str, out: str) -> dict[str, float]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(job_report, (url, out))


def run(backend: str, posts: int, tmp: Path) -> None:
    if backend == "postgresql":
        from tests.pg_server import PgServer, PgUnavailable

        try:
            server = PgServer()
        except PgUnavailable as exc:
            print(f"postgresql: skipped ({exc})")
            return
        with server:
            import psycopg

            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench")
            measure(backend, server.url_for("bench"), posts, tmp)
        return
    measure(backend, str(tmp / "inbox.db"), posts, tmp)


def measure(backend: str, url: str, posts: int, tmp: Path) -> None:
    built = build_inbox(url, posts)
    figure = in_child(url, str(tmp / f"report-{backend}.html"))
    print(
        f"glas report over {posts:,} posts ({backend}): CPU {figure['cpu']:.1f} s, wall "
        f"{figure['wall']:.1f} s (figures {figure['figures_wall']:.1f} s), peak "
        f"{figure['peak_mib']:.0f} MiB; {figure['residents']:,} residents, "
        f"{figure['cases']:,} cases in the week (inbox built in {built:.0f} s)",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--posts", type=int, default=1_000_000)
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="glas-bench-report-") as tmp:
            run(backend, args.posts, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())

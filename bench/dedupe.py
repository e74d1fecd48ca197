"""`make bench`: near-duplicate clustering, quality and speed (prints figures, asserts nothing).

Corpus: the 59,889 real appeals (read in place) with repost variants from bench/variants.py
(prefixes, emoji, cut tails, typos, swapped words, remarks), 20% of all posts; beyond the real
appeals the generator writes new complaints in the same words about other addresses.

1. Quality on a 20k sample against exhaustive ground truth: every pair scored by rapidfuzz
   ``process.cdist`` (token_sort_ratio and token_set_ratio, the same threshold and guards as
   Glas). Recall: share of similar pairs that Glas puts in one case. Precision: share of
   Glas' same-case pairs that the ground truth connects (directly or through other posts);
   also the share that are directly similar.
2. Speed on one core, side by side: the Glas stage, exhaustive cdist (1,000 rows measured, the
   rest extrapolated), datasketch MinHashLSH alone (64 permutations, Jaccard threshold = the
   threshold / 100, no confirmation; up to 100k posts).
3. Restart: rebuilding the index from an inbox of 100k posts, and pipeline store speed.

Usage: ``python bench/dedupe.py [--quick]`` (--quick skips the 1M runs).
"""

from __future__ import annotations

import gc
import os
import random
import resource
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.variants import APPEALS, Item, corpus, load_appeals  # noqa: E402
from crawler.model import Post, SourceConfig  # noqa: E402
from crawler.pipeline import Ingest  # noqa: E402
from dedupe.exact import add_exact_keys, text_key  # noqa: E402
from dedupe.normalise import normalise_for_match, numbers  # noqa: E402
from dedupe.score import numbers_agree, sort_words, subset_allowed  # noqa: E402
from dedupe.settings import DedupeSettings  # noqa: E402
from dedupe.stage import NearDuplicates  # noqa: E402
from storage.sqlite import SqliteInbox  # noqa: E402

SETTINGS = DedupeSettings()
BATCH = 200
POSTS_PER_DAY = 5000  # corpora span size / 5000 days: the index holds what a region sees
TAIL = 100_000  # the last posts of a run, timed apart (see ``speed``)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    """The 1/5/15-minute load averages: other processes on the machine slow every figure."""
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def one_core() -> None:
    """Pin the process to one CPU so every figure is a one-core figure."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def items(appeals: list[dict], size: int) -> list[Item]:
    days = max(1, size // POSTS_PER_DAY)
    return list(corpus(appeals, size, days=days))


def as_post(item: Item) -> Post:
    return Post(
        platform="web",
        native_id=item.id,
        source_id="bench",
        author_id=item.author,
        text=item.text,
        published_at=item.at.replace(tzinfo=UTC),
    )


# -- Glas ---------------------------------------------------------------------------------
def run_glas(stream: list[Item]) -> tuple[float, NearDuplicates, dict[str, list[str]]]:
    """The stage over ``stream`` in batches; seconds spent in the stage, links per post.

    The stage's CPU seconds (this thread's) are kept in ``stage.cpu_seconds``: on a shared
    machine the wall-clock figure also counts the time other processes held the core. Those
    of the last ``TAIL`` posts alone are kept in ``stage.tail_cpu_seconds``.
    """
    stage = NearDuplicates(SETTINGS)
    links: dict[str, list[str]] = {}
    spent = cpu = tail = 0.0
    tail_from = len(stream) - TAIL
    for start in range(0, len(stream), BATCH):
        posts = [as_post(item) for item in stream[start : start + BATCH]]
        began, began_cpu = time.perf_counter(), time.thread_time()
        stage(posts)
        spent += time.perf_counter() - began
        used = time.thread_time() - began_cpu
        cpu += used
        if start >= tail_from:
            tail += used
        for post in posts:
            if post.duplicate_of:
                links[post.native_id] = [key[1] for key in post.duplicate_of]
    stage.cpu_seconds = cpu  # type: ignore[attr-defined]
    stage.tail_cpu_seconds = tail  # type: ignore[attr-defined]
    return spent, stage, links


def glas_cases(stream: list[Item], links: dict[str, list[str]]) -> list[int]:
    """Case of each post as storage would make it: links plus exact keys."""
    index = {item.id: n for n, item in enumerate(stream)}
    parent = list(range(len(stream)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_key: dict[str, int] = {}
    for n, item in enumerate(stream):
        key = text_key(item.text)
        if key is not None:
            union(n, by_key.setdefault(key, n))
        for other in links.get(item.id, []):
            if other in index:
                union(n, index[other])
    return [find(n) for n in range(len(stream))]


# -- exhaustive ground truth -----------------------------------------------------------------
def normalised(stream: list[Item]) -> tuple[list[str], np.ndarray]:
    normals = [normalise_for_match(item.text) for item in stream]
    keep = np.array([len(n) >= SETTINGS.min_chars for n in normals])
    return normals, keep


def exhaustive(normals: list[str], keep: np.ndarray, rows: int | None = None, workers: int = 1):
    """Similar pairs (i < j) by cdist over every pair, with Glas' rule; seconds taken.

    Pass 1 scores all pairs with ``ratio`` of the sorted words (= ``token_sort_ratio``, 5x
    faster in cdist); pass 2 scores with ``token_set_ratio`` every pair the subset guard
    allows (both texts of ``subset_min_words``, lengths within ``subset_length_ratio``).
    ``rows`` limits the query side (to time a slice).
    """
    from rapidfuzz import fuzz, process

    ids = np.nonzero(keep)[0]
    texts = [sort_words(normals[i]) for i in ids]
    nums = [numbers(t) for t in texts]
    lengths = np.array([len(t) for t in texts])
    threshold = SETTINGS.threshold - 1e-3
    limit = len(texts) if rows is None else rows
    kw = {"score_cutoff": SETTINGS.threshold, "workers": workers, "dtype": np.float32}
    pairs: set[tuple[int, int]] = set()

    def add(i: int, j: int) -> None:
        if i != j and numbers_agree(nums[i], nums[j]):
            pairs.add((int(ids[min(i, j)]), int(ids[max(i, j)])))

    began = time.perf_counter()
    for start in range(0, limit, 1000):
        block = texts[start : min(start + 1000, limit)]
        for qi, ti in np.argwhere(
            process.cdist(block, texts, scorer=fuzz.ratio, **kw) >= threshold
        ):
            add(start + int(qi), int(ti))
    wordy = [i for i, t in enumerate(texts) if t.count(" ") + 1 >= SETTINGS.subset_min_words]
    wordy.sort(key=lambda i: lengths[i])
    by_length = lengths[wordy]
    share = SETTINGS.subset_length_ratio
    queries = wordy if rows is None else [i for i in wordy if i < rows]
    for start in range(0, len(queries), 500):
        block = queries[start : start + 500]
        low = np.searchsorted(by_length, lengths[block[0]] * share, side="left")
        high = np.searchsorted(by_length, lengths[block[-1]] / share, side="right")
        choices = wordy[low:high]
        scores = process.cdist(
            [texts[i] for i in block],
            [texts[j] for j in choices],
            scorer=fuzz.token_set_ratio,
            **kw,
        )
        for qi, ci in np.argwhere(scores >= threshold):
            i, j = block[qi], choices[ci]
            if subset_allowed(texts[i], texts[j], SETTINGS):
                add(i, j)
    return pairs, time.perf_counter() - began


def components(n: int, pairs: set[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(x) for x in range(n)]


def same_case_pairs(cases: list[int]) -> set[tuple[int, int]]:
    members: dict[int, list[int]] = defaultdict(list)
    for n, case in enumerate(cases):
        members[case].append(n)
    return {
        (a, b) for group in members.values() for i, a in enumerate(group) for b in group[i + 1 :]
    }


# -- datasketch alone -----------------------------------------------------------------------
def run_datasketch(stream: list[Item]) -> tuple[float, set[tuple[int, int]]]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=SETTINGS.threshold / 100, num_perm=64)
    pairs: set[tuple[int, int]] = set()
    began = time.perf_counter()
    for n, item in enumerate(stream):
        normal = normalise_for_match(item.text)
        if len(normal) < SETTINGS.min_chars:
            continue
        mh = MinHash(num_perm=64)
        mh.update_batch([w.encode() for w in set(normal.split())])
        for other in lsh.query(mh):
            pairs.add((other, n))
        lsh.insert(n, mh)
    return time.perf_counter() - began, pairs


def report_quality(label: str, cases_pairs: set, direct: set, component_pairs: set) -> None:
    found = len(direct & cases_pairs)
    recall = found / len(direct) if direct else 1.0
    precision = len(cases_pairs & component_pairs) / len(cases_pairs) if cases_pairs else 1.0
    strict = len(cases_pairs & direct) / len(cases_pairs) if cases_pairs else 1.0
    print(
        f"  {label:<26} pairs {len(cases_pairs):>8,}  recall {recall:.4f}  "
        f"precision {precision:.4f}  (directly similar {strict:.4f})"
    )


def quality(appeals: list[dict]) -> None:
    rng = random.Random(11)
    sample = rng.sample(appeals, len(appeals))
    stream = items(sample, 20_000)
    print(f"1. quality on {len(stream):,} posts (real appeals + 20% variants)")
    normals, keep = normalised(stream)
    direct, seconds = exhaustive(normals, keep, workers=-1)
    print(f"  ground truth: {len(direct):,} similar pairs by cdist over all pairs ({seconds:.0f}s)")
    truth_pairs = same_case_pairs(components(len(stream), direct))
    _, _, links = run_glas(stream)
    report_quality("Glas cases", same_case_pairs(glas_cases(stream, links)), direct, truth_pairs)
    _, lsh_pairs = run_datasketch(stream)
    lsh_cases = same_case_pairs(components(len(stream), lsh_pairs))
    report_quality("datasketch LSH alone", lsh_cases, direct, truth_pairs)
    print()


def speed(appeals: list[dict], sizes: list[int], datasketch_max: int) -> None:
    print("2. speed on one core (posts/s; stage = normalise + sign + match + confirm + index)")
    head = f"  {'posts':>9}  {'Glas':>9}  {'Glas CPU':>9}  {'exhaustive':>10}  {'datasketch':>10}"
    print(f"{head}    index  checks/post  peak MiB")
    glas_times: dict[int, float] = {}
    glas_cpu: dict[int, tuple[float, float]] = {}  # size → (CPU seconds, of the last TAIL)
    exhaustive_rate = None
    for size in sizes:
        stream = items(appeals, size)
        gc.collect()
        seconds, stage, _ = run_glas(stream)
        glas_times[size] = seconds
        if size <= 20_000:
            normals, keep = normalised(stream)
            rows = 1000
            _, part = exhaustive(normals, keep, rows=rows)
            exhaustive_seconds = part * keep.sum() / rows
            exhaustive_rate = (exhaustive_seconds, int(keep.sum()))
            shown = f"{size / exhaustive_seconds:>10,.0f}"
        else:  # quadratic: extrapolated from the largest measured size
            base_seconds, base_n = exhaustive_rate  # type: ignore[misc]
            shown = f"{size / (base_seconds * (size / base_n) ** 2):>9,.1f}*"
        sketch = "-"
        if size <= datasketch_max:
            sketch_seconds, _ = run_datasketch(stream)
            sketch = f"{size / sketch_seconds:,.0f}"
        cpu = stage.cpu_seconds  # type: ignore[attr-defined]
        glas_cpu[size] = (cpu, stage.tail_cpu_seconds)  # type: ignore[attr-defined]
        print(
            f"  {size:>9,}  {size / seconds:>9,.0f}  {size / cpu:>9,.0f}  {shown}  {sketch:>10}  "
            f"{len(stage.index):>7,}  {stage.checks / size:>11.2f}  {peak_mib():>8,.0f}"
        )
        del stream, stage
    print("  * extrapolated (exhaustive work grows with the square of the posts)")
    print("  Glas: wall-clock time in the stage; Glas CPU: the stage's CPU time (one thread)")
    if 100_000 in glas_times and 1_000_000 in glas_times:
        ratio = glas_times[1_000_000] / glas_times[100_000]
        print(f"  Glas 1M / 100k time: {ratio:.1f}x (linear would be 10x)")
        # The 100k corpus spans 20 days: its 30-day window never fills. Compare, too, the
        # last 100k posts of the 1M run (a full window) with the 100k run, per post.
        full = glas_cpu[1_000_000][1] / TAIL
        empty = glas_cpu[100_000][0] / 100_000
        print(
            f"  (second figure) CPU per post, last 100k of the 1M run (window full) vs the 100k"
            f" run: {full * 1e6:.1f} vs {empty * 1e6:.1f} us, {full / empty:.2f}x"
        )
    if 20_000 in glas_times and exhaustive_rate:
        print(
            f"  Glas vs exhaustive at 20k: {exhaustive_rate[0] / glas_times[20_000]:,.0f}x faster"
        )
    print()


def restart(appeals: list[dict]) -> None:
    print("3. the inbox: store through the pipeline, then rebuild the index as at a restart")
    stream = items(appeals, 100_000)
    source = SourceConfig(id="bench", type="import")
    with tempfile.TemporaryDirectory() as tmp:
        for label, stages in (
            ("exact keys only", [add_exact_keys]),
            ("with near-duplicates", None),
        ):
            inbox = SqliteInbox(Path(tmp) / f"{len(label)}.db")
            ingest = Ingest(inbox, source, batch_size=BATCH, stages=stages)
            began = time.perf_counter()
            for item in stream:
                ingest.add(as_post(item))
            ingest.close()
            seconds = time.perf_counter() - began
            cases = inbox.conn.execute("SELECT count(*) FROM clusters WHERE size > 1").fetchone()
            print(
                f"  pipeline into SQLite, {label:<22} {len(stream) / seconds:>8,.0f} posts/s "
                f"({cases[0]:,} repeated cases)"
            )
        began = time.perf_counter()
        _, rows = inbox.recent_posts(0, SETTINGS.window.total_seconds())
        read = time.perf_counter() - began
        stage = NearDuplicates(SETTINGS, recent=inbox.recent_posts)
        began = time.perf_counter()
        stage.catch_up()
        rebuilt = time.perf_counter() - began
        print(
            f"  restart: read {len(rows):,} recent posts {read:.2f}s; "
            f"rebuild index (read + normalise + sign) {rebuilt:.2f}s"
        )
        inbox.close()


def main() -> int:
    if not APPEALS.exists():
        print(f"bench: {APPEALS} is missing (../shared/data beside the checkout)", file=sys.stderr)
        return 1
    quick = "--quick" in sys.argv
    appeals = load_appeals()
    print(f"corpus: {len(appeals):,} real appeals; threshold {SETTINGS.threshold:g}")
    print(f"load average at start: {load()} ({os.cpu_count()} CPUs)\n")
    quality(appeals)
    one_core()
    sizes = [10_000, 20_000, 100_000] + ([] if quick else [1_000_000])
    speed(appeals, sizes, datasketch_max=100_000)
    restart(appeals)
    print(f"\npeak memory (RSS): {peak_mib():,.0f} MiB; load average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

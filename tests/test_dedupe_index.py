"""The batched index: signatures, number sketches, bucket store, candidate filter, rebuild
and purge."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from bench.variants import variant
from crawler.model import Post
from dedupe.buckets import WIDTH, Buckets
from dedupe.normalise import normalise_for_match, numbers
from dedupe.settings import DedupeSettings
from dedupe.signature import Signer
from dedupe.stage import NearDuplicates
from tests.conftest import shared

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
T0_S = T0.timestamp()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """1,500 real St Petersburg appeals, read in place."""
    with gzip.open(shared("appeals/spb_nash_gorod.jsonl.gz"), "rt", encoding="utf-8") as fh:
        rows = [json.loads(line)["text"] for _, line in zip(range(1500), fh, strict=False)]
    return rows


def post(native_id: str, text: str, minutes: float = 0) -> Post:
    return Post(
        platform="vk",
        native_id=native_id,
        text=text,
        published_at=T0 + timedelta(minutes=minutes),
    )


def stream(texts: list[str], seed: int = 5) -> list[Post]:
    """The appeals and, after them, a repost variant of every tenth one."""
    rng = random.Random(seed)
    posts = [post(f"p{n}", text, n) for n, text in enumerate(texts)]
    posts += [
        post(f"v{n}", variant(texts[n], rng), len(texts) + n) for n in range(0, len(texts), 10)
    ]
    return posts


def links(stage: NearDuplicates, posts: list[Post], batch: int = 200) -> dict[str, Any]:
    for start in range(0, len(posts), batch):
        stage(posts[start : start + batch])
    return {p.native_id: p.duplicate_of for p in posts if p.duplicate_of}


def test_signature_is_a_set_of_words_and_batch_independent() -> None:
    signer = Signer()
    alone = signer.sign(["яма на дороге у дома"]).signatures
    batch = signer.sign(["x y", "дома у дороге на яма яма", "яма на дороге у дома"])
    assert (batch.signatures[1] == alone[0]).all() and (batch.signatures[2] == alone[0]).all()
    assert (batch.signatures[0] != alone[0]).any()
    assert batch.words.tolist() == [2, 6, 5]
    with pytest.raises(ValueError, match="without words"):
        signer.sign(["яма", ""])


def test_number_sketch_holds_every_number(texts: list[str]) -> None:
    normals = [n for n in map(normalise_for_match, texts) if n]
    normals += ["дом 05 кв 012", "телефон 89110001122334455667788 этаж 0", "кв12а 7"]
    sketches = Signer().sign(normals).number_bits.tolist()
    for normal, bits in zip(normals, sketches, strict=True):
        expected = 0
        for number in numbers(normal):
            expected |= 1 << (int(number) % 61)
        assert bits == expected, normal


def test_copies_with_other_numbers_are_never_scored(texts: list[str]) -> None:
    """The same complaint about another house is dropped in numpy, before rapidfuzz."""
    base = "Во дворе дома 12 по улице Садовой третью неделю не вывозят мусор, контейнеры полны"
    stage = NearDuplicates()
    links(stage, [post(f"h{n}", base.replace("12", str(n)), n) for n in range(20, 40)])
    other = [post("h99", base.replace("12", "99").replace("неделю", "недели"), 60)]
    stage(other)
    assert other[0].duplicate_of is None
    assert stage.checks == 0  # 20 look-alikes, different numbers: not one check
    same = [post("same", base.replace("12", "25").replace("неделю", "недели"), 62)]
    stage(same)
    assert stage.checks == 1 and same[0].duplicate_of == [("vk", "h25")]


def test_rebuilt_index_links_like_the_live_one(texts: list[str]) -> None:
    """An index rebuilt at start (numpy buckets) finds what the one built post by post finds."""
    posts = stream(texts)
    live = NearDuplicates()
    links(live, posts[: len(texts)])
    # As the inbox would give them: each post with its case (here: the live index's).
    index = live.index
    rows = [
        (n + 1, "vk", p.native_id, -index.group(index.by_key[p.key]), p.text, n * 60 + T0_S)
        for n, p in enumerate(posts[: len(texts)])
        if p.key in index.by_key
    ]
    rebuilt = NearDuplicates(recent=lambda after, _window: (len(rows), [] if after else rows))
    assert rebuilt.catch_up() == len(rows)
    assert len(rebuilt.index) == len(live.index)
    band_keys = {int(k) for k in live.index.buckets.keys[: live.index.rows].ravel()}
    for key in band_keys:
        assert rebuilt.index.buckets.bucket(key) == live.index.buckets.bucket(key)
    variants = posts[len(texts) :]
    found_live = links(live, [post(p.native_id, p.text, 9999) for p in variants])
    found_rebuilt = links(rebuilt, [post(p.native_id, p.text, 9999) for p in variants])
    assert found_live == found_rebuilt
    assert len(found_live) > 0.7 * len(variants)  # (some variants cut a short text too far)


def test_purge_compacts_and_keeps_the_window(texts: list[str]) -> None:
    stage = NearDuplicates(DedupeSettings(window="1h"))
    links(stage, [post(f"p{n}", text, n / 10) for n, text in enumerate(texts[:1000])])
    assert len(stage.index) > 800  # (all but texts of a few words)
    assert ("vk", "p3") in stage.index.by_key
    late = [post(f"q{n}", text, 100 + n / 10) for n, text in enumerate(texts[1000:1500])]
    links(stage, late)
    stage.index.purge()  # the first 1,000 are older than the window: rows are compacted
    assert 300 < stage.index.rows == len(stage.index) < 500
    assert len(stage.index.keys) == stage.index.rows == len(stage.index.words)
    recent = next(p for p in reversed(late) if p.key in stage.index.by_key and len(p.text) > 80)
    old = [post("old", texts[3] + " Когда это закончится?!", 160)]
    fresh = [post("new", recent.text + " Когда это закончится?!", 160)]
    stage(old + fresh)
    assert old[0].duplicate_of is None
    assert fresh[0].duplicate_of == [recent.key]


# -- the bucket store, against a plain model: dict of lists, probed row by row -------------------
class Model:
    """What :class:`dedupe.buckets.Buckets` must give: per key, the newest ``cap`` rows."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buckets: dict[int, list[int]] = {}

    def probe(self, keys: np.ndarray, first: int) -> list[tuple[int, int]]:
        found = []
        for row, row_keys in enumerate(keys.tolist(), first):
            for key in row_keys:
                bucket = self.buckets.setdefault(key, [])
                found += [(row, other) for other in bucket[-self.cap :]]
                bucket.append(row)
        return sorted(found)


def band_keys(rng: random.Random, rows: int, bands: int, shared: list[int]) -> np.ndarray:
    """Keys of ``rows`` rows: most unique, some drawn from ``shared`` (hot keys); a row's
    keys differ, as the signer's do (each band has its own salt)."""
    keys = []
    for _ in range(rows):
        hot = iter(rng.sample(shared, bands))
        keys.append(
            [next(hot) if rng.random() < 0.4 else rng.getrandbits(64) for _ in range(bands)]
        )
    return np.array(keys, dtype=np.uint64)


def pairs(buckets: Buckets, first: int, count: int) -> list[tuple[int, int]]:
    rows, found = buckets.lookup(first, count)
    return sorted(zip(rows.tolist(), found.tolist(), strict=True))


def test_buckets_find_the_newest_rows_before_each_row_in_its_batch() -> None:
    """Batches of any size give what probing row by row gives: a row meets the rows before it
    (of its batch too), at most ``cap`` per key, newest first, never a row after it; keys
    crowded into one group of the table (more than WIDTH) and a key of 0 are found too."""
    rng = random.Random(3)
    crowded = [(5 << 58) | rng.getrandbits(40) for _ in range(3 * WIDTH)]  # one group
    shared = [rng.getrandbits(64) for _ in range(40)] + crowded + [0]
    store, model = Buckets(bands=4, cap=6, capacity=16), Model(cap=6)
    first = 0
    for size in [1, 7, 1, 30, 200, 3, 64, 500, 2]:
        keys = band_keys(rng, size, 4, shared)
        store.reserve(first + size)
        store.keys[first : first + size] = keys
        store.chain(first, size)
        expected = model.probe(keys, first)
        assert pairs(store, first, size) == expected
        assert all(other < row for row, other in expected)
        first += size
    everything = store.keys[:first].ravel().tolist()
    for key in set(everything):
        assert store.bucket(key) == model.buckets[key][::-1][:6]
    assert len(store) == len(set(everything))


def test_buckets_rebuilt_from_some_rows_hold_those_rows_only() -> None:
    """Removal and expiry: a rebuild keeps the rows given (a compaction renumbers them), and
    rows chained afterwards meet only those and each other."""
    rng = random.Random(4)
    shared = [rng.getrandbits(64) for _ in range(25)]
    store = Buckets(bands=3, cap=5)
    keys = band_keys(rng, 900, 3, shared)
    store.keys[:900] = keys
    store.chain(0, 900)
    kept = np.array([row for row in range(900) if row % 3 and row > 200])
    store.compact(kept)
    store.rebuild(np.arange(len(kept)))
    model = Model(cap=5)
    model.probe(keys[kept], 0)
    for key in set(keys[kept].ravel().tolist()):
        assert store.bucket(key) == model.buckets[key][::-1][:5]
    gone = set(keys[:201].ravel().tolist()) - set(keys[kept].ravel().tolist())
    assert gone and all(store.bucket(key) == [] for key in gone)
    more = band_keys(rng, 300, 3, shared)
    store.reserve(len(kept) + 300)
    store.keys[len(kept) : len(kept) + 300] = more
    store.chain(len(kept), 300)
    assert pairs(store, len(kept), 300) == model.probe(more, len(kept))


def test_a_post_meets_the_posts_of_its_batch_before_it(texts: list[str]) -> None:
    rng = random.Random(8)
    long = [t for t in texts if len(t) > 200][:3]
    batch = [post(f"a{n}", t, n) for n, t in enumerate(long)]
    batch += [post(f"b{n}", variant(t, rng), 10 + n) for n, t in enumerate(long)]
    found = links(NearDuplicates(), batch)
    assert found == {f"b{n}": [("vk", f"a{n}")] for n in range(3)}


def test_an_edited_post_is_found_by_its_new_text_only(texts: list[str]) -> None:
    first, second = [t for t in texts if len(t) > 200][:2]
    stage = NearDuplicates()
    stage([post("p1", first, 0)])
    stage([post("p1", second, 1)])  # edited: the row of the old text is dropped
    old, new = post("c1", first + " Когда это закончится?!", 2), post("c2", second + "!!", 3)
    stage([old, new])
    assert old.duplicate_of is None
    assert new.duplicate_of == [("vk", "p1")]

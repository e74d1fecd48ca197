"""The batched index: signatures, number sketches, candidate filter, rebuild and purge."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.variants import variant
from crawler.model import Post
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
    assert rebuilt.index.buckets == live.index.buckets
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

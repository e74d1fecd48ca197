"""Near-duplicate matching on real appeals: normalisation, the scorer, the stage's links."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from crawler.model import Post
from dedupe.normalise import normalise_for_match, numbers
from dedupe.score import numbers_agree, similarity
from dedupe.settings import DedupeSettings
from dedupe.stage import NearDuplicates
from tests.conftest import shared

SETTINGS = DedupeSettings()
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def appeals() -> dict[int, str]:
    """Real St Petersburg appeals by id, read in place."""
    with gzip.open(shared("appeals/spb_nash_gorod.jsonl.gz"), "rt", encoding="utf-8") as fh:
        return {row["id"]: row["text"] for row in map(json.loads, fh)}


def matches(a: str, b: str) -> bool:
    """Glas' rule for two texts: numbers agree and the score reaches the threshold."""
    x, y = normalise_for_match(a), normalise_for_match(b)
    if not numbers_agree(numbers(x), numbers(y)):
        return False
    return similarity(x, y, SETTINGS) >= SETTINGS.threshold


def post(native_id: str, text: str, *, platform: str = "vk", days: int = 0, **kw: object) -> Post:
    return Post(
        platform=platform,
        native_id=native_id,
        text=text,
        published_at=T0 + timedelta(days=days),
        **kw,  # type: ignore[arg-type]
    )


# -- normalisation ---------------------------------------------------------------------------
def test_repost_furniture_is_removed() -> None:
    text = (
        "Репост\nПодслушано Заречный\n🔥🔥 Во дворе дома №5 по ул. Ленина не вывозят МУСОР!!! "
        "https://vk.com/wall-1_2 @zhkh_zarechny #жкх\nИсточник: vk.com/wall-12345_678\n"
        "Подписывайтесь на наш канал!"
    )
    assert normalise_for_match(text) == "во дворе дома 5 по ул ленина не вывозят мусор"


def test_prefixes_mentions_and_yo() -> None:
    assert normalise_for_match("Подслушано: Ёлку [id123|Ивану] спилили 😢") == "елку спилили"
    assert normalise_for_match("Анонимно\nПрислала подписчица\nЯма на дороге") == "яма на дороге"


def test_numbers_without_leading_zeros() -> None:
    assert numbers(normalise_for_match("дом 05, корп. 1, кв 012")) == {"5", "1", "12"}


# -- the scorer on real appeals -------------------------------------------------------------
def test_real_duplicate_by_two_residents(appeals: dict[int, str]) -> None:
    assert matches(appeals[3028983], appeals[3096143])


def test_repost_variants_of_a_real_appeal_match(appeals: dict[int, str]) -> None:
    original = appeals[3363893]
    words = original.split()
    variants = [
        "Репост\n😡😡 " + original,  # prefix and emoji
        " ".join(words[: int(len(words) * 0.8)]) + "…",  # shortened tail
        original.replace("жалобы", "жалбы").replace("регулярной", "регулярнйо"),  # typos
        " ".join(words[1:2] + words[:1] + words[2:]),  # swapped words
        original.upper() + " Когда это закончится?!",  # shouting, a remark
        "Жители пишут: " + original + "\nИсточник: vk.com/wall-1_2",
    ]
    for text in variants:
        assert matches(original, text), text


def test_near_miss_other_floor_is_another_case(appeals: dict[int, str]) -> None:
    """Same words, another floor: the same resident's two requests, two cases."""
    a, b = appeals[2951048], appeals[2951062]
    assert similarity(normalise_for_match(a), normalise_for_match(b), SETTINGS) > 90
    assert not matches(a, b)


def test_near_miss_same_template_other_object(appeals: dict[int, str]) -> None:
    assert not matches(appeals[3363893], appeals[3279570])


def test_subset_trap_short_comment_does_not_swallow_a_post(appeals: dict[int, str]) -> None:
    """token_set_ratio says 100 when one text's words are inside the other's: not a copy."""
    from rapidfuzz import fuzz

    long = appeals[3363893]
    short = "На все жалобы отвечает, что бастуют дворники"
    x, y = normalise_for_match(long), normalise_for_match(short)
    assert fuzz.token_set_ratio(x, y) == 100
    assert not matches(long, short)
    assert not matches(long, "вывоз бытового мусора")


def test_long_part_of_a_post_with_a_remark_matches(appeals: dict[int, str]) -> None:
    """The subset rule still lets a post with an added paragraph match its original."""
    original = appeals[3179184]
    longer = original + ". Сколько можно ждать, уже месяц прошу! Ответа нет"
    assert matches(original, longer)


# -- the stage ------------------------------------------------------------------------------
def test_stage_links_copies_to_the_earliest_case(appeals: dict[int, str]) -> None:
    stage = NearDuplicates()
    text = appeals[3344865]
    batch = [
        post("1", text),
        post("2", "Подслушано\n" + text.replace("необходима", "нужна"), platform="telegram"),
        post("3", appeals[3114533]),
    ]
    stage(batch)
    assert batch[0].duplicate_of is None
    assert batch[1].duplicate_of == [("vk", "1")]
    assert batch[2].duplicate_of is None
    later = [post("4", text[:120] + "…", days=6)]
    stage(later)
    assert later[0].duplicate_of is not None
    assert later[0].duplicate_of[0] in {("vk", "1"), ("telegram", "2")}


def test_repost_link_comes_first_and_counts_even_for_short_text(
    appeals: dict[int, str],
) -> None:
    stage = NearDuplicates()
    first = [post("-5_10", appeals[3327603])]
    stage(first)
    repost = [post("-7_3", "Жесть!", repost_of="-5_10")]
    stage(repost)
    assert repost[0].duplicate_of == [("vk", "-5_10")]


def test_recollected_post_does_not_link_to_itself(appeals: dict[int, str]) -> None:
    stage = NearDuplicates()
    stage([post("1", appeals[3344865])])
    again = [post("1", appeals[3344865])]
    stage(again)
    assert again[0].duplicate_of is None
    assert len(stage.index) == 1


def test_post_linking_two_cases_links_both() -> None:
    a = "во дворе дома не вывозят мусор контейнеры переполнены третью неделю"
    b = "контейнеры переполнены третью неделю крысы бегают по детской площадке"
    stage = NearDuplicates()
    first = [post("a", a), post("b", b)]
    stage(first)
    assert first[1].duplicate_of is None
    both = [post("c", a + " " + b.split(" ", 3)[3])]
    stage(both)
    assert set(both[0].duplicate_of or []) == {("vk", "a"), ("vk", "b")}


def test_window_forgets_old_posts(appeals: dict[int, str]) -> None:
    stage = NearDuplicates(DedupeSettings(window="7d"))
    stage([post("old", appeals[3344865])])
    stage([post(str(n), f"другой текст номер {n} о ремонте дорог", days=30) for n in range(3)])
    stage.index.purge()
    fresh = [post("new", appeals[3344865], days=31)]
    stage(fresh)
    assert fresh[0].duplicate_of is None


def test_disabled_links_only_reposts(appeals: dict[int, str]) -> None:
    stage = NearDuplicates(DedupeSettings(enabled=False))
    batch = [post("1", appeals[3344865]), post("2", appeals[3344865] + "!", repost_of="9")]
    stage(batch)
    assert batch[0].duplicate_of is None and batch[1].duplicate_of == [("vk", "9")]

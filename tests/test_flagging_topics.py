"""Topics: codes ranked with scores, on real appeals and made-up texts."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path

import pytest

from flagging import Flagger, flagger
from flagging.lexicon import load
from tests.conftest import shared

CODES = {
    "housing", "roads", "transport", "landscaping", "waste", "ecology", "energy", "healthcare",
    "education", "social", "safety", "construction", "culture", "sport", "communications",
    "trade", "labour", "animals", "public_services", "other",
}  # fmt: skip


@pytest.fixture(scope="module")
def rules() -> Flagger:
    """The lexicons' topics (``topic_model: fallback``: the model only where they find none);
    ``auto`` hands portal-style posts to the model, tested in test_flagging_model.py."""
    return flagger(topic_model="fallback")


@pytest.fixture(scope="module")
def by_category() -> dict[str, list[str]]:
    """Texts of real appeals per portal category (every 5th of the first 20,000)."""
    out: dict[str, list[str]] = defaultdict(list)
    with gzip.open(shared("appeals/spb_nash_gorod.jsonl.gz"), "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n >= 20000:
                break
            if n % 5 == 0:
                row = json.loads(line)
                out[row["category"]].append(row["text"])
    return out


def test_the_lexicon_has_exactly_the_topic_codes() -> None:
    topics = load()["topics"]["codes"]
    assert set(topics) == CODES
    assert topics["housing"]["label"] == "ЖКХ"


@pytest.mark.parametrize(
    ("category", "code", "share"),
    [
        ("Водоснабжение", "housing", 0.9),
        ("Центральное отопление", "housing", 0.9),
        ("Содержание МКД", "housing", 0.6),
    ],
)
def test_real_appeals_of_a_category_get_its_topic(
    rules: Flagger, by_category: dict[str, list[str]], category: str, code: str, share: float
) -> None:
    texts = by_category[category]
    assert len(texts) >= 20
    right = sum(rules.flag(t).topics[0] == code for t in texts)
    assert right / len(texts) >= share


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Третий день нет горячей воды в доме, батареи холодные", "housing"),
        ("На дороге огромные ямы, асфальт разбит", "roads"),
        ("Автобус 25 не ходит по расписанию, на остановке ждём по часу", "transport"),
        ("Во дворе сломаны качели на детской площадке, фонари не горят", "landscaping"),
        ("Контейнерная площадка завалена мусором, вывоз не производится", "waste"),
        ("В поликлинике невозможно записаться к врачу", "healthcare"),
        ("В школе холодно, дети сидят на уроках в куртках", "education"),
        ("Стая бродячих собак у школы, бросаются на детей", "animals"),
        ("Нет мобильной связи и интернета в посёлке", "communications"),
        ("Ларёк торгует алкоголем ночью", "trade"),
        ("Третий месяц задерживают зарплату на заводе", "labour"),
        ("В МФЦ не принимают документы на паспорт", "public_services"),
        ("Застройщик ведёт стройку без забора", "construction"),
    ],
)
def test_made_up_texts(rules: Flagger, text: str, code: str) -> None:
    assert rules.flag(text).topics[0] == code


@pytest.mark.parametrize(
    ("text", "code", "not_code"),
    [
        ("Ямы на Школьной улице", "roads", "education"),
        ("На Школьной улице не горят фонари", "landscaping", "education"),
        ("Прорвало трубу на Больничной улице, 4, нет воды", "housing", "healthcare"),
        ("Мусор не вывозят на улице Садовой уже неделю", "waste", "landscaping"),
        ("В школе на улице Ленина нет отопления", "education", None),  # the school itself counts
        ("Подтверждаю, яма у дома 1 на Школьной, обходим по газону", "landscaping", "education"),
        ("Фонари на Школьной и Больничной не горят", "landscaping", "healthcare"),
        ("Школьные автобусы не ходят", "education", None),  # a sentence's first word: no name
    ],
)
def test_street_names_are_no_topic_evidence(
    rules: Flagger, text: str, code: str, not_code: str | None
) -> None:
    topics = rules.flag(text).topics
    assert topics[0] == code and not_code not in topics


def test_scores_are_ranked_and_other_takes_the_rest(rules: Flagger) -> None:
    flags = rules.flag("Во дворе не убирают снег, у подъезда наледь, на крыше сосульки")
    assert flags.topics[0] in ("landscaping", "housing")
    assert set(flags.topics) <= CODES and len(flags.topics) <= 3
    scores = flags.topic_scores
    assert all(0 < s <= 1 for s in scores.values()) and "other" in scores
    assert list(scores.values()) == sorted(scores.values(), reverse=True)
    assert abs(sum(scores.values()) - 1) < 0.01
    assert [c for c in scores if c in flags.topics] == flags.topics


def test_no_evidence_is_other(rules: Flagger) -> None:
    flags = rules.flag("Добрый вечер всем!")
    assert flags.topics == ["other"] and flags.topic_scores == {"other": 1.0}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("У метро Чернышевская торгуют с рук овощами", "trade"),
        ("Около метро нет ни одной урны, мусор везде", "waste"),
        ("В метро давка, поезда ходят с интервалом 10 минут", "transport"),
        ("Закрыли метро Чернышевская на ремонт, как добираться?", "transport"),
    ],
)
def test_a_metro_station_named_as_a_place_is_no_transport_problem(
    rules: Flagger, text: str, code: str
) -> None:
    """A metro station after a preposition of place says where the problem is; the metro
    itself is transport."""
    flags = rules.flag(text)
    assert flags.topics[0] == code
    if code != "transport":
        assert "transport" not in flags.topic_scores


def test_a_place_preposition_cancels_only_the_metro_word() -> None:
    alone = Flagger(model=None)
    assert "transport" not in alone.flag("А у метро Чернышевская?").topic_scores
    assert alone.flag("А в метро Чернышевская?").topics == ["transport"]


def test_blanking_a_word_no_topic_term_can_match_changes_no_topic_hit(
    rules: Flagger, by_category: dict[str, list[str]]
) -> None:
    """Names are blanked only where some topic term could match them (a saving on every
    post): any other word, blanked, leaves the topic hits exactly as they were."""
    from flagging import text as text_module

    matcher, checked, kept = rules.matcher, 0, 0
    for texts in by_category.values():
        for raw in texts[:40]:
            tokens = text_module.words(text_module.clean(raw))
            topic_hits = [h for h in matcher.find(tokens) if h.key.startswith("topic.")]
            for i, token in enumerate(tokens):
                if matcher.can_match(token, "topic."):
                    kept += 1
                    continue
                blanked = [*tokens[:i], "", *tokens[i + 1 :]]
                assert [h for h in matcher.find(blanked) if h.key.startswith("topic.")] == (
                    topic_hits
                ), (raw, token)
                checked += 1
    assert checked > 5_000 and kept > 500  # both kinds of words were seen
    assert matcher.can_match("школьной", "topic.") and not matcher.can_match("гагарина", "topic.")


@pytest.mark.parametrize(
    ("text", "code", "not_code"),
    [
        ("С крыши свисает снег и лёд, вот-вот упадёт на людей во дворе", "housing", None),
        ("На тротуаре снежная каша, никто не чистит", "landscaping", None),
        ("В парадной не убирают уже месяц", "housing", "landscaping"),
        ("Урна у дома переполнена", "waste", "landscaping"),
        ("Кальянная в нашем доме работает несмотря на запрет", "trade", "safety"),
        ("Реклама борделей на каждом столбе", "landscaping", None),
    ],
)
def test_routing_terms_tell_neighbouring_sectors_apart(
    rules: Flagger, text: str, code: str, not_code: str | None
) -> None:
    """TOPIC_GUIDE.md's boundaries: roof snow is housing, snow on a pavement landscaping,
    entrance cleaning housing, bins waste, hookah bars businesses, pasted adverts landscaping."""
    topics = rules.flag(text).topics
    assert topics[0] == code and not_code not in topics


def test_routing_terms_count_for_the_topic_but_not_the_complaint(tmp_path: Path) -> None:
    text = "Самокаты бросают где попало"
    routed, termed = tmp_path / "routed.yaml", tmp_path / "termed.yaml"
    routed.write_text(
        "topics:\n  codes:\n    transport:\n      routing: [{самокат: 2.0}]\n", encoding="utf-8"
    )
    termed.write_text(
        "topics:\n  codes:\n    transport:\n      terms: [{самокат: 2.0}]\n", encoding="utf-8"
    )
    plain, by_route, by_term = Flagger(), Flagger([routed]), Flagger([termed])
    assert plain.flag(text).topics == ["other"]
    assert by_route.flag(text).topics == by_term.flag(text).topics == ["transport"]
    assert by_route.flag(text).topic_scores == by_term.flag(text).topic_scores
    assert by_route.flag(text).complaint_score == plain.flag(text).complaint_score
    assert by_term.flag(text).complaint_score > plain.flag(text).complaint_score


def test_street_names_are_no_routing_evidence(rules: Flagger) -> None:
    """«Снежная» is a routing word of landscaping ("снежная каша"), not in a street's name."""
    assert rules.matcher.can_match("снежной", "route.")
    flags = rules.flag("Яма на Снежной улице, 5")
    assert flags.topics == ["roads"] and "landscaping" not in flags.topic_scores

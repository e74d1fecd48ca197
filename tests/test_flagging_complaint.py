"""Complaint score and official-answer style, on real appeals, answers, comments, news, ads."""

from __future__ import annotations

import csv
import gzip
import itertools
import json

import pytest
from bs4 import BeautifulSoup

from flagging import Flagger, flagger, stage
from spiders.rss import parse_feed
from tests.conftest import shared


@pytest.fixture(scope="module")
def rules() -> Flagger:
    return flagger()


@pytest.fixture(scope="module")
def appeals() -> list[dict]:
    """The first 3,000 real St Petersburg portal appeals (with their official answers)."""
    with gzip.open(shared("appeals/spb_nash_gorod.jsonl.gz"), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in itertools.islice(fh, 3000)]


@pytest.fixture(scope="module")
def comments() -> list[dict[str, str]]:
    with shared("vk/vk_comments_spb_central.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_most_real_appeals_are_complaints(rules: Flagger, appeals: list[dict]) -> None:
    flagged = sum(rules.flag(a["text"]).is_complaint for a in appeals)
    assert flagged / len(appeals) >= 0.8


def test_real_official_answers_are_almost_never_complaints(
    rules: Flagger, appeals: list[dict]
) -> None:
    answers = [a["answer_text"] for a in appeals if (a["answer_text"] or "").strip()]
    flags = [rules.flag(text) for text in answers]
    assert len(answers) > 2000
    assert sum(f.is_complaint for f in flags) / len(answers) <= 0.01
    assert sum(f.official_style for f in flags) / len(answers) >= 0.85


def test_one_appeal_and_its_answer(rules: Flagger, appeals: list[dict]) -> None:
    appeal = next(a for a in appeals if a["id"] == 2947909)  # a hanging wire, TSZh refuses
    complaint = rules.flag(appeal["text"])
    answer = rules.flag(appeal["answer_text"])  # "факты ... не подтвердились"
    assert complaint.is_complaint and complaint.complaint_score > 0.7
    assert answer.official_style and not answer.is_complaint and answer.complaint_score == 0


def test_replies_by_official_accounts_are_never_complaints(
    rules: Flagger, comments: list[dict[str, str]]
) -> None:
    official = [c for c in comments if c["author_is_official"] == "True"]
    assert len(official) == 136
    for comment in official:
        flags = rules.flag(comment["text"], official_author=True)
        assert not flags.is_complaint and flags.complaint_score == 0


@pytest.mark.parametrize(
    "text",
    [
        "Когда уберут снег во дворе на ул. Ленина, 5? Пройти невозможно!",
        "Третью неделю нет горячей воды, управляющая компания не отвечает. Примите меры!",
        "Мусор не вывозят с понедельника, контейнеры переполнены.",
        "Уважаемая администрация, прошу отремонтировать лавочки у школы №3.",
        "В подъезде опять не горит свет, сколько можно?",
        "Огромная яма на перекрёстке, машины бьют колёса.",
    ],
)
def test_complaints(rules: Flagger, text: str) -> None:
    assert rules.flag(text).is_complaint


@pytest.mark.parametrize(
    "text",
    [
        "Спасибо большое дворникам за чистый двор!",
        "Продам гараж недорого, звоните.",
        "Приглашаем всех на праздничный концерт в субботу в доме культуры.",
        "Подскажите, во сколько открывается библиотека?",
        "Доброе утро, соседи!",
        "Метро Чернышевская!",
        "Уважаемый житель! Сообщаем, что работы по уборке территории выполнены. Фото прилагается.",
        "Мусор убран.",
        "Информация передана в управляющую компанию, взяли на контроль.",
    ],
)
def test_not_complaints(rules: Flagger, text: str) -> None:
    assert not rules.flag(text).is_complaint


def test_a_negated_report_of_work_is_a_complaint(rules: Flagger) -> None:
    done, undone = rules.flag("Мусор убран."), rules.flag("Мусор не убран уже неделю.")
    assert not done.is_complaint and undone.is_complaint
    assert undone.complaint_score > done.complaint_score


def test_thanks_after_a_request_does_not_cancel_it(rules: Flagger) -> None:
    assert rules.flag("Просьба убрать надписи с фасада. Спасибо").is_complaint


def test_vk_mentions_are_no_evidence(rules: Flagger) -> None:
    plain = rules.flag("Марата 14")
    mention = rules.flag("[club143265175|Комитет по благоустройству], Марата 14")
    assert plain.complaint_score == mention.complaint_score


def test_threshold_decides(rules: Flagger) -> None:
    text = "Листва на газоне"
    score = rules.flag(text).complaint_score
    assert 0 < score < 1
    assert Flagger(threshold=score).flag(text).is_complaint
    assert not Flagger(threshold=min(1.0, score + 0.01)).flag(text).is_complaint


def test_real_news_feed_items_are_not_complaints() -> None:
    """The mos.ru feed's news (via the rss parser, titles included) are announcements."""
    body = shared("fixtures/rss_mos_ru_news_2022-07-27.xml").read_bytes()
    posts = stage()(parse_feed(body, "https://www.mos.ru/rss").posts)
    assert len(posts) == 10
    assert sum(bool(p.is_complaint) for p in posts) <= 1


def test_real_job_ads_and_giveaways_are_not_complaints(rules: Flagger) -> None:
    page = shared("fixtures/tme_s_xCareers.html").read_text(encoding="utf-8")
    ads = [
        m.get_text(" ", strip=True)
        for m in BeautifulSoup(page, "html.parser").select(".tgme_widget_message_text")
    ]
    wall = json.loads(shared("fixtures/vk_wall_get_-61006621.json").read_text(encoding="utf-8"))
    giveaways = [item["text"] for item in wall["response"]["items"]]
    assert len(ads) == 20 and len(giveaways) == 20
    assert sum(rules.flag(t).is_complaint for t in ads) <= 2
    assert sum(rules.flag(t).is_complaint for t in giveaways) <= 2

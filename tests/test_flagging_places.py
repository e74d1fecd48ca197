"""Places: addresses, streets, districts, settlements and the municipality."""

from __future__ import annotations

import csv
import re

import pytest

from flagging import Flagger, flagger
from tests.conftest import shared


@pytest.fixture(scope="module")
def rules() -> Flagger:
    return flagger()


@pytest.mark.parametrize(
    ("text", "places"),
    [
        ("На ул. Ленина, д. 5 яма", [("address", "улица Ленина, 5")]),
        (
            "Мебельная улица, дом 47, корпус 1 — грязно",
            [("address", "Мебельная улица, 47, корпус 1")],
        ),
        ("пр. Энгельса 10к2", [("address", "проспект Энгельса, 10к2")]),
        ("ул Садовая 3 и ул. Мира", [("address", "улица Садовая, 3"), ("street", "улица Мира")]),
        ("И во двор Литейный 64 зашли бы", [("address", "Литейный, 64")]),
        ("Марата 72 хоть бы ради смеха заехали", [("address", "Марата, 72")]),
        ("в Невском районе нет света", [("district", "Невский район")]),
        ("Снег на Садовой улице", [("street", "Садовая улица")]),
        ("Яма на Невском проспекте, 20", [("address", "Невский проспект, 20")]),
        (
            "деревня Кудрово, ул. Центральная 3",
            [("settlement", "Кудрово"), ("address", "улица Центральная, 3")],
        ),
        ("Жду уже 5 лет, Около 20 машин во дворе", []),
        # A capitalised first word that is no part of the name stays out of it.
        ("На Школьной улице не горят фонари", [("street", "Школьная улица")]),
        ("Благоустройство Роменской улицы необходимо", [("street", "Роменская улица")]),
        ("Вся Пушкинская улица засыпана солью", [("street", "Пушкинская улица")]),
        ("Красного Текстильщика улица, 5", [("address", "Красного Текстильщика улица, 5")]),
        # A date is no house number ("29.07"); a preposition after a number is no letter.
        ("за Великан Парком 29.07 заросли скосили", []),
        ("Больничная улица 12 в поликлинике нет врача", [("address", "Больничная улица, 12")]),
    ],
)
def test_places(rules: Flagger, text: str, places: list[tuple[str, str]]) -> None:
    assert [(p["kind"], p["name"]) for p in rules.flag(text).places] == places


def test_municipality_only_when_unambiguous(rules: Flagger) -> None:
    assert rules.flag("г. Колпино, ул. Труда 3, нет воды").municipality == "Колпино"
    assert rules.flag("Дороги в Петербурге разбиты").municipality == "Санкт-Петербург"
    assert rules.flag("Из г. Колпино в Петербург не ходит автобус").municipality is None
    assert rules.flag("Во дворе грязь").municipality is None


def test_real_vk_comments_with_a_house_number(rules: Flagger) -> None:
    """Comments whose geocoded `address` column has a number: their street is mostly found."""
    with shared("vk/vk_comments_spb_central.csv").open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if re.search(r"\D+ \d", r["address"])]
    assert len(rows) > 100
    found = 0
    for row in rows:
        street = row["address"].split()[0].lower()[:5]
        names = " ".join(p["name"].lower() for p in rules.flag(row["text"]).places)
        found += street in names
    assert found / len(rows) >= 0.7

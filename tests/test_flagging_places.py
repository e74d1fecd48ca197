"""Places: addresses, streets, districts, settlements and the municipality."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from crawler.model import Post, SourceConfig
from crawler.pipeline import Ingest
from flagging import Flagger, flagger
from flagging.lexicon import LexiconError
from flagging.settings import FlaggingSettings
from storage.sqlite import SqliteInbox
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
        ("На улице Ленина яма", [("street", "улица Ленина")]),  # not "На улица"
        ("на улице Садовой 3 прорвало трубу", [("address", "улица Садовая, 3")]),
        ("В переулке Тихом грязно", [("street", "переулок Тихий")]),
        ("на улице Александра Невского 2", [("address", "улица Александра Невского, 2")]),
        # The house before its street.
        ("яма у дома 12 по улице Гагарина", [("address", "улица Гагарина, 12")]),
        ("Когда уберут мусор у дома 5 по Садовой?", [("address", "Садовая, 5")]),
        ("возле дома №3 по Лесной улице", [("address", "Лесная улица, 3")]),
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


GAZETTEER = """
places:
  streets:
    Тверь: [улица Пестеля, Гороховая улица, улица Восстания, Малая Конюшенная улица,
            Невский проспект, улица Александра Невского]
"""


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Flagger:
    path = tmp_path_factory.mktemp("gazetteer") / "streets.yaml"
    path.write_text(GAZETTEER, encoding="utf-8")
    return flagger([path])


@pytest.mark.parametrize(
    ("text", "places"),
    [
        ("Пестеля 19, весь двор в наледи", ["улица Пестеля, 19"]),
        ("на гороховой 26 во дворе можно убиться", ["Гороховая улица, 26"]),
        ("Малой Конюшенной, д. 9 грязно", ["Малая Конюшенная улица, 9"]),
        ("Восстания 24 - когда ремонт фасада?", ["улица Восстания, 24"]),
        ("на улице Александра Невского 2 торгуют", ["улица Александра Невского, 2"]),
        ("Невского 12 и Невский 146", ["Невский проспект, 12", "Невский проспект, 146"]),
        ("восстания не будет, правды нет", []),  # a known name without a number: a word
        ("Пестеля 5 лет не чистят", []),  # an amount, not a house
    ],
)
def test_known_streets_of_the_municipality(known: Flagger, text: str, places: list[str]) -> None:
    assert [p["name"] for p in known.flag(text, town="Тверь").places] == places


def test_known_streets_count_only_in_their_municipality(known: Flagger) -> None:
    assert known.flag("Пестеля 19, весь двор в наледи", town="Москва").places == []
    assert known.flag("Пестеля 19, весь двор в наледи").places == []


def test_a_malformed_gazetteer_names_its_file(tmp_path: Path) -> None:
    path = tmp_path / "streets.yaml"
    path.write_text("places:\n  streets:\n    Тверь: улица Пестеля\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"streets\.yaml: places\.streets\.Тверь: must be"):
        flagger([path])


def test_the_pipeline_looks_up_the_streets_of_the_sources_municipality(
    sqlite_inbox: SqliteInbox, tmp_path: Path
) -> None:
    path = tmp_path / "streets.yaml"
    path.write_text(GAZETTEER, encoding="utf-8")
    settings = FlaggingSettings(lexicons=[path])
    for n, town in enumerate(("Тверь", "Москва")):
        source = SourceConfig(id=f"vk-{n}", type="import", municipality=town)
        ingest = Ingest(sqlite_inbox, source, flagging=settings)
        ingest.add(Post(platform="vk", native_id=town, text="Пестеля 19, весь двор в наледи"))
        ingest.close()
    stored = dict(sqlite_inbox.query("SELECT native_id, places FROM posts"))
    assert json.loads(stored["Тверь"]) == [{"kind": "address", "name": "улица Пестеля, 19"}]
    assert json.loads(stored["Москва"]) == []

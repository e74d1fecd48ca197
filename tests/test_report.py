"""`glas report`: every figure of the situation picture counted exactly from an inbox of known
content (tests/report_data.py), on SQLite and PostgreSQL; the command's options and errors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crawler.norms import NormRule, NormSettings
from crawler.routing import RoutingRule, RoutingSettings, topic_labels
from crawler.situation import Period, PeriodError, build, period_of
from storage import open_inbox
from tests import report_data
from tests.report_data import SINCE, UNTIL

NORMS = NormSettings(rules=[NormRule(topic="roads", within="48h")])
ROUTING = RoutingSettings(
    default="Центр управления регионом",
    rules=[RoutingRule(topic="roads", agency="Комитет по дорожному хозяйству")],
)
PERIOD = ["--since", "2026-11-20T00:00Z", "--until", "2026-11-27T00:00Z"]


def case_of(case: dict[str, Any] | None) -> str:
    """A case by the native id of its canonical post (ids differ between backends)."""
    assert case is not None
    return str(case["url"]).rsplit("/", 1)[-1]


@pytest.fixture
def report(inbox: Any) -> dict[str, Any]:
    report_data.fill(inbox)
    return build(inbox, Period(SINCE, UNTIL), norms=NORMS, routing=ROUTING, labels=topic_labels())


@pytest.mark.both_backends
def test_totals_and_heat_map(report: dict[str, Any]) -> None:
    assert report["totals"] == {
        "posts": 7,
        "posts_before": 2,
        "residents": 7,
        "residents_before": 2,
        "cases": 5,
        "cases_before": 2,
    }
    cells = {
        (r["municipality"], r["topic"]): (
            r["residents"],
            r["cases"],
            r["residents_before"],
            r["cases_before"],
            r["residents_change"],
        )
        for r in report["heat_map"]
    }
    assert cells == {
        ("Заречный", "roads"): (3, 1, 1, 1, 2),  # two on VK and one in Telegram, one case
        ("Заречный", "waste"): (2, 2, 1, 1, 1),
        ("Городок", "housing"): (1, 1, 0, 0, 1),
        ("Городок", "waste"): (1, 1, 0, 0, 1),
        ("Городок", "roads"): (1, 1, 0, 0, 1),
    }
    assert report["topics"]["roads"] == "дороги"


@pytest.mark.both_backends
def test_tension_points_link_their_cases(report: dict[str, Any]) -> None:
    points = [
        (p["place"], p["topic"], p["residents"], p["residents_before"], p["growth"])
        for p in report["tension_points"]
    ]
    assert points == [
        ("улица Ленина", "roads", 3, 1, 2),
        ("улица Мира", "waste", 2, 1, 1),
        ("Северный микрорайон", "roads", 1, 0, 1),
    ]
    assert [case_of(c) for c in report["tension_points"][1]["cases_shown"]] == ["-1_3", "-1_4"]
    assert [(p["place"], p["growth"]) for p in report["growing"]] == [
        ("улица Ленина", 2),
        ("улица Мира", 1),
        ("Северный микрорайон", 1),
    ]


@pytest.mark.both_backends
def test_answers_against_the_norm(report: dict[str, Any]) -> None:
    answers = report["answers"]
    # A: 6 h, G: 30 h (roads: 48 h norm), C: 48 h (24 h norm: late); B overdue; F waits.
    assert answers["all"] == [
        {
            "key": None,
            "cases": 5,
            "answered": 3,
            "in_norm": 2,
            "overdue": 1,
            "waiting": 1,
            "share_in_norm": 0.5,
            "median_hours": 30.0,
            "p90_hours": 48.0,
        }
    ]
    by_agency = {a["key"]: a for a in answers["agency"]}
    roads = by_agency["Комитет по дорожному хозяйству"]
    assert (roads["cases"], roads["in_norm"], roads["share_in_norm"]) == (2, 2, 1.0)
    assert (roads["median_hours"], roads["p90_hours"]) == (6.0, 30.0)
    centre = by_agency["Центр управления регионом"]
    assert (centre["cases"], centre["answered"], centre["overdue"], centre["waiting"]) == (
        3,
        1,
        1,
        1,
    )
    by_topic = {a["key"]: (a["cases"], a["in_norm"], a["overdue"]) for a in answers["topic"]}
    assert by_topic == {"roads": (2, 2, 0), "waste": (2, 0, 1), "housing": (1, 0, 0)}
    by_source = {a["key"]: a["cases"] for a in answers["source"]}
    assert by_source == {"zarechny-vk": 3, "gorodok-ok": 2}
    by_place = {a["key"]: a["share_in_norm"] for a in answers["municipality"]}
    assert by_place == {"Заречный": 0.5, "Городок": 0.5}
    assert report["overdue_total"] == 1
    [late] = report["overdue"]
    assert case_of(late["case"]) == "-1_3"
    assert (late["waiting_hours"], late["norm_hours"], late["agency"]) == (
        110.0,
        24.0,
        "Центр управления регионом",
    )


@pytest.mark.both_backends
def test_recurrence_trend_and_largest_cases(report: dict[str, Any]) -> None:
    recurrence = report["recurrence"]
    assert (recurrence["answered_cases"], recurrence["recurred_cases"]) == (2, 1)
    [again] = recurrence["items"]
    assert (again["place"], again["topic"], again["after_days"], again["residents"]) == (
        "улица Ленина",
        "roads",
        5.0,
        3,
    )
    assert (case_of(again["answered_case"]), case_of(again["later_case"])) == ("-1_50", "-1_1")
    trend = report["trend"]
    assert trend["days"][0] == "2026-11-20" and len(trend["days"]) == 8  # Moscow days
    assert trend["residents"] == {
        "roads": [0, 2, 1, 0, 1, 0, 0, 0],
        "waste": [0, 0, 1, 1, 0, 0, 1, 0],
        "housing": [0, 0, 0, 1, 0, 0, 0, 0],
    }
    first = report["largest_cases"][0]
    assert (case_of(first["case"]), first["residents"], first["platform_count"]) == ("-1_1", 3, 2)
    assert first["case"]["platforms"] == ["telegram", "vk"]


def test_one_municipality(sqlite_inbox: Any) -> None:
    report_data.fill(sqlite_inbox)
    only = build(sqlite_inbox, Period(SINCE, UNTIL), municipality="Городок", norms=NORMS)
    assert {r["municipality"] for r in only["heat_map"]} == {"Городок"}
    assert only["totals"]["residents"] == 2
    assert only["tension_points"] == [] and only["overdue"] == []


def test_the_period_from_the_options() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    week = period_of(None, None, None, zone="Europe/Moscow", now=now)
    assert (week.since, week.until) == (datetime(2026, 11, 20, tzinfo=UTC), now)
    day = period_of("2026-11-20", "2026-11-21", None, zone="Europe/Moscow")
    assert day.since == datetime(2026, 11, 19, 21, tzinfo=UTC)  # Moscow midnight
    with pytest.raises(PeriodError, match="not before"):
        period_of("2026-11-21", "2026-11-20", None, zone="UTC")
    with pytest.raises(PeriodError, match="ISO 8601"):
        period_of("yesterday", None, None, zone="UTC")


@pytest.fixture
def filled(tmp_path: Path, write_sources: Callable[[str], Path]) -> Path:
    write_sources(report_data.SOURCES)
    box = open_inbox(str(tmp_path / "inbox.db"))
    report_data.fill(box)
    box.close()
    return tmp_path


def test_json_for_machines_has_the_same_figures(filled: Path, glas: Callable) -> None:
    result = glas("report", *PERIOD, "--format", "json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["totals"]["residents"] == 7
    assert figures["answers"]["all"][0]["share_in_norm"] == 0.5  # norms: from sources.yaml
    assert figures["norms"]["by_topic"] == {"roads": 48.0}
    assert figures["overdue"][0]["agency"] == "Центр управления регионом"


def test_html_is_written_whole_and_private(filled: Path, glas: Callable) -> None:
    result = glas("report", *PERIOD, "-o", "situation.html")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("situation.html: 7 residents, 5 cases, 1 overdue")
    page = (filled / "situation.html").read_text(encoding="utf-8")
    assert "Тепловая карта" in page and "<script" not in page
    assert page.count("<svg") == 3
    assert os.stat(filled / "situation.html").st_mode & 0o777 == 0o600
    assert not list(filled.glob("*.part"))


def test_bad_options_are_one_line(filled: Path, glas: Callable) -> None:
    bad = glas("report", "--since", "2026-11-27", "--until", "2026-11-20")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "glas: the period is empty: --since 2026-11-26T21:00:00Z is not before "
        "--until 2026-11-19T21:00:00Z"
    ]
    assert glas("report", "--period", "week").returncode == 2
    missing = glas("report", "--db", "nowhere.db")
    assert missing.returncode == 1 and "no inbox here" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_an_empty_inbox_gives_an_empty_report(tmp_path: Path, glas: Callable) -> None:
    open_inbox(str(tmp_path / "inbox.db")).close()
    result = glas("report", "-o", "empty.html")
    assert result.returncode == 0, result.stderr
    assert "Жалоб за период нет" in (tmp_path / "empty.html").read_text(encoding="utf-8")


def test_residents_words_stay_words() -> None:
    """Places, texts and links come from residents: escaped in the page, never read as
    markup, mathematics or a script link."""
    from crawler.situation_html import render

    case = {"cluster_id": 7, "url": "javascript:alert(1)", "text": "<script>alert(1)</script>"}
    point = {
        "place": "<b>ул. $Ленина$</b>",
        "municipality": "Заречный",
        "topic": "roads",
        "residents": 2,
        "residents_before": 0,
        "growth": 2,
        "cases_shown": [case],
    }
    page = render(
        {
            "period": {
                "since": "2026-11-20T00:00:00Z",
                "until": "2026-11-27T00:00:00Z",
                "previous_since": "2026-11-13T00:00:00Z",
                "timezone": "Europe/Moscow",
                "municipality": None,
                "days": 7,
            },
            "norms": {
                "default_hours": 24,
                "by_topic": {},
                "by_platform": {},
                "by_topic_and_platform": {},
            },
            "topics": {"roads": "дороги"},
            "totals": dict.fromkeys(
                ("posts", "posts_before", "residents", "residents_before", "cases", "cases_before"),
                0,
            ),
            "heat_map": [],
            "tension_points": [point],
            "growing": [],
            "answers": {},
            "overdue": [],
            "overdue_total": 0,
            "recurrence": {
                "window_days": 30,
                "answered_cases": 0,
                "recurred_cases": 0,
                "items": [],
            },
            "trend": {"days": [], "residents": {}, "posts": {}},
            "largest_cases": [{"cluster_id": 7, "residents": 2, "posts": 2, "case": case}],
        }
    )
    assert "<script" not in page and "javascript:" not in page
    assert "&lt;b&gt;ул. $Ленина$&lt;/b&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

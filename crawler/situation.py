"""The situation picture (``glas report``): where residents' problems concentrate and whether
officials answer in time, over a period and the one of the same length before it.

:func:`build` asks the inbox for its aggregates (:mod:`storage.report`, counted in SQL) and
shapes them into one JSON-ready dict: what ``--format json`` prints and what
:mod:`crawler.situation_html` draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from crawler.norms import Norms, NormSettings
from crawler.routing import Router, RoutingSettings
from storage.report import Window
from storage.rows import UTC_FORMAT

DEFAULT_PERIOD = timedelta(days=7)
DEFAULT_RECURRENCE_DAYS = 30


class PeriodError(ValueError):
    """A bad ``--since``/``--until``/``--period``: one line for the operator."""


@dataclass(frozen=True)
class Period:
    """``[since, until)`` in UTC."""

    since: datetime
    until: datetime

    @property
    def length(self) -> timedelta:
        return self.until - self.since


def parse_time(text: str, zone: str, what: str) -> datetime:
    """An ISO 8601 date or time; without an offset it is read in ``zone`` (a bare date is
    that day's midnight)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(
            f"{what}: {text!r} is not an ISO 8601 date or time (e.g. 2026-11-24 or "
            "2026-11-24T08:00+03:00)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    return value.astimezone(UTC)


def period_of(
    since: str | None,
    until: str | None,
    length: timedelta | None,
    *,
    zone: str,
    now: datetime | None = None,
) -> Period:
    """The report's period from the command's options: ``--until`` (default now) and either
    ``--since`` or ``--period`` (default 7 days)."""
    end = parse_time(until, zone, "--until") if until else (now or datetime.now(UTC))
    if since and length:
        raise PeriodError("give either --since or --period, not both")
    start = parse_time(since, zone, "--since") if since else end - (length or DEFAULT_PERIOD)
    if start >= end:
        raise PeriodError(
            f"the period is empty: --since {start:%Y-%m-%dT%H:%M:%SZ} is not before "
            f"--until {end:%Y-%m-%dT%H:%M:%SZ}"
        )
    return Period(start.replace(microsecond=0), end.replace(microsecond=0))


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime(UTC_FORMAT)


def _from_epoch(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), UTC).strftime(UTC_FORMAT)


def build(
    inbox: Any,
    period: Period,
    *,
    zone: str = "Europe/Moscow",
    municipality: str | None = None,
    norms: NormSettings | None = None,
    routing: RoutingSettings | None = None,
    labels: dict[str, str] | None = None,
    recurrence_days: int = DEFAULT_RECURRENCE_DAYS,
    now: datetime | None = None,
    top: int = 15,
) -> dict[str, Any]:
    """Every figure of the report, JSON-ready."""
    labels = labels or {}
    applied = Norms(norms)
    router = Router(routing)
    offset = ZoneInfo(zone).utcoffset(period.until.replace(tzinfo=None)) or timedelta()
    now = min(now or datetime.now(UTC), period.until)
    window = Window(
        previous=_utc(period.since - period.length),
        since=_utc(period.since),
        until=_utc(period.until),
        now=int(now.timestamp()),
        recurrence_from=_utc(period.since - timedelta(days=recurrence_days)),
        recurrence_days=recurrence_days,
        offset_seconds=int(offset.total_seconds()),
        municipality=municipality,
    )

    def route(topics: list[str], place: str | None, platform: str | None) -> tuple[str | None, int]:
        return router.route(topics, place).agency, applied.seconds(topics, platform)

    raw = inbox.report_figures(window, route, top=top)
    ids: set[int] = set()
    for point in raw["places"]["most"] + raw["places"]["growing"]:
        ids.update(point["case_ids"])
    ids.update(row["cluster_id"] for row in raw["overdue"])
    ids.update(row["cluster_id"] for row in raw["largest"])
    for item in raw["recurrence"]["items"]:
        ids.update((item["answered_case"], item["first_later_case"]))
    cases = {i: _case(row) for i, row in inbox.report_cases(sorted(ids)).items()}

    def label(code: str) -> str:
        return labels.get(code, code)

    return {
        "period": {
            "since": window.since,
            "until": window.until,
            "previous_since": window.previous,
            "timezone": zone,
            "municipality": municipality,
            "days": round(period.length.total_seconds() / 86400, 2),
        },
        "norms": _norms(applied),
        "topics": {code: label(code) for code in _topic_codes(raw)},
        "totals": raw["totals"],
        "heat_map": [_with_change(row) for row in raw["heat_map"]],
        "tension_points": _points(raw["places"]["most"], cases),
        "growing": _points(raw["places"]["growing"], cases),
        "answers": _answers(raw["answers"]),
        "overdue": [
            {
                **{k: v for k, v in row.items() if k != "first_ts"},
                "first_seen": _from_epoch(row["first_ts"]),
                "norm_hours": round(row["norm"] / 3600, 2),
                "waiting_hours": round((window.now - row["first_ts"]) / 3600, 1),
                "agency": row["agency"] or None,
                "case": cases.get(row["cluster_id"]),
            }
            for row in raw["overdue"]
        ],
        "overdue_total": next((r["overdue"] for r in raw["answers"] if r["dim"] == "all"), 0),
        "recurrence": {
            "window_days": recurrence_days,
            "answered_cases": raw["recurrence"]["answered_cases"],
            "recurred_cases": raw["recurrence"]["recurred_cases"],
            "items": [
                {
                    "municipality": item["municipality"],
                    "place": item["place"],
                    "topic": item["topic"],
                    "answered_at": _from_epoch(item["answered_ts"]),
                    "after_days": round(item["after_seconds"] / 86400, 1),
                    "later_cases": item["later_cases"],
                    "residents": item["residents"],
                    "answered_case": cases.get(item["answered_case"]),
                    "later_case": cases.get(item["first_later_case"]),
                }
                for item in raw["recurrence"]["items"]
            ],
        },
        "trend": _trend(raw["trend"], period, offset),
        "largest_cases": [{**row, "case": cases.get(row["cluster_id"])} for row in raw["largest"]],
    }


def _case(row: dict[str, Any]) -> dict[str, Any]:
    import json

    case = dict(row)
    for key in ("platforms", "sources", "topics"):
        if isinstance(case.get(key), str):
            case[key] = json.loads(case[key])
    return case


def _norms(norms: Norms) -> dict[str, Any]:
    return {
        "default_hours": norms.default / 3600,
        "by_topic_and_platform": {f"{t}/{p}": s / 3600 for (t, p), s in norms.both.items()},
        "by_topic": {t: s / 3600 for t, s in norms.by_topic.items()},
        "by_platform": {p: s / 3600 for p, s in norms.by_platform.items()},
    }


def _topic_codes(raw: dict[str, Any]) -> list[str]:
    codes = {row["topic"] for row in raw["heat_map"]} | {row["topic"] for row in raw["trend"]}
    codes |= {row["key"] for row in raw["answers"] if row["dim"] == "topic"}
    return sorted(c for c in codes if c)


def _with_change(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "residents_change": row["residents"] - row["residents_before"],
        "cases_change": row["cases"] - row["cases_before"],
    }


def _points(rows: Sequence[dict[str, Any]], cases: dict[int, Any]) -> list[dict[str, Any]]:
    return [
        {
            **{k: v for k, v in row.items() if k != "case_ids"},
            "growth": row["residents"] - row["residents_before"],
            "cases_shown": [cases[i] for i in row["case_ids"] if i in cases],
        }
        for row in rows
    ]


def _answers(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per dimension, busiest first. ``share_in_norm`` counts cases whose outcome is known
    (answered, or overdue without an answer); cases still within their norm wait."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        decided = row["answered"] + row["overdue"]
        item = {
            "key": row["key"] or None,
            "cases": row["cases"],
            "answered": row["answered"],
            "in_norm": row["in_norm"],
            "overdue": row["overdue"],
            "waiting": row["cases"] - decided,
            "share_in_norm": round(row["in_norm"] / decided, 4) if decided else None,
            "median_hours": _hours(row["median_seconds"]),
            "p90_hours": _hours(row["p90_seconds"]),
        }
        out.setdefault(row["dim"], []).append(item)
    for items in out.values():
        items.sort(key=lambda i: (-i["cases"], i["key"] or ""))
    return out


def _hours(seconds: int | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def _trend(rows: Sequence[dict[str, Any]], period: Period, offset: timedelta) -> dict[str, Any]:
    first = (period.since + offset).date()
    last = (period.until - timedelta(seconds=1) + offset).date()
    days = [str(first + timedelta(days=n)) for n in range((last - first).days + 1)]
    index = {day: n for n, day in enumerate(days)}
    residents: dict[str, list[int]] = {}
    posts: dict[str, list[int]] = {}
    for row in rows:
        if row["day"] not in index:
            continue
        residents.setdefault(row["topic"], [0] * len(days))[index[row["day"]]] = row["residents"]
        posts.setdefault(row["topic"], [0] * len(days))[index[row["day"]]] = row["posts"]
    return {"days": days, "residents": residents, "posts": posts}

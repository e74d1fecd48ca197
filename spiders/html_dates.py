"""Dates as municipal sites write them: ISO, a ``date_format``, or Russian text read by dateparser.

``18 ноября 2020``, ``18.11.2020 16:29``, ``вчера в 10:15``, ``сегодня, 09:00`` and the like
are read in the source's time zone, relative days against the time of the run.
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dateparser

from crawler.normalize import clean_whitespace

# Where a date sits inside a longer label ("Опубликовано: 18.11.2020 | Просмотров: 12").
_SPANS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?)?",
        r"\d{1,2}:\d{2}\s*,?\s*\d{1,2}\.\d{1,2}\.\d{2,4}",
        r"\d{1,2}\.\d{1,2}\.\d{2,4}(?:\s*(?:г\.?)?\s*,?\s*(?:в\s*)?\d{1,2}:\d{2})?",
        r"\d{1,2}\s+[а-яё]{3,}\.?\s+\d{4}(?:\s*(?:г\.?|года))?(?:\s*,?\s*(?:в\s*)?\d{1,2}:\d{2})?",
        r"\d{1,2}\s+[а-яё]{3,}(?:\s*,?\s*(?:в\s*)?\d{1,2}:\d{2})?",
        r"(?:сегодня|вчера|позавчера)(?:\s*,?\s*(?:в\s*)?\d{1,2}:\d{2})?",
        r"\d+\s+(?:минут[уы]?|час(?:а|ов)?|дн(?:я|ей)|день)\s+назад",
    )
]


# The commonest label, all digits: read directly (dateparser takes a few milliseconds a call).
_NUMERIC = re.compile(
    r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:\s*(?:г\.?)?\s*,?\s*(?:в\s*)?(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
CACHE_SIZE = 4096


def check_date_format(value: str | None) -> str | None:
    """A pydantic validator body: a strptime format with at least one directive."""
    if value is None:
        return None
    if "%" not in value:
        raise ValueError(f"date_format {value!r} has no % directive (e.g. '%d.%m.%Y %H:%M')")
    probe = datetime(2020, 11, 18, 16, 29, 5)
    try:
        datetime.strptime(probe.strftime(value), value)
    except ValueError as exc:
        raise ValueError(f"date_format {value!r} is not a strptime format: {exc}") from None
    return value


class DateReader:
    """Reads date labels of one source: ``read(text)`` gives an aware UTC datetime or None."""

    def __init__(self, zone: str, date_format: str | None = None, now: datetime | None = None):
        self.zone_name = zone
        self.zone = ZoneInfo(zone)
        self.date_format = date_format
        self.cache: dict[str, datetime | None] = {}
        local_now = (now or datetime.now(UTC)).astimezone(self.zone)
        self.settings = {
            "TIMEZONE": zone,
            "RETURN_AS_TIMEZONE_AWARE": True,
            "RELATIVE_BASE": local_now.replace(tzinfo=None),
            "PREFER_DATES_FROM": "past",
            "DATE_ORDER": "DMY",
        }

    def read(self, text: str | None) -> datetime | None:
        if not text:
            return None
        value = clean_whitespace(text).replace("\n", " ")
        if not value:
            return None
        if self.date_format:
            try:
                return self._utc(datetime.strptime(value, self.date_format))
            except ValueError:
                return None
        if value in self.cache:
            return self.cache[value]
        found = self._iso(value) or self._numeric(value) or self._parse(value)
        if found is None:
            for pattern in _SPANS:
                match = pattern.search(value)
                if match and match.group(0) != value:
                    span = match.group(0)
                    found = self._iso(span) or self._numeric(span) or self._parse(span)
                    if found is not None:
                        break
        if len(self.cache) < CACHE_SIZE:
            self.cache[value] = found
        return found

    def _numeric(self, value: str) -> datetime | None:
        match = _NUMERIC.fullmatch(value)
        if not match:
            return None
        day, month, year, hour, minute, second = (int(g) if g else 0 for g in match.groups())
        try:
            return self._utc(datetime(year, month, day, hour, minute, second))
        except ValueError:
            return None

    def _iso(self, value: str) -> datetime | None:
        if not re.match(r"\d{4}-\d{2}-\d{2}", value):
            return None
        try:
            return self._utc(datetime.fromisoformat(value.replace(" ", "T", 1)))
        except ValueError:
            return None

    def _parse(self, value: str) -> datetime | None:
        with warnings.catch_warnings():  # dateparser warns about its own internals
            warnings.simplefilter("ignore")
            parsed = dateparser.parse(value, languages=["ru"], settings=self.settings)
        return None if parsed is None else self._utc(parsed)

    def _utc(self, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.zone)
        return value.astimezone(UTC)

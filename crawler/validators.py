"""Checks of values in sources.yaml: durations, IANA time zones, crontab expressions,
addresses.

Each check returns the value (or its parsed form) or raises ValueError with a message an
operator can act on.
"""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import WithJsonSchema

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_HELP = "a number and a unit (s, m, h, d, w), e.g. 90s, 15m, 1h30m, 2d"
DURATION_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^\s*([0-9]+(\.[0-9]+)?\s*([mM][sS]|[sSmMhHdDwW])\s*)+$",
    "description": f"A duration: {DURATION_HELP}.",
}


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse ``90s``, ``15m``, ``1h30m``, ``3d`` (a bare number is seconds).

    Raises ValueError for anything else: unknown units, negative, endless or absurdly long
    durations.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration: {DURATION_HELP}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        if not text:
            raise ValueError(f"expected a duration: {DURATION_HELP}")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            for match in _DURATION.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text):
                raise ValueError(f"{value!r} is not a duration: use {DURATION_HELP}")
    if seconds != seconds:  # NaN
        raise ValueError(f"{value!r} is not a duration: {DURATION_HELP}")
    if seconds < 0:
        raise ValueError(f"{value!r} is not a duration: it must not be negative")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{value!r} is too long a duration") from None


def duration_field(value: Any) -> Any:
    """A duration in sources.yaml: a string with a unit; a bare number is refused (15 what?)."""
    if value is None or isinstance(value, timedelta):
        return value
    bare = value.strip() if isinstance(value, str) else value
    if (isinstance(bare, int | float) and not isinstance(bare, bool)) or (
        isinstance(bare, str) and re.fullmatch(r"\d+(\.\d+)?", bare)
    ):
        raise ValueError(f"{bare} has no unit: write {bare}s, {bare}m or {bare}h")
    return parse_duration(value)


Duration = Annotated[timedelta, WithJsonSchema(DURATION_SCHEMA)]


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def check_timezone(value: str) -> str:
    """``value`` if it names an IANA time zone; ValueError (with a suggestion) otherwise."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    else:
        return value
    message = f"unknown time zone {value!r} (use an IANA name like Europe/Moscow)"
    names = _zone_names()
    lowered = {name.lower(): name for name in names}
    close = [lowered[value.lower()]] if value.lower() in lowered else []
    close = close or difflib.get_close_matches(value, names, n=1, cutoff=0.8)
    raise ValueError(f"{message}; did you mean {close[0]!r}?" if close else message)


CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "mon-sun"),
)


_CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday_names(field: str) -> str | None:
    """The crontab day-of-week ``field`` with day numbers (0 and 7: Sunday) written as names,
    which the scheduler reads as crontab does; None when it cannot be said simply."""
    parts = []
    for part in field.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            if re.search(r"\d", part.partition("/")[0]):
                return None  # a stepped range of day numbers: no simple equivalent
            parts.append(part)
            continue
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if max(first, last) >= len(_CRONTAB_DAYS):
            return field  # out of range: reported as such
        if match.group(2) is None:
            parts.append(_CRONTAB_DAYS[first])
        elif first == 0 and last == 7:
            parts.append("mon-sun")
        elif first == 0 and last > 0:  # names run mon..sun: Sunday cannot start a range
            parts.append("sun,mon" if last == 1 else f"sun,mon-{_CRONTAB_DAYS[last]}")
        else:
            parts.append(f"{_CRONTAB_DAYS[first]}-{_CRONTAB_DAYS[last]}")
    return ",".join(parts)


def check_cron(value: str) -> str:
    """``value`` if it is a 5-field crontab expression; ValueError naming the bad field."""
    from apscheduler.triggers.cron import CronTrigger

    fields = value.split()
    if len(fields) != len(CRON_FIELDS):
        raise ValueError(
            f"bad cron expression {value!r}: it needs 5 fields (minute hour day-of-month "
            f"month day-of-week), found {len(fields)}"
        )
    weekday = _weekday_names(fields[4])
    if weekday != fields[4]:
        example = f", e.g. {weekday!r} for {fields[4]!r}" if weekday else " (mon, tue, … sun)"
        raise ValueError(
            f"bad cron expression {value!r}: write the day of week as names{example}; "
            "day numbers mean different days to crontab (0 = Sunday) and the scheduler "
            "(0 = Monday)"
        )
    for index, (name, allowed) in enumerate(CRON_FIELDS):
        probe = ["*"] * len(CRON_FIELDS)
        probe[index] = fields[index]
        try:
            CronTrigger.from_crontab(" ".join(probe))
        except ValueError as exc:
            detail = str(exc)
            if "higher than the maximum" in detail or "lower than the minimum" in detail:
                why = f"is out of range ({allowed})"
            else:
                why = f"is not valid: {detail[:1].lower()}{detail[1:]} (allowed: {allowed})"
            message = f"bad cron expression {value!r}: {name} {fields[index]!r} {why}"
            raise ValueError(message) from None
    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"bad cron expression {value!r}: {exc}") from None
    return value


CREDENTIALS_ADVICE = (
    "credentials in an address are not allowed (the address is stored in the inbox and shown "
    "in errors); remove 'user:password@': Glas reads public addresses, and secrets go in "
    "environment variables (e.g. token_env: VK_TOKEN)"
)
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")


def http_address(value: str, name: str) -> str:
    """``value`` if it is an http(s) address with a host, no spaces and no credentials;
    else a ValueError naming the option. The one check of every option that takes an address.

    A message about credentials never repeats the address (it holds a password).
    """
    scheme, has_scheme, rest = value.partition("://")
    userinfo, at, _ = re.split(r"[/?#]", rest if has_scheme else value, maxsplit=1)[0].rpartition(
        "@"
    )
    if at and (has_scheme or ":" in userinfo):
        raise ValueError(f"{name}: {CREDENTIALS_ADVICE}")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{name} must start with http:// or https:// (got {value!r})")
    if _CONTROL_OR_SPACE.search(value):
        raise ValueError(
            f"{name} must not contain spaces or control characters (got {value!r}); "
            "write a space in an address as %20"
        )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError(f"{name} has a bad port or host (got {value!r})") from None
    if not parts.hostname:
        raise ValueError(f"{name} has no host name after {scheme}:// (got {value!r})")
    return value


def contact_address(value: str) -> str:
    """``defaults.contact``: an http(s) address (checked as every address is) or an e-mail."""
    if "://" in value or value.startswith(("http:", "https:")):
        return http_address(value, "contact")
    if not re.fullmatch(r"(?:mailto:)?[^@\s:/]+@[^@\s/]+\.[^@\s/]+", value):
        raise ValueError(f"contact must be an http(s) address or an e-mail address (got {value!r})")
    return value


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
SIZE_HELP = "a number of bytes with a unit, e.g. 500KB, 20MB, 1GB (KiB, MiB, GiB also work)"
SIZE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([kKmMgG][iI]?)?[bB]\s*$",
    "description": f"A size: {SIZE_HELP}.",
}


def size_field(value: Any) -> Any:
    """A size in sources.yaml (``20MB``) as a number of bytes; a bare number is refused."""
    if value is None:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value} has no unit: write {value}MB or {value}KB")
    if not isinstance(value, str):
        raise ValueError(f"expected a size: {SIZE_HELP}")
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a size: use {SIZE_HELP}")
    if match.group(2) is None:
        raise ValueError(
            f"{value.strip()} has no unit: write {value.strip()}MB or {value.strip()}KB"
        )
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if size < 1:
        raise ValueError(f"{value!r} is too small a size")
    return size


Size = Annotated[int, WithJsonSchema(SIZE_SCHEMA)]

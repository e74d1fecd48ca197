"""The shapes every stage shares: the Post, collector checkpoints and source settings.

Field names of :class:`Post` are the column names of the ``posts`` table (DESIGN.md).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

PLATFORMS = ("vk", "telegram", "rss", "web")
KINDS = ("post", "comment")


@dataclass(slots=True)
class Post:
    """One collected item, post or comment, from any platform."""

    platform: str
    native_id: str
    source_id: str = ""
    kind: str = "post"
    parent: str | None = None
    url: str | None = None
    title: str | None = None
    author_id: str | None = None
    author_name: str | None = None
    author_is_official: bool = False
    text: str = ""
    published_at: datetime | None = None
    edited_at: datetime | None = None
    metrics: dict[str, int] = field(default_factory=dict)
    geo: dict[str, float] | None = None
    repost_of: str | None = None
    raw: dict[str, Any] | None = None
    # Added by the pipeline.
    dedupe_key: str | None = None
    cluster_id: int | None = None
    is_canonical: bool | None = None
    complaint_score: float | None = None
    is_complaint: bool | None = None
    topics: list[str] | None = None
    topic_scores: dict[str, float] | None = None
    places: list[Any] | None = None
    municipality: str | None = None
    answered_at: datetime | None = None
    answered_by: str | None = None
    response_seconds: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The post's identity: ``(platform, native_id)`` (invariant 1)."""
        return (self.platform, self.native_id)


POST_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Post))


@dataclass(slots=True)
class Checkpoint:
    """Yielded by a collector: every Post yielded before it is covered by ``cursor``.

    The pipeline stores the cursor in the same transaction as those posts (invariant 2).
    ``final`` marks the end of a run (for example an ETag that is valid only once every
    page of the feed is stored).
    """

    cursor: dict[str, Any]
    final: bool = False


@dataclass(slots=True)
class SourceInfo:
    """Facts a collector learns about its source (a channel's title, say)."""

    title: str | None = None
    url: str | None = None


class SourceError(Exception):
    """A source failed in a way the operator must see (dead feed, private channel).

    ``gone`` marks sources that will not come back by themselves (deleted, private, banned).
    """

    def __init__(self, message: str, *, gone: bool = False) -> None:
        super().__init__(message)
        self.gone = gone


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


def _duration_field(value: Any) -> Any:
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


class Strict(BaseModel):
    """Base for every sources.yaml section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Schedule(Strict):
    """When a source runs: ``every: 15m`` or ``cron: "*/10 * * * *"``, optional ``jitter``."""

    every: Duration | None = Field(None, description="Interval such as 15m, 1h, 1d.")
    cron: str | None = Field(
        None, description="Crontab expression: minute hour day-of-month month day-of-week."
    )
    jitter: Duration | None = Field(None, description="Random delay up to this long, e.g. 30s.")

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if isinstance(value, dict | Schedule):
            return value
        example = "{every: 15m} or {cron: '*/10 * * * *'}"
        hint = ""
        if isinstance(value, str):
            try:
                parse_duration(value)
                hint = f"; did you mean {{every: {value.strip()}}}?"
            except ValueError:
                if len(value.split()) == len(CRON_FIELDS):
                    hint = f"; did you mean {{cron: '{value.strip()}'}}?"
        shown = "nothing" if value is None else repr(value)
        raise ValueError(f"expected a mapping such as {example}, found {shown}{hint}")

    @field_validator("every", "jitter", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _duration_field(value)

    @field_validator("every")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value.total_seconds() < 1:
            raise ValueError("the interval must be at least 1s")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if self.every is not None and self.cron is not None:
            raise ValueError("give either 'every' or 'cron', not both")
        if self.every is None and self.cron is None:
            raise ValueError(
                "missing 'every' (e.g. every: 15m) or 'cron' (e.g. cron: '*/10 * * * *')"
            )
        return self


class SourceConfig(Strict):
    """Fields every source has; each source type subclasses it with its own options.

    A subclass sets ``type`` to a ``Literal`` of its name and ``platform`` to the platform
    its posts belong to.
    """

    platform: ClassVar[str] = "web"

    id: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$",
        description="Unique name of the source: letters, digits, '-', '_', '.'.",
    )
    type: str
    municipality: str | None = Field(None, description="Municipality the source covers.")
    schedule: Schedule | None = Field(None, description="Overrides defaults.schedule.")
    enabled: bool = True
    timezone: str | None = Field(
        None, description="IANA zone for times without an offset; overrides defaults.timezone."
    )
    timeout: float | None = Field(
        None, gt=0, description="Seconds before a request is abandoned; overrides the default."
    )
    note: str | None = Field(None, description="Free text for operators.")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


Kind = Literal["post", "comment"]

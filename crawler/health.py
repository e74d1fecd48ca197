"""When a source is due, how long a failing one waits, and what ``glas status`` says of it.

One rule for ``glas run`` (cron mode) and the daemon. A source is due when it never ran, or
its schedule says a run is due since its last run (``every``: the last run's start + the
interval, taken up to a tenth of it early; ``cron``: the first fire time after the last
run's start), unless it is backing
off: after n ≥ 1 consecutive failures it waits interval × 2^(n-1), at most ``backoff_max``
(never less than its interval); a ``gone`` source waits ``backoff_max``. A cron source's
interval is the gap between its next two fire times. One success restores the schedule.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from crawler.config import Config, Defaults
from crawler.model import Schedule, SourceConfig
from storage.rows import UTC_FORMAT

SILENT_FACTOR = 3  # silent after 3 × the usual gap between posts ...
SILENT_RUNS = 2  # ... and never before 2 scheduled runs have found nothing
SILENT_WINDOW = timedelta(days=30)  # the usual gap is measured over the last 30 days of posts
SILENT_MIN_POSTS = 4  # fewer posts than this: the usual gap is taken as SILENT_WINDOW
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def schedule_of(source: SourceConfig, defaults: Defaults) -> Schedule:
    return source.schedule or defaults.schedule


def zone_of(source: SourceConfig, defaults: Defaults) -> ZoneInfo:
    return ZoneInfo(source.timezone or defaults.timezone)


def trigger(source: SourceConfig, defaults: Defaults, *, jitter: bool = True) -> BaseTrigger:
    """The APScheduler trigger of a source's schedule (with its jitter unless told not to)."""
    schedule = schedule_of(source, defaults)
    spread = int(schedule.jitter.total_seconds()) if jitter and schedule.jitter else None
    zone = zone_of(source, defaults)
    if schedule.cron:
        cron = CronTrigger.from_crontab(schedule.cron, timezone=zone)
        cron.jitter = spread  # from_crontab takes no jitter
        return cron
    assert schedule.every is not None
    return IntervalTrigger(
        seconds=schedule.every.total_seconds(), timezone=zone, jitter=spread or None
    )


def interval(source: SourceConfig, defaults: Defaults, after: datetime | None = None) -> timedelta:
    """A source's normal gap between runs (a cron source: between its next two fire times)."""
    schedule = schedule_of(source, defaults)
    if schedule.every is not None:
        return schedule.every
    cron = trigger(source, defaults, jitter=False)
    first = cron.get_next_fire_time(None, after or datetime.now(UTC))
    second = cron.get_next_fire_time(None, first + timedelta(microseconds=1))
    return second - first


def backoff_wait(
    source: SourceConfig, defaults: Defaults, failures: int, gone: bool, normal: timedelta
) -> timedelta:
    """How long after its last run a source waits: its interval, stretched while it fails."""
    if gone:
        return max(normal, defaults.backoff_max)
    if failures < 1:
        return normal
    return max(normal, min(normal * 2 ** min(failures - 1, 30), defaults.backoff_max))


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, UTC_FORMAT).replace(tzinfo=UTC)


def reference_time(row: dict[str, Any] | None) -> datetime | None:
    """When the ``glas run`` of the source's last run that counted (ok or failed) started
    (its first source's start: a source collected late in a run keeps the run's rhythm);
    None when it never ran."""
    if not row:
        return None
    return parse_time(row.get("last_started_at")) or parse_time(row.get("last_run_at"))


def is_gone(row: dict[str, Any] | None) -> bool:
    return bool(row and row.get("gone") and row.get("last_status") == "failed")


def due_at(
    source: SourceConfig,
    defaults: Defaults,
    row: dict[str, Any] | None,
    *,
    reference: datetime | None = None,
) -> datetime:
    """When a source is next due (EPOCH when it never ran); ``reference`` overrides its last
    run's start (the daemon passes when it launched the last run)."""
    since = reference or reference_time(row)
    if since is None:
        return EPOCH
    failures = int(row.get("consecutive_failures") or 0) if row else 0
    normal = interval(source, defaults, since)
    wait = backoff_wait(source, defaults, failures, is_gone(row), normal)
    schedule = schedule_of(source, defaults)
    if schedule.cron:
        cron = trigger(source, defaults, jitter=False)
        return cron.get_next_fire_time(None, since + (wait - normal) + timedelta(microseconds=1))
    return since + wait


def grace(source: SourceConfig, defaults: Defaults, normal: timedelta) -> timedelta:
    """How early ``glas run`` may take an ``every`` source: a run starts some seconds after
    its cron line, so a source due at 10:15:03 is taken by the run of 10:15:00 (a tenth of
    the interval, at most a minute). Cron sources are due at their fire time exactly."""
    if schedule_of(source, defaults).cron:
        return timedelta(0)
    return min(normal / 10, timedelta(minutes=1))


def is_due(
    source: SourceConfig,
    defaults: Defaults,
    row: dict[str, Any] | None,
    now: datetime,
    *,
    reference: datetime | None = None,
    early: timedelta | None = None,
) -> bool:
    """Whether a source should run at ``now`` (``early``: how much before its due time)."""
    when = due_at(source, defaults, row, reference=reference)
    if when == EPOCH:
        return True
    if early is None:
        early = grace(source, defaults, interval(source, defaults, when))
    return now >= when - early


def due_sources(
    config: Config, rows: Iterable[dict[str, Any]], now: datetime
) -> list[SourceConfig]:
    """The enabled sources that are due at ``now`` (cron mode: ``glas run``)."""
    by_id = {row["source_id"]: row for row in rows}
    return [s for s in config.enabled if is_due(s, config.defaults, by_id.get(s.id), now)]


# -- glas status ----------------------------------------------------------------------------
STATES = ("ok", "silent", "failing", "backing off", "gone", "never run", "disabled", "removed")
TROUBLE = ("failing", "backing off", "gone")  # states that make `glas status` exit 1


@dataclass
class Health:
    """One source as ``glas status`` shows it."""

    source_id: str
    state: str
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    posts_24h: int = 0
    last_post_at: datetime | None = None
    next_due: datetime | None = None
    silent_after: timedelta | None = None

    @property
    def label(self) -> str:
        if self.state == "backing off" and self.next_due:
            return f"backing off until {self.next_due.strftime('%Y-%m-%d %H:%M:%SZ')}"
        if self.state == "removed":
            return "removed from config"
        return self.state

    def as_dict(self) -> dict[str, Any]:
        def text(value: datetime | None) -> str | None:
            return value.strftime(UTC_FORMAT) if value else None

        return {
            "source_id": self.source_id,
            "state": self.state,
            "last_run_at": text(self.last_run_at),
            "last_success_at": text(self.last_success_at),
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "posts_24h": self.posts_24h,
            "last_post_at": text(self.last_post_at),
            "next_due": text(self.next_due),
            "silent_after_seconds": (
                int(self.silent_after.total_seconds()) if self.silent_after else None
            ),
        }


def usual_gap(times: list[str]) -> timedelta | None:
    """The median gap between consecutive posts; None with fewer than SILENT_MIN_POSTS."""
    if len(times) < SILENT_MIN_POSTS:
        return None
    stamps = sorted(t for t in (parse_time(x) for x in times) if t is not None)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    return timedelta(seconds=statistics.median(gaps))


def silent_after(source: SourceConfig, defaults: Defaults, row: dict[str, Any]) -> timedelta:
    """How long without a new post makes a source silent: 3 × its usual gap (30 days when it
    has too few posts to tell), and at least 2 × its schedule's interval."""
    gap = usual_gap(row.get("post_times") or [])
    usual = SILENT_FACTOR * gap if gap is not None else SILENT_WINDOW
    return max(usual, SILENT_RUNS * interval(source, defaults))


def assess(config: Config, rows: Iterable[dict[str, Any]], now: datetime) -> list[Health]:
    """The health of every source in the config, then of those the inbox knows but it lacks."""
    by_id = {row["source_id"]: row for row in rows}
    result = [_assess_one(s, config.defaults, by_id.pop(s.id, None), now) for s in config.sources]
    for source_id, row in sorted(by_id.items()):
        result.append(_from_row(Health(source_id, "removed"), row))
    return result


def _from_row(health: Health, row: dict[str, Any]) -> Health:
    health.last_run_at = parse_time(row.get("last_run_at"))
    health.last_success_at = parse_time(row.get("last_success_at"))
    health.consecutive_failures = int(row.get("consecutive_failures") or 0)
    health.last_error = row.get("last_error")
    health.posts_24h = int(row.get("posts_24h") or 0)
    health.last_post_at = parse_time(row.get("last_post_at"))
    return health


def _assess_one(
    source: SourceConfig, defaults: Defaults, row: dict[str, Any] | None, now: datetime
) -> Health:
    health = Health(source.id, "ok")
    if row:
        _from_row(health, row)
    if not source.enabled:
        health.state = "disabled"
        return health
    if reference_time(row) is None:
        health.state = "never run"
        health.next_due = now
        return health
    assert row is not None
    health.next_due = due_at(source, defaults, row)
    normal = interval(source, defaults, now)
    if is_gone(row):
        health.state = "gone"
    elif health.consecutive_failures:
        stretched = backoff_wait(source, defaults, health.consecutive_failures, False, normal)
        waiting = now < health.next_due - grace(source, defaults, normal)
        health.state = "backing off" if stretched > normal and waiting else "failing"
    else:
        health.silent_after = silent_after(source, defaults, row)
        last = health.last_post_at  # a source that never stored a post is not called silent
        if last is not None and now - last > health.silent_after:
            health.state = "silent"
    return health

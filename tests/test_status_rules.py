"""The schedule, backoff and silence rules of crawler.health on sources loaded from a real
sources.yaml, at fixed times (the end-to-end tests in test_cron_mode, test_status and
test_daemon use the clock)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler import health
from crawler.config import Config, load_config

T0 = datetime(2026, 3, 6, 10, 0, 3, tzinfo=UTC)  # a Friday


@pytest.fixture
def config(write_sources: Callable[[str], Path]) -> Config:
    return load_config(
        write_sources("""
            defaults:
              schedule: {every: 15m}
              backoff_max: 6h
            sources:
              - {id: feed, type: rss, url: "https://example.ru/rss"}
              - id: weekly
                type: rss
                url: "https://example.ru/weekly"
                schedule: {every: 7d}
              - id: hourly-cron
                type: rss
                url: "https://example.ru/cron"
                schedule: {cron: "0 * * * *", jitter: 30s}
              - id: mornings
                type: rss
                url: "https://example.ru/mornings"
                schedule: {cron: "0 9 * * mon-fri"}
                timezone: Asia/Yekaterinburg
        """)
    )


def row(failures: int = 0, gone: bool = False, started: datetime = T0) -> dict[str, Any]:
    return {
        "source_id": "x",
        "last_started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "consecutive_failures": failures,
        "last_status": "failed" if failures else "ok",
        "gone": int(gone),
    }


def due(config: Config, source_id: str, state: dict[str, Any] | None) -> datetime:
    return health.due_at(config.source(source_id), config.defaults, state)


def test_a_source_that_never_ran_is_due_at_once(config: Config) -> None:
    assert due(config, "feed", None) == health.EPOCH
    assert health.is_due(config.source("feed"), config.defaults, None, T0)


@pytest.mark.parametrize(
    ("failures", "wait"),
    [(0, 15), (1, 15), (2, 30), (3, 60), (5, 240), (6, 360), (40, 360)],
)
def test_every_source_waits_its_interval_doubled_per_failure_up_to_backoff_max(
    config: Config, failures: int, wait: int
) -> None:
    assert due(config, "feed", row(failures)) == T0 + timedelta(minutes=wait)


def test_gone_waits_backoff_max_and_backoff_never_shortens_a_long_interval(
    config: Config,
) -> None:
    assert due(config, "feed", row(1, gone=True)) == T0 + timedelta(hours=6)
    assert due(config, "weekly", row(3)) == T0 + timedelta(days=7)
    assert due(config, "weekly", row(1, gone=True)) == T0 + timedelta(days=7)


def test_cron_run_of_a_few_seconds_early_still_takes_a_due_source(config: Config) -> None:
    feed = config.source("feed")
    assert health.grace(feed, config.defaults, timedelta(minutes=15)) == timedelta(seconds=60)
    at_tick = datetime(2026, 3, 6, 10, 15, 0, tzinfo=UTC)  # due at 10:15:03
    assert health.is_due(feed, config.defaults, row(), at_tick)
    assert not health.is_due(feed, config.defaults, row(), at_tick - timedelta(minutes=5))


def test_cron_source_is_due_at_its_next_fire_time_and_skips_fires_while_failing(
    config: Config,
) -> None:
    source = config.source("hourly-cron")
    assert health.interval(source, config.defaults, T0) == timedelta(hours=1)
    assert due(config, "hourly-cron", row()) == datetime(2026, 3, 6, 11, 0, tzinfo=UTC)
    assert due(config, "hourly-cron", row(1)) == datetime(2026, 3, 6, 11, 0, tzinfo=UTC)
    assert due(config, "hourly-cron", row(3)) == datetime(2026, 3, 6, 14, 0, tzinfo=UTC)
    # Cron sources are due at the fire time exactly: no early start.
    assert not health.is_due(
        source, config.defaults, row(), datetime(2026, 3, 6, 10, 59, 30, tzinfo=UTC)
    )


def test_cron_reads_the_source_timezone_and_its_interval_is_the_next_gap(
    config: Config,
) -> None:
    source = config.source("mornings")  # 09:00 in Yekaterinburg (UTC+5), Monday to Friday
    assert due(config, "mornings", row()) == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)
    friday_night = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
    assert health.interval(source, config.defaults, friday_night) == timedelta(days=1)
    thursday = datetime(2026, 3, 5, 5, 0, tzinfo=UTC)  # next fires: Friday, then Monday
    assert health.interval(source, config.defaults, thursday) == timedelta(days=3)


def test_the_daemon_trigger_carries_the_jitter_and_the_zone(config: Config) -> None:
    cron = health.trigger(config.source("hourly-cron"), config.defaults)
    assert cron.jitter == 30
    plain = health.trigger(config.source("hourly-cron"), config.defaults, jitter=False)
    assert plain.jitter is None
    assert str(health.trigger(config.source("mornings"), config.defaults).timezone) == (
        "Asia/Yekaterinburg"
    )


def test_silent_after_three_usual_gaps_but_never_before_two_intervals(config: Config) -> None:
    feed = config.source("feed")
    hourly_posts = [f"2026-03-0{d}T{h:02d}:00:00Z" for d in (1, 2) for h in range(0, 24, 6)]
    assert health.usual_gap(hourly_posts) == timedelta(hours=6)
    assert health.silent_after(feed, config.defaults, {"post_times": hourly_posts}) == (
        timedelta(hours=18)
    )
    burst = [f"2026-03-01T10:00:0{s}Z" for s in range(5)]  # a second apart
    assert health.silent_after(feed, config.defaults, {"post_times": burst}) == (
        timedelta(minutes=30)
    )
    few = hourly_posts[:3]  # too few to tell a usual gap: 30 days
    assert health.silent_after(feed, config.defaults, {"post_times": few}) == timedelta(days=30)

"""The fair queue (earliest due first, per-site limits) and the daemon's due times."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from crawler.config import Defaults
from crawler.model import Schedule, SourceConfig
from crawler.schedule import Queue, backlog_line, first_due, next_due, spread_offset

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
RNG = random.Random(7)


def source(ident: str, every: str = "15m", jitter: str | None = None) -> SourceConfig:
    schedule = Schedule.model_validate({"every": every, **({"jitter": jitter} if jitter else {})})
    return SourceConfig(id=ident, type="rss", schedule=schedule)


def test_earliest_due_first_whatever_the_id() -> None:
    queue = Queue(parallel=2)
    for ident, due in (("a", 30.0), ("b", 10.0), ("c", 20.0), ("d", 5.0)):
        queue.put(ident, due, site=ident, cap=4)
    assert [s for s, _ in queue.take(now=100)] == ["d", "b"]  # two at most
    assert queue.take(now=100) == []
    queue.finished("d")
    assert queue.take(now=100) == [("c", 20.0)]


def test_nothing_starts_before_it_is_due() -> None:
    queue = Queue(parallel=10)
    queue.put("later", 50.0, site="x", cap=4)
    assert queue.take(now=49.9) == []
    assert queue.next_due() == 50.0
    assert queue.take(now=50.0) == [("later", 50.0)]


def test_a_full_site_does_not_hold_up_the_others() -> None:
    queue = Queue(parallel=10)
    for n in range(5):
        queue.put(f"tme-{n}", float(n), site="t.me", cap=2)
    queue.put("town", 100.0, site="town.example.ru", cap=2)
    started = [s for s, _ in queue.take(now=200)]
    assert started == ["tme-0", "tme-1", "town"]
    queue.finished("tme-0")
    assert [s for s, _ in queue.take(now=200)] == ["tme-2"]  # still in due order


def test_replaced_and_removed_entries_are_not_started() -> None:
    queue = Queue(parallel=10)
    queue.put("a", 10.0, site="s", cap=4)
    queue.put("a", 90.0, site="s", cap=4)  # planned again: only the new time counts
    queue.put("b", 20.0, site="s", cap=4)
    queue.remove("b")
    assert queue.take(now=50) == []
    assert queue.take(now=95) == [("a", 90.0)]
    assert len(queue) == 0


def test_a_held_site_waits_until_released() -> None:
    queue = Queue(parallel=10)
    queue.put("a", 1.0, site="s", cap=4)
    queue.put("b", 2.0, site="other", cap=4)
    queue.hold("s")
    assert queue.take(now=10) == [("b", 2.0)]
    queue.release("s")
    assert queue.take(now=10) == [("a", 1.0)]


def test_late_counts_what_waits_past_its_grace() -> None:
    queue = Queue(parallel=1)
    for ident, due in (("a", 0.0), ("b", 100.0), ("c", 500.0)):
        queue.put(ident, due, site=ident, cap=1)
    queue.take(now=0)  # a runs; b and c wait
    count, oldest = queue.late(now=560.0, grace={"c": 120.0})
    assert (count, oldest) == (1, 460.0)  # b: 460 s late; c: 60 s, within its grace
    assert backlog_line(412, 360) == "412 collections late, oldest 6m"
    assert backlog_line(1, 4000) == "1 collection late, oldest 1h6m"
    assert backlog_line(0, 0) == "no collection is late"


def test_next_due_is_one_interval_after_the_start() -> None:
    src = source("a", every="15m")
    started = NOW + timedelta(minutes=2)  # due at 10:00, started late at 10:02
    plan = next_due(src, Defaults(), started=started, failures=0, gone=False, now=started, rng=RNG)
    assert plan.base == plan.at == NOW + timedelta(minutes=17), "never sooner than its interval"


def test_a_cron_source_is_next_due_at_its_next_fire_time() -> None:
    src = SourceConfig(id="c", type="rss", schedule=Schedule(cron="0 * * * *"))
    started = NOW + timedelta(minutes=5)
    plan = next_due(src, Defaults(), started=started, failures=0, gone=False, now=started, rng=RNG)
    assert plan.base == NOW + timedelta(hours=1)  # 14:00 in Moscow, the source's zone


def test_failing_sources_wait_longer_from_their_start() -> None:
    src = source("a", every="10m")
    plan = next_due(src, Defaults(), started=NOW, failures=3, gone=False, now=NOW, rng=RNG)
    assert plan.base == NOW + timedelta(minutes=40)  # 10m × 2^(3-1)


def test_a_source_far_behind_runs_now_not_in_the_past() -> None:
    src = source("a", every="1m")
    now = NOW + timedelta(minutes=30)
    plan = next_due(src, Defaults(), started=NOW, failures=0, gone=False, now=now, rng=RNG)
    assert plan.base == now


def test_jitter_is_added_but_never_carried_on() -> None:
    src = source("a", every="15m", jitter="30s")
    plan = next_due(src, Defaults(), started=NOW, failures=0, gone=False, now=NOW, rng=RNG)
    assert plan.base == NOW + timedelta(minutes=15)
    assert timedelta(0) <= plan.at - plan.base <= timedelta(seconds=30)


def test_many_new_sources_are_spread_over_their_interval_a_few_start_now() -> None:
    sources = [source(f"s{n}", every="15m") for n in range(200)]
    alone = first_due(sources[0], Defaults(), None, NOW, spread=False, rng=RNG)
    assert alone.at == NOW
    spread = [first_due(s, Defaults(), None, NOW, spread=True, rng=RNG).at for s in sources]
    offsets = sorted((at - NOW).total_seconds() for at in spread)
    assert offsets[0] >= 0 and offsets[-1] < 900
    assert offsets[100] - offsets[99] < 60 and offsets[-1] - offsets[0] > 800  # spread out
    assert spread_offset("s1", timedelta(minutes=15)) == spread_offset(
        "s1", timedelta(minutes=15)
    ), "the same place after every restart"

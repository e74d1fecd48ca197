"""The ``Inbox`` interface every backend implements, and the values it returns."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crawler.model import Post, SourceConfig

EXPORT_TABLES = ("posts", "clusters", "alerts")


class InboxError(Exception):
    """The inbox cannot be used (wrong URL, unreadable file, schema too new)."""


class SchemaOutdated(InboxError):
    """The inbox was made by an older Glas: ``glas db upgrade`` brings it up to date."""


@dataclass
class StoreResult:
    """What one ``store`` call did."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    # For the near-duplicate index of this process (one call's, not summed): the last seq
    # before and after the call, and the case of every post it inserted or changed; None
    # when it also moved posts it does not list (merged cases): the index reads them back.
    seq_before: int = field(default=0, compare=False)
    seq_after: int = field(default=0, compare=False)
    cases: dict[tuple[str, str], int] | None = field(default=None, repr=False, compare=False)

    def __iadd__(self, other: StoreResult) -> StoreResult:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


@dataclass
class RunRecord:
    """The outcome of collecting one source once (a row of ``runs``)."""

    source_id: str
    status: str  # ok | failed | skipped
    stored: StoreResult = field(default_factory=StoreResult)
    invalid: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    gone: bool = False
    duration: float = 0.0


class Inbox(abc.ABC):
    """Where posts, clusters (cases), sources and their health are kept.

    Writes go through :meth:`store`, which upserts posts by ``(platform, native_id)``,
    attaches them to clusters, stamps ``seq`` on every changed row and saves the source's
    cursor, all in one transaction.
    """

    url: str

    # -- schema ---------------------------------------------------------------------------
    @abc.abstractmethod
    def schema_version(self) -> int:
        """Version of the schema in the database (0 when empty)."""

    @abc.abstractmethod
    def upgrade(self, up_to: int | None = None) -> list[str]:
        """Apply pending migrations (up to version ``up_to``, default all); return the names
        of those applied."""

    # -- writing --------------------------------------------------------------------------
    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction; nested calls join the outer one."""

    @abc.abstractmethod
    def store(
        self,
        source_id: str,
        posts: Sequence[Post],
        *,
        cursor: dict[str, Any] | None = None,
        title: str | None = None,
    ) -> StoreResult:
        """Upsert ``posts`` and save ``cursor`` (when given) atomically."""

    @abc.abstractmethod
    def collected_hashes(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
        """The stored ``collected_hash`` of those ``(platform, native_id)`` that are stored."""

    @abc.abstractmethod
    def sync_sources(self, sources: Iterable[SourceConfig]) -> None:
        """Record what sources.yaml says about each source (the ``sources`` table)."""

    @abc.abstractmethod
    def start_run(self, source_id: str) -> int:
        """Open a ``runs`` row for a source; return its id."""

    @abc.abstractmethod
    def finish_run(self, run_id: int, record: RunRecord) -> None:
        """Close a run and update the source's health in ``source_state``."""

    @abc.abstractmethod
    def close_interrupted_runs(self, source_ids: Iterable[str] | None = None) -> int:
        """Mark runs left 'running' by a killed process as 'interrupted'; return how many.

        Only runs of ``source_ids`` (all when None): call it only for sources whose lock this
        process holds (no other process can be collecting them).
        """

    @abc.abstractmethod
    def abandon_runs(self, source_id: str, pid: int, error: str, since: datetime) -> None:
        """Record that process ``pid`` (started at ``since``) was stopped collecting a source.

        Its 'running' or 'interrupted' run becomes 'failed' with ``error`` (a run is added when
        it had opened none) and the failure counts in the source's health.
        """

    @abc.abstractmethod
    def runs_of(self, source_id: str, pid: int, since: datetime) -> list[dict[str, Any]]:
        """The ``runs`` rows of a source opened by process ``pid`` at or after ``since``."""

    # -- reading --------------------------------------------------------------------------
    @abc.abstractmethod
    def cursor(self, source_id: str) -> dict[str, Any]:
        """The last committed cursor of a source (empty when it never ran)."""

    @abc.abstractmethod
    def source_state(self, source_id: str) -> dict[str, Any] | None:
        """The ``source_state`` row of a source, or None."""

    @abc.abstractmethod
    def source_health(
        self, now: datetime, window_days: int = 30, source_ids: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every known source's health (or only of ``source_ids``), for the scheduler and
        ``glas status``.

        One dict per source in ``sources`` or ``source_state``: ``in_config``, ``enabled``,
        the ``source_state`` columns but the cursor, ``last_started_at`` (when the process
        of the last run that finished ok or failed began its first run: the start of that
        ``glas run``), ``posts_24h`` (posts published in the 24 h before
        ``now``), ``last_post_at`` and ``post_times`` (times of the posts published in the
        ``window_days`` up to the last one, oldest first); times as ISO 8601 UTC text.
        """

    @abc.abstractmethod
    def last_seq(self) -> int:
        """The highest ``seq`` stamped so far."""

    @abc.abstractmethod
    def recent_posts(
        self, after_seq: int, window_seconds: float
    ) -> tuple[int, list[tuple[int, str, str, int | None, str, int | None]]]:
        """What the near-duplicate index needs: ``(last_seq, rows)``.

        Rows are ``(seq, platform, native_id, cluster_id, text, at)`` with ``at`` the post's
        time (published, else first seen) in POSIX seconds. With ``after_seq`` 0: every post
        whose time is within ``window_seconds`` of the newest one (or of now, if earlier);
        otherwise every post with ``seq > after_seq``. ``last_seq`` is read first, so rows up
        to it are all included.
        """

    @abc.abstractmethod
    def posts_by_key(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Stored posts by ``(platform, native_id)``, decoded as :meth:`export` yields them;
        keys not stored are missing from the result."""

    @abc.abstractmethod
    def export(
        self,
        *,
        table: str = "posts",
        since_seq: int = 0,
        complaints_only: bool = False,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Rows of ``posts``, ``clusters`` or ``alerts`` with ``seq > since_seq``, in ``seq``
        order."""

    @abc.abstractmethod
    def export_columns(self, table: str = "posts") -> list[str]:
        """Column names :meth:`export` yields for ``table``, in order."""

    # -- surge alerts (storage.alerts) ---------------------------------------------------------
    @abc.abstractmethod
    def alert_window(self, rule: Any, start: str, end: str) -> dict[str, Any]:
        """``residents``, ``posts`` and ``cases`` of a rule's scope in ``(start, end]``."""

    @abc.abstractmethod
    def alert_usual_level(self, rule: Any, start: str, end: str) -> float:
        """Average distinct residents per window of a rule's scope in ``(start, end]``."""

    @abc.abstractmethod
    def alert_episode(
        self,
        rule_id: str,
        holds: bool,
        now: str,
        held_after: str,
        alert: dict[str, Any],
        webhooks: Sequence[str],
    ) -> dict[str, Any] | None:
        """Record an evaluation; insert and return the alert when it begins an episode."""

    @abc.abstractmethod
    def alerts(self, since: str | None = None) -> list[dict[str, Any]]:
        """Alerts fired at or after ``since``, oldest first, with their deliveries."""

    @abc.abstractmethod
    def claim_deliveries(
        self, webhooks: Sequence[str], now: str, lease_until: str, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Lease the due, undelivered deliveries to ``webhooks``; return them with alerts."""

    @abc.abstractmethod
    def delivery_done(self, alert_id: int, webhook_id: str, status: int, now: str) -> None:
        """Mark a delivery delivered (the receiver answered 2xx)."""

    @abc.abstractmethod
    def delivery_failed(
        self, alert_id: int, webhook_id: str, status: int | None, error: str, retry_at: str
    ) -> None:
        """Count a failed attempt and set the next one."""

    @abc.abstractmethod
    def case_points(self, cluster_ids: Iterable[int]) -> dict[int, tuple[float, float]]:
        """``(lat, lon)`` of the cases that have coordinates (for the GeoJSON export)."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Counts for ``glas stats``: per source, platform and day, clusters, last runs."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

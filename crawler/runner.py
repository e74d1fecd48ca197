"""Collect sources once: each source's posts stored as they come, its outcome recorded.

A failing source is recorded in ``runs`` and ``source_state`` with a one-line error and
never stops the others. Scrapy sources share this process's one reactor
(:mod:`crawler.scrapy_host`); API collectors run before them, one after another.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from crawler.config import Config
from crawler.model import SourceConfig, SourceError
from crawler.pipeline import Ingest
from crawler.scrapy_host import SpiderJob, run_spiders
from spiders import source_types
from spiders.base import Collection
from storage import Inbox
from storage.inbox import RunRecord, StoreResult

log = logging.getLogger("glas.run")


class UnknownSource(Exception):
    """``--source`` named an id that sources.yaml does not have."""


class Reporter(Protocol):
    def started(self, source: SourceConfig) -> None: ...
    def finished(self, record: RunRecord) -> None: ...


@dataclass
class RunSummary:
    """Every source's outcome in one run."""

    records: list[RunRecord] = field(default_factory=list)
    duration: float = 0.0

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "failed"]

    @property
    def interrupted(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "interrupted"]

    @property
    def totals(self) -> StoreResult:
        total = StoreResult()
        for record in self.records:
            total += record.stored
        return total

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.interrupted else 0


def select_sources(config: Config, only: Iterable[str] | None) -> list[SourceConfig]:
    """Enabled sources, or exactly those named (enabled or not: asking is explicit)."""
    if not only:
        return config.enabled
    return named_sources(config, only)


def due_sources(config: Config, inbox: Inbox, now: datetime) -> list[SourceConfig]:
    """The enabled sources due at ``now`` by their schedule and backoff (:mod:`crawler.health`)."""
    from crawler.health import due_sources as due

    return due(config, inbox.source_health(now), now)


def named_sources(config: Config, only: Iterable[str]) -> list[SourceConfig]:
    """Exactly the sources named (enabled or not: asking is explicit)."""
    chosen = []
    known = [s.id for s in config.sources]
    for source_id in only:
        try:
            chosen.append(config.source(source_id))
        except KeyError:
            raise UnknownSource(
                f"{config.path}: no source with id '{source_id}' (known: {', '.join(known)})"
            ) from None
    return chosen


def run_sources(
    config: Config,
    inbox: Inbox,
    sources: list[SourceConfig],
    reporter: Reporter,
) -> RunSummary:
    """Collect every source in ``sources`` once and record how each went.

    The caller holds the locks of ``sources`` (:class:`crawler.lock.SourceLocks`): runs of
    theirs left 'running' can only be a killed process's, and are closed as interrupted.
    """
    began = time.monotonic()
    summary = RunSummary()
    inbox.sync_sources(config.sources)
    inbox.close_interrupted_runs([s.id for s in sources])
    types = source_types()
    officials = config.official_accounts.model_dump()
    scrapy_jobs: list[SpiderJob] = []
    plain: dict[str, list[Collection]] = {}
    for source in sources:
        collection = Collection(
            source=source,
            cursor=inbox.cursor(source.id),
            user_agent=config.defaults.web_user_agent,
            retries=config.defaults.retries,
            official_accounts=officials,
            defaults=config.defaults,
        )
        if types[source.type].uses_scrapy:
            scrapy_jobs.append(_spider_job(config, inbox, collection, reporter, summary))
        else:
            plain.setdefault(source.type, []).append(collection)
    for type_name, collections in plain.items():
        _collect_type(types[type_name].module, collections, config, inbox, reporter, summary)
    run_spiders(scrapy_jobs)
    summary.duration = time.monotonic() - began
    return summary


class _Tracked:
    """One source's collection in progress: its run row, ingest and timing."""

    def __init__(
        self,
        config: Config,
        inbox: Inbox,
        collection: Collection,
        reporter: Reporter,
        summary: RunSummary,
    ) -> None:
        self.inbox = inbox
        self.collection = collection
        self.reporter = reporter
        self.summary = summary
        self.ingest = Ingest(
            inbox,
            collection.source,
            batch_size=config.defaults.batch_size,
            dedupe=config.dedupe,
            flagging=config.flagging,
            lexicon_base=config.path.parent,
            privacy=config.privacy,
        )
        self.run_id = inbox.start_run(collection.source.id)
        self.started = time.monotonic()
        reporter.started(collection.source)

    def done(self, interrupted: bool = False) -> None:
        collection = self.collection
        status = "failed" if collection.error else "interrupted" if interrupted else "ok"
        record = RunRecord(
            source_id=collection.source.id,
            status=status,
            stored=self.ingest.stored,
            invalid=self.ingest.invalid,
            warnings=collection.warnings + self.ingest.warnings,
            error=collection.error,
            gone=collection.gone,
            duration=time.monotonic() - self.started,
        )
        self.inbox.finish_run(self.run_id, record)  # an interrupted one leaves the health
        self.summary.records.append(record)
        self.reporter.finished(record)


def _spider_job(
    config: Config,
    inbox: Inbox,
    collection: Collection,
    reporter: Reporter,
    summary: RunSummary,
) -> SpiderJob:
    tracked = _Tracked(config, inbox, collection, reporter, summary)
    module = source_types()[collection.source.type].module
    return SpiderJob(
        module.Spider,
        collection,
        tracked.ingest,
        lambda job: tracked.done(interrupted=job.interrupted),
    )


def _collect_type(
    module: object,
    collections: list[Collection],
    config: Config,
    inbox: Inbox,
    reporter: Reporter,
    summary: RunSummary,
) -> None:
    """Collect every source of one API type, inside the type's shared session if it has one.

    A session that cannot open fails every source of the type with its reason.
    """
    stack = contextlib.ExitStack()
    try:
        error, gone = _open_session(getattr(module, "open_session", None), stack, collections)
        for collection in collections:
            tracked = _Tracked(config, inbox, collection, reporter, summary)
            if error is not None:
                collection.fail(error, gone=gone)
            else:
                _collect_plain(module, collection, tracked.ingest)
            tracked.done()
    finally:
        try:
            stack.close()
        except Exception as exc:  # every source is recorded already: closing is housekeeping
            log.warning(
                "closing the session of %s failed: %s", getattr(module, "__name__", "?"), exc
            )


def _open_session(
    opener: Any, stack: contextlib.ExitStack, collections: list[Collection]
) -> tuple[str | None, bool]:
    """Enter the type's session and hand it to each collection; (error, gone) if it fails."""
    if opener is None:
        return None, False
    try:
        session = stack.enter_context(opener(collections))
    except SourceError as exc:
        return str(exc), exc.gone
    except Exception as exc:
        log.debug("session of %s failed", opener, exc_info=True)
        return f"could not start: {type(exc).__name__}: {exc}", False
    for collection in collections:
        collection.session = session
    return None, False


def _collect_plain(module: object, collection: Collection, ingest: Ingest) -> None:
    """Run an API collector (a generator function) and feed the pipeline."""
    try:
        for item in module.collect(collection):  # type: ignore[attr-defined]
            ingest.accept(item)
    except SourceError as exc:
        collection.fail(str(exc), gone=exc.gone)
    except Exception as exc:  # a collector bug must not stop the other sources
        log.debug("collector %s crashed", collection.source.id, exc_info=True)
        collection.fail(f"collector error: {type(exc).__name__}: {exc}")
    finally:
        try:
            ingest.close()
        except Exception as exc:
            collection.fail(f"storing failed: {type(exc).__name__}: {exc}")

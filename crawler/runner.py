"""Collect sources once: each source's posts stored as they come, its outcome recorded.

A failing source is recorded in ``runs`` and ``source_state`` with a one-line error and
never stops the others. Scrapy sources share this process's one reactor
(:mod:`crawler.scrapy_host`); API collectors run before them, one after another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

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
    """Collect every source in ``sources`` once and record how each went."""
    began = time.monotonic()
    summary = RunSummary()
    inbox.sync_sources(config.sources)
    inbox.close_interrupted_runs()
    types = source_types()
    officials = config.official_accounts.model_dump()
    scrapy_jobs: list[SpiderJob] = []
    for source in sources:
        collection = Collection(
            source=source,
            cursor=inbox.cursor(source.id),
            user_agent=config.defaults.user_agent,
            retries=config.defaults.retries,
            official_accounts=officials,
        )
        ingest = Ingest(inbox, source, batch_size=config.defaults.batch_size)
        run_id = inbox.start_run(source.id)
        started = time.monotonic()
        reporter.started(source)

        def done(
            collection: Collection = collection,
            ingest: Ingest = ingest,
            run_id: int = run_id,
            started: float = started,
            interrupted: bool = False,
        ) -> None:
            status = "failed" if collection.error else "interrupted" if interrupted else "ok"
            record = RunRecord(
                source_id=collection.source.id,
                status=status,
                stored=ingest.stored,
                invalid=ingest.invalid,
                warnings=collection.warnings + ingest.warnings,
                error=collection.error,
                gone=collection.gone,
                duration=time.monotonic() - started,
            )
            inbox.finish_run(run_id, record)  # an interrupted one leaves the source's health
            summary.records.append(record)
            reporter.finished(record)

        module = types[source.type].module
        if types[source.type].uses_scrapy:
            scrapy_jobs.append(
                SpiderJob(
                    module.Spider,
                    collection,
                    ingest,
                    lambda job, d=done: d(interrupted=job.interrupted),
                )
            )
        else:
            _collect_plain(module, collection, ingest)
            done()
    run_spiders(scrapy_jobs)
    summary.duration = time.monotonic() - began
    return summary


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

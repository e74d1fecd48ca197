"""Run Scrapy collectors: one reactor per process, every Scrapy source of a run in it.

Scrapy's Twisted reactor cannot be restarted in a process. Glas therefore runs each
collection as its own process (``glas run`` is one; the daemon starts one per run) and,
inside it, starts the reactor once for all Scrapy sources together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.logformatter import LogFormatter
from scrapy.settings import Settings
from scrapy.utils.defer import deferred_from_coro

from crawler.config import Defaults
from crawler.model import SourceError
from crawler.pipeline import Ingest
from crawler.polite import polite_settings
from spiders.base import Collection

log = logging.getLogger("glas.scrapy")
_reactor_used = False


@dataclass
class SpiderJob:
    """One Scrapy source to collect, with the ingest that stores what it yields."""

    spider_cls: type
    collection: Collection
    ingest: Ingest
    on_done: Callable[[SpiderJob], None]
    storage_failed: bool = False
    started: bool = False
    interrupted: bool = False  # stopped by a signal (SIGTERM, Ctrl-C) before it finished
    done: bool = False
    receivers: list[Callable[..., None]] = field(default_factory=list)


def base_settings(defaults: Defaults) -> dict[str, Any]:
    return {
        **polite_settings(defaults),
        "ITEM_PIPELINES": {"crawler.scrapy_host.IngestPipeline": 100},
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,  # an HTTP server that runs code: never in Glas
        "COOKIES_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "LOG_ENABLED": True,
        "LOG_INSTALL_ROOT_HANDLER": False,
        "STATS_DUMP": False,
        "REDIRECT_MAX_TIMES": 5,
        "EXTENSIONS": {"scrapy.extensions.logstats.LogStats": None},
        # A source's failure is reported once, as its one-line error; Scrapy's own account of
        # it (retries given up, a collector's traceback) is detail for -v / --debug.
        "RETRY_GIVE_UP_LOG_LEVEL": "INFO",
        "LOG_FORMATTER": "crawler.scrapy_host.QuietLogFormatter",
    }


class QuietLogFormatter(LogFormatter):
    """Scrapy's log formatter with collector errors at DEBUG: they reach the run's report."""

    def spider_error(self, *args: Any, **kwargs: Any) -> Any:
        entry = super().spider_error(*args, **kwargs)
        entry["level"] = logging.DEBUG
        return entry


class IngestPipeline:
    """Scrapy item pipeline handing every item to the source's :class:`Ingest`."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> IngestPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        spider = self.crawler.spider
        job: SpiderJob = spider.glas_job  # type: ignore[union-attr]
        if job.storage_failed:
            return item
        try:
            job.ingest.accept(item)
        except Exception as exc:  # storage failed: stop this source, keep the others going
            log.debug("storing failed for %s", job.collection.source.id, exc_info=True)
            job.storage_failed = True
            job.collection.fail(f"storing failed: {type(exc).__name__}: {exc}")
            deferred_from_coro(self.crawler.stop_async())
        return item


def run_spiders(jobs: list[SpiderJob]) -> None:
    """Crawl every job concurrently in this process's one reactor; return when all end."""
    global _reactor_used
    if not jobs:
        return
    if _reactor_used:
        raise RuntimeError(
            "Scrapy's reactor already ran in this process; run each collection in its own process"
        )
    _reactor_used = True
    first = jobs[0].collection
    defaults = first.defaults or Defaults()
    process = CrawlerProcess(Settings(base_settings(defaults)))
    for job in jobs:
        crawler = process.create_crawler(_limited(job.spider_cls, job.collection))
        # Signal receivers are held weakly: keep them on the job so they live as long as it.
        job.receivers = [_on_spider_error(job), _on_closed(job), _on_opened(job)]
        crawler.signals.connect(job.receivers[0], signal=signals.spider_error)
        crawler.signals.connect(job.receivers[1], signal=signals.spider_closed)
        crawler.signals.connect(job.receivers[2], signal=signals.spider_opened)
        process.crawl(crawler, collection=job.collection, glas_job=job)
    process.start()
    for job in jobs:  # no spider_closed: it never started, or a second signal forced the stop
        if job.done:
            continue
        if job.started:
            job.interrupted = True
            try:  # what was collected so far is stored (harmless to collect again)
                job.ingest.close()
            except Exception as exc:
                job.collection.fail(f"storing failed: {type(exc).__name__}: {exc}")
        else:
            job.collection.fail("the collector could not start (see the log above)")
        job.done = True
        job.on_done(job)


def _run_limit(collection: Collection) -> float:
    limit = collection.source.run_limit or (collection.defaults or Defaults()).run_limit
    return limit.total_seconds()


def _limited(spider_cls: type, collection: Collection) -> type:
    """The spider class with this source's ``run_limit`` as Scrapy's close-spider timeout."""
    settings = {**(getattr(spider_cls, "custom_settings", None) or {})}
    settings["CLOSESPIDER_TIMEOUT"] = _run_limit(collection)
    return type(spider_cls.__name__, (spider_cls,), {"custom_settings": settings})


def _on_spider_error(job: SpiderJob) -> Callable[..., None]:
    def handler(failure: Any, response: Any, spider: Any) -> None:
        exc = failure.value
        if isinstance(exc, SourceError):
            job.collection.fail(str(exc), gone=exc.gone)
            return
        log.debug("collector error in %s: %s", job.collection.source.id, failure.getTraceback())
        job.collection.fail(f"collector error: {type(exc).__name__}: {exc} (at {response.url})")

    return handler


def _on_opened(job: SpiderJob) -> Callable[..., None]:
    def handler(spider: Any) -> None:
        job.started = True

    return handler


def _on_closed(job: SpiderJob) -> Callable[..., None]:
    def handler(spider: Any, reason: str) -> None:
        try:
            job.ingest.close()
        except Exception as exc:
            job.collection.fail(f"storing failed: {type(exc).__name__}: {exc}")
        if reason == "shutdown":  # SIGTERM or Ctrl-C: the operator stopped it, not the source
            job.interrupted = True
        elif reason == "closespider_timeout":  # the cause, whatever the cut requests said
            limit = _run_limit(job.collection)
            job.collection.error = None
            job.collection.fail(f"stopped after {limit:g}s: run_limit exceeded (kept what came)")
        elif reason not in ("finished", "source_error") and not job.collection.error:
            job.collection.fail(f"collection stopped: {reason}")
        job.done = True
        job.on_done(job)

    return handler

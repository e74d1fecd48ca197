"""One Scrapy crawler for every web source of the process.

Web collectors (:class:`spiders.base.GlasSpider`) do not get a crawler each: their requests
go into one long-lived crawler whose downloader has one slot per site, so politeness
(requests in flight and the delay between them, robots.txt) holds for the whole process, not
per source, and connections are reused across sources of a site. Each request carries its
collection (:class:`SpiderRun`) in ``meta``; the hub spider's two callbacks hand responses
and failures to that collection's own callbacks and send what they yield back: requests to the
crawler, items to the collection's sink (the inbox, through the writer thread). A collection
that fails, runs out of time or is stopped ends alone; the crawler and the other collections
go on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import scrapy
from scrapy import signals
from scrapy.crawler import AsyncCrawlerRunner, Crawler
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import CloseSpider, DontCloseSpider, IgnoreRequest
from scrapy.http import Request
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from crawler.config import Defaults
from crawler.model import Checkpoint, Post, SourceError, SourceInfo
from crawler.polite import polite_settings
from spiders.base import GlasSpider, describe_failure

log = logging.getLogger("glas.hub")

ROBOTS_TTL = 24 * 3600.0  # RFC 9309: a cached robots.txt is used for 24 hours at most
ROBOTS_RETRY = 3600.0  # an unreachable robots.txt is asked for again after an hour
TOTAL_CONCURRENCY = 256  # requests in flight over all sites (each site has its own limit)
META_RUN = "glas_run"

Sink = Callable[[list[Any]], Awaitable[None]]


def hub_settings(defaults: Defaults, sites: dict[str, dict[str, Any]] | None = None) -> dict:
    """Scrapy settings of the hub crawler: politeness, limits, and Scrapy's chatter off."""
    polite = polite_settings(defaults)
    middlewares = {
        **polite["DOWNLOADER_MIDDLEWARES"],
        "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
        "crawler.hub.ExpiringRobotsTxt": 100,
        "crawler.hub.RunGate": 950,  # after robots.txt: the last word before the download
    }
    return {
        **polite,
        "DOWNLOADER_MIDDLEWARES": middlewares,
        "DOWNLOAD_SLOTS": dict(sites or {}),
        "CONCURRENT_REQUESTS": TOTAL_CONCURRENCY,
        "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue",
        "DUPEFILTER_CLASS": "scrapy.dupefilters.BaseDupeFilter",  # every run fetches again
        "DOWNLOAD_TIMEOUT": defaults.timeout,
        "DOWNLOAD_MAXSIZE": defaults.max_response_size,
        "DOWNLOAD_WARNSIZE": 0,
        "REDIRECT_MAX_TIMES": 5,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,  # an HTTP server that runs code: never in Glas
        "MEMUSAGE_ENABLED": False,
        "STATS_DUMP": False,
        "LOG_ENABLED": True,
        "LOG_INSTALL_ROOT_HANDLER": False,
        "LOG_LEVEL": "WARNING",
        "EXTENSIONS": {**polite["EXTENSIONS"], "scrapy.extensions.logstats.LogStats": None},
        "WARN_ON_GENERATOR_RETURN_VALUE": False,
        "ITEM_PIPELINES": {},
    }


class HubSpider(scrapy.Spider):
    """The crawler's only spider: never idle-closed, it dispatches to the collections."""

    name = "glas"

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> HubSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.idle, signal=signals.spider_idle)
        crawler.signals.connect(spider.dropped, signal=signals.request_dropped)
        return spider

    async def start(self) -> AsyncIterator[Any]:
        return
        yield

    def idle(self) -> None:
        raise DontCloseSpider  # the hub lives as long as the process harvests

    def dropped(self, request: Request, spider: Any = None) -> None:
        run = request.meta.get(META_RUN)
        if run is not None:
            run.request_ended()

    async def on_response(self, response: Any, **kwargs: Any) -> AsyncIterator[Any]:
        run: SpiderRun = response.meta[META_RUN]
        await run.answered(response, kwargs)
        return
        yield

    def on_failure(self, failure: Failure) -> AsyncIterator[Any]:
        run: SpiderRun = failure.request.meta[META_RUN]  # type: ignore[attr-defined]
        return _nothing(run.failed(failure))


async def _nothing(work: Awaitable[None]) -> AsyncIterator[Any]:
    await work
    return
    yield


class ExpiringRobotsTxt(RobotsTxtMiddleware):
    """Scrapy's robots.txt middleware with each site's file kept for at most a day (RFC 9309)
    and its download errors told quietly (the source's own request reports the site)."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._expires: dict[str, float] = {}

    async def robot_parser(self, request: Request) -> Any:
        netloc = urlparse_cached(request).netloc
        expired = time.monotonic() >= self._expires.get(netloc, 0)
        if netloc in self._parsers and expired and not isinstance(self._parsers[netloc], Deferred):
            del self._parsers[netloc]  # fetched again below
        if netloc in self._parsers:
            return await super().robot_parser(request)
        self._parsers[netloc] = Deferred()
        url = urlparse_cached(request)
        robots = Request(
            f"{url.scheme}://{netloc}/robots.txt",
            priority=self.DOWNLOAD_PRIORITY,
            meta={"dont_obey_robotstxt": True},
            callback=NO_CALLBACK,
        )
        try:
            response = await self.crawler.engine.download_async(robots)
            await self._parse_robots(response, netloc, request)
            self._expires[netloc] = time.monotonic() + ROBOTS_TTL
        except Exception as exc:
            log.debug("robots.txt of %s not read: %s", netloc, exc)
            self._robots_error(exc, netloc)
            self._expires[netloc] = time.monotonic() + ROBOTS_RETRY
        return await super().robot_parser(request)


class RunGate:
    """Drops requests of collections that already ended; bounds each download by the time
    its collection has left (so a hung site never outlives the source's ``run_limit``)."""

    def process_request(self, request: Request, spider: Any = None) -> None:
        run: SpiderRun | None = request.meta.get(META_RUN)
        if run is None:
            return
        if run.closed:
            raise IgnoreRequest("the collection has ended")
        left = run.deadline - time.monotonic()
        if left <= 0:
            raise IgnoreRequest("the collection ran out of time")
        timeout = request.meta.get("download_timeout")
        request.meta["download_timeout"] = min(timeout, left) if timeout else left


class Hub:
    """The crawler shared by every web collection of the process."""

    def __init__(self, defaults: Defaults, sites: dict[str, dict[str, Any]] | None = None):
        self.settings = hub_settings(defaults, sites)
        self.crawler: Crawler | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Start the crawler (on the reactor's loop) and wait until it takes requests."""
        runner = AsyncCrawlerRunner(self.settings)
        crawler = runner.create_crawler(HubSpider)
        opened = asyncio.get_running_loop().create_future()
        crawler.signals.connect(_set(opened), signal=signals.spider_opened, weak=False)
        self._task = runner.crawl(crawler)
        done, _ = await asyncio.wait([opened, self._task], return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:  # it ended before opening: its exception says why
            self._task.result()
            raise RuntimeError("the Scrapy crawler ended as it started")
        self.crawler = crawler

    def crawl(self, request: Request) -> None:
        assert self.crawler is not None and self.crawler.engine is not None
        self.crawler.engine.crawl(request)

    async def close(self) -> None:
        if self.crawler is not None and self.crawler.crawling:
            await self.crawler.stop_async()
        self.crawler = None


def _set(future: asyncio.Future[None]) -> Callable[..., None]:
    def handler(**kwargs: Any) -> None:
        if not future.done():
            future.set_result(None)

    return handler


class SpiderRun:
    """One web source's collection inside the hub: its requests in flight, items, outcome.

    ``done`` completes when the collection has nothing left to do (every request answered and
    every item stored), when it fails, or when :meth:`stop` ends it (time limit, shutdown).
    """

    def __init__(
        self,
        hub: Hub,
        spider: GlasSpider,
        sink: Sink,
        *,
        deadline: float,
        max_size: int,
    ) -> None:
        self.hub = hub
        self.spider = spider
        self.collection = spider.collection
        self.sink = sink
        self.deadline = deadline
        self.max_size = max_size
        self.closed = False
        self.pending = 0  # requests scheduled, not yet answered or failed
        self.busy = 1  # callbacks (and the start) being processed
        self.requests = 0
        self.responses = 0
        self.first_failure: str | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- life cycle -------------------------------------------------------------------------
    async def run(self) -> None:
        """Take the collector's first requests and wait until the collection ends."""
        try:
            await self._process(self.spider.start())
        finally:
            self.busy -= 1
            self._maybe_done()
        await self.done

    def stop(self) -> None:
        """End the collection now; its requests still queued are dropped, late answers ignored."""
        self.closed = True
        if not self.done.done():
            self.done.set_result(None)

    def request_ended(self) -> None:
        self.pending -= 1
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.closed or (self.pending <= 0 and self.busy <= 0):
            self.stop()

    # -- Scrapy's side ----------------------------------------------------------------------
    async def answered(self, response: Any, kwargs: dict[str, Any]) -> None:
        self.pending -= 1
        self.responses += 1
        callback = response.meta.get("glas_callback")
        await self._handle(lambda: callback(response, **kwargs) if callback else None)

    async def failed(self, failure: Failure) -> None:
        self.pending -= 1
        if self.first_failure is None:
            self.first_failure = describe_failure(failure, self.spider.options.timeout)
        errback = failure.request.meta.get("glas_errback")  # type: ignore[attr-defined]
        await self._handle(lambda: (errback or self.spider.request_failed)(failure))

    async def _handle(self, call: Callable[[], Any]) -> None:
        if self.closed:
            self._maybe_done()
            return
        self.busy += 1
        try:
            await self._process(call())
        except Exception as exc:
            self._crashed(exc)
        finally:
            self.busy -= 1
            self._maybe_done()

    # -- the collector's output -------------------------------------------------------------
    async def _process(self, output: Any) -> None:
        """Send what a callback produced on: requests to the crawler, items to the sink.

        Items yielded before a failure are stored; a failure raised (``raise self.fail(…)``,
        a crash) or a failed store ends the collection; one the collector only recorded (an
        errback's) does not, so its other requests still count.
        """
        items: list[Any] = []
        ended = False
        try:
            if inspect.isasyncgen(output):
                async for value in output:
                    self._take(value, items)
            elif inspect.iscoroutine(output):
                self._take_all(await output, items)
            else:
                self._take_all(output, items)
        except CloseSpider:
            ended = True  # the collector recorded its failure
        except Exception as exc:
            self._crashed(exc)
            ended = True
        if items and not await self._store(items):
            ended = True
        if ended:
            self.stop()

    def _take_all(self, output: Iterable[Any] | None, items: list[Any]) -> None:
        if output is None:
            return
        for value in output:
            self._take(value, items)

    def _take(self, value: Any, items: list[Any]) -> None:
        if isinstance(value, Request):
            self._schedule(value)
        elif isinstance(value, Post | Checkpoint | SourceInfo):
            items.append(value)
        elif value is not None:
            self.collection.warn(f"collector produced {type(value).__name__}: ignored")

    def _schedule(self, request: Request) -> None:
        if self.closed:
            return
        meta = request.meta
        meta[META_RUN] = self
        meta["glas_callback"] = request.callback
        meta["glas_errback"] = request.errback
        handled = self.spider.handle_httpstatus_list
        if handled and "handle_httpstatus_list" not in meta:
            meta["handle_httpstatus_list"] = list(handled)
        meta.setdefault("download_maxsize", self.max_size)
        meta.setdefault("max_retry_times", self.collection.retries)
        spider = self.hub.crawler.spider  # type: ignore[union-attr]
        request.callback = spider.on_response
        request.errback = spider.on_failure
        self.pending += 1
        self.requests += 1
        self.hub.crawl(request)

    async def _store(self, items: list[Any]) -> bool:
        try:
            await self.sink(items)
        except SourceError as exc:
            self.collection.fail(str(exc), gone=exc.gone)
        except Exception as exc:  # storage failed: this source stops, the others go on
            log.debug("storing failed for %s", self.collection.source.id, exc_info=True)
            self.collection.fail(f"storing failed: {type(exc).__name__}: {exc}")
        else:
            return True
        return False

    def _crashed(self, exc: Exception) -> None:
        if isinstance(exc, SourceError):
            self.collection.fail(str(exc), gone=exc.gone)
            return
        log.debug("collector error in %s", self.collection.source.id, exc_info=True)
        self.collection.fail(f"collector error: {type(exc).__name__}: {exc}")

"""Polite crawling: Scrapy settings and a retry middleware that waits before it retries.

Glas visits small municipal websites around the clock, so every Scrapy source obeys
robots.txt, throttles itself (AutoThrottle, at most two requests at a time per site), names
itself and its operator in the User-Agent, and retries a 5xx/429 answer or a network error
only after a growing pause, or after as long as the site's ``Retry-After`` asks. A site that
asks for more than :data:`MAX_RETRY_AFTER` is not retried in this run: the source fails with
that request in its one-line error and the next run tries again.
"""

from __future__ import annotations

import email.utils
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from scrapy import signals
from scrapy.core.downloader import Downloader, Slot
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.extensions.throttle import AutoThrottle
from scrapy.http import Request, Response
from scrapy.utils.asyncio import call_later
from scrapy.utils.defer import _process_pending_io, _schedule_coro, maybe_deferred_to_future
from scrapy.utils.response import response_status_message

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.config import Defaults

log = logging.getLogger("glas.scrapy")

MAX_RETRY_AFTER = 300.0  # seconds; a longer wait is the next run's business
MAX_BACKOFF = 120.0
PER_DOMAIN = 2


def polite_settings(defaults: Defaults) -> dict[str, Any]:
    """Scrapy settings for robots.txt, throttling, User-Agent and backed-off retries."""
    delay = defaults.request_delay.total_seconds()
    return {
        "USER_AGENT": defaults.web_user_agent,
        "ROBOTSTXT_OBEY": True,
        "CONCURRENT_REQUESTS_PER_DOMAIN": PER_DOMAIN,
        "DOWNLOAD_DELAY": delay,
        "DOWNLOAD_DELAY_JITTER": 0.5 if delay > 0 else 0.0,
        "AUTOTHROTTLE_ENABLED": True,
        "AUTOTHROTTLE_START_DELAY": delay,
        "AUTOTHROTTLE_MAX_DELAY": 60.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
        "EXTENSIONS": {
            "scrapy.extensions.throttle.AutoThrottle": None,
            "crawler.polite.SiteThrottle": 0,
        },
        "DOWNLOADER": "crawler.polite.SlotDownloader",
        "RETRY_TIMES": defaults.retries,
        "GLAS_RETRY_BACKOFF": defaults.retry_backoff.total_seconds(),
        "DOWNLOADER_MIDDLEWARES": {
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "crawler.polite.BackoffRetryMiddleware": 550,
        },
    }


def retry_after_seconds(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry middleware, waiting ``backoff × 2^n`` (or ``Retry-After``) first."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.backoff = settings.getfloat("GLAS_RETRY_BACKOFF", 2.0)

    async def process_response(
        self, request: Request, response: Response, spider: Any = None
    ) -> Request | Response:
        if request.meta.get("dont_retry") or response.status not in self.retry_http_codes:
            return response
        asked = retry_after_seconds(response.headers.get("Retry-After"))
        if asked is not None and asked > MAX_RETRY_AFTER:
            return response  # reported by the spider's errback with the wait asked for
        retry = self._retry(request, response_status_message(response.status))
        if retry is None:
            return response
        await _pause(asked if asked is not None else self._backoff(request))
        return retry

    async def process_exception(
        self, request: Request, exception: Exception, spider: Any = None
    ) -> Request | Response | None:
        if request.meta.get("dont_retry") or not isinstance(exception, self.exceptions_to_retry):
            return None
        retry = self._retry(request, exception)
        if retry is None:
            return None
        await _pause(self._backoff(request))
        return retry

    def _backoff(self, request: Request) -> float:
        return min(MAX_BACKOFF, self.backoff * 2 ** request.meta.get("retry_times", 0))


async def _pause(seconds: float) -> None:
    """Wait without blocking the reactor (other sources keep crawling meanwhile)."""
    if seconds <= 0:
        return
    from twisted.internet import reactor, task

    log.debug("waiting %.1fs before retrying", seconds)
    await maybe_deferred_to_future(task.deferLater(reactor, seconds, lambda: None))


class SiteThrottle(AutoThrottle):
    """AutoThrottle that keeps each site's own settings (``sites:`` in sources.yaml): its
    ``delay`` is the least pause (Scrapy's takes the global ``DOWNLOAD_DELAY`` as the floor
    of every site) and its ``concurrency`` the number of requests in flight it aims at."""

    def _spider_opened(self, spider: Any) -> None:
        super()._spider_opened(spider)
        self.sites = self.crawler.settings.getdict("DOWNLOAD_SLOTS")

    def _response_downloaded(self, response: Response, request: Request, spider: Any) -> None:
        key = request.meta.get("download_slot")
        site = self.sites.get(key) if key is not None else None
        if not site:
            super()._response_downloaded(response, request, spider)
            return
        slot = self.crawler.engine.downloader.slots.get(key)
        latency = request.meta.get("download_latency")
        if slot is None or latency is None or request.meta.get("autothrottle_dont_adjust_delay"):
            return
        floor = site.get("delay", self.mindelay)
        target = latency / max(1.0, float(site.get("concurrency", self.target_concurrency)))
        delay = min(max(floor, target, (slot.delay + target) / 2.0), self.maxdelay)
        if response.status != 200 and delay <= slot.delay:
            return
        slot.delay = delay


class SiteSlots(Protocol):
    """Request limits shared beyond this process (:class:`crawler.cluster_limits.SharedPacer`)."""

    def take(self, key: str, interval: float) -> float | None: ...

    def board(self, key: str, limit: int, lease: float) -> int | None: ...

    def land(self, flight: int) -> None: ...


_SHARED: list[SiteSlots] = []  # set by share_site_limits (glas worker): limits of the cluster
FLIGHT_WAIT = 0.1  # seconds before a site with every flight taken is asked again
LEASE_MARGIN = 30.0  # seconds a flight outlives its request's download timeout


def share_site_limits(slots: SiteSlots | None) -> None:
    """Hold each site's delay and concurrency with ``slots`` too (None: this process alone)."""
    _SHARED[:] = [slots] if slots is not None else []


class SlotDownloader(Downloader):
    """Scrapy's downloader, holding each site to its concurrency also without a delay.

    On the asyncio reactor Scrapy 2.19 counts a request as transferring only once its
    download task starts, so a site with no delay had every queued request sent at once;
    here a request counts from the moment it leaves the site's queue. With
    :func:`share_site_limits` (``glas worker``) a site's limits also hold for every worker
    together: each request first takes one of the site's ``concurrency`` flights of the
    cluster (all taken: the queue is looked at again in :data:`FLIGHT_WAIT`), given back when
    its download ends; a request to a site with a delay then takes a turn from the cluster's
    slots (reserved at once; the request goes when the turn comes).
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._turns: dict[str, float] = {}  # the cluster's turn reserved for each site
        self._flights: dict[Request, int] = {}  # the cluster's flight of each request

    def _cluster_turn(self, slot: Slot, delay: float, now: float) -> bool:
        """Whether the next request of ``slot`` may go now by the cluster's turns; if not,
        the queue is looked at again when its reserved turn comes."""
        key = str(slot.queue[0][0].meta.get("download_slot") or "")
        turn = self._turns.get(key)
        if turn is not None and now - turn > delay:  # a turn its requests did not use: gone
            turn = None
        if turn is None:
            wait = _SHARED[0].take(f"site:{key}", delay)
            if wait is None or wait <= 0.001:  # the turn is now (or no database: pace alone)
                return True
            turn = self._turns[key] = now + wait
        if now >= turn - 0.001:
            del self._turns[key]
            return True
        slot.latercall = call_later(turn - now, self._latercall, slot)
        return False

    def _cleared(self, slot: Slot, delay: float, now: float) -> bool:
        """Whether the next request of ``slot`` may leave by the cluster's limits: one of the
        site's flights (kept while it waits), then, for a site with a delay, its turn (so a
        worker waiting for a flight reserves no turns meanwhile)."""
        return self._board(slot) and (not delay or self._cluster_turn(slot, delay, now))

    def _board(self, slot: Slot) -> bool:
        """Whether the next request of ``slot`` has a flight of the cluster (taken now if
        not yet; no database: the worker's own limit holds); if not, the queue is looked at
        again soon."""
        request = slot.queue[0][0]
        if request in self._flights:
            return True
        key = str(request.meta.get("download_slot") or "")
        timeout = request.meta.get("download_timeout") or self.settings.getfloat("DOWNLOAD_TIMEOUT")
        lease = float(timeout) + LEASE_MARGIN
        flight = _SHARED[0].board(f"site:{key}", slot.concurrency, lease)
        if flight == 0:
            slot.latercall = call_later(FLIGHT_WAIT, self._latercall, slot)
            return False
        if flight:
            self._flights[request] = flight
        return True

    def _process_queue(self, slot: Slot) -> None:
        if slot.latercall:
            return
        now = time.monotonic()
        delay = slot.download_delay()
        if delay:
            penalty = delay - now + slot.lastseen
            if penalty > 0:
                slot.latercall = call_later(penalty, self._latercall, slot)
                return
        while slot.queue and slot.free_transfer_slots() > 0:
            if _SHARED and not self._cleared(slot, delay, now):
                return
            slot.lastseen = now
            request, queue_dfd = slot.queue.popleft()
            slot.transferring.add(request)  # counted now, not when its task starts
            _schedule_coro(self._wait_for_download(slot, request, queue_dfd))
            if delay:
                self._process_queue(slot)
                break

    async def _download(self, slot: Slot, request: Request) -> Response:
        """Scrapy 2.19's, giving the request's flight back before the queue is looked at
        again (so that the site's next request of this worker can take it at once)."""
        slot.transferring.add(request)
        try:
            response: Response = await self.handlers.download_request_async(request)
            self.signals.send_catch_log(
                signal=signals.response_downloaded,
                response=response,
                request=request,
                spider=self.crawler.spider,
            )
            return response
        except Exception:
            await _process_pending_io()
            raise
        finally:
            slot.transferring.remove(request)
            flight = self._flights.pop(request, None)
            if flight and _SHARED:
                _SHARED[0].land(flight)
            self._process_queue(slot)
            self.signals.send_catch_log(
                signal=signals.request_left_downloader,
                request=request,
                spider=self.crawler.spider,
            )

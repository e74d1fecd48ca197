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
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Request, Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.response import response_status_message

if TYPE_CHECKING:
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

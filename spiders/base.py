"""What every collector gets and gives.

A collector receives a :class:`Collection` (its source options, last cursor, settings) and
yields :class:`~crawler.model.Post`, :class:`~crawler.model.Checkpoint` and
:class:`~crawler.model.SourceInfo` items. Web collectors subclass :class:`GlasSpider`: they
yield Scrapy requests whose callbacks yield items and more requests, and the harvester's one
Scrapy crawler (:mod:`crawler.hub`) downloads them for every source of the process. API
clients are plain generator functions ``collect(collection)`` run on a thread; their module may
also define ``open_session(collections)``, a context manager entered once and kept open while
the process runs (one shared client, token pool or rate limiter), whose value each collection
gets as ``collection.session``. A collector stops early when ``collection.cancelled`` is set.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import scrapy
import scrapy.exceptions
from scrapy.exceptions import CloseSpider, IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet import error as net_error
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

from crawler.model import SourceConfig
from crawler.polite import retry_after_seconds

if TYPE_CHECKING:
    from crawler.config import Defaults

log = logging.getLogger("glas.collect")


@dataclass
class Collection:
    """One collection of one source: its inputs and, as it goes, its warnings and failure."""

    source: SourceConfig
    cursor: dict[str, Any] = field(default_factory=dict)
    user_agent: str = "Glas"
    retries: int = 2
    official_accounts: dict[str, list[Any]] = field(default_factory=dict)
    defaults: Defaults | None = None  # sources.yaml `defaults:` (API addresses, politeness)
    session: Any = None  # what the type's ``open_session`` gave (shared client, token pool)
    error: str | None = None
    gone: bool = False
    warnings: list[str] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)  # run_limit or stop

    def warn(self, message: str) -> None:
        log.warning("%s: %s", self.source.id, message)
        self.warnings.append(message)

    def fail(self, message: str, *, gone: bool = False) -> None:
        """Record the source's failure (the first one wins: it is usually the cause)."""
        if self.error is None:
            self.error = message
            self.gone = gone


class GlasSpider:
    """Base of web collectors: the source's options and cursor, failures as one line.

    Not a Scrapy spider of its own: :mod:`crawler.hub` runs every source's requests in one
    shared crawler (one download slot per site for the whole process). ``start()`` yields the
    first requests; a callback's ``raise self.fail(...)`` ends this source only.
    ``handle_httpstatus_list`` works as on a Scrapy spider.
    """

    name = "glas"
    handle_httpstatus_list: ClassVar[list[int]] = []

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.logger = logging.LoggerAdapter(log, {"source": collection.source.id})
        self.options = collection.source
        self.cursor = dict(collection.cursor)
        limit = collection.source.run_limit or getattr(collection.defaults, "run_limit", None)
        self.run_limit = limit.total_seconds() if limit else None

    def request(self, url: str, **kwargs: Any) -> scrapy.Request:
        """A request with this source's timeout and the standard failure handler."""
        meta = kwargs.pop("meta", {})
        limits = [self.options.timeout, self.run_limit]
        timeout = min((t for t in limits if t), default=None)
        if timeout:  # a download never outlives the source's run_limit
            meta.setdefault("download_timeout", timeout)
        return scrapy.Request(url, errback=self.request_failed, meta=meta, **kwargs)

    def request_failed(self, failure: Failure) -> None:
        self.collection.fail(describe_failure(failure, self.options.timeout))

    async def start(self) -> Any:
        """The first requests (an async generator)."""
        return
        yield

    def fail(self, message: str, *, gone: bool = False) -> CloseSpider:
        """Record a source error; ``raise spider.fail(...)`` stops this source's collection."""
        self.collection.fail(message, gone=gone)
        return CloseSpider("source_error")


def _scrapy_errors(*names: str) -> tuple[type[BaseException], ...]:
    """Scrapy's own download exceptions (2.13+ wraps Twisted's in them); absent ones skipped."""
    found = (getattr(scrapy.exceptions, name, None) for name in names)
    return tuple(kind for kind in found if isinstance(kind, type))


_DNS = (net_error.DNSLookupError, *_scrapy_errors("CannotResolveHostError"))
_TIMEOUT = (
    net_error.TimeoutError,
    net_error.TCPTimedOutError,
    *_scrapy_errors("DownloadTimeoutError"),
)
_REFUSED = (net_error.ConnectionRefusedError, *_scrapy_errors("DownloadConnectionRefusedError"))
_NO_ANSWER = (ResponseNeverReceived, net_error.ConnectionLost, net_error.ConnectionDone)
_BROKEN = (ResponseFailed, *_scrapy_errors("DownloadFailedError", "ResponseDataLossError"))
_CUT = _scrapy_errors("DownloadCancelledError")  # Scrapy cancels only what passes the size limit


def describe_failure(failure: Failure, timeout: float | None = None) -> str:
    """A one-line account of a failed request."""
    exc = failure.value
    request = getattr(failure, "request", None)
    url = request.url if request is not None else ""
    if isinstance(exc, HttpError):
        response = exc.response
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if wait is not None and wait > 0:
            return (
                f"HTTP {response.status} from {response.url}: the site asks to wait "
                f"{wait:.0f}s (Retry-After); the next run tries again"
            )
        return f"HTTP {response.status} from {response.url}"
    if isinstance(exc, IgnoreRequest) and "robots.txt" in str(exc):
        return f"robots.txt of the site forbids {url} (Glas obeys it; ask the site's owner)"
    if isinstance(exc, IgnoreRequest) and "max redirections" in str(exc):
        return _redirects(request)
    if "max size" in str(exc) or "DOWNLOAD_MAXSIZE" in str(exc) or isinstance(exc, _CUT):
        limit = request.meta.get("download_maxsize") if request is not None else None
        size = f"the limit of {_megabytes(limit)}" if limit else "the size limit"
        unpacked = "unpacks to" if "decompress" in str(exc) else "is"
        return f"the answer from {url} {unpacked} more than {size} (max_response_size)"
    if isinstance(exc, _DNS):
        return f"cannot resolve the host of {url}"
    if isinstance(exc, _TIMEOUT):
        limit = f" within {timeout:g}s" if timeout else ""
        return f"no answer from {url}{limit}"
    if isinstance(exc, _REFUSED):
        return f"connection refused: {url}"
    if isinstance(exc, _NO_ANSWER) or isinstance(exc.__cause__, _NO_ANSWER):
        return f"the server closed the connection without an answer: {url}"
    if isinstance(exc, _BROKEN):
        return f"the connection broke before the whole answer arrived: {url}"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text} ({url})" if url else f"{type(exc).__name__}: {text}"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


def _redirects(request: Any) -> str:
    """Why a chain of redirects was given up: a loop (named) or too many hops."""
    chain = [*request.meta.get("redirect_urls", []), request.url] if request is not None else []
    for index, url in enumerate(chain):
        if url in chain[:index]:
            loop = chain[chain.index(url) : index + 1]
            return f"redirect loop: {' -> '.join(loop)}"
    if not chain:
        return "too many redirects"
    return f"too many redirects from {chain[0]} ({len(chain) - 1} hops, last {chain[-1]})"

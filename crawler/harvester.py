"""The warm harvester: many collections at once in one long-lived process.

What is expensive is made once and kept while the process lives: the pipeline's stages (the
flagger's lexicons and models, the near-duplicate index, kept current by ``seq`` instead of
being rebuilt), the Scrapy crawler every web source shares (:mod:`crawler.hub`: one download
slot and one robots.txt per site), and the API sessions (one Telegram client, VK's token pool
and request batching). Each collection runs on the reactor (web) or on a thread of its type's
lane (API clients, which block); every store goes through the one writer thread
(:mod:`crawler.writer`). A collection that fails, hangs past its ``run_limit`` or raises ends
alone, recorded in ``runs`` with one line; the others go on.

``glas run`` (cron mode) and the daemon's workers both harvest with this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from crawler.config import Config
from crawler.hub import Hub, SpiderRun
from crawler.lanes import Lane
from crawler.lock import Locks
from crawler.model import Checkpoint, SourceConfig, SourceError
from crawler.pipeline import Ingest, Stage, default_stages
from spiders import SourceType, source_types
from spiders.base import Collection
from storage import Inbox
from storage.inbox import RunRecord

log = logging.getLogger("glas.run")

API_BATCH = 100  # items an API collector hands to the writer at a time (or at a checkpoint)
SESSION_RETRY = 60.0  # seconds a session that failed to open is not tried again
HUB_CLOSE = 0.3  # seconds the crawler may take to close (downloads in flight are dropped)


class Reporter(Protocol):
    def started(self, source: SourceConfig) -> None: ...
    def finished(self, record: RunRecord) -> None: ...
    def skipped(self, source_id: str, pid: str) -> None: ...


class _Silent:
    def started(self, source: SourceConfig) -> None:
        pass

    def finished(self, record: RunRecord) -> None:
        pass

    def skipped(self, source_id: str, pid: str) -> None:
        pass


@dataclass
class Run:
    """One collection of one source in progress."""

    source: SourceConfig
    collection: Collection
    ingest: Ingest
    run_id: int
    limit: float  # seconds: the source's run_limit
    began: float = field(default_factory=time.monotonic)
    ended: str | None = None  # "limit" or "interrupted" when stopped from outside
    finalized: bool = False  # set on the writer thread once the run is recorded
    web: SpiderRun | None = None
    stopped: asyncio.Future[None] | None = None

    def store(self, items: list[Any]) -> None:
        """Hand items to the ingest (writer thread); a recorded run takes no more."""
        if self.finalized:
            return
        for item in items:
            self.ingest.accept(item)

    def stop(self, why: str) -> None:
        """End the collection now (reactor thread): ``limit`` or ``interrupted``."""
        if self.ended is None:
            self.ended = why
        self.collection.cancelled.set()
        if self.web is not None:
            self.web.stop()
        if self.stopped is not None and not self.stopped.done():
            self.stopped.set_result(None)


@dataclass
class _Session:
    """An API type's shared session, opened once and kept."""

    stack: contextlib.ExitStack | None = None
    value: Any = None
    error: SourceError | None = None
    failed_at: float = 0.0


class Harvester:
    """Collects sources of ``config`` into ``inbox``, many at once, with warm state."""

    def __init__(
        self,
        config: Config,
        inbox: Inbox,
        *,
        locks: Locks | None = None,
        reporter: Reporter | None = None,
        types: dict[str, SourceType] | None = None,
    ) -> None:
        self.config = config
        self.inbox = inbox
        self.locks = locks
        self.reporter: Reporter = reporter or _Silent()
        self.writer = Lane("glas-writer")
        self.types = types or source_types()
        self.hub: Hub | None = None
        self._hub_ready: asyncio.Lock | None = None
        self.stages: list[Stage] = []
        self.runs: dict[str, Run] = {}
        self._lanes: dict[str, Lane] = {}
        self._sessions: dict[str, _Session] = {}
        self._session_lock = threading.Lock()
        self.stopping = False  # interrupted: a collection starting now stops at once

    # -- life cycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Record the config's sources and warm the pipeline (lexicons, models, the index)."""
        await self.writer.call(self._warm)

    def _warm(self) -> None:
        config = self.config
        self.inbox.sync_sources(config.sources)
        self.stages = default_stages(
            self.inbox,
            config.dedupe,
            config.flagging,
            config.path.parent,
            config.privacy,
            config.alerts,
            config.webhooks,
        )
        for stage in self.stages:
            warm = getattr(stage, "catch_up", None)
            if warm is not None:
                warm()  # the near-duplicate index: built now, not at the first batch

    async def reconfigure(self, config: Config) -> None:
        """Use ``config`` for the collections started from now on (the hub keeps the
        ``defaults`` and ``sites`` it started with: a change of those needs a new process)."""
        self.config = config
        await self.writer.call(self._warm)

    async def close(self) -> None:
        """Stop every collection (recorded as interrupted), then release what is warm."""
        await self.interrupt()
        if self.hub is not None:  # downloads in flight are dropped, not waited for long
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.hub.close(), HUB_CLOSE)
        for lane in self._lanes.values():
            lane.close(wait=False)
        await self.writer.call(self._close_sessions)
        self.writer.close()

    async def interrupt(self) -> None:
        """Stop every running collection now (and any starting meanwhile); wait until each
        is recorded."""
        self.stopping = True
        while self.runs:
            for run in list(self.runs.values()):
                run.stop("interrupted")
            await asyncio.sleep(0.01)

    def _close_sessions(self) -> None:
        for session in self._sessions.values():
            if session.stack is not None:
                try:
                    session.stack.close()
                except Exception as exc:
                    log.warning("closing a session failed: %s", exc)
        self._sessions.clear()

    # -- one collection -------------------------------------------------------------------
    async def collect(self, source: SourceConfig) -> RunRecord | None:
        """Collect ``source`` once; its record, or None when another process holds it."""
        if source.id in self.runs:
            raise RuntimeError(f"{source.id} is being collected already")
        begun = await self.writer.call(self._begin, source)
        if isinstance(begun, str):
            self.reporter.skipped(source.id, begun)
            return None
        run = begun
        self.runs[source.id] = run
        run.stopped = asyncio.get_running_loop().create_future()
        self.reporter.started(source)
        timer = asyncio.get_running_loop().call_later(run.limit, run.stop, "limit")
        if self.stopping:
            run.stop("interrupted")
        try:
            kind = self.types[source.type]
            if kind.uses_scrapy:
                await self._collect_web(run, kind)
            else:
                await self._collect_api(run, kind)
        except Exception as exc:  # a bug of the harvester itself: this source only
            log.debug("collecting %s failed", source.id, exc_info=True)
            run.collection.fail(f"collector error: {type(exc).__name__}: {exc}")
        finally:
            timer.cancel()
            try:
                record = await self.writer.call(self._end, run)
            finally:
                del self.runs[source.id]
        self.reporter.finished(record)
        return record

    def _begin(self, source: SourceConfig) -> Run | str:
        """Writer thread: lock the source, open its run, read its cursor."""
        if self.locks is not None:
            busy = self.locks.take([source.id])
            if busy:
                return busy[source.id]
        try:
            config = self.config
            defaults = config.defaults
            collection = Collection(
                source=source,
                cursor=self.inbox.cursor(source.id),
                user_agent=defaults.web_user_agent,
                retries=defaults.retries,
                official_accounts=config.official_accounts.model_dump(),
                defaults=defaults,
            )
            ingest = Ingest(self.inbox, source, batch_size=defaults.batch_size, stages=self.stages)
            run_id = self.inbox.start_run(source.id)
        except BaseException:
            self._unlock(source.id)
            raise
        limit = (source.run_limit or defaults.run_limit).total_seconds()
        return Run(source, collection, ingest, run_id, limit)

    def _end(self, run: Run) -> RunRecord:
        """Writer thread: store what is left, record the run, unlock the source."""
        collection = run.collection
        try:
            if not run.finalized:
                run.finalized = True
                try:
                    run.ingest.close()
                except Exception as exc:
                    log.debug("storing failed for %s", run.source.id, exc_info=True)
                    collection.fail(f"storing failed: {type(exc).__name__}: {exc}")
            record = self._record(run)
            self.inbox.finish_run(run.run_id, record)
            return record
        finally:
            self._unlock(run.source.id)

    def _record(self, run: Run) -> RunRecord:
        collection = run.collection
        status = "ok"
        if run.ended == "limit":
            collection.error = (
                f"stopped after {_human(run.limit)}: run_limit exceeded (kept what came)"
            )
            collection.gone = False
        elif run.web is not None and not collection.error and run.ended is None:
            web = run.web
            if web.requests and not web.responses:  # nothing answered, nothing said why
                collection.fail(web.first_failure or "no answer arrived (the request was dropped)")
        if collection.error:
            status = "failed"
        elif run.ended == "interrupted":
            status = "interrupted"
        return RunRecord(
            source_id=run.source.id,
            status=status,
            stored=run.ingest.stored,
            invalid=run.ingest.invalid,
            warnings=collection.warnings + run.ingest.warnings,
            error=collection.error,
            gone=collection.gone,
            duration=time.monotonic() - run.began,
        )

    def _unlock(self, source_id: str) -> None:
        if self.locks is not None:
            self.locks.release_one(source_id)

    # -- web sources: the shared crawler --------------------------------------------------
    async def _collect_web(self, run: Run, kind: SourceType) -> None:
        hub = await self._hub()
        spider = kind.module.Spider(run.collection)
        max_size = run.source.max_response_size or self.config.defaults.max_response_size

        async def sink(items: list[Any]) -> None:
            await self.writer.call(run.store, items)

        run.web = SpiderRun(
            hub, spider, sink, deadline=time.monotonic() + run.limit, max_size=max_size
        )
        if run.ended is not None:  # stopped while the crawler was starting
            run.web.stop()
        await run.web.run()

    async def _hub(self) -> Hub:
        if self._hub_ready is None:
            self._hub_ready = asyncio.Lock()
        async with self._hub_ready:
            if self.hub is None:
                hub = Hub(self.config.defaults, self.config.sites_settings())
                await hub.open()
                self.hub = hub
        return self.hub

    # -- API sources: a thread each, a warm session per type ------------------------------
    async def _collect_api(self, run: Run, kind: SourceType) -> None:
        lane = self._lane(kind)
        work = asyncio.wrap_future(lane.submit(self._drive, run, kind))
        assert run.stopped is not None
        await asyncio.wait([work, run.stopped], return_when=asyncio.FIRST_COMPLETED)
        if not work.done():  # stopped: the thread ends at its next item; not waited for
            work.add_done_callback(_quiet)

    def _lane(self, kind: SourceType) -> Lane:
        lane = self._lanes.get(kind.name)
        if lane is None:
            size = getattr(kind.module, "CONCURRENCY", None) or self.config.defaults.parallel
            lane = self._lanes[kind.name] = Lane(f"glas-{kind.name}", size)
        return lane

    def _drive(self, run: Run, kind: SourceType) -> None:
        """A lane thread: run the API collector, its items to the writer in batches."""
        collection = run.collection
        module = kind.module
        if hasattr(module, "open_session"):
            try:
                collection.session = self._session(kind, collection)
            except SourceError as exc:
                collection.fail(str(exc), gone=exc.gone)
                return
        batch: list[Any] = []
        items = module.collect(collection)
        try:
            for item in items:
                if collection.cancelled.is_set():
                    break
                batch.append(item)
                if isinstance(item, Checkpoint) or len(batch) >= API_BATCH:
                    self.writer.do(run.store, batch)
                    batch = []
        except SourceError as exc:
            collection.fail(str(exc), gone=exc.gone)
        except Exception as exc:  # a collector bug must not stop the other sources
            log.debug("collector %s crashed", collection.source.id, exc_info=True)
            collection.fail(f"collector error: {type(exc).__name__}: {exc}")
        finally:
            items.close()
            if batch:
                try:
                    self.writer.do(run.store, batch)
                except Exception as exc:
                    collection.fail(f"storing failed: {type(exc).__name__}: {exc}")
        if collection.error and not _usable(collection.session):
            self._drop_session(kind)

    def _session(self, kind: SourceType, collection: Collection) -> Any:
        """The type's warm session, opened on first use (a failed opening rests a minute)."""
        with self._session_lock:
            session = self._sessions.get(kind.name)
            if session is not None and session.value is not None:
                return session.value
            resting = session is not None and session.error is not None
            if resting and time.monotonic() - session.failed_at < SESSION_RETRY:
                raise session.error
            stack = contextlib.ExitStack()
            try:
                value = stack.enter_context(kind.module.open_session([collection]))
            except SourceError as exc:
                self._sessions[kind.name] = _Session(error=exc, failed_at=time.monotonic())
                raise
            except Exception as exc:
                log.debug("session of %s failed", kind.name, exc_info=True)
                error = SourceError(f"could not start: {type(exc).__name__}: {exc}")
                self._sessions[kind.name] = _Session(error=error, failed_at=time.monotonic())
                raise error from None
            self._sessions[kind.name] = _Session(stack=stack, value=value)
            return value

    def _drop_session(self, kind: SourceType) -> None:
        with self._session_lock:
            session = self._sessions.pop(kind.name, None)
        if session is not None and session.stack is not None:
            with contextlib.suppress(Exception):
                session.stack.close()


def _usable(session: Any) -> bool:
    """Whether a shared session can serve the next collection (True unless it says not)."""
    check: Callable[[], bool] | None = getattr(session, "usable", None)
    return True if check is None or session is None else bool(check())


def _quiet(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a late failure of a stopped collection is not news


def _human(seconds: float) -> str:
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{seconds:g}s"

"""Lanes: a few daemon threads running submitted calls, first come first served.

The harvester's writer is a lane of one thread: every store, cursor and run record of a
process goes through it, one call after another in the order submitted, so the inbox, the
near-duplicate index and the flagger are used from one thread, the reactor never waits on the
database and a source's batches are stored in the order it produced them. API collectors (which
block) run on a lane per source type. The threads are daemons: a process that is told to stop
does not wait for a call hung on the network (what it had committed stays committed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = object()


class Lane:
    """``threads`` daemon threads taking calls from one queue."""

    def __init__(self, name: str, threads: int = 1) -> None:
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, func: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Queue ``func(*args)``; its result as a future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._calls.put((future, func, args))
        return future

    def do(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on the lane; wait for it here (from a thread, not the reactor)."""
        return self.submit(func, *args).result()

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on the lane, awaited without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(func, *args))

    def close(self, wait: bool = True) -> None:
        """End the threads once what was queued is done (waiting for it when ``wait``)."""
        for _ in self._threads:
            self._calls.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            if call is _STOP:
                return
            future, func, args = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = func(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

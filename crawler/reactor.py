"""The process's one Twisted reactor (asyncio), running in a background thread for good.

Scrapy's reactor cannot be restarted in a process, so Glas starts it once, the first time it
is needed, in a daemon thread, and keeps it: every harvest of the process (``glas run``, a
daemon worker, a test calling the runner twice) runs its coroutines on it. The main thread
only waits, so it stays free for signal handlers (:func:`run` takes one for SIGINT/SIGTERM).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
_started = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def event_loop() -> asyncio.AbstractEventLoop:
    """The reactor's asyncio loop, the reactor started in its thread on first use."""
    global _loop
    with _started:
        if _loop is None:
            from scrapy.utils.reactor import install_reactor

            install_reactor(REACTOR)
            from twisted.internet import reactor

            ready = threading.Event()
            reactor.callWhenRunning(ready.set)  # type: ignore[attr-defined]
            thread = threading.Thread(
                target=reactor.run,  # type: ignore[attr-defined]
                kwargs={"installSignalHandlers": False},
                name="glas-reactor",
                daemon=True,
            )
            thread.start()
            ready.wait()
            _loop = reactor._asyncioEventloop  # type: ignore[attr-defined]
    return _loop


def submit(factory: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
    """Run the coroutine ``factory()`` on the reactor; its result as a thread-safe future."""
    return asyncio.run_coroutine_threadsafe(_call(factory), event_loop())


async def _call(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


def call_soon(func: Callable[..., Any], *args: Any) -> None:
    """Call ``func(*args)`` on the reactor thread, soon (thread-safe)."""
    event_loop().call_soon_threadsafe(func, *args)


def run(
    factory: Callable[[], Awaitable[T]],
    on_signal: Callable[[int], None] | None = None,
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
) -> T:
    """Run ``factory()`` on the reactor and wait for it in this (main) thread.

    While it runs, ``signals`` call ``on_signal(signum)`` in this thread (it may call
    :func:`call_soon` to stop the work); the previous handlers are restored afterwards.
    """
    future = submit(factory)
    with _handling(on_signal, signals):
        while True:
            try:
                return future.result(timeout=0.2)
            except concurrent.futures.TimeoutError:
                continue


@contextmanager
def _handling(on_signal: Callable[[int], None] | None, signals: tuple[int, ...]) -> Iterator[None]:
    if on_signal is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {
        signum: signal.signal(signum, lambda number, frame: on_signal(number)) for signum in signals
    }
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)

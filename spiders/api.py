"""What the API clients (VK, OK, MAX) share: their base address setting and request spacing."""

from __future__ import annotations

import os
import threading
import time

from crawler.model import SourceError
from crawler.validators import http_address


def base_address(env: str, configured: str | None, default: str) -> str:
    """The API's base address: the environment variable ``env``, else ``configured`` (from
    sources.yaml), else the platform's own. The environment's value gets the check
    sources.yaml's addresses get (a SourceError when it is no http(s) address)."""
    override = os.environ.get(env)
    if override:
        try:
            http_address(override, env)
        except ValueError as exc:
            raise SourceError(f"environment: {exc}") from None
    return (override or configured or default).rstrip("/")


class Pacer:
    """Spaces the requests of each token at least ``interval`` seconds apart, across every
    source of the process (each caller waits for its token's next slot)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, token: str) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next.get(token, 0.0))
            self._next[token] = at + self.interval
        if at > now:
            time.sleep(at - now)

"""What the API clients (VK, OK, MAX) share: their base address setting and request spacing."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable

from crawler.model import SourceError
from crawler.validators import http_address


def accounts(
    entries: Iterable[int | str],
    link: re.Pattern[str],
    numbered: Callable[[str], int | None] = lambda text: None,
) -> tuple[frozenset[int], frozenset[str]]:
    """The ids and the lower-case names of ``official_accounts:`` entries of one platform:
    numbers as they are, texts without the platform's ``link`` address and a leading ``@``,
    read as a number, as ``numbered`` says (VK's ``club1``), or else as a name."""
    ids: set[int] = set()
    names: set[str] = set()
    for entry in entries:
        if isinstance(entry, int):
            ids.add(entry)
            continue
        text = link.sub("", str(entry).strip().lower().removeprefix("@")).strip("/")
        text = text.removeprefix("@")
        number = int(text) if re.fullmatch(r"-?\d+", text) else numbered(text)
        if number is not None:
            ids.add(number)
        elif text:
            names.add(text)
    return frozenset(ids), frozenset(names)


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

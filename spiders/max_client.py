"""A small client of the MAX Bot API: ``GET /chats/{chat_id}`` and ``GET /messages``.

Shapes and errors from the platform's reference (dev.max.ru/docs-api, and the OpenAPI
``schema.yaml`` of the official Go client, max-messenger/max-bot-api-client-go): JSON answers;
an error is the HTTP status with ``{"code": "<key>", "message": "<text>"}`` (401
``verify.token`` for a bad token, 403 ``chat.denied`` when the bot may not read the chat, 404
``chat.not.found``, 429 ``too.many.requests``, 503 ``service.unavailable``). The token goes in
the ``Authorization`` header as it is (no ``Bearer``); the platform no longer accepts it as the
``access_token`` query parameter. Its certificate chains to the Russian Ministry of Digital
Development's root CA, which common trust stores lack: ``ca_bundle`` names a PEM file to trust.

A package client was judged and not taken: ``maxapi`` (asyncio, aiohttp, a bot framework) and
its peers are young and change fast, while two GET requests need only :mod:`requests`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from crawler.model import SourceError
from crawler.polite import retry_after_seconds
from spiders.api import Pacer, base_address

MAX_BASE = "https://platform-api2.max.ru"
MIN_INTERVAL = 1 / 20  # the platform allows 30 requests a second per bot: stay under it
RATE_RETRIES = 4  # retries of 429 / 503 answers before the source gives up for this run
MAX_BACKOFF = 60.0  # longest single wait, whatever Retry-After asks
TRANSIENT = {429, 503}


@dataclass(frozen=True)
class Token:
    """The bot token and the environment variable it came from (named in messages)."""

    value: str = field(repr=False)
    label: str


class ChatGone(SourceError):
    """The bot cannot read the chat any more (removed, left, chat closed or deleted)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, gone=True)


def load_token(name: str) -> Token:
    """The token in the environment variable ``name`` (SourceError when it is unset)."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise SourceError(f"no MAX bot token: set the environment variable ${name}")
    return Token(value, f"${name}")


def api_base(configured: str | None) -> str:
    """The API's base address: env ``GLAS_MAX_API_URL``, else the source's ``api_url``."""
    return base_address("GLAS_MAX_API_URL", configured, MAX_BASE)


_PACER = Pacer(MIN_INTERVAL)  # per bot token, shared by every MAX source of the process


class MaxClient:
    """One source's door to the MAX Bot API: its token, retries and waits."""

    def __init__(
        self,
        token: Token,
        *,
        base: str = MAX_BASE,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 2.0,
        ca_bundle: str | None = None,
        user_agent: str = "Glas",
        cancelled: threading.Event | None = None,
    ) -> None:
        self.token = token
        self.base = base
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.cancelled = cancelled
        self.http = requests.Session()
        self.http.headers["User-Agent"] = user_agent
        self.http.headers["Authorization"] = token.value
        # Given with each request: a session's ``verify`` loses to REQUESTS_CA_BUNDLE.
        self.verify: str | bool = True
        if ca_bundle:
            if not Path(ca_bundle).is_file():
                raise SourceError(f"ca_bundle {ca_bundle} is not a readable file")
            self.verify = ca_bundle

    @classmethod
    def for_collection(cls, collection: Any) -> MaxClient:
        options = collection.source
        defaults = getattr(collection, "defaults", None)
        backoff = getattr(defaults, "retry_backoff", None)
        return cls(
            load_token(options.token_env),
            base=api_base(options.api_url),
            timeout=options.timeout or getattr(defaults, "timeout", None) or 30.0,
            retries=collection.retries,
            backoff=backoff.total_seconds() if backoff is not None else 2.0,
            ca_bundle=options.ca_bundle,
            user_agent=collection.user_agent,
            cancelled=getattr(collection, "cancelled", None),
        )

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: dict[str, Any] | None = None, *, chat: str = "") -> Any:
        """The JSON answer of ``GET path``; raises SourceError (ChatGone for a lost chat)."""
        url = f"{self.base}{path}"
        failures = rate_limited = 0
        while True:
            if self.cancelled is not None and self.cancelled.is_set():
                raise SourceError("stopped before MAX answered")
            _PACER.wait(self.token.value)
            try:
                response = self.http.get(
                    url, params=params, timeout=self.timeout, verify=self.verify
                )
            except requests.exceptions.SSLError:
                raise SourceError(
                    f"the TLS certificate of {self.base} is not trusted: set ca_bundle to the "
                    "Russian Ministry of Digital Development's root CA (PEM)"
                ) from None
            except requests.Timeout:
                failures += 1
                if failures > self.retries:
                    raise SourceError(f"no answer from {url} within {self.timeout:g}s") from None
                self._wait(self.backoff * 2 ** (failures - 1))
                continue
            except requests.ConnectionError:
                failures += 1
                if failures > self.retries:
                    raise SourceError(f"cannot connect to {url}") from None
                self._wait(self.backoff * 2 ** (failures - 1))
                continue
            except requests.RequestException as exc:
                raise SourceError(f"request to {url} failed: {type(exc).__name__}") from None
            status = response.status_code
            if status == 200:
                try:
                    return response.json()
                except ValueError:
                    raise SourceError(f"not a MAX API answer from {url} (not JSON)") from None
            code, message = _error(response)
            if status == 401:
                raise SourceError(f"MAX token in {self.token.label} rejected ({code}: {message})")
            if status in (403, 404) and chat:
                raise ChatGone(
                    f"the bot cannot read chat {chat} ({code}: {message}): it was removed or "
                    "the chat is gone; add the bot to the chat again as an administrator "
                    "allowed to read all messages"
                )
            if status in TRANSIENT:
                rate_limited += 1
                if rate_limited > RATE_RETRIES:
                    raise SourceError(
                        f"MAX keeps answering HTTP {status} ({code}) to {path} after "
                        f"{RATE_RETRIES} retries; the next run tries again"
                    )
                asked = retry_after_seconds(response.headers.get("Retry-After"))
                if asked is not None and asked > MAX_BACKOFF:
                    raise SourceError(
                        f"MAX answers HTTP {status} ({code}) to {path} and asks to wait "
                        f"{asked:.0f}s (Retry-After); the next run tries again"
                    )
                pause = asked if asked is not None else self.backoff * 2 ** (rate_limited - 1)
                self._wait(pause)
                continue
            if status >= 500:
                failures += 1
                if failures > self.retries:
                    raise SourceError(f"HTTP {status} from {url}")
                self._wait(self.backoff * 2 ** (failures - 1))
                continue
            raise SourceError(f"MAX API error HTTP {status} from {path} ({code}: {message})")

    def _wait(self, seconds: float) -> None:
        pause = min(MAX_BACKOFF, max(0.0, seconds))
        if self.cancelled is not None:
            self.cancelled.wait(pause)
        elif pause:
            time.sleep(pause)


def _error(response: requests.Response) -> tuple[str, str]:
    """The ``code`` and ``message`` of an error answer, one line, secrets redacted."""
    from crawler.secrets import redact

    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return "no code", "no message"
    code = redact(str(body.get("code") or "no code")).strip()[:80]
    text = redact(str(body.get("message") or "no message")).strip()
    return code, (text.splitlines() or ["no message"])[0][:200]

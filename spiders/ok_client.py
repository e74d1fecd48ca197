"""The OK (Odnoklassniki) REST API client of the ``ok_group`` source type.

Every call is a form POST to ``<base>/fb.do`` (``GLAS_OK_API_URL``, else
``defaults.ok_api_url``, else ``https://api.ok.ru``) with ``application_key``, ``method``,
``format=json``, the method's parameters, ``access_token`` and ``sig``. The signature, as
apiok.ru describes it for server calls with a session: MD5 (lower-case hex) of every parameter
except ``sig`` and ``access_token`` written ``key=value``, sorted by key and joined without a
separator, followed by the session secret ``md5(access_token + application_secret_key)``.
An error answer is the top-level object ``{"error_code", "error_msg", "error_data"}``; the codes
used here are those of apiok.ru's error list (2 SERVICE, 8 FLOOD_BLOCKED, 11 LIMIT_REACHED,
10 PERMISSION_DENIED, 100 PARAM, 101 PARAM_API_KEY, 102 PARAM_SESSION_EXPIRED, 103
PARAM_SESSION_KEY, 104 PARAM_SIGNATURE, 160 PARAM_GROUP_ID, 200 PARAM_PERMISSION, 300
NOT_FOUND, 455–457 restrictions).

Plain ``requests`` (already used for VK), not a client package: ``aiookru`` is asyncio-only
(collectors run on threads) and ``ok-api`` had its last release in 2020; the protocol is one
signed POST. Credentials come only from environment variables and never appear in messages:
those name the variable. Requests are spaced per token across every OK source of the process;
flood and service errors and HTTP 429/5xx are retried with a doubling, bounded pause.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from crawler.model import SourceError
from spiders.api import Pacer, base_address

OK_BASE = "https://api.ok.ru"
MIN_INTERVAL = 0.1  # seconds between two requests of one token, process-wide
MAX_BACKOFF = 60.0
FLOOD_RETRIES = 4

SERVICE, FLOOD, PERMISSION_DENIED, LIMIT, PARAM_PERMISSION = 2, 8, 10, 11, 200
API_KEY, SESSION_EXPIRED, SESSION_KEY, SIGNATURE = 101, 102, 103, 104
GONE = {
    160: "no such group",
    300: "not found",
    455: "the group is closed",
    456: "the group restricts this",
    457: "access denied to visitors",
}


class Unavailable(Exception):
    """The group, a topic or its comments cannot be read (OK errors 160, 300, 455–457)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{GONE.get(code, 'unavailable')} (OK error {code}: {message})")
        self.code = code


@dataclass(frozen=True)
class Credentials:
    """The application key, its secret key and the access token, with their variables."""

    app_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str = field(repr=False)
    app_key_env: str = "OK_APP_KEY"
    secret_key_env: str = "OK_APP_SECRET_KEY"
    token_env: str = "OK_ACCESS_TOKEN"

    @classmethod
    def from_env(cls, app_key_env: str, secret_key_env: str, token_env: str) -> Credentials:
        names = (app_key_env, secret_key_env, token_env)
        missing = [f"${n}" for n in names if not os.environ.get(n, "").strip()]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise SourceError(
                f"no OK credentials: set the environment variable{plural} {', '.join(missing)}"
            )
        app_key, secret, token = (os.environ[n].strip() for n in names)
        return cls(app_key, secret, token, *names)

    @property
    def session_secret(self) -> str:
        return md5(self.token + self.secret_key)


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def signature(params: dict[str, str], session_secret: str) -> str:
    """``sig`` of a call: sorted ``key=value`` of every parameter but ``sig`` and
    ``access_token``, then the session secret, MD5 in lower-case hex."""
    body = "".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sig", "access_token"))
    return md5(body + session_secret)


_PACER = Pacer(MIN_INTERVAL)  # per token, shared by every OK source of the process


def api_base(defaults: Any = None) -> str:
    """The API's base: env GLAS_OK_API_URL, else ``defaults.ok_api_url``, else OK's."""
    return base_address("GLAS_OK_API_URL", getattr(defaults, "ok_api_url", None), OK_BASE)


class OkClient:
    """One source's door to OK: its credentials, retries and cancellation."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        base: str = OK_BASE,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 2.0,
        user_agent: str = "Glas",
        cancelled: threading.Event | None = None,
    ) -> None:
        self.credentials = credentials
        self.url = f"{base.rstrip('/')}/fb.do"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.cancelled = cancelled
        self.http = requests.Session()
        self.http.headers["User-Agent"] = user_agent
        self.requests = 0

    @classmethod
    def for_collection(cls, collection: Any) -> OkClient:
        options = collection.source
        defaults = getattr(collection, "defaults", None)
        backoff = getattr(defaults, "retry_backoff", None)
        return cls(
            Credentials.from_env(options.app_key_env, options.secret_key_env, options.token_env),
            base=api_base(defaults),
            timeout=options.timeout or getattr(defaults, "timeout", None) or 30.0,
            retries=collection.retries,
            backoff=backoff.total_seconds() if backoff is not None else 2.0,
            user_agent=collection.user_agent,
            cancelled=getattr(collection, "cancelled", None),
        )

    def close(self) -> None:
        """Close the connections of this collection's session."""
        self.http.close()

    def signed(self, method: str, params: dict[str, Any]) -> dict[str, str]:
        """The form of one call, signed."""
        form = {k: str(v) for k, v in params.items() if v is not None}
        form.update(application_key=self.credentials.app_key, method=method, format="json")
        form["sig"] = signature(form, self.credentials.session_secret)
        form["access_token"] = self.credentials.token
        return form

    def call(self, method: str, **params: Any) -> Any:
        """The method's answer; raises Unavailable or SourceError (one line, no secrets)."""
        http_tries = flood_tries = 0
        while True:
            if self.cancelled is not None and self.cancelled.is_set():
                raise SourceError("stopped before OK answered")
            _PACER.wait(self.credentials.token)
            problem, answer = self._send(method, params)
            if problem is None and isinstance(answer, dict) and "error_code" in answer:
                code, message = _error(answer)
                if code in (FLOOD, SERVICE):
                    flood_tries += 1
                    if flood_tries > FLOOD_RETRIES:
                        raise SourceError(
                            f"OK keeps refusing {method}: error {code} ({message}) "
                            f"after {FLOOD_RETRIES} retries"
                        )
                    self._sleep(flood_tries)
                    continue
                raise self._api_error(method, code, message)
            if problem is None:
                return answer
            final, message = problem
            http_tries += 1
            if final or http_tries > self.retries:
                raise SourceError(message)
            self._sleep(http_tries)

    def _send(self, method: str, params: dict[str, Any]) -> tuple[tuple[bool, str] | None, Any]:
        """(problem, answer): problem is (final, message) for transport failures."""
        where = f"{self.url} ({method})"
        self.requests += 1
        try:
            response = self.http.post(
                self.url, data=self.signed(method, params), timeout=self.timeout
            )
        except requests.Timeout:
            return (False, f"no answer from {where} within {self.timeout:g}s"), None
        except requests.ConnectionError as exc:
            return (False, f"cannot connect to {where} ({_connection_problem(exc)})"), None
        except requests.RequestException as exc:
            return (True, f"request to {where} failed: {type(exc).__name__}"), None
        status = response.status_code
        if status == 429 or status >= 500:
            return (False, f"HTTP {status} from {where}"), None
        if status != 200:
            return (True, f"HTTP {status} from {where}"), None
        try:
            return None, response.json()
        except ValueError:
            return (True, f"not an OK API answer from {where}"), None

    def _sleep(self, attempt: int) -> None:
        pause = min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1))
        end = time.monotonic() + pause
        while time.monotonic() < end:
            if self.cancelled is not None and self.cancelled.is_set():
                raise SourceError("stopped before OK answered")
            time.sleep(min(0.25, max(0.0, end - time.monotonic())))

    def _api_error(self, method: str, code: int, message: str) -> Exception:
        creds = self.credentials
        if code in (SESSION_EXPIRED, SESSION_KEY):
            return SourceError(f"OK access token in ${creds.token_env} rejected ({message})")
        if code == API_KEY:
            return SourceError(f"OK application key in ${creds.app_key_env} rejected ({message})")
        if code == SIGNATURE:
            return SourceError(
                f"OK rejected the request signature ({message}): ${creds.secret_key_env} "
                f"must be the secret key of the application in ${creds.app_key_env} that "
                f"issued ${creds.token_env}"
            )
        if code == LIMIT:
            return SourceError(f"OK's limit of calls of {method} is reached ({message})")
        if code in (PERMISSION_DENIED, PARAM_PERMISSION):
            return SourceError(
                f"OK refused {method} to the account of ${creds.token_env} (OK error {code}: "
                f"{message}): it needs the application's VALUABLE_ACCESS and GROUP_CONTENT "
                "rights, and for group.getStatTopics a role in the group (administrator or "
                "moderator)"
            )
        if code in GONE:
            return Unavailable(code, message)
        return SourceError(f"OK error {code} in {method}: {message}")


def _error(answer: dict[str, Any]) -> tuple[int, str]:
    """OK's error code and text, one line, secrets redacted before it is cut."""
    from crawler.secrets import redact

    try:
        code = int(answer.get("error_code") or 0)
    except (TypeError, ValueError):
        code = 0
    text = redact(str(answer.get("error_msg") or "no message")).strip()
    return code, (text.splitlines() or ["no message"])[0][:200]


def _connection_problem(exc: Exception) -> str:
    text = str(exc)
    if "Name or service not known" in text or "getaddrinfo" in text or "resolve" in text:
        return "cannot resolve the host"
    if "refused" in text.lower():
        return "connection refused"
    if "RemoteDisconnected" in text or "without response" in text:
        return "the server closed the connection without an answer"
    return type(exc).__name__

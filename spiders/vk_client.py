"""The VK API client shared by the ``vk_wall`` and ``vk_search`` source types.

Calls go through :mod:`vk_api` (``VkApi(token=…, api_version="5.199")``) with a transport
adapter that sends them to the configured base address (``GLAS_VK_API_URL``, else
``defaults.vk_api_url``, else VK's own) with the source's timeout. On top of vk_api:

- **tokens** come only from environment variables (:func:`load_tokens`) and are used in turn;
  a token that VK rejects (5), asks a captcha for (14) or that hit its daily quota (29) rests
  and the others carry on;
- **rate limit**: at most 3 requests a second per token, held across every VK source of this
  process (module-level state keyed by token, so ``vk_wall`` and ``vk_search`` share it);
- **errors** become one-line messages that name the token's environment variable, never the
  token: :class:`Unavailable` for walls, posts or comments that cannot be read (15, 18, 19,
  30, 203, 212), :class:`~crawler.model.SourceError` for everything that stops the source;
- **execute** runs up to 25 calls in one request (:meth:`VkClient.batch`).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jconfig
import requests
import vk_api
from requests.adapters import HTTPAdapter
from vk_api.exceptions import ApiError, ApiHttpError

from crawler.model import SourceError

API_VERSION = "5.199"
VK_BASE = "https://api.vk.ru"
LIBRARY_BASE = "https://api.vk.ru/method/"  # what vk_api 11.10 posts to, rewritten below
MIN_INTERVAL = 1 / 3  # VK: 3 requests per second per user or service token
EXECUTE_LIMIT = 25
CAPTCHA_REST = 15 * 60.0  # seconds a token rests after VK asked for a captcha
QUOTA_REST = 6 * 3600.0  # seconds a token rests after its daily quota ran out (29)
FLOOD_RETRIES = 4  # retries of errors 6 and 9 (too many requests, flood control)
MAX_BACKOFF = 60.0

AUTH_FAILED, TOO_MANY, FLOOD, CAPTCHA, QUOTA = 5, 6, 9, 14, 29
UNAVAILABLE = {
    15: "access denied",
    18: "the page was deleted or banned",
    19: "the content is blocked",
    30: "the profile is private",
    203: "access to the community is denied",
    212: "comments are closed",
}


class Unavailable(Exception):
    """A wall, post or its comments cannot be read (VK errors 15, 18, 19, 30, 203, 212)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{UNAVAILABLE.get(code, 'unavailable')} (VK error {code}: {message})")
        self.code = code


class CallFailed(Exception):
    """One call inside ``execute`` failed with an error that is not about availability."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"VK error {code}: {message}")
        self.code = code


@dataclass(frozen=True)
class Token:
    """A token and the environment variable it came from (``label`` names it in messages)."""

    value: str = field(repr=False)
    label: str

    def __repr__(self) -> str:
        return f"Token({self.label})"


@dataclass
class _TokenState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_at: float = 0.0
    rest_until: float = 0.0
    rest_reason: str = ""
    rejected: str = ""


_STATES: dict[str, _TokenState] = {}
_STATES_LOCK = threading.Lock()


def _state(token: Token) -> _TokenState:
    with _STATES_LOCK:
        return _STATES.setdefault(token.value, _TokenState())


def load_tokens(token_env: str | list[str]) -> list[Token]:
    """Tokens named by ``token_env``: one or more variable names, each holding one token or
    several separated by commas. Raises SourceError when none is set."""
    names = [token_env] if isinstance(token_env, str) else list(token_env)
    tokens: list[Token] = []
    for name in names:
        parts = [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]
        for index, value in enumerate(parts):
            label = f"${name}" if len(parts) == 1 else f"${name} (#{index + 1})"
            tokens.append(Token(value, label))
    if not tokens:
        shown = ", ".join(f"${n}" for n in names)
        raise SourceError(f"no VK token: set the environment variable {shown}")
    return tokens


def check_env_names(value: str | list[str]) -> str | list[str]:
    """``token_env`` of sources.yaml: names of environment variables, never tokens."""
    names = [value] if isinstance(value, str) else value
    if not names:
        raise ValueError("give at least one environment variable name")
    for index, name in enumerate(names):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            which = "" if isinstance(value, str) else f" (entry {index + 1})"
            # The value is not echoed: it may be a token pasted in by mistake.
            raise ValueError(
                f"expected the name of an environment variable{which} (letters, digits, _), "
                "such as VK_TOKEN; the token itself goes into that variable, never into "
                "sources.yaml"
            )
    return value


def api_base(defaults: Any = None) -> str:
    """The API's base address: env GLAS_VK_API_URL, else ``defaults.vk_api_url``, else VK's."""
    configured = os.environ.get("GLAS_VK_API_URL") or getattr(defaults, "vk_api_url", None)
    return (configured or VK_BASE).rstrip("/")


class _Rebase(HTTPAdapter):
    """Sends vk_api's hard-coded ``https://api.vk.ru/method/…`` to ``base`` with a timeout."""

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__(max_retries=0)
        self.base = base
        self.timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> requests.Response:
        if request.url.startswith(LIBRARY_BASE):
            request.url = f"{self.base}/method/{request.url[len(LIBRARY_BASE) :]}"
            if kwargs.get("proxies"):  # chosen for api.vk.ru: choose again for the real host
                kwargs["proxies"] = requests.utils.get_environ_proxies(request.url)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def _api(token: Token, base: str, timeout: float, user_agent: str) -> vk_api.VkApi:
    """A vk_api session for one token: no built-in error handlers, no own throttle."""
    http = requests.Session()
    http.headers["User-Agent"] = user_agent
    http.mount(LIBRARY_BASE, _Rebase(base, timeout))
    vk = vk_api.VkApi(
        token=token.value, api_version=API_VERSION, config=jconfig.MemoryConfig, session=http
    )
    vk.RPS_DELAY = 0  # the module-level limiter below spaces requests per token
    vk.error_handlers = {}  # every API error is raised and mapped here, nothing retried blindly
    return vk


class VkClient:
    """Calls VK methods with a pool of tokens; one client per source run."""

    def __init__(
        self,
        tokens: list[Token],
        *,
        base: str = VK_BASE,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 2.0,
        user_agent: str = "Glas",
        warn: Any = None,
    ) -> None:
        self.tokens = tokens
        self.base = base
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.warn = warn or (lambda message: None)
        self.requests = 0
        self._apis = {t.value: _api(t, base, timeout, user_agent) for t in tokens}
        self._turn = 0

    @classmethod
    def for_collection(cls, collection: Any) -> VkClient:
        """A client set up from a source's collection (options, defaults, warnings)."""
        options = collection.source
        defaults = getattr(collection, "defaults", None)
        backoff = getattr(defaults, "retry_backoff", None)
        return cls(
            load_tokens(options.token_env),
            base=api_base(defaults),
            timeout=options.timeout or getattr(defaults, "timeout", None) or 30.0,
            retries=collection.retries,
            backoff=backoff.total_seconds() if backoff is not None else 2.0,
            user_agent=collection.user_agent,
            warn=collection.warn,
        )

    # -- calls ---------------------------------------------------------------------------------
    def call(self, method: str, **params: Any) -> Any:
        """One API method's ``response``; raises Unavailable or SourceError."""
        return self._request(method, params, raw=False)

    def batch(self, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Run calls (one request per 25 through ``execute``); each result is the method's
        response or an :class:`Unavailable` / :class:`CallFailed` instance for that call."""
        results: list[Any] = []
        for start in range(0, len(calls), EXECUTE_LIMIT):
            chunk = calls[start : start + EXECUTE_LIMIT]
            if len(chunk) == 1:
                method, params = chunk[0]
                try:
                    results.append(self.call(method, **params))
                except Unavailable as exc:
                    results.append(exc)
                continue
            answer = self._request("execute", {"code": execute_code(chunk)}, raw=True)
            try:
                results.extend(_execute_results(answer, len(chunk)))
            except ValueError:
                raise SourceError(f"not a VK API answer from {self.base}/method/execute") from None
        return results

    # -- internals -----------------------------------------------------------------------------
    def _usable(self) -> list[Token]:
        now = time.time()
        order = self.tokens[self._turn :] + self.tokens[: self._turn]
        self._turn = (self._turn + 1) % len(self.tokens)
        return [t for t in order if not _state(t).rejected and _state(t).rest_until <= now]

    def _request(self, method: str, params: dict[str, Any], *, raw: bool) -> Any:
        flood_tries = 0
        http_tries = 0
        while True:
            usable = self._usable()
            if not usable:
                raise SourceError(self._no_token_left())
            token = usable[0]
            try:
                return self._send(token, method, params, raw)
            except ApiError as exc:
                code, message = exc.code, _message(exc.error)
                if code == AUTH_FAILED:
                    _state(token).rejected = message
                    self._token_lost(token, f"VK token in {token.label} rejected ({message})")
                elif code == CAPTCHA:
                    self._rest(token, CAPTCHA_REST, f"VK asked for a captcha ({message})")
                elif code == QUOTA:
                    self._rest(token, QUOTA_REST, f"its daily quota of {method} is used up")
                elif code in (TOO_MANY, FLOOD):
                    flood_tries += 1
                    if flood_tries > FLOOD_RETRIES:
                        raise SourceError(
                            f"VK keeps refusing {method}: error {code} ({message}) "
                            f"after {FLOOD_RETRIES} retries"
                        ) from None
                    self._sleep(flood_tries)
                elif code in UNAVAILABLE:
                    raise Unavailable(code, message) from None
                else:
                    raise SourceError(f"VK error {code} in {method}: {message}") from None
            except ApiHttpError as exc:
                status = exc.response.status_code
                http_tries += 1
                if status < 500 or http_tries > self.retries:
                    raise SourceError(f"HTTP {status} from {self.base}/method/{method}") from None
                self._sleep(http_tries)
            except requests.Timeout:
                http_tries += 1
                if http_tries > self.retries:
                    raise SourceError(
                        f"no answer from {self.base}/method/{method} within {self.timeout:g}s"
                    ) from None
                self._sleep(http_tries)
            except requests.ConnectionError as exc:
                http_tries += 1
                if http_tries > self.retries:
                    raise SourceError(
                        f"cannot connect to {self.base}/method/{method} "
                        f"({_connection_problem(exc)})"
                    ) from None
                self._sleep(http_tries)
            except (
                requests.JSONDecodeError,
                ValueError,
                KeyError,
                TypeError,
            ):  # not JSON, or JSON without `response`
                raise SourceError(f"not a VK API answer from {self.base}/method/{method}") from None
            except requests.RequestException as exc:
                raise SourceError(
                    f"request to {self.base}/method/{method} failed: {type(exc).__name__}"
                ) from None

    def _send(self, token: Token, method: str, params: dict[str, Any], raw: bool) -> Any:
        state = _state(token)
        with state.lock:
            wait = state.next_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            state.next_at = time.monotonic() + MIN_INTERVAL
            self.requests += 1
            answer = self._apis[token.value].method(method, params, raw=raw)
        if raw and not isinstance(answer, dict):
            raise ValueError("execute answer is not an object")
        return answer

    def _sleep(self, attempt: int) -> None:
        time.sleep(min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1)))

    def _rest(self, token: Token, seconds: float, reason: str) -> None:
        state = _state(token)
        state.rest_until = time.time() + seconds
        state.rest_reason = reason
        until = datetime.fromtimestamp(state.rest_until, UTC).strftime("%H:%M UTC")
        self._token_lost(token, f"VK token in {token.label} rests until {until}: {reason}")

    def _token_lost(self, token: Token, message: str) -> None:
        if any(t != token for t in self._usable_quietly()):
            self.warn(f"{message}; the other tokens carry on")

    def _usable_quietly(self) -> list[Token]:
        now = time.time()
        return [t for t in self.tokens if not _state(t).rejected and _state(t).rest_until <= now]

    def _no_token_left(self) -> str:
        """Why no token can be used: the first token's story, naming its variable."""
        parts = []
        for token in self.tokens:
            state = _state(token)
            if state.rejected:
                parts.append(f"VK token in {token.label} rejected ({state.rejected})")
            else:
                until = datetime.fromtimestamp(state.rest_until, UTC).strftime("%H:%M UTC")
                parts.append(f"VK token in {token.label} rests until {until}: {state.rest_reason}")
        return "; ".join(parts)


def _message(error: dict[str, Any]) -> str:
    return str(error.get("error_msg") or "no message").strip().splitlines()[0][:200]


def _connection_problem(exc: Exception) -> str:
    text = str(exc)
    if "Name or service not known" in text or "getaddrinfo" in text or "resolve" in text:
        return "cannot resolve the host"
    if "refused" in text.lower():
        return "connection refused"
    if "RemoteDisconnected" in text or "without response" in text:
        return "the server closed the connection without an answer"
    return type(exc).__name__


def execute_code(calls: Iterable[tuple[str, dict[str, Any]]]) -> str:
    """VKScript returning the results of ``calls`` as an array: ``return [API.m({…}), …];``."""
    parts = [
        f"API.{method}({json.dumps(params, ensure_ascii=False, separators=(',', ':'))})"
        for method, params in calls
    ]
    return f"return [{','.join(parts)}];"


def _execute_results(answer: dict[str, Any], expected: int) -> list[Any]:
    """Per-call results of an ``execute`` answer; failed calls (``false``) get their error
    from ``execute_errors``, which lists failures in call order."""
    results = answer.get("response")
    if not isinstance(results, list) or len(results) != expected:
        raise ValueError("execute answered something else than one result per call")
    errors = list(answer.get("execute_errors") or [])
    out: list[Any] = []
    for result in results:
        if result is False:
            error = errors.pop(0) if errors else {"error_code": 0, "error_msg": "unknown"}
            code = int(error.get("error_code") or 0)
            message = _message(error)
            out.append(
                Unavailable(code, message) if code in UNAVAILABLE else CallFailed(code, message)
            )
        else:
            out.append(result)
    return out

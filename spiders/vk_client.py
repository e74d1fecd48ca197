"""The VK API client shared by the ``vk_wall`` and ``vk_search`` source types.

Calls go through :mod:`vk_api` (``VkApi(token=…, api_version="5.199")``) with a transport
adapter that sends them to the configured base address (``GLAS_VK_API_URL``, else
``defaults.vk_api_url``, else VK's own) with the source's timeout. On top of vk_api:

- **tokens** come only from environment variables (:func:`load_tokens`) and are used in turn;
  a token that VK rejects (5), asks a captcha for (14) or that hit its daily quota (29) rests
  and the others carry on;
- **rate limit and batching**: at most 3 requests a second per token, held across every VK
  source of this process; calls of different sources that wait for the same token go out
  together in one ``execute`` request of up to 25 calls (:class:`_Dispatcher`), so many walls
  are read at the cost of a few requests;
- **errors** become one-line messages that name the token's environment variable, never the
  token: :class:`Unavailable` for walls, posts or comments that cannot be read (15, 18, 19,
  30, 203, 212), :class:`~crawler.model.SourceError` for everything that stops the source;
- **execute** runs up to 25 calls in one request (:meth:`VkClient.batch`, and any calls that
  wait together).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import jconfig
import requests
import vk_api
from requests.adapters import HTTPAdapter
from vk_api.exceptions import ApiError, ApiHttpError

from crawler.model import SourceError
from spiders.api import base_address

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
        self.message = message


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


class Pacer(Protocol):
    """Request slots shared beyond this process (:class:`crawler.cluster_limits.SharedPacer`)."""

    def wait(self, key: str, interval: float) -> bool: ...


_PACER: list[Pacer] = []  # set by share_limits: glas worker's limits hold for the cluster


def share_limits(pacer: Pacer | None) -> None:
    """Pace every token's requests with ``pacer`` too (None: this process alone)."""
    _PACER[:] = [pacer] if pacer is not None else []


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
    return base_address("GLAS_VK_API_URL", getattr(defaults, "vk_api_url", None), VK_BASE)


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


@dataclass(eq=False)
class _Call:
    """One method call waiting for its token's turn."""

    method: str
    params: dict[str, Any]
    tokens: tuple[Token, ...]  # those the calling source may use
    retries: int
    backoff: float
    warn: Any
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)
    http_tries: int = 0
    flood_tries: int = 0
    not_before: float = 0.0  # time.monotonic() before which it is not sent
    cancelled: bool = False


class _Sender:
    """Sends one token's calls, at most 3 requests a second; calls waiting together (from
    every source of the process using the token) go out in one ``execute`` of up to 25."""

    def __init__(self, dispatcher: _Dispatcher, token: Token) -> None:
        self.dispatcher = dispatcher
        self.token = token
        self.waiting: list[_Call] = []
        self.api = _api(token, dispatcher.base, dispatcher.timeout, dispatcher.user_agent)
        threading.Thread(target=self._loop, name="glas-vk-sender", daemon=True).start()

    def _loop(self) -> None:
        cond = self.dispatcher.cond
        while True:
            with cond:
                while True:
                    now = time.monotonic()
                    ready = [c for c in self.waiting if c.not_before <= now and not c.cancelled]
                    if ready:
                        break
                    self.waiting = [c for c in self.waiting if not c.cancelled]
                    later = [c.not_before - now for c in self.waiting]
                    cond.wait(timeout=min(later) if later else None)
            self._pace()
            with cond:
                now = time.monotonic()
                chosen = [c for c in self.waiting if c.not_before <= now and not c.cancelled]
                chosen = chosen[:EXECUTE_LIMIT]
                self.waiting = [c for c in self.waiting if c not in chosen and not c.cancelled]
            if chosen:
                self.dispatcher.send(self, chosen)

    def _pace(self) -> None:
        """Wait for this token's next slot (shared by every sender of the same token, and
        with :func:`share_limits` by every worker of the cluster)."""
        state = _state(self.token)
        with state.lock:
            if _PACER:
                from crawler.cluster_limits import key_of

                if _PACER[0].wait(key_of("vk", self.token.value), MIN_INTERVAL):
                    state.next_at = time.monotonic() + MIN_INTERVAL
                    return
            wait = state.next_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            state.next_at = time.monotonic() + MIN_INTERVAL


class _Dispatcher:
    """Every VK call of the process to one API address: a sender per token."""

    def __init__(self, base: str, timeout: float, user_agent: str) -> None:
        self.base = base
        self.timeout = timeout
        self.user_agent = user_agent
        self.cond = threading.Condition()
        self.senders: dict[str, _Sender] = {}
        self.requests = 0

    def submit(self, call: _Call, token: Token) -> None:
        self.submit_all([(call, token)])

    def submit_all(self, calls: list[tuple[_Call, Token]]) -> None:
        """Queue calls at once (a source's batch is not split by a sender waking early)."""
        with self.cond:
            for call, token in calls:
                sender = self.senders.get(token.value)
                if sender is None:
                    sender = self.senders[token.value] = _Sender(self, token)
                sender.waiting.append(call)
            self.cond.notify_all()

    def send(self, sender: _Sender, calls: list[_Call]) -> None:
        """One request for ``calls`` with the sender's token; each call gets its outcome."""
        token = sender.token
        method = calls[0].method if len(calls) == 1 else "execute"
        try:
            with self.cond:
                self.requests += 1
            if len(calls) == 1:
                outcomes = [sender.api.method(calls[0].method, calls[0].params)]
            else:
                code = execute_code([(c.method, c.params) for c in calls])
                answer = sender.api.method("execute", {"code": code}, raw=True)
                if not isinstance(answer, dict):
                    raise ValueError("execute answer is not an object")
                outcomes = _execute_results(answer, len(calls))
        except ApiError as exc:
            self._api_error(token, calls, method, exc.code, _message(exc.error))
            return
        except ApiHttpError as exc:
            status = exc.response.status_code
            self._retry(calls, f"HTTP {status} from {self.base}/method/{method}", status < 500)
            return
        except requests.Timeout:
            self._retry(
                calls, f"no answer from {self.base}/method/{method} within {self.timeout:g}s"
            )
            return
        except requests.ConnectionError as exc:
            problem = _connection_problem(exc)
            self._retry(calls, f"cannot connect to {self.base}/method/{method} ({problem})")
            return
        except (requests.JSONDecodeError, ValueError, KeyError, TypeError):
            self._fail(calls, SourceError(f"not a VK API answer from {self.base}/method/{method}"))
            return
        except requests.RequestException as exc:
            self._fail(
                calls,
                SourceError(f"request to {self.base}/method/{method} failed: {type(exc).__name__}"),
            )
            return
        for call, outcome in zip(calls, outcomes, strict=True):
            call.future.set_result(outcome)

    def _api_error(
        self, token: Token, calls: list[_Call], method: str, code: int, message: str
    ) -> None:
        """An error of the whole request: about the token, a flood, or each call's own."""
        if code == AUTH_FAILED:
            _state(token).rejected = message
            self._move(token, calls, f"VK token in {token.label} rejected ({message})")
        elif code == CAPTCHA:
            self._rest(token, calls, CAPTCHA_REST, f"VK asked for a captcha ({message})")
        elif code == QUOTA:
            self._rest(token, calls, QUOTA_REST, f"its daily quota of {method} is used up")
        elif code in (TOO_MANY, FLOOD):
            for call in calls:
                call.flood_tries += 1
                if call.flood_tries > FLOOD_RETRIES:
                    call.future.set_exception(
                        SourceError(
                            f"VK keeps refusing {call.method}: error {code} ({message}) "
                            f"after {FLOOD_RETRIES} retries"
                        )
                    )
                    continue
                pause = min(MAX_BACKOFF, call.backoff * 2 ** (call.flood_tries - 1))
                call.not_before = time.monotonic() + pause
                self.submit(call, token)
        elif code in UNAVAILABLE and len(calls) == 1:
            calls[0].future.set_exception(Unavailable(code, message))
        else:
            for call in calls:
                call.future.set_exception(SourceError(f"VK error {code} in {method}: {message}"))

    def _rest(self, token: Token, calls: list[_Call], seconds: float, reason: str) -> None:
        state = _state(token)
        state.rest_until = time.time() + seconds
        state.rest_reason = reason
        until = datetime.fromtimestamp(state.rest_until, UTC).strftime("%H:%M UTC")
        self._move(token, calls, f"VK token in {token.label} rests until {until}: {reason}")

    def _move(self, token: Token, calls: list[_Call], message: str) -> None:
        """``token`` cannot be used now: its calls (sent and waiting) go to other tokens."""
        with self.cond:
            sender = self.senders.get(token.value)
            waiting = sender.waiting if sender is not None else []
            if sender is not None:
                sender.waiting = []
        for call in [*calls, *waiting]:
            others = _usable(call.tokens)
            if not others:
                call.future.set_exception(SourceError(_no_token_left(call.tokens)))
                continue
            call.warn(f"{message}; the other tokens carry on")
            self.submit(call, others[0])

    def _retry(self, calls: list[_Call], message: str, final: bool = False) -> None:
        for call in calls:
            call.http_tries += 1
            if final or call.http_tries > call.retries:
                call.future.set_exception(SourceError(message))
                continue
            pause = min(MAX_BACKOFF, call.backoff * 2 ** (call.http_tries - 1))
            call.not_before = time.monotonic() + pause
            usable = _usable(call.tokens)
            if not usable:
                call.future.set_exception(SourceError(_no_token_left(call.tokens)))
            else:
                self.submit(call, usable[0])

    def _fail(self, calls: list[_Call], error: Exception) -> None:
        for call in calls:
            call.future.set_exception(error)


_DISPATCHERS: dict[tuple[str, float, str], _Dispatcher] = {}
_DISPATCHERS_LOCK = threading.Lock()


def _dispatcher(base: str, timeout: float, user_agent: str) -> _Dispatcher:
    """The process's dispatcher for this API address (kept warm for every later source)."""
    key = (base, timeout, user_agent)
    with _DISPATCHERS_LOCK:
        if key not in _DISPATCHERS:
            _DISPATCHERS[key] = _Dispatcher(base, timeout, user_agent)
        return _DISPATCHERS[key]


def _usable(tokens: tuple[Token, ...]) -> list[Token]:
    now = time.time()
    return [t for t in tokens if not _state(t).rejected and _state(t).rest_until <= now]


def _no_token_left(tokens: tuple[Token, ...]) -> str:
    """Why no token can be used: each token's story, naming its variable."""
    parts = []
    for token in tokens:
        state = _state(token)
        if state.rejected:
            parts.append(f"VK token in {token.label} rejected ({state.rejected})")
        else:
            until = datetime.fromtimestamp(state.rest_until, UTC).strftime("%H:%M UTC")
            parts.append(f"VK token in {token.label} rests until {until}: {state.rest_reason}")
    return "; ".join(parts)


class VkClient:
    """One source's door to VK: its tokens, retries and warnings.

    Its calls join those of every other VK source of the process (:class:`_Dispatcher`): a
    token's calls that wait together go out in one ``execute`` request, and the rate limit
    of a token holds for all of them.
    """

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
        cancelled: threading.Event | None = None,
    ) -> None:
        self.tokens = tuple(tokens)
        self.base = base
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.warn = warn or (lambda message: None)
        self.cancelled = cancelled
        self._dispatcher = _dispatcher(base, timeout, user_agent)
        self._turn = 0
        self._warned: set[str] = set()

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
            cancelled=getattr(collection, "cancelled", None),
        )

    @property
    def requests(self) -> int:
        """Requests sent to this client's API address by the whole process so far."""
        return self._dispatcher.requests

    # -- calls ---------------------------------------------------------------------------------
    def call(self, method: str, **params: Any) -> Any:
        """One API method's ``response``; raises Unavailable or SourceError."""
        (result,) = self._wait(self._submit([(method, params)]))
        if isinstance(result, CallFailed):
            raise SourceError(f"VK error {result.code} in {method}: {result.message}")
        if isinstance(result, Unavailable):
            raise result
        return result

    def batch(self, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Run calls (joined with others in ``execute`` requests of up to 25); each result
        is the method's response or an :class:`Unavailable` / :class:`CallFailed` instance."""
        return self._wait(self._submit(calls))

    # -- internals -----------------------------------------------------------------------------
    def _submit(self, requested: list[tuple[str, dict[str, Any]]]) -> list[_Call]:
        """Queue calls, each group of 25 (one ``execute``) on the next usable token in turn."""
        calls = [
            _Call(method, params, self.tokens, self.retries, self.backoff, self._warn_once)
            for method, params in requested
        ]
        usable = _usable(self.tokens)
        if not usable:
            for call in calls:
                call.future.set_exception(SourceError(_no_token_left(self.tokens)))
            return calls
        queued = []
        for start in range(0, len(calls), EXECUTE_LIMIT):
            token = usable[self._turn % len(usable)]
            self._turn += 1
            queued += [(call, token) for call in calls[start : start + EXECUTE_LIMIT]]
        self._dispatcher.submit_all(queued)
        return calls

    def _wait(self, calls: list[_Call]) -> list[Any]:
        results = []
        for call in calls:
            while True:
                if self.cancelled is not None and self.cancelled.is_set():
                    for waiting in calls:
                        waiting.cancelled = True
                    raise SourceError("stopped before VK answered")
                try:
                    outcome = call.future.result(timeout=0.25)
                except concurrent.futures.TimeoutError:
                    continue
                except Unavailable as exc:
                    outcome = exc
                results.append(outcome)
                break
        return results

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warn(message)


def _message(error: dict[str, Any]) -> str:
    """VK's error text, one line, secrets redacted before it is cut (a cut token would pass)."""
    from crawler.secrets import redact

    text = redact(str(error.get("error_msg") or "no message")).strip()
    return (text.splitlines() or ["no message"])[0][:200]


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

"""A local MAX Bot API server for tests and ``make demo`` (stdlib only).

Answers ``GET /chats/{chat_id}`` (or ``/chats/{public name}``) and ``GET /messages?chat_id=…
&from=…&to=…&count=…`` as platform-api2.max.ru does (dev.max.ru/docs-api): messages newest
first, ``from`` the newer and ``to`` the older time bound in Unix milliseconds, both inclusive,
at most ``count`` (≤ 100). The token must come in the ``Authorization`` header; a token in the
``access_token`` query parameter or a wrong one is answered 401 ``verify.token``. Errors are
``{"code", "message"}`` with their HTTP status. Chats are loaded from JSON (``add_chat``) and
faults are scripted per test:

    with MaxServer() as api:
        api.add_chat(load_chat(Path("examples/replay/max/zarechny.json")))
        api.fault("/messages", status=429, times=2, retry_after="0")
        api.remove_bot(-70000000000005)   # the chat says removed, /messages answers 403

CLI: ``python tests/max_server.py DIR`` serves every ``*.json`` chat of DIR, prints the base
URL on its first stdout line, and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import signal
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["MaxServer", "load_chat", "main"]


@dataclass
class Fault:
    path: str
    status: int
    body: Any
    times: int | None
    retry_after: str | None = None


@dataclass
class Request:
    path: str
    params: dict[str, str]
    authorization: str | None


@dataclass
class MaxServer:
    host: str = "127.0.0.1"
    port: int = 0
    tokens: set[str] | None = None  # accepted tokens; None: any non-empty one
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    tls: tuple[str, str] | None = None  # (certificate chain PEM, key PEM): serve HTTPS
    ignore_from: bool = False  # a broken API that always answers the newest page

    def add_chat(self, data: dict[str, Any]) -> None:
        """A chat: ``{"chat": <Chat>, "messages": [<Message>, …]}``."""
        chat = data["chat"]
        self.chats[chat["chat_id"]] = chat
        self.messages[chat["chat_id"]] = list(data.get("messages") or [])

    def add_message(self, chat_id: int, message: dict[str, Any]) -> None:
        self.messages[chat_id].append(message)

    def edit(self, mid: str, text: str) -> None:
        for messages in self.messages.values():
            for message in messages:
                if message["body"]["mid"] == mid:
                    message["body"]["text"] = text

    def remove_bot(self, chat_id: int) -> None:
        self.chats[chat_id]["status"] = "removed"

    def fault(
        self,
        path: str,
        *,
        status: int,
        body: Any = None,
        times: int | None = 1,
        retry_after: str | None = None,
    ) -> None:
        """Answer requests whose path starts with ``path`` with ``status`` and ``body``
        (default: the platform's error object for the status), ``times`` times."""
        if body is None:
            body = _ERRORS.get(status, {"code": "internal.error", "message": "Internal error"})
        self.faults.append(Fault(path, status, body, times, retry_after))

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # -- serving ---------------------------------------------------------------------------
    def start(self) -> MaxServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, body, headers = server._handle(self)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MaxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def _handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(handler.path)
        params = dict(parse_qsl(parts.query))
        token = handler.headers.get("Authorization")
        self.requests.append(Request(parts.path, params, token))
        if "access_token" in params or not token or (self.tokens and token not in self.tokens):
            return 401, _ERRORS[401], {}
        for fault in self.faults:
            if parts.path.startswith(fault.path) and fault.times != 0:
                if fault.times is not None:
                    fault.times -= 1
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return fault.status, fault.body, headers
        if parts.path.startswith("/chats/"):
            return self._chat(parts.path.removeprefix("/chats/"))
        if parts.path == "/messages":
            return self._messages(params)
        return 404, {"code": "not.found", "message": f"Path {parts.path} not found"}, {}

    def _find(self, key: str) -> dict[str, Any] | None:
        for chat in self.chats.values():
            link = str(chat.get("link") or "")
            if str(chat["chat_id"]) == key or link.rstrip("/").endswith("/" + key.lstrip("@")):
                return chat
        return None

    def _chat(self, key: str) -> tuple[int, Any, dict[str, str]]:
        chat = self._find(key)
        if chat is None:
            return 404, {"code": "chat.not.found", "message": f"Chat {key} not found"}, {}
        return 200, chat, {}

    def _messages(self, params: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        try:
            chat_id = int(params["chat_id"])
            count = int(params.get("count", "50"))
            upper = int(params["from"]) if "from" in params and not self.ignore_from else None
            lower = int(params["to"]) if "to" in params else None
        except (KeyError, ValueError):
            return 400, {"code": "proto.payload", "message": "Invalid parameters"}, {}
        if not 1 <= count <= 100 or (upper is not None and lower is not None and lower > upper):
            return 400, {"code": "proto.payload", "message": "Invalid parameters"}, {}
        chat = self.chats.get(chat_id)
        if chat is None:
            return 404, {"code": "chat.not.found", "message": f"Chat {chat_id} not found"}, {}
        if chat.get("status") != "active":
            return 403, {"code": "chat.denied", "message": "You are not a member of chat"}, {}
        found = [
            m
            for m in self.messages[chat_id]
            if (upper is None or m["timestamp"] <= upper)
            and (lower is None or m["timestamp"] >= lower)
        ]
        found.sort(key=lambda m: m["timestamp"], reverse=True)
        return 200, {"messages": copy.deepcopy(found[:count])}, {}


_ERRORS: dict[int, dict[str, str]] = {
    401: {"code": "verify.token", "message": "Invalid access_token"},
    403: {"code": "chat.denied", "message": "You are not a member of chat"},
    429: {"code": "too.many.requests", "message": "Too many requests"},
    503: {"code": "service.unavailable", "message": "Service unavailable"},
}


def load_chat(path: Path, newest: float | None = None) -> dict[str, Any]:
    """A chat file; with ``newest`` (Unix seconds) its message times are shifted so that the
    newest message is at that time (relative sample content stays recent)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    messages = data.get("messages") or []
    if newest is not None and messages:
        shift = int(newest * 1000) - max(m["timestamp"] for m in messages)
        for message in messages:
            message["timestamp"] += shift
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = MaxServer(args.host, args.port)
    for path in sorted(args.directory.glob("*.json")):
        server.add_chat(load_chat(path, newest=time.time() - 600))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

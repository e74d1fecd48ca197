"""Local HTTP replay server for tests and ``make demo`` (stdlib only).

Serves files from a root directory plus programmatic routes, answers conditional GETs with
304, and can inject faults (error status, delay, hang, dropped connection) per path. A request
with a query, ``/s/chan?before=141``, is answered by the file ``s/chan@before=141`` if there is
one, else by ``s/chan``; an extensionless path may be stored as ``<path>.html``.

    with ReplayServer(Path("examples/replay")) as srv:
        srv.route("/s/chan?before=70", "<html>...</html>")
        srv.fault("/mos/rss.xml", status=503, times=1)
        fetch(srv.url + "/mos/rss.xml")

CLI: ``python tests/replay.py ROOT [--host H] [--port N]`` prints the base URL on its first
stdout line, then serves until SIGTERM/SIGINT and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import hashlib
import mimetypes
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["Fault", "Headers", "ReplayServer", "RequestRecord", "Route", "main"]

_TYPES = {
    ".xml": "application/rss+xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".txt": "text/plain",
}
_XML_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_ATOM_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?feed[\s>]")


def guess_content_type(path: str, body: bytes = b"") -> str:
    """Content-Type for ``path`` by extension; for XML the charset follows the declaration.

    ``.xml`` is ``application/rss+xml`` unless the document root is an Atom ``<feed>``.
    """
    ext = Path(path).suffix.lower()
    base = _TYPES.get(ext)
    if base is None:
        return mimetypes.guess_type(path)[0] or "application/octet-stream"
    if ext in (".xml", ".rss", ".atom"):
        head = body[:1024]
        if ext == ".xml" and _ATOM_ROOT.search(head):
            base = "application/atom+xml"
        if ext == ".atom":
            return base
        m = _XML_ENCODING.search(head)
        return f"{base}; charset={m.group(1).decode('ascii').lower() if m else 'utf-8'}"
    if base == "application/json":
        return base
    return f"{base}; charset=utf-8"


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest() + '"'


def _file_names(path: str, query: str) -> list[str]:
    """Files that may answer ``path?query``, best first.

    ``/s/chan?before=141`` is answered by ``s/chan@before=141`` (``?`` cannot be in a file name
    everywhere), else ``s/chan``; an extensionless path may be stored with ``.html`` added.
    """
    names = [f"{path}@{query}", path] if query else [path]
    if not Path(path).suffix:
        names += [f"{name}.html" for name in names]
    return names


def _split(target: str) -> tuple[str, str]:
    """Split a request target into (decoded path, raw query)."""
    parts = urlsplit(target)
    return unquote(parts.path) or "/", parts.query


class Headers(dict[str, str]):
    """Dict of request headers with case-insensitive keys (stored lower-cased)."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        super().__init__()
        for k, v in (items or {}).items():
            self[k] = v

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class RequestRecord:
    """One request as received: ``path`` includes the query string."""

    method: str
    path: str
    headers: Headers
    time: float = field(default_factory=time.time)
    status: int | None = None  # status answered; None for drop/hang/aborted


@dataclass
class Route:
    """A programmatic response registered with :meth:`ReplayServer.route`."""

    body: bytes
    status: int = 200
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    conditional: bool = True
    last_modified: float = field(default_factory=time.time)
    stream: int = 0  # > 0: a body of this many bytes, made as it is sent, chunked, no length


@dataclass
class Fault:
    """A fault injected with :meth:`ReplayServer.fault`; ``times=None`` means forever."""

    status: int | None = None
    delay: float = 0.0
    hang: bool = False
    drop: bool = False
    times: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    replay: ReplayServer
    stopping: threading.Event

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.stopping.is_set():
            return  # client went away / we are shutting down: not worth a traceback
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections are closed after this many seconds
    server_version = "GlasReplay/1.0"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.server.replay._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.replay._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr logging."""

    def do_GET(self) -> None:
        self.server.replay._serve(self, head=False)

    def do_HEAD(self) -> None:
        self.server.replay._serve(self, head=True)


class ReplayServer:
    """Threaded local HTTP server replaying files under ``root`` and programmatic routes."""

    def __init__(self, root: Path | str | None = None, host: str = "127.0.0.1", port: int = 0):
        self.root = Path(root).resolve() if root is not None else None
        self.host = host
        self.port = port
        self.requests: list[RequestRecord] = []
        self._routes: dict[str, Route] = {}
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.in_flight = 0  # requests being answered now
        self.peak_in_flight = 0  # the most answered at once since start (or reset_peak)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ReplayServer:
        """Bind (ephemeral port when ``port=0``) and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping = threading.Event()
        cls = _HTTPServer
        if ":" in self.host:
            cls = type("_HTTPServer6", (_HTTPServer,), {"address_family": socket.AF_INET6})
        httpd = cls((self.host, self.port), _Handler)
        httpd.replay = self
        httpd.stopping = self._stopping
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"replay-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: release hanging/delayed handlers, close connections and the socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. ``http://127.0.0.1:54321``."""
        if self._httpd is None:
            raise RuntimeError("ReplayServer is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- configuration -------------------------------------------------------------------------

    def route(
        self,
        path: str,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        conditional: bool = True,
    ) -> None:
        """Serve ``body`` at ``path`` (optionally ``path?query``), replacing any previous route.

        ``str`` bodies are encoded as UTF-8. Replacing a route with a different body bumps its
        Last-Modified by at least one second so If-Modified-Since clients see the change.
        """
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        key = self._key(path)
        now = time.time()
        with self._lock:
            old = self._routes.get(key)
            if old is not None and old.body != data:
                now = max(now, old.last_modified + 1)
            elif old is not None:
                now = old.last_modified
            self._routes[key] = Route(
                data, status, content_type, dict(headers or {}), conditional, now
            )

    def route_stream(self, path: str, size: int, *, content_type: str = "text/html") -> None:
        """Serve ``size`` bytes at ``path``, made as they are sent (chunked, no length), so a
        huge body costs the server nothing."""
        with self._lock:
            self._routes[self._key(path)] = Route(
                b"", 200, content_type, {}, conditional=False, stream=size
            )

    def reset_peak(self) -> None:
        with self._lock:
            self.peak_in_flight = self.in_flight

    def unroute(self, path: str) -> None:
        """Remove a programmatic route (files under ``root`` show through again)."""
        with self._lock:
            self._routes.pop(self._key(path), None)

    def fault(
        self,
        path: str,
        *,
        status: int | None = None,
        delay: float = 0.0,
        hang: bool = False,
        drop: bool = False,
        times: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Inject a fault for ``path``; ``times=N`` limits it to the next N requests.

        Applied in order: ``delay`` seconds, then ``hang`` (no answer until :meth:`stop`),
        ``drop`` (close without response) or ``status`` (that status, body ``fault``, plus
        ``headers`` such as ``Retry-After``).
        """
        with self._lock:
            self._faults[self._key(path)] = Fault(
                status, delay, hang, drop, times, dict(headers or {})
            )

    def clear_faults(self, path: str | None = None) -> None:
        """Remove all faults, or only the one registered for ``path``."""
        with self._lock:
            if path is None:
                self._faults.clear()
            else:
                self._faults.pop(self._key(path), None)

    def hits(self, path: str) -> int:
        """Requests for ``path``: exact path+query if it has a query, else any query."""
        with self._lock:
            records = list(self.requests)
        if "?" in path:
            return sum(r.path == path for r in records)
        return sum(r.path.split("?", 1)[0] == path for r in records)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            self.requests.clear()

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _key(target: str) -> str:
        path, query = _split(target)
        return f"{path}?{query}" if query else path

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _lookup(self, table: Mapping[str, Any], path: str, query: str) -> Any:
        if query and f"{path}?{query}" in table:
            return table[f"{path}?{query}"]
        return table.get(path)

    def _take_fault(self, path: str, query: str) -> Fault | None:
        with self._lock:
            key = f"{path}?{query}" if query and f"{path}?{query}" in self._faults else path
            fault = self._faults.get(key)
            if fault is None:
                return None
            if fault.times is not None:
                if fault.times <= 0:
                    del self._faults[key]
                    return None
                fault.times -= 1
                if fault.times == 0:
                    del self._faults[key]
            return fault

    def _file(self, path: str) -> tuple[bytes, float] | int:
        """File body and mtime for a URL path, or an HTTP status (403 traversal, 404)."""
        if self.root is None:
            return 404
        parts = path.split("/")
        if any(p in ("..", ".") or "\\" in p or "\x00" in p for p in parts):
            return 403
        target = (self.root / "/".join(p for p in parts if p)).resolve()
        if not target.is_relative_to(self.root):
            return 403
        if not target.is_file():
            return 404
        try:
            return target.read_bytes(), target.stat().st_mtime
        except OSError:
            return 404

    def _serve(self, h: _Handler, *, head: bool) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            self._answer(h, head=head)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, h: _Handler, *, head: bool) -> None:
        path, query = _split(h.path)
        record = RequestRecord(
            h.command, f"{path}?{query}" if query else path, Headers(dict(h.headers.items()))
        )
        with self._lock:
            self.requests.append(record)

        fault = self._take_fault(path, query)
        if fault is not None:
            if fault.delay > 0 and self._stopping.wait(fault.delay):
                h.close_connection = True
                return
            if fault.hang:
                self._stopping.wait()
                h.close_connection = True
                return
            if fault.drop:
                h.close_connection = True
                with contextlib.suppress(OSError):
                    h.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.status is not None:
                record.status = fault.status
                headers = {"Content-Type": "text/plain", **fault.headers}
                self._send(h, fault.status, b"fault", headers, head)
                return

        with self._lock:
            route = self._lookup(self._routes, path, query)
        if route is not None and route.stream:
            record.status = 200
            self._stream(h, route.stream, route.content_type or "text/html")
            return
        if route is not None:
            body, status, mtime = route.body, route.status, route.last_modified
            ctype = route.content_type or guess_content_type(path, body)
            extra, conditional = route.headers, route.conditional
        else:
            found, name = 404, path
            for name in _file_names(path, query):
                found = self._file(name)
                if not isinstance(found, int) or found == 403:
                    break
            if isinstance(found, int):
                record.status = found
                msg = b"forbidden" if found == 403 else b"not found"
                self._send(h, found, msg, {"Content-Type": "text/plain"}, head)
                return
            body, mtime = found
            status, ctype, extra, conditional = 200, guess_content_type(name, body), {}, True

        headers = {"Content-Type": ctype}
        if status == 200 and conditional:
            headers["ETag"] = _etag(body)
            headers["Last-Modified"] = _http_date(mtime)
        for k, v in extra.items():  # user headers win, case-insensitively
            for old in [o for o in headers if o.lower() == k.lower()]:
                del headers[old]
            headers[k] = v

        if status == 200 and conditional and self._not_modified(h, headers, mtime):
            record.status = 304
            h.send_response(304)
            for k in ("ETag", "Last-Modified"):
                if k in headers:
                    h.send_header(k, headers[k])
            h.end_headers()
            return
        record.status = status
        self._send(h, status, body, headers, head)

    @staticmethod
    def _not_modified(h: _Handler, headers: Mapping[str, str], mtime: float) -> bool:
        inm = h.headers.get("If-None-Match")
        if inm is not None:
            etag = headers.get("ETag", "")
            tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
            return "*" in tags or etag.removeprefix("W/") in tags
        ims = h.headers.get("If-Modified-Since")
        if ims:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return False
            return int(mtime) <= since
        return False

    @staticmethod
    def _stream(h: _Handler, size: int, content_type: str) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"<p>" + b"x" * 65_526 + b"</p>\n"
        sent = 0
        with contextlib.suppress(OSError):  # the client hangs up once it has had enough
            while sent < size:
                part = chunk[: min(len(chunk), size - sent)]
                h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                sent += len(part)
            h.wfile.write(b"0\r\n\r\n")
        h.close_connection = True

    @staticmethod
    def _send(
        h: _Handler, status: int, body: bytes, headers: Mapping[str, str], head: bool
    ) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)


def main(argv: list[str] | None = None) -> int:
    """Serve ROOT until SIGTERM/SIGINT; print the base URL first."""
    ap = argparse.ArgumentParser(description="Local HTTP replay server for Glas tests/demo.")
    ap.add_argument("root", type=Path, help="directory to serve")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = ephemeral (default)")
    args = ap.parse_args(argv)
    if not args.root.is_dir():
        ap.error(f"not a directory: {args.root}")

    done = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with ReplayServer(args.root, host=args.host, port=args.port) as srv:
        print(srv.url, flush=True)
        while not done.wait(0.1):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

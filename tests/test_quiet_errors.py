"""Failing sources under `glas run`: each problem is the one line Glas prints, whatever Scrapy
and Twisted would have said (DNS, refused connections, broken and oversized answers, robots.txt
errors and refusals); their own accounts and tracebacks appear only with --debug."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss


@pytest.fixture
def truncating() -> Iterator[str]:
    """A server that promises 10,000 bytes and closes after 100 (robots.txt included)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                    b"Content-Length: 10000\r\n\r\n" + b"<rss>" + b" " * 95
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    server.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_problem_is_one_line_and_tracebacks_only_with_debug(
    replay: ReplayServer,
    truncating: str,
    write_sources: Callable[..., Path],
    glas: Callable[..., object],
) -> None:
    replay.route("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    replay.route("/private/feed.xml", make_rss("private", 2))
    replay.route("/big.xml", b"<rss>" + b" " * 3_000_000 + b"</rss>")
    replay.route("/fine.xml", make_rss("fine", 2))
    port = closed_port()
    write_sources(f"""
        defaults: {{request_delay: 0s, retry_backoff: 0s, retries: 1, max_response_size: 1MB}}
        sources:
          - {{id: nowhere, type: rss, url: "http://no-such-host.invalid/feed.xml"}}
          - {{id: refused, type: rss, url: "http://127.0.0.1:{port}/feed.xml"}}
          - {{id: cut, type: rss, url: "{truncating}/feed.xml"}}
          - {{id: forbidden, type: rss, url: "{replay.url}/private/feed.xml"}}
          - {{id: big, type: rss, url: "{replay.url}/big.xml"}}
          - {{id: fine, type: rss, url: "{replay.url}/fine.xml"}}
    """)
    quiet = glas("run", "--all")
    assert quiet.returncode == 1  # type: ignore[attr-defined]
    assert sorted(quiet.stderr.splitlines()) == [  # type: ignore[attr-defined]
        "glas: big: failed: the answer from "
        f"{replay.url}/big.xml is more than the limit of 1 MB (max_response_size)",
        f"glas: cut: failed: the connection broke before the whole answer arrived: "
        f"{truncating}/feed.xml",
        f"glas: forbidden: failed: robots.txt of the site forbids {replay.url}/private/feed.xml "
        "(Glas obeys it; ask the site's owner)",
        "glas: nowhere: failed: cannot resolve the host of http://no-such-host.invalid/feed.xml",
        f"glas: refused: failed: connection refused: http://127.0.0.1:{port}/feed.xml",
    ]
    debug = glas("--debug", "run", "--all")
    assert debug.returncode == 1  # type: ignore[attr-defined]
    detail = debug.stderr  # type: ignore[attr-defined]
    assert "scrapy" in detail and len(detail.splitlines()) > 10, "--debug shows Scrapy's account"

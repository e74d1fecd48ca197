"""Tests for the local replay server (tests/replay.py), over real HTTP with urllib."""

from __future__ import annotations

import email.utils
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.replay import ReplayServer

REPLAY = Path(__file__).with_name("replay.py")
RSS = b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel/></rss>'
CP1251 = '<?xml version="1.0" encoding="windows-1251"?><rss><channel><title>Тверской</title>'


def fetch(
    url: str, headers: dict[str, str] | None = None, method: str = "GET", timeout: float = 2.0
) -> tuple[int, dict[str, str], bytes]:
    """GET/HEAD ``url``; HTTP errors (incl. 304) are returned, not raised."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


def raw_get(srv: ReplayServer, target: str) -> int:
    """Send ``target`` verbatim (no client-side normalisation); return the status."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=2)
    try:
        conn.request("GET", target)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "mos").mkdir(parents=True)
    (site / "mos" / "rss.xml").write_bytes(RSS)
    (site / "district.xml").write_bytes(CP1251.encode("cp1251"))
    (site / "feed.atom").write_bytes(b'<feed xmlns="http://www.w3.org/2005/Atom"/>')
    (site / "page.html").write_text("<p>привет</p>", encoding="utf-8")
    (site / "data.json").write_text("{}", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("top secret", encoding="utf-8")
    return site


@pytest.fixture
def srv(root: Path) -> Iterator[ReplayServer]:
    with ReplayServer(root) as server:
        yield server


def test_serves_files_with_content_types(srv: ReplayServer) -> None:
    assert srv.url.startswith("http://127.0.0.1:") and srv.port > 0
    status, headers, body = fetch(srv.url + "/mos/rss.xml")
    assert (status, body) == (200, RSS)
    assert headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    assert headers["Content-Length"] == str(len(RSS))
    _, headers, body = fetch(srv.url + "/district.xml")
    assert headers["Content-Type"] == "application/rss+xml; charset=windows-1251"
    assert body.decode("cp1251") == CP1251
    assert fetch(srv.url + "/feed.atom")[1]["Content-Type"] == "application/atom+xml"
    assert fetch(srv.url + "/page.html")[1]["Content-Type"] == "text/html; charset=utf-8"
    assert fetch(srv.url + "/data.json")[1]["Content-Type"] == "application/json"


def test_head_has_headers_but_no_body(srv: ReplayServer) -> None:
    status, headers, body = fetch(srv.url + "/mos/rss.xml", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(RSS)) and headers["ETag"]


def test_unknown_path_404_and_directory_404(srv: ReplayServer) -> None:
    assert fetch(srv.url + "/nope.xml")[0] == 404
    assert fetch(srv.url + "/mos")[0] == 404
    assert fetch(srv.url + "/")[0] == 404


def test_no_root_serves_only_routes() -> None:
    with ReplayServer() as server:
        assert fetch(server.url + "/x")[0] == 404
        server.route("/x", "ok")
        assert fetch(server.url + "/x")[2] == b"ok"


@pytest.mark.parametrize(
    "target", ["/../secret.txt", "/mos/../../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"]
)
def test_path_traversal_refused(srv: ReplayServer, target: str) -> None:
    assert raw_get(srv, target) in (403, 404)


def test_route_overrides_file_and_replacement_changes_etag(srv: ReplayServer) -> None:
    _, h_file, _ = fetch(srv.url + "/mos/rss.xml")
    srv.route("/mos/rss.xml", "<rss>v1</rss>")
    _, h1, b1 = fetch(srv.url + "/mos/rss.xml")
    assert b1 == b"<rss>v1</rss>" and h1["ETag"] != h_file["ETag"]
    srv.route("/mos/rss.xml", b"<rss>v2</rss>", headers={"X-Extra": "1"})
    _, h2, b2 = fetch(srv.url + "/mos/rss.xml")
    assert b2 == b"<rss>v2</rss>" and h2["ETag"] != h1["ETag"] and h2["X-Extra"] == "1"
    assert email.utils.parsedate_to_datetime(h2["Last-Modified"]) > (
        email.utils.parsedate_to_datetime(h1["Last-Modified"])
    )
    srv.unroute("/mos/rss.xml")
    assert fetch(srv.url + "/mos/rss.xml")[2] == RSS


def test_route_status_content_type_verbatim_and_unconditional(srv: ReplayServer) -> None:
    body = CP1251.encode("cp1251")
    srv.route("/d", body, content_type="text/xml; charset=windows-1251", conditional=False)
    status, headers, got = fetch(srv.url + "/d")
    assert (status, got) == (200, body)
    assert headers["Content-Type"] == "text/xml; charset=windows-1251"
    assert "ETag" not in headers and "Last-Modified" not in headers
    assert fetch(srv.url + "/d", {"If-None-Match": "*"})[0] == 200
    srv.route("/gone", "bye", status=410)
    assert fetch(srv.url + "/gone")[:1] == (410,)


def test_query_string_routes(srv: ReplayServer) -> None:
    srv.route("/s/chan", "latest")
    srv.route("/s/chan?before=70", "older")
    assert fetch(srv.url + "/s/chan")[2] == b"latest"
    assert fetch(srv.url + "/s/chan?before=70")[2] == b"older"
    assert fetch(srv.url + "/s/chan?before=50")[2] == b"latest"  # falls back to path route
    assert srv.hits("/s/chan") == 3
    assert srv.hits("/s/chan?before=70") == 1
    with ReplayServer() as bare:
        bare.route("/only?page=2", "p2")
        assert fetch(bare.url + "/only?page=2")[2] == b"p2"
        assert fetch(bare.url + "/only?page=3")[0] == 404


def test_query_string_files_and_html_suffix(srv: ReplayServer, root: Path) -> None:
    (root / "s").mkdir()
    (root / "s" / "chan.html").write_text("<p>новые</p>", encoding="utf-8")
    (root / "s" / "chan@before=70.html").write_text("<p>старые</p>", encoding="utf-8")
    status, headers, body = fetch(srv.url + "/s/chan")
    assert (status, body.decode()) == (200, "<p>новые</p>")
    assert headers["Content-Type"].startswith("text/html")
    assert fetch(srv.url + "/s/chan?before=70")[2].decode() == "<p>старые</p>"
    assert fetch(srv.url + "/s/chan?before=50")[2].decode() == "<p>новые</p>"
    assert fetch(srv.url + "/mos/rss.xml?utm=1")[2] == RSS  # a query falls back to the path
    assert fetch(srv.url + "/s/other")[0] == 404


def test_304_via_if_none_match(srv: ReplayServer) -> None:
    _, headers, _ = fetch(srv.url + "/mos/rss.xml")
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 42
    status, h304, body = fetch(srv.url + "/mos/rss.xml", {"If-None-Match": etag})
    assert (status, body) == (304, b"") and h304["ETag"] == etag
    # a non-matching If-None-Match wins over a matching If-Modified-Since
    stale = {"If-None-Match": '"x"', "If-Modified-Since": headers["Last-Modified"]}
    assert fetch(srv.url + "/mos/rss.xml", stale)[0] == 200
    assert srv.requests[1].headers["If-None-Match"] == etag  # case-insensitive lookup


def test_304_via_if_modified_since(srv: ReplayServer, root: Path) -> None:
    past = time.time() - 3600
    os.utime(root / "mos" / "rss.xml", (past, past))
    _, headers, _ = fetch(srv.url + "/mos/rss.xml")
    assert headers["Last-Modified"] == email.utils.formatdate(past, usegmt=True)
    url = srv.url + "/mos/rss.xml"
    assert fetch(url, {"If-Modified-Since": headers["Last-Modified"]})[0] == 304
    newer = email.utils.formatdate(past + 60, usegmt=True)
    assert fetch(url, {"If-Modified-Since": newer})[0] == 304
    older = email.utils.formatdate(past - 60, usegmt=True)
    assert fetch(url, {"If-Modified-Since": older})[0] == 200


def test_fault_status(srv: ReplayServer) -> None:
    srv.fault("/mos/rss.xml", status=503)
    for _ in range(2):
        status, _, body = fetch(srv.url + "/mos/rss.xml")
        assert (status, body) == (503, b"fault")
    srv.clear_faults()
    assert fetch(srv.url + "/mos/rss.xml")[0] == 200


def test_fault_times(srv: ReplayServer) -> None:
    srv.fault("/mos/rss.xml", status=500, times=2)
    statuses = [fetch(srv.url + "/mos/rss.xml")[0] for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    assert [r.status for r in srv.requests] == statuses


def test_fault_delay(srv: ReplayServer) -> None:
    srv.fault("/mos/rss.xml", delay=0.3, times=1)
    t0 = time.monotonic()
    assert fetch(srv.url + "/mos/rss.xml")[0] == 200
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    fetch(srv.url + "/mos/rss.xml")
    assert time.monotonic() - t0 < 0.3


def test_fault_hang_times_out_and_stop_is_prompt(root: Path) -> None:
    server = ReplayServer(root).start()
    server.fault("/mos/rss.xml", hang=True)
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        fetch(server.url + "/mos/rss.xml", timeout=0.3)
    # a second hanging request is still in flight while we stop
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/mos/rss.xml")
    time.sleep(0.05)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 1.0
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()


def test_fault_drop(srv: ReplayServer) -> None:
    srv.fault("/mos/rss.xml", drop=True, times=1)
    with pytest.raises((urllib.error.URLError, http.client.RemoteDisconnected, ConnectionError)):
        fetch(srv.url + "/mos/rss.xml")
    assert srv.requests[0].status is None
    assert fetch(srv.url + "/mos/rss.xml")[0] == 200


def test_fault_query_specific(srv: ReplayServer) -> None:
    srv.route("/s/chan", "x")
    srv.fault("/s/chan?before=70", status=429)
    assert fetch(srv.url + "/s/chan?before=70")[0] == 429
    assert fetch(srv.url + "/s/chan")[0] == 200


def test_request_log(srv: ReplayServer) -> None:
    fetch(srv.url + "/mos/rss.xml?x=1", {"User-Agent": "glas-test", "If-None-Match": '"a"'})
    fetch(srv.url + "/nope", method="HEAD")
    first, second = srv.requests
    assert (first.method, first.path) == ("GET", "/mos/rss.xml?x=1")
    assert first.headers.get("user-agent") == "glas-test" and "IF-NONE-MATCH" in first.headers
    assert (second.method, second.path, second.status) == ("HEAD", "/nope", 404)
    assert srv.hits("/mos/rss.xml") == 1 and srv.hits("/mos/rss.xml?x=2") == 0
    srv.clear_requests()
    assert srv.requests == []


def test_keep_alive_connection_serves_several_requests(srv: ReplayServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=2)
    try:
        for _ in range(3):
            conn.request("GET", "/mos/rss.xml")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, RSS)
    finally:
        conn.close()


def test_cli_prints_url_and_exits_0_on_sigterm(root: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(REPLAY), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert fetch(url + "/mos/rss.xml")[2] == RSS
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=3) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""  # no request logging
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""A local OK-compatible REST API server for tests and ``make demo`` (stdlib only).

Answers form POSTs to ``/fb.do`` like api.ok.ru does: the method's JSON answer, or the
top-level error object ``{"error_code", "error_msg", "error_data"}``. Every request's signature
is checked (``sig`` = MD5 of the sorted ``key=value`` parameters without ``sig`` and
``access_token``, then ``md5(access_token + application secret key)``): a wrong one is error 104,
an unknown application key 101, an unknown token 102. It knows ``url.getInfo``,
``group.getInfo``, ``group.getStatTopics`` (newest first, ``anchor`` paging, the counters
asked in ``fields``), ``mediatopic.getByIds`` (``media_limit`` for several topics) and
``discussions.getComments`` (``anchor`` ``FIRST`` or an answer's anchor, ``direction=FORWARD``,
``includeRemoved``). Groups are loaded from JSON
(``add_group``); errors, HTTP faults and malformed bodies are scripted per test:

    with OkServer() as ok:
        ok.add_group(load_group(Path("examples/replay/ok/gorodok.json")))
        ok.fail("discussions.getComments", 456, discussionId="155010000000002")
        ok.http_fault("group.getStatTopics", status=502, times=1)
        ok.malformed("group.getInfo", b"<html>maintenance</html>")
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

__all__ = ["APP_KEY", "APP_SECRET", "TOKEN", "OkServer", "load_group"]

APP_KEY = "CBAFLOCALAPPKEY1"  # made-up credentials the local server accepts
APP_SECRET = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
TOKEN = "tkn1localDemoAccessToken0123456789abcdef"
MOSCOW = ZoneInfo("Europe/Moscow")
MESSAGES = {
    2: "SERVICE : Service is temporary unavailable",
    8: "FLOOD_BLOCKED : Method call blocked due to flood",
    11: "LIMIT_REACHED : Method call limit reached",
    100: "PARAM : Missing required parameter",
    101: "PARAM_API_KEY : Application key is invalid",
    102: "PARAM_SESSION_EXPIRED : Session expired",
    104: "PARAM_SIGNATURE : Invalid signature",
    160: "PARAM_GROUP_ID : Invalid group id",
    300: "NOT_FOUND : Requested information is not found",
    455: "GROUP_RESTRICTION : Group is closed",
    456: "GROUP_RESTRICTION : Operation is restricted by the group",
}


class ApiFailure(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or MESSAGES.get(code, "UNKNOWN : Unknown error")


@dataclass
class Script:
    method: str
    match: dict[str, str]
    times: int | None
    code: int = 0
    message: str | None = None
    status: int | None = None
    body: bytes | None = None


@dataclass
class Call:
    """One request received; ``signed`` tells whether its signature was right."""

    method: str
    params: dict[str, str]
    token: str | None
    signed: bool
    time: float = field(default_factory=time.monotonic)


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def expected_sig(params: dict[str, str], token: str, secret: str) -> str:
    body = "".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sig", "access_token"))
    return md5(body + md5(token + secret))


def _anchor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _offset(anchor: str) -> int:
    try:
        return int(base64.b64decode(anchor).decode().split(":", 1)[1])
    except (ValueError, IndexError):
        raise ApiFailure(100, "PARAM : Invalid anchor") from None


class OkServer:
    """Threaded OK-compatible server on a loopback port; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.app_key, self.secret = APP_KEY, APP_SECRET
        self.tokens: set[str] | None = None  # None: any token is accepted
        self.groups: dict[str, dict[str, Any]] = {}  # gid → group object
        self.shortnames: dict[str, str] = {}
        self.topics: dict[str, dict[str, Any]] = {}  # topic id → topic (with "_gid")
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.places: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self._scripts: list[Script] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- data ------------------------------------------------------------------------------------
    def add_group(self, data: dict[str, Any]) -> None:
        """A group in the shape of examples/replay/ok/*.json: ``group`` (a group.getInfo
        object), ``topics`` (media topics), ``comments`` (topic id → comments), ``users``,
        ``groups`` (other groups), ``places``, ``shared`` (topics of others that are reshared)."""
        with self._lock:
            group = data["group"]
            gid = str(group["uid"])
            self.groups[gid] = group
            if group.get("shortname"):
                self.shortnames[group["shortname"].lower()] = gid
            for other in data.get("groups", []):
                self.groups.setdefault(str(other["uid"]), other)
            for user in data.get("users", []):
                self.users[str(user["uid"])] = user
            for place in data.get("places", []):
                self.places[str(place["id"])] = place
            for topic in [*data.get("topics", []), *data.get("shared", [])]:
                self.topics[str(topic["id"])] = topic
            for topic, items in (data.get("comments") or {}).items():
                self.comments.setdefault(str(topic), []).extend(items)

    def add_topic(self, topic: dict[str, Any]) -> None:
        with self._lock:
            self.topics[str(topic["id"])] = topic

    def add_comment(self, topic: str, item: dict[str, Any]) -> None:
        with self._lock:
            self.comments.setdefault(str(topic), []).append(item)

    # -- scripting -------------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        code: int,
        message: str | None = None,
        *,
        times: int | None = None,
        **match: Any,
    ) -> None:
        """Answer ``method`` (calls whose params contain ``match``) with OK error ``code``."""
        self._add(Script(method, _strs(match), times, code=code, message=message))

    def http_fault(
        self, method: str, *, status: int = 502, times: int | None = None, **match: Any
    ) -> None:
        self._add(Script(method, _strs(match), times, status=status))

    def malformed(
        self, method: str, body: bytes, *, times: int | None = None, **match: Any
    ) -> None:
        """Answer ``method`` with HTTP 200 and ``body`` as it is."""
        self._add(Script(method, _strs(match), times, status=200, body=body))

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def _add(self, script: Script) -> None:
        with self._lock:
            self._scripts.append(script)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> OkServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, data = server._handle(self.path, self.rfile.read(length))
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(data)

        httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- dispatch --------------------------------------------------------------------------------
    def _handle(self, path: str, body: bytes) -> tuple[int, bytes]:
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        method = params.get("method", "")
        token = params.get("access_token")
        signed = token is not None and params.get("sig") == expected_sig(params, token, self.secret)
        shown = {
            k: v
            for k, v in params.items()
            if k not in ("sig", "access_token", "application_key", "method", "format")
        }
        with self._lock:
            self.calls.append(Call(method, shown, token, signed))
            script = self._script(method, shown)
        if script is not None and script.status is not None:
            return script.status, script.body if script.body is not None else b"Bad Gateway"
        try:
            if path.split("?", 1)[0] != "/fb.do":
                raise ApiFailure(3, "METHOD : Unknown method")
            if params.get("application_key") != self.app_key:
                raise ApiFailure(101)
            if token is None or (self.tokens is not None and token not in self.tokens):
                raise ApiFailure(102)
            if not signed:
                raise ApiFailure(104)
            if params.get("format", "").lower() != "json":
                raise ApiFailure(100, "PARAM : format must be json")
            if script is not None:
                raise ApiFailure(script.code, script.message)
            with self._lock:
                answer = self._call(method, shown)
        except ApiFailure as failure:
            answer = {"error_code": failure.code, "error_msg": failure.message, "error_data": None}
        return 200, json.dumps(answer, ensure_ascii=False).encode()

    def _script(self, method: str, params: dict[str, str]) -> Script | None:
        for script in self._scripts:
            if script.method != method or any(params.get(k) != v for k, v in script.match.items()):
                continue
            if script.times is not None:
                script.times -= 1
                if script.times <= 0:
                    self._scripts.remove(script)
            return script
        return None

    def _call(self, method: str, params: dict[str, str]) -> Any:
        handler = {
            "url.getInfo": self._url_info,
            "group.getInfo": self._group_info,
            "group.getStatTopics": self._stat_topics,
            "mediatopic.getByIds": self._get_by_ids,
            "discussions.getComments": self._get_comments,
        }.get(method)
        if handler is None:
            raise ApiFailure(3, "METHOD : Unknown method")
        return handler(params)

    # -- methods ---------------------------------------------------------------------------------
    def _url_info(self, params: dict[str, str]) -> dict[str, Any]:
        name = params.get("url", "").rstrip("/").rsplit("/", 1)[-1].lower()
        gid = self.shortnames.get(name)
        if gid is None:
            raise ApiFailure(300)
        return {"type": "GROUP", "objectId": int(gid)}

    def _group_info(self, params: dict[str, str]) -> list[dict[str, Any]]:
        if "uids" not in params or "fields" not in params:
            raise ApiFailure(100)
        found = []
        for uid in params["uids"].split(","):
            group = self.groups.get(uid.strip())
            if group is not None and not group.get("deleted"):
                found.append({k: v for k, v in group.items() if k != "deleted"})
        return found

    def _group(self, gid: str) -> dict[str, Any]:
        group = self.groups.get(gid)
        if group is None or group.get("deleted"):
            raise ApiFailure(160)
        if group.get("access_type") in ("CLOSED", "SECRET"):
            raise ApiFailure(455)
        return group

    def _shown(self, topic: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in topic.items() if k != "comments"}
        live = [c for c in self.comments.get(str(topic["id"]), []) if not c.get("deleted")]
        shown["discussion_summary"] = {"comments_count": len(live)}
        shown.setdefault("like_summary", {"count": 0})
        shown.setdefault("reshare_summary", {"count": 0})
        return shown

    def _entities(self, topics: list[dict[str, Any]], authors: list[str]) -> dict[str, Any]:
        refs = set(authors)
        places, shared = [], []
        for topic in topics:
            refs.update(str(topic.get(k, "")) for k in ("author_ref", "owner_ref"))
            for block in topic.get("media") or []:
                ref = str(block.get("place_ref") or block.get("reshared_topic_ref") or "")
                kind, _, number = ref.partition(":")
                if kind == "place" and number in self.places:
                    places.append(self.places[number])
                elif kind == "media_topic" and number in self.topics:
                    shared.append(self._shown(self.topics[number]))
                    refs.add(str(self.topics[number].get("owner_ref", "")))
        users = [
            self.users[r[5:]] for r in sorted(refs) if r.startswith("user:") and r[5:] in self.users
        ]
        groups = [
            {"uid": g["uid"], "name": g["name"]}
            for r in sorted(refs)
            if r.startswith("group:") and (g := self.groups.get(r[6:]))
        ]
        entities: dict[str, Any] = {"users": users, "groups": groups}
        if places:
            entities["places"] = places
        if shared:
            entities["media_topics"] = shared
        return entities

    def _stat_topics(self, params: dict[str, str]) -> dict[str, Any]:
        gid = params.get("gid", "")
        self._group(gid)
        if "fields" not in params:
            raise ApiFailure(100)
        fields = {f.strip().lower() for f in params["fields"].split(",")}
        topics = [
            t
            for t in self.topics.values()
            if t.get("owner_ref") == f"group:{gid}" and not t.get("deleted")
        ]
        topics.sort(key=lambda t: -int(t["created_ms"]))
        start, end = int(params.get("start_time") or 0), int(params.get("end_time") or 2**62)
        topics = [t for t in topics if start <= int(t["created_ms"]) <= end]
        offset = _offset(params["anchor"]) if params.get("anchor") else 0
        count = min(100, int(params.get("count", 20)))
        page = []
        for topic in topics[offset : offset + count]:
            shown = self._shown(topic)
            stat = {
                "id": str(topic["id"]),
                "created_ms": int(topic["created_ms"]),
                "comments": shown["discussion_summary"]["comments_count"],
                "likes": shown["like_summary"]["count"],
                "reshares": shown["reshare_summary"]["count"],
                "views": int(topic.get("views_count") or 0),
            }
            page.append({k: v for k, v in stat.items() if k in fields or k == "id"})
        end_at = offset + len(page)
        return {"topics": page, "anchor": _anchor(end_at), "has_more": end_at < len(topics)}

    def _get_by_ids(self, params: dict[str, str]) -> dict[str, Any]:
        wanted = [t for t in params.get("topic_ids", "").split(",") if t]
        limit = int(params.get("media_limit") or 0)
        if not wanted or len(wanted) > 100 or (len(wanted) > 1 and not 1 <= limit <= 3):
            raise ApiFailure(100, "PARAM : media_limit (1..3) is required for several topics")
        found = []
        for key in wanted:
            topic = self.topics.get(key)
            if topic is not None and not topic.get("deleted"):
                shown = self._shown(topic)
                if limit:
                    shown["media"] = list(shown.get("media") or [])[:limit]
                found.append(shown)
        return {"media_topics": found, "entities": self._entities(found, [])}

    def _get_comments(self, params: dict[str, str]) -> dict[str, Any]:
        topic = self.topics.get(params.get("discussionId", ""))
        if topic is None or params.get("discussionType") != "GROUP_TOPIC":
            raise ApiFailure(300)
        self._group(str(topic.get("owner_ref", "")).partition(":")[2])
        every = sorted(self.comments.get(str(topic["id"]), []), key=_comment_ms)
        if params.get("includeRemoved") != "true":
            every = [c for c in every if not c.get("deleted")]
        anchor = params.get("anchor", "FIRST")
        offset = 0 if anchor == "FIRST" else _offset(anchor)
        count = min(100, int(params.get("count", 20)))
        page = []
        for item in every[offset : offset + count]:
            shown = dict(item)
            if shown.get("deleted"):
                shown["text"] = ""
            page.append(shown)
        end = offset + len(page)
        authors = [str(c.get("author_ref") or f"user:{c.get('author_id')}") for c in page]
        return {
            "comments": page,
            "anchor": _anchor(end),
            "has_more": end < len(every),
            "entities": self._entities([], authors),
        }


def _comment_ms(item: dict[str, Any]) -> int:
    if item.get("created_ms"):
        return int(item["created_ms"])
    local = datetime.strptime(item["date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=MOSCOW)
    return int(local.timestamp() * 1000)


def _strs(match: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in match.items()}


def load_group(path: Path, newest: float | None = None) -> dict[str, Any]:
    """A group JSON file; with ``newest`` (seconds) every time moves so that the newest topic
    of the group was published then (``created_ms`` and Moscow ``date`` strings alike)."""
    data = json.loads(Path(path).read_text("utf-8"))
    if newest is not None:
        latest = max(int(t["created_ms"]) for t in data["topics"])
        _shift(data, int(newest * 1000) - latest)
    return data


def _shift(node: Any, millis: int) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "created_ms" and isinstance(value, int):
                node[key] = value + millis
            elif key == "date" and isinstance(value, str):
                local = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=MOSCOW)
                moved = datetime.fromtimestamp(local.timestamp() + millis / 1000, UTC)
                node[key] = moved.astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M:%S")
            else:
                _shift(value, millis)
    elif isinstance(node, list):
        for value in node:
            _shift(value, millis)

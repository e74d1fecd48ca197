"""A local VK-compatible API server for tests and ``make demo`` (stdlib only).

Answers form POSTs to ``/method/<name>`` like api.vk.ru does: ``{"response": …}`` or
``{"error": {"error_code", "error_msg", "request_params"}}``. It knows ``wall.get``,
``wall.getComments`` (threads, branches, paging), ``groups.getById``,
``utils.resolveScreenName``, ``newsfeed.search`` (``next_from`` paging, the 1,000-result cap)
and ``execute`` (code of the form ``return [API.m({…}), …];``, inner errors in
``execute_errors``). Walls are loaded from JSON (``add_wall``); errors are scripted per test:

    with VkServer() as vk:
        vk.add_wall(load_wall(Path("examples/replay/vk/zarechny.json")))
        vk.fail("wall.getComments", 212, "Access to post comments denied", post_id=7)
        vk.http_fault("wall.get", status=502, times=1)

CLI: ``python tests/vk_server.py DIR [--host H] [--port N]`` serves every ``*.json`` wall of
DIR, prints the base URL on its first stdout line, and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["VkServer", "load_wall", "main"]

MESSAGES = {
    5: "User authorization failed: invalid access_token (4).",
    6: "Too many requests per second",
    9: "Flood control",
    14: "Captcha needed",
    15: "Access denied: this wall available only for community members",
    18: "User was deleted or banned",
    29: "Rate limit reached",
    30: "This profile is private",
    100: "One of the parameters specified was missing or invalid",
    203: "Access to group denied: access to the group is restricted",
    212: "Access to post comments denied",
}
_CALL = re.compile(r"API\.([A-Za-z]+\.[A-Za-z]+)\(")


class ApiFailure(Exception):
    def __init__(self, code: int, message: str | None = None, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or MESSAGES.get(code, "Unknown error")
        self.extra = extra


@dataclass
class Script:
    """A scripted error: for ``method`` (and calls whose params contain ``match``)."""

    method: str
    code: int
    message: str | None
    match: dict[str, str]
    times: int | None
    token: str | None = None
    status: int | None = None  # HTTP status instead of an API error
    delay: float = 0.0


@dataclass
class Call:
    """One method call received (inner calls of execute included, ``inner=True``)."""

    method: str
    params: dict[str, str]
    token: str | None
    time: float = field(default_factory=time.monotonic)
    inner: bool = False


class VkServer:
    """Threaded VK-compatible server on a loopback port; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.walls: dict[int, dict[str, Any]] = {}  # owner id → {"posts": [...], ...}
        self.groups: dict[int, dict[str, Any]] = {}  # positive group id → group object
        self.profiles: dict[int, dict[str, Any]] = {}
        self.screen_names: dict[str, tuple[str, int]] = {}
        self.search_items: list[dict[str, Any]] = []
        self.tokens: set[str] | None = None  # None: any token is accepted
        self.calls: list[Call] = []
        self.bodies: list[bytes] = []
        self._scripts: list[Script] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- data ------------------------------------------------------------------------------------
    def add_wall(self, data: dict[str, Any]) -> None:
        """A wall in the shape of examples/replay/vk/*.json: ``group`` or ``owner_id``,
        ``posts`` (wall.get items), ``comments`` (post id → wall.getComments items, replies
        with ``parents_stack``), ``profiles``, ``groups``, ``search`` (newsfeed items)."""
        with self._lock:
            group = data.get("group")
            owner = -int(group["id"]) if group else int(data["owner_id"])
            if group:
                self.groups[int(group["id"])] = group
                self.screen_names[group["screen_name"].lower()] = (
                    group.get("type", "group"),
                    int(group["id"]),
                )
            for extra in data.get("groups", []):
                self.groups[int(extra["id"])] = extra
                if extra.get("screen_name"):
                    self.screen_names[extra["screen_name"].lower()] = ("group", int(extra["id"]))
            for profile in data.get("profiles", []):
                self.profiles[int(profile["id"])] = profile
                if profile.get("screen_name"):
                    self.screen_names[profile["screen_name"].lower()] = ("user", profile["id"])
            wall = self.walls.setdefault(owner, {"posts": [], "comments": {}})
            wall["posts"].extend(data.get("posts", []))
            for post, items in (data.get("comments") or {}).items():
                wall["comments"].setdefault(int(post), []).extend(items)
            self.search_items.extend(data.get("search", []))

    def add_post(self, owner: int, post: dict[str, Any]) -> None:
        with self._lock:
            self.walls.setdefault(owner, {"posts": [], "comments": {}})["posts"].append(post)

    def add_comment(self, owner: int, post: int, item: dict[str, Any]) -> None:
        with self._lock:
            self.walls[owner]["comments"].setdefault(post, []).append(item)

    # -- scripting -------------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        code: int,
        message: str | None = None,
        *,
        times: int | None = None,
        token: str | None = None,
        **match: Any,
    ) -> None:
        """Answer ``method`` with API error ``code`` (``times`` times; None = always).

        ``{token}`` in ``message`` becomes the access token of the request: some real errors
        echo it."""
        with self._lock:
            self._scripts.append(
                Script(method, code, message, {k: str(v) for k, v in match.items()}, times, token)
            )

    def http_fault(
        self,
        method: str,
        *,
        status: int = 502,
        delay: float = 0.0,
        times: int | None = None,
        **match: Any,
    ) -> None:
        """Answer ``method`` (calls whose params contain ``match``) with an HTTP ``status``,
        after ``delay`` seconds."""
        match = {k: str(v) for k, v in match.items()}
        with self._lock:
            self._scripts.append(Script(method, 0, None, match, times, None, status, delay))

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()

    def methods(self, *, inner: bool = True) -> list[str]:
        return [c.method for c in self.calls if inner or not c.inner]

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> VkServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, payload, delay = server._handle(self.path, body)
                if delay:
                    time.sleep(delay)
                data = json.dumps(payload, ensure_ascii=False).encode() if payload else b"fault"
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
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

    def __enter__(self) -> VkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- dispatch --------------------------------------------------------------------------------
    def _handle(self, path: str, body: bytes) -> tuple[int, Any, float]:
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        method = path.split("?", 1)[0].removeprefix("/method/")
        token = params.pop("access_token", None)
        with self._lock:
            self.bodies.append(body)
            self.calls.append(Call(method, params, token))
            script = self._script(method, params, token, http=True)
        if script is not None:
            return script.status or 502, None, script.delay
        try:
            if self.tokens is not None and token not in self.tokens:
                raise ApiFailure(5)
            if params.get("v") != "5.199":
                raise ApiFailure(8, f"Invalid request: version {params.get('v')!r}")
            if method == "execute":
                return 200, self._execute(params.get("code", ""), token), 0.0
            return 200, {"response": self._call(method, params, token)}, 0.0
        except ApiFailure as failure:
            return 200, {"error": _error(failure, method, params)}, 0.0

    def _script(
        self, method: str, params: dict[str, str], token: str | None, *, http: bool
    ) -> Script | None:
        for script in self._scripts:
            if script.method != method or (script.status is not None) != http:
                continue
            if script.token is not None and script.token != token:
                continue
            if any(params.get(k) != v for k, v in script.match.items()):
                continue
            if script.times is not None:
                script.times -= 1
                if script.times <= 0:
                    self._scripts.remove(script)
            return script
        return None

    def _call(self, method: str, params: dict[str, str], token: str | None) -> Any:
        with self._lock:
            script = self._script(method, params, token, http=False)
        if script is not None:
            extra = {}
            if script.code == 14:
                extra = {"captcha_sid": "123", "captcha_img": "https://api.vk.ru/captcha.php?sid=1"}
            message = script.message.replace("{token}", token or "") if script.message else None
            raise ApiFailure(script.code, message, **extra)
        handler = {
            "wall.get": self._wall_get,
            "wall.getComments": self._get_comments,
            "groups.getById": self._groups_get_by_id,
            "utils.resolveScreenName": self._resolve,
            "newsfeed.search": self._search,
        }.get(method)
        if handler is None:
            raise ApiFailure(3, "Unknown method passed")
        with self._lock:
            return handler(params)

    def _execute(self, code: str, token: str | None) -> dict[str, Any]:
        results: list[Any] = []
        errors: list[dict[str, Any]] = []
        decoder = json.JSONDecoder()
        for match in _CALL.finditer(code):
            params, _ = decoder.raw_decode(code, match.end())
            params = {k: str(v) for k, v in params.items()}
            with self._lock:
                self.calls.append(Call(match.group(1), params, token, inner=True))
            try:
                results.append(self._call(match.group(1), params, token))
            except ApiFailure as failure:
                results.append(False)
                errors.append(
                    {
                        "method": match.group(1),
                        "error_code": failure.code,
                        "error_msg": failure.message,
                    }
                )
        if len(results) > 25:
            raise ApiFailure(13, "Runtime error occurred during code invocation: too many calls")
        answer: dict[str, Any] = {"response": results}
        if errors:
            answer["execute_errors"] = errors
        return answer

    # -- methods ---------------------------------------------------------------------------------
    def _owner(self, params: dict[str, str]) -> int:
        if "owner_id" in params:
            return int(params["owner_id"])
        found = self.screen_names.get(params.get("domain", "").lower())
        if found is None:
            raise ApiFailure(100, "One of the parameters specified was missing or invalid: domain")
        kind, number = found
        return number if kind == "user" else -number

    def _wall_get(self, params: dict[str, str]) -> dict[str, Any]:
        owner = self._owner(params)
        wall = self.walls.get(owner)
        if wall is None:
            raise ApiFailure(100, "One of the parameters specified was missing or invalid")
        posts = sorted(wall["posts"], key=lambda p: (not p.get("is_pinned"), -int(p["id"])))
        kind = params.get("filter", "all")
        if kind == "owner":
            posts = [p for p in posts if p.get("from_id") == owner]
        elif kind == "others":
            posts = [p for p in posts if p.get("from_id") != owner]
        offset, count = int(params.get("offset", 0)), min(100, int(params.get("count", 20)))
        page = posts[offset : offset + count]
        answer = {"count": len(posts), "items": page}
        if params.get("extended") == "1":
            answer.update(self._extended(p.get("from_id") for p in page))
        return answer

    def _get_comments(self, params: dict[str, str]) -> dict[str, Any]:
        owner, post = int(params["owner_id"]), int(params["post_id"])
        wall = self.walls.get(owner)
        if wall is None or not any(int(p["id"]) == post for p in wall["posts"]):
            raise ApiFailure(100, "One of the parameters specified was missing or invalid: post")
        every = sorted(wall["comments"].get(post, []), key=lambda c: int(c["id"]))
        likes = params.get("need_likes") == "1"
        branch = params.get("comment_id")
        if branch:
            level = [c for c in every if (c.get("parents_stack") or [None])[0] == int(branch)]
        else:
            level = [c for c in every if not c.get("parents_stack")]
        if params.get("sort") == "desc":
            level.reverse()
        start = params.get("start_comment_id")
        if start:
            level = [c for c in level if int(c["id"]) >= int(start)]
        offset, count = int(params.get("offset", 0)), min(100, int(params.get("count", 10)))
        page = [_shown(c, likes) for c in level[offset : offset + count]]
        inline = int(params.get("thread_items_count", 0))
        authors = [c.get("from_id") for c in page]
        if not branch:
            for item in page:
                replies = [c for c in every if (c.get("parents_stack") or [None])[0] == item["id"]]
                shown = [_shown(r, likes) for r in replies[: min(inline, 10)]]
                authors += [r.get("from_id") for r in shown]
                item["thread"] = {
                    "count": len(replies),
                    "items": shown,
                    "can_post": True,
                    "show_reply_button": True,
                    "groups_can_post": True,
                }
        answer: dict[str, Any] = {
            "count": len(every) if not branch else len(level),
            "items": page,
            "current_level_count": len(level),
            "can_post": True,
            "show_reply_button": True,
            "groups_can_post": True,
        }
        if params.get("extended") == "1":
            answer.update(self._extended(authors))
        return answer

    def _groups_get_by_id(self, params: dict[str, str]) -> dict[str, Any]:
        wanted = params.get("group_id") or params.get("group_ids", "")
        found = []
        for key in wanted.split(","):
            key = key.strip().lower()
            number = int(key) if key.isdigit() else (self.screen_names.get(key) or ("", 0))[1]
            if number not in self.groups:
                raise ApiFailure(100, "One of the parameters specified was missing or invalid")
            found.append(self.groups[number])
        return {"groups": found, "profiles": []}

    def _resolve(self, params: dict[str, str]) -> Any:
        found = self.screen_names.get(params.get("screen_name", "").lower())
        return {"type": found[0], "object_id": found[1]} if found else []

    def _search(self, params: dict[str, str]) -> dict[str, Any]:
        words = params.get("q", "").lower().split()
        start = int(params.get("start_time", 0))
        end = int(params.get("end_time", 2**40))
        items = [
            i
            for i in self.search_items
            if start <= int(i["date"]) <= end and all(w in i.get("text", "").lower() for w in words)
        ]
        if "latitude" in params:
            items = [i for i in items if i.get("geo")]
        items.sort(key=lambda i: -int(i["date"]))
        reachable = items[:1000]
        offset = int(params.get("start_from", "0").split("/")[0] or 0)
        count = min(200, int(params.get("count", 30)))
        page = reachable[offset : offset + count]
        answer: dict[str, Any] = {
            "items": page,
            "count": len(reachable),
            "total_count": len(items),
        }
        if offset + count < len(reachable):
            answer["next_from"] = f"{offset + count}/-1_0"
        if params.get("extended") == "1":
            answer.update(self._extended(i.get("from_id") for i in page))
        return answer

    def _extended(self, authors: Any) -> dict[str, Any]:
        ids = {int(a) for a in authors if a}
        return {
            "profiles": [self.profiles[i] for i in sorted(ids) if i in self.profiles],
            "groups": [self.groups[-i] for i in sorted(ids) if -i in self.groups],
        }


def load_wall(path: Path, newest: float | None = None) -> dict[str, Any]:
    """A wall JSON file; with ``newest`` every date moves so the newest post is that time."""
    data = json.loads(Path(path).read_text("utf-8"))
    if newest is not None:
        shift = int(newest) - max(int(p["date"]) for p in data["posts"])
        _shift(data, shift)
    return data


def _shift(node: Any, seconds: int) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("date", "edited") and isinstance(value, int):
                node[key] = value + seconds
            else:
                _shift(value, seconds)
    elif isinstance(node, list):
        for value in node:
            _shift(value, seconds)


def _shown(item: dict[str, Any], likes: bool) -> dict[str, Any]:
    shown = {k: v for k, v in item.items() if k != "likes" or likes}
    if likes:
        shown.setdefault("likes", {"count": 0, "user_likes": 0, "can_like": 1})
    return shown


def _error(failure: ApiFailure, method: str, params: dict[str, str]) -> dict[str, Any]:
    request_params = [{"key": "method", "value": method}, {"key": "oauth", "value": "1"}]
    request_params += [{"key": k, "value": v} for k, v in params.items() if k != "code"]
    return {
        "error_code": failure.code,
        "error_msg": failure.message,
        "request_params": request_params,
        **failure.extra,
    }


def main(argv: list[str] | None = None) -> int:
    """Serve every ``*.json`` wall of DIR until SIGTERM/SIGINT; print the base URL first."""
    parser = argparse.ArgumentParser(description="Local VK-compatible API server for Glas.")
    parser.add_argument("root", type=Path, help="directory of wall JSON files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"not a directory: {args.root}")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with VkServer(args.host, args.port) as server:
        for path in sorted(args.root.glob("*.json")):  # dates moved to the last hours
            server.add_wall(load_wall(path, newest=time.time() - 3600))
        print(server.url, flush=True)
        while not done.wait(0.1):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A VK wall (community or user): its posts and, optionally, every comment and reply.

Cursor: ``owner_id``; ``last_post_id`` (newest post collected); ``backlog`` (``[down_to,
below]``: post ids still to collect when a run hit ``max_posts`` or stopped half-way); ``open``
(post id → ``[published, last comment id, comment count]`` for posts whose comments are still
re-checked, i.e. published within ``comments_window``). A checkpoint follows every page of
posts and their comments, so a run cut short resumes where it stopped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from crawler.model import Checkpoint, Post, SourceConfig, SourceError, SourceInfo
from crawler.validators import Duration, duration_field, http_address
from spiders.vk_client import CallFailed, Unavailable, VkClient, check_env_names
from spiders.vk_mapping import Names, Officials, comment, flatten, wall_post

PAGE = 100
COMMENTS_PAGE = 100
THREAD_ITEMS = 10
MAX_OPEN = 1000  # posts whose comments are re-checked, newest kept
FIELDS = "screen_name"
RESOLVE_TTL = 3600.0  # seconds a screen name's owner id is kept (a warm process asks once)


class Options(SourceConfig):
    """Posts of a VK wall and the comments under them, through the VK API."""

    platform: ClassVar[str] = "vk"
    site_collections: ClassVar[int | None] = 25  # their calls share execute requests

    type: Literal["vk_wall"]
    owner: int | str = Field(
        ...,
        description="Whose wall: a numeric id (negative for a community, e.g. -61006621), "
        "club123/public123, or a screen name such as 'apiclub'.",
    )
    filter: Literal["owner", "others", "all"] = Field(
        "all", description="Posts by the owner, by others, or all."
    )
    comments: bool = Field(True, description="Collect every comment and reply under the posts.")
    comments_window: Duration = Field(
        timedelta(days=3),
        description="How long after publication a post's comments keep being re-checked.",
    )
    max_posts: int = Field(100, ge=1, le=10000, description="Posts collected per run at most.")
    token_env: str | list[str] = Field(
        "VK_TOKEN",
        description="Environment variable(s) holding the VK token; a variable may hold several "
        "tokens separated by commas. Used in turn.",
    )

    @field_validator("comments_window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value == 0:
                raise ValueError("owner 0 is no wall: use a user id, -community id or a name")
            return value
        if "://" in value:
            http_address(value.strip(), "owner")  # the address form: no credentials, no spaces
        text = re.sub(r"^(https?://)?(m\.)?vk\.(com|ru)/", "", value.strip()).strip("/")
        if not re.fullmatch(r"-?\d+|[A-Za-z0-9_.]+", text) or text.strip("-0") == "":
            raise ValueError(f"owner must be a numeric id or a VK screen name (got {value!r})")
        return int(text) if re.fullmatch(r"-?\d+", text) else text

    @field_validator("token_env")
    @classmethod
    def _env_names(cls, value: str | list[str]) -> str | list[str]:
        return check_env_names(value)


@dataclass
class Owner:
    id: int
    title: str | None = None
    url: str | None = None


_RESOLVED: dict[tuple[str, str], tuple[int, float]] = {}  # (API, name) → (owner id, when)


def resolve_owner(client: VkClient, owner: int | str) -> Owner:
    """The wall's numeric owner id (a screen name is resolved once an hour per process) and
    its title."""
    if isinstance(owner, str):
        match = re.fullmatch(r"(club|public|event|id)(\d+)", owner.lower())
        if match:
            number = int(match.group(2))
            owner = number if match.group(1) == "id" else -number
        else:
            owner = _resolve_name(client, owner)
    if owner > 0:
        return Owner(owner, None, f"https://vk.com/id{owner}")
    try:
        answer = client.call("groups.getById", group_id=-owner, fields="is_closed,deactivated")
    except SourceError as exc:
        if str(exc).startswith("VK error 100 "):  # invalid group id
            raise SourceError(f"VK has no community club{-owner}", gone=True) from None
        raise
    except Unavailable as exc:
        raise SourceError(f"community club{-owner} unavailable: {exc}", gone=True) from None
    groups = answer.get("groups") if isinstance(answer, dict) else answer
    group = groups[0] if groups else {}
    if group.get("deactivated"):
        raise SourceError(f"community club{-owner} is {group['deactivated']} on VK", gone=True)
    screen = group.get("screen_name") or f"club{-owner}"
    return Owner(owner, group.get("name"), f"https://vk.com/{screen}")


def _resolve_name(client: VkClient, name: str) -> int:
    key = (client.base, name.lower())
    known = _RESOLVED.get(key)
    if known is not None and time.monotonic() - known[1] < RESOLVE_TTL:
        return known[0]
    found = client.call("utils.resolveScreenName", screen_name=name)
    if not isinstance(found, dict) or not found.get("object_id"):
        raise SourceError(f"VK has no page named '{name}' (vk.com/{name})", gone=True)
    number = int(found["object_id"])
    owner = number if found.get("type") == "user" else -number
    _RESOLVED[key] = (owner, time.monotonic())
    return owner


@dataclass
class _Task:
    """One pending wall.getComments call: a page of a post's comments or of one branch."""

    post: int
    offset: int = 0
    branch: int | None = None


@dataclass
class _Progress:
    last: int
    count: int
    seen_max: int = 0
    total: int | None = None
    failed: bool = False
    gone: bool = False


@dataclass
class _Wall:
    collection: Any
    client: VkClient
    owner: int
    officials: Officials
    names: Names = field(default_factory=Names)

    def comments(self, targets: dict[int, tuple[int, int]]) -> Iterator[Post]:
        """Comments of ``targets`` (post id → (last comment id seen, count seen)), fetched
        in rounds of batched calls; ``self.done`` tells the outcome per post afterwards."""
        self.done: dict[int, _Progress] = {
            post: _Progress(last, count) for post, (last, count) in targets.items()
        }
        pending = [_Task(post) for post in targets]
        while pending:
            calls = [("wall.getComments", self._params(task)) for task in pending]
            results = self.client.batch(calls)
            later: list[_Task] = []
            for task, result in zip(pending, results, strict=True):
                yield from self._take(task, result, later)
            pending = later

    def _params(self, task: _Task) -> dict[str, Any]:
        params: dict[str, Any] = {
            "owner_id": self.owner,
            "post_id": task.post,
            "offset": task.offset,
            "count": COMMENTS_PAGE,
            "sort": "asc",
            "need_likes": 1,
            "preview_length": 0,
            "extended": 1,
            "fields": FIELDS,
        }
        if task.branch is None:
            params["thread_items_count"] = THREAD_ITEMS
        else:
            params["comment_id"] = task.branch
        return params

    def _take(self, task: _Task, result: Any, later: list[_Task]) -> Iterator[Post]:
        progress = self.done[task.post]
        where = f"post {self.owner}_{task.post}"
        if isinstance(result, Unavailable):
            self.collection.warn(f"comments of {where} unavailable: {result}")
            progress.failed = progress.gone = True
            return
        if isinstance(result, CallFailed) or not isinstance(result, dict):
            self.collection.warn(f"comments of {where} not read ({result}); retried next run")
            progress.failed = True
            return
        self.names.add(result)
        items = [i for i in result.get("items") or [] if isinstance(i, dict) and "id" in i]
        if task.branch is None and task.offset == 0:
            progress.total = int(result.get("count") or 0)
            if progress.total == progress.count and progress.last:
                return  # nothing new under this post since the last run
        if task.branch is not None:
            items = [{**i, "parents_stack": i.get("parents_stack") or [task.branch]} for i in items]
        for item in flatten(items):
            number = int(item["id"])
            progress.seen_max = max(progress.seen_max, number)
            if number > progress.last or item.get("deleted"):
                yield comment(item, self.owner, task.post, self.names, self.officials)
        for item in items if task.branch is None else []:
            thread = item.get("thread") or {}
            inline = len(thread.get("items") or [])
            if int(thread.get("count") or 0) > inline:
                later.append(_Task(task.post, inline, branch=int(item["id"])))
        level = int(result.get("current_level_count") or result.get("count") or 0)
        if items and task.offset + len(items) < level:
            later.append(_Task(task.post, task.offset + len(items), task.branch))


def collect(collection: Any) -> Iterator[Post | Checkpoint | SourceInfo]:
    """Collect one wall: new posts (newest first), then comments, checkpoint per page."""
    try:
        yield from _collect(collection)
    except Unavailable as exc:  # the owner's page itself (comments failing are warnings)
        raise SourceError(f"{collection.source.owner} unavailable: {exc}", gone=True) from None


def _collect(collection: Any) -> Iterator[Post | Checkpoint | SourceInfo]:
    options: Options = collection.source
    client = VkClient.for_collection(collection)
    owner = resolve_owner(client, options.owner)
    yield SourceInfo(title=owner.title, url=owner.url)
    cursor = dict(collection.cursor) if collection.cursor.get("owner_id") == owner.id else {}
    wall = _Wall(
        collection, client, owner.id, Officials.parse(collection.official_accounts.get("vk", []))
    )
    state = _ScanState.from_cursor(cursor)
    window = options.comments_window.total_seconds()
    offset = 0
    while not state.finished:
        try:
            answer = client.call(
                "wall.get",
                owner_id=owner.id,
                offset=offset,
                count=PAGE,
                filter=options.filter,
                extended=1,
                fields=FIELDS,
            )
        except Unavailable as exc:
            raise SourceError(
                f"wall {owner.url or owner.id} unavailable: {exc}", gone=True
            ) from None
        wall.names.add(answer)
        items = [i for i in answer.get("items") or [] if isinstance(i, dict) and "id" in i]
        taken = state.scan(items, options.max_posts)
        offset += len(items)
        if state.limited:
            state.stop_for_limit(collection, options.max_posts)
        elif not items or offset >= int(answer.get("count") or 0):
            state.reach_end()
        for item in taken:
            yield wall_post(item, wall.names)
        if options.comments:
            targets = {}
            for item in taken:
                count = int((item.get("comments") or {}).get("count") or 0)
                if time.time() - int(item.get("date") or 0) < window:
                    state.open[str(item["id"])] = [int(item.get("date") or 0), 0, 0]
                if count:
                    targets[int(item["id"])] = (0, -1)
            yield from _comments(wall, state, targets)
        yield Checkpoint(state.cursor(owner.id, window))
    if options.comments:
        now = time.time()
        recheck = {
            int(post): (entry[1], entry[2])
            for post, entry in state.open.items()
            if now - entry[0] < window and int(post) not in state.collected
        }
        if recheck:
            yield from _comments(wall, state, recheck)
            yield Checkpoint(state.cursor(owner.id, window))


def _comments(
    wall: _Wall, state: _ScanState, targets: dict[int, tuple[int, int]]
) -> Iterator[Post]:
    """Comments of ``targets``; the open map records how far each post was read."""
    if not targets:
        return
    yield from wall.comments(targets)
    for post, progress in wall.done.items():
        key = str(post)
        if progress.gone:
            state.open.pop(key, None)
        elif not progress.failed and key in state.open:
            entry = state.open[key]
            total = progress.total if progress.total is not None else entry[2]
            state.open[key] = [entry[0], max(entry[1], progress.seen_max), total]


@dataclass
class _ScanState:
    """Which posts a scan takes, and the cursor that covers what it has yielded so far."""

    last: int  # newest post id collected before this run (0: first run)
    backlog: tuple[int, int] | None  # (down_to, below): ids strictly between still to collect
    open: dict[str, list[int]]
    newest: int = 0
    floor: int | None = None  # lowest post id examined in this run
    finished: bool = False
    limited: bool = False
    taken: int = 0
    collected: set[int] = field(default_factory=set)

    @classmethod
    def from_cursor(cls, cursor: dict[str, Any]) -> _ScanState:
        backlog = cursor.get("backlog")
        return cls(
            last=int(cursor.get("last_post_id") or 0),
            backlog=(int(backlog[0]), int(backlog[1])) if backlog else None,
            open={str(k): list(v) for k, v in (cursor.get("open") or {}).items()},
        )

    @property
    def stop_at(self) -> int:
        """Post ids at or below this end the scan."""
        return self.backlog[0] if self.backlog else self.last

    def wanted(self, post: int) -> bool:
        if post > self.last:
            return True
        return self.backlog is not None and self.backlog[0] < post < self.backlog[1]

    def scan(self, items: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
        """Posts of one wall.get page to collect; marks the scan finished where it ends."""
        taken = []
        for item in items:
            post = int(item["id"])
            if post in self.collected:
                continue  # shifted into this page by a post published meanwhile
            if post <= self.stop_at and self.stop_at and not item.get("is_pinned"):
                self.finished = True
                self.backlog = None
                break
            if not self.wanted(post):
                continue  # pinned, or collected by an earlier run
            if self.taken >= limit:
                self.limited = True
                break
            taken.append(item)
            self.collected.add(post)
            self.taken += 1
            self.newest = max(self.newest, post)
            if not item.get("is_pinned"):
                self.floor = post if self.floor is None else min(self.floor, post)
        return taken

    def reach_end(self) -> None:
        self.finished = True
        self.backlog = None

    def stop_for_limit(self, collection: Any, limit: int) -> None:
        self.finished = True
        if self.last:
            collection.warn(
                f"more than max_posts ({limit}) new posts since the last run: the newest "
                f"{limit} collected, older ones follow in the next runs"
            )

    def cursor(self, owner: int, window: float) -> dict[str, Any]:
        """The cursor covering every post yielded so far (a scan may still be going)."""
        if not self.last and not self.finished:
            return {}  # a first run cut short starts again from the top (re-storing is harmless)
        backlog = self.backlog
        if not self.finished or self.limited:
            down_to = self.backlog[0] if self.backlog else self.last
            if self.last and self.floor is not None:  # a first run leaves older history alone
                backlog = (down_to, self.floor)
        now = time.time()
        kept = sorted(
            ((k, v) for k, v in self.open.items() if now - v[0] < window),
            key=lambda kv: int(kv[0]),
        )[-MAX_OPEN:]
        return {
            "owner_id": owner,
            "last_post_id": max(self.last, self.newest),
            "backlog": list(backlog) if backlog else None,
            "open": dict(kept),
        }

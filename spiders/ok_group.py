"""An OK (Odnoklassniki) group: its topics and, optionally, every comment under them.

Methods (apiok.ru): ``url.getInfo`` (a short name → group id), ``group.getInfo`` (title;
an empty answer or errors 160/300 mean there is no such group), ``mediatopic.getTopics``
(``gid``, ``count``, ``anchor`` + ``direction=FORWARD`` to page from the newest topic to older
ones, ``has_more``), ``mediatopic.getByIds`` (comment counts of topics still in the window)
and ``discussions.getComments`` (``discussionType=GROUP_TOPIC``, ``anchor=FIRST`` then the
answer's ``anchor`` with ``direction=FORWARD``, ``includeRemoved``).

Cursor: ``group_id``; ``newest_ms`` (creation time of the newest topic collected);
``backlog`` (``[down_to, below]`` in ms: topics still to collect when a run hit ``max_posts``
or stopped half-way); ``open`` (topic id → ``[published s, newest comment ms, comment count]``
for topics whose comments are re-checked, i.e. published within ``comments_window``). A
checkpoint follows every page of topics and their comments.
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
from spiders.ok_client import OkClient, Unavailable
from spiders.ok_mapping import (
    Entities,
    Officials,
    comment,
    comment_time,
    comments_count,
    millis,
    topic_post,
)

PAGE = 50
COMMENTS_PAGE = 100
BY_IDS = 100  # topics per mediatopic.getByIds call
MAX_OPEN = 1000
TOPIC_FIELDS = "media_topic.*,user.uid,user.name,group.uid,group.name,place.*"
COMMENT_FIELDS = "comment.*,user.uid,user.name,group.uid,group.name"
_GROUP_URL = re.compile(r"^(?:https?://)?(?:m\.)?ok\.ru/(?:group/(\d+)|([A-Za-z0-9_.]+))/?$")


class Options(SourceConfig):
    """Topics of an OK group and the comments under them, through OK's REST API."""

    platform: ClassVar[str] = "ok"

    type: Literal["ok_group"]
    group: int | str = Field(
        ...,
        description="The group: its numeric id (53038939046008), https://ok.ru/group/<id>, "
        "or its short address (https://ok.ru/zarechny or zarechny).",
    )
    comments: bool = Field(True, description="Collect every comment under the topics.")
    comments_window: Duration = Field(
        timedelta(days=3),
        description="How long after publication a topic's comments keep being re-checked.",
    )
    max_posts: int = Field(100, ge=1, le=10000, description="Topics collected per run at most.")
    app_key_env: str = Field(
        "OK_APP_KEY", description="Environment variable holding the application's public key."
    )
    secret_key_env: str = Field(
        "OK_APP_SECRET_KEY",
        description="Environment variable holding the application's secret key.",
    )
    token_env: str = Field(
        "OK_ACCESS_TOKEN", description="Environment variable holding the access token."
    )

    @field_validator("comments_window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("group")
    @classmethod
    def _group(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value <= 0:
                raise ValueError("group must be a positive OK group id or an ok.ru address")
            return value
        text = value.strip()
        if "://" in text:
            http_address(text, "group")
        if re.fullmatch(r"\d+", text):
            return int(text)
        match = _GROUP_URL.match(text) or re.fullmatch(r"([A-Za-z0-9_.]+)", text)
        if not match:
            raise ValueError(f"group must be an OK group id or an ok.ru address (got {value!r})")
        groups = [g for g in match.groups() if g]
        return int(groups[0]) if groups[0].isdigit() else groups[0]

    @field_validator("app_key_env", "secret_key_env", "token_env")
    @classmethod
    def _env_names(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            # The value is not echoed: it may be a secret pasted in by mistake.
            raise ValueError(
                "expected the name of an environment variable (letters, digits, _), such as "
                "OK_ACCESS_TOKEN; the secret itself goes into that variable, never into "
                "sources.yaml"
            )
        return value


@dataclass
class Group:
    id: str
    title: str | None
    url: str


def resolve_group(client: OkClient, group: int | str) -> Group:
    """The group's id (a short name is resolved by ``url.getInfo``) and title."""
    if isinstance(group, str):
        found = _call(client, f"ok.ru/{group}", "url.getInfo", url=f"https://ok.ru/{group}")
        if not isinstance(found, dict) or str(found.get("type", "")).upper() != "GROUP":
            raise SourceError(f"OK has no group at ok.ru/{group}", gone=True)
        group = int(found.get("objectId") or 0)
    gid = str(group)
    where = f"group {gid}"
    try:
        info = client.call("group.getInfo", uids=gid, fields="uid,name,shortname,access_type")
    except Unavailable:
        raise SourceError(f"OK has no group {gid} (ok.ru/group/{gid})", gone=True) from None
    if not isinstance(info, list):
        raise SourceError(f"not an OK API answer to group.getInfo for {where}")
    if not info or not isinstance(info[0], dict):
        raise SourceError(
            f"OK has no group {gid} (ok.ru/group/{gid}): closed or deleted", gone=True
        )
    short = info[0].get("shortname")
    url = f"https://ok.ru/{short}" if short else f"https://ok.ru/group/{gid}"
    return Group(gid, info[0].get("name"), url)


def _call(client: OkClient, where: str, method: str, **params: Any) -> Any:
    try:
        return client.call(method, **params)
    except Unavailable as exc:
        raise SourceError(f"{where} unavailable: {exc}", gone=True) from None


def collect(collection: Any) -> Iterator[Post | Checkpoint | SourceInfo]:
    """Collect one group: new topics (newest first), then comments, checkpoint per page."""
    options: Options = collection.source
    client = OkClient.for_collection(collection)
    group = resolve_group(client, options.group)
    yield SourceInfo(title=group.title, url=group.url)
    cursor = dict(collection.cursor) if collection.cursor.get("group_id") == group.id else {}
    reader = _Reader(
        collection, client, group, Officials.parse(collection.official_accounts.get("ok", []))
    )
    state = _Scan.from_cursor(cursor)
    window = options.comments_window.total_seconds()
    anchor: str | None = None
    while not state.finished:
        answer = _call(
            client,
            f"group {group.url}",
            "mediatopic.getTopics",
            gid=group.id,
            count=PAGE,
            anchor=anchor,
            direction="FORWARD" if anchor else None,
            fields=TOPIC_FIELDS,
        )
        items = _list(answer, "media_topics", "mediatopic.getTopics", group)
        reader.entities.add(answer)
        taken = state.scan(items, options.max_posts)
        anchor = answer.get("anchor")
        if state.limited:
            state.stop_for_limit(collection, options.max_posts)
        elif not items or not answer.get("has_more") or not anchor:
            state.reach_end()
        for item in taken:
            yield topic_post(item, group.id, reader.entities)
        if options.comments:
            targets = {}
            for item in taken:
                published = int(item.get("created_ms") or 0) // 1000
                if time.time() - published < window:
                    state.open[str(item["id"])] = [published, 0, 0]
                if comments_count(item):
                    targets[str(item["id"])] = (0, -1)
            yield from reader.comments(state, targets)
        yield Checkpoint(state.cursor(group.id, window))
    if options.comments:
        now = time.time()
        recheck = [
            topic
            for topic, entry in state.open.items()
            if now - entry[0] < window and topic not in state.collected
        ]
        if recheck:
            targets = reader.changed(state, recheck)
            yield from reader.comments(state, targets)
            yield Checkpoint(state.cursor(group.id, window))


def _list(answer: Any, key: str, method: str, group: Group) -> list[dict[str, Any]]:
    """The answer's list of items with ids; anything else is a malformed answer."""
    items = answer.get(key) if isinstance(answer, dict) else None
    if items is None and isinstance(answer, dict) and "has_more" in answer:
        items = []
    if not isinstance(items, list):
        raise SourceError(f"not an OK API answer to {method} for group {group.id}: no '{key}' list")
    return [i for i in items if isinstance(i, dict) and i.get("id") is not None]


@dataclass
class _Reader:
    """Comments of a group's topics, and which topics have new ones."""

    collection: Any
    client: OkClient
    group: Group
    officials: Officials
    entities: Entities = field(default_factory=Entities)

    def changed(self, state: _Scan, topics: list[str]) -> dict[str, tuple[int, int]]:
        """Open topics whose comment count differs from the cursor's (mediatopic.getByIds)."""
        targets = {}
        for start in range(0, len(topics), BY_IDS):
            chunk = topics[start : start + BY_IDS]
            try:
                answer = self.client.call(
                    "mediatopic.getByIds",
                    topic_ids=",".join(chunk),
                    media_limit=1,
                    fields="media_topic.*",
                )
            except Unavailable as exc:
                self.collection.warn(f"topics of group {self.group.id} not re-checked: {exc}")
                continue
            found = {
                str(i["id"]): i
                for i in _list(answer, "media_topics", "mediatopic.getByIds", self.group)
            }
            for topic in chunk:
                entry = state.open[topic]
                if topic not in found:  # deleted meanwhile: stop re-checking it
                    state.open.pop(topic, None)
                elif comments_count(found[topic]) != entry[2]:
                    targets[topic] = (entry[1], entry[2])
        return targets

    def comments(self, state: _Scan, targets: dict[str, tuple[int, int]]) -> Iterator[Post]:
        """Comments of ``targets`` (topic → (newest comment ms seen, count seen)) newer than
        what was seen, and removed ones; the open map records how far each topic was read."""
        for topic, (last, _count) in targets.items():
            newest, seen, gone = last, 0, False
            anchor = "FIRST"
            while True:
                try:
                    answer = self.client.call(
                        "discussions.getComments",
                        discussionId=topic,
                        discussionType="GROUP_TOPIC",
                        anchor=anchor,
                        direction="FORWARD",
                        count=COMMENTS_PAGE,
                        includeRemoved="true",
                        fields=COMMENT_FIELDS,
                    )
                except Unavailable as exc:
                    self.collection.warn(
                        f"comments of topic {self.group.id}_{topic} unavailable: {exc}"
                    )
                    gone = True
                    break
                items = _list(answer, "comments", "discussions.getComments", self.group)
                self.entities.add(answer)
                for item in items:
                    post = comment(item, self.group.id, topic, self.entities, self.officials)
                    seen += not post.deleted  # comments_count counts the comments still there
                    moment = millis(comment_time(item))
                    newest = max(newest, moment)
                    if moment > last or post.deleted:
                        yield post
                anchor = answer.get("anchor")
                if not items or not answer.get("has_more") or not anchor:
                    break
            if gone:
                state.open.pop(topic, None)
            elif topic in state.open:
                state.open[topic] = [state.open[topic][0], newest, seen]


@dataclass
class _Scan:
    """Which topics a scan takes, and the cursor that covers what it has yielded so far."""

    last: int  # creation ms of the newest topic collected before this run (0: first run)
    backlog: tuple[int, int] | None  # (down_to, below): creation ms strictly between to collect
    open: dict[str, list[int]]
    newest: int = 0
    floor: int | None = None
    finished: bool = False
    limited: bool = False
    taken: int = 0
    collected: set[str] = field(default_factory=set)

    @classmethod
    def from_cursor(cls, cursor: dict[str, Any]) -> _Scan:
        backlog = cursor.get("backlog")
        return cls(
            last=int(cursor.get("newest_ms") or 0),
            backlog=(int(backlog[0]), int(backlog[1])) if backlog else None,
            open={str(k): [int(x) for x in v] for k, v in (cursor.get("open") or {}).items()},
        )

    @property
    def stop_at(self) -> int:
        return self.backlog[0] if self.backlog else self.last

    def wanted(self, moment: int) -> bool:
        if moment > self.last:
            return True
        return self.backlog is not None and self.backlog[0] < moment < self.backlog[1]

    def scan(self, items: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
        """Topics of one page to collect; marks the scan finished where it ends (a pinned
        topic, listed first whatever its age, does not end it)."""
        taken = []
        for item in items:
            key, moment = str(item["id"]), int(item.get("created_ms") or 0)
            if key in self.collected:
                continue
            if self.stop_at and moment <= self.stop_at and not item.get("pinned"):
                self.finished = True
                self.backlog = None
                break
            if not self.wanted(moment):
                continue
            if self.taken >= limit:
                self.limited = True
                break
            taken.append(item)
            self.collected.add(key)
            self.taken += 1
            self.newest = max(self.newest, moment)
            if not item.get("pinned"):
                self.floor = moment if self.floor is None else min(self.floor, moment)
        return taken

    def reach_end(self) -> None:
        self.finished = True
        self.backlog = None

    def stop_for_limit(self, collection: Any, limit: int) -> None:
        self.finished = True
        if self.last:
            collection.warn(
                f"more than max_posts ({limit}) new topics since the last run: the newest "
                f"{limit} collected, older ones follow in the next runs"
            )

    def cursor(self, group: str, window: float) -> dict[str, Any]:
        """The cursor covering every topic yielded so far (a scan may still be going)."""
        if not self.last and not self.finished:
            return {}  # a first run cut short starts again from the top
        backlog = self.backlog
        if not self.finished or self.limited:
            down_to = self.backlog[0] if self.backlog else self.last
            if self.last and self.floor is not None:
                backlog = (down_to, self.floor)
        now = time.time()
        kept = sorted(
            ((k, v) for k, v in self.open.items() if now - v[0] < window), key=lambda kv: kv[1][0]
        )[-MAX_OPEN:]
        return {
            "group_id": group,
            "newest_ms": max(self.last, self.newest),
            "backlog": list(backlog) if backlog else None,
            "open": dict(kept),
        }

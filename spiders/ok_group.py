"""An OK (Odnoklassniki) group: its topics and, optionally, every comment under them.

Methods (apiok.ru, documented there): ``url.getInfo`` (a short address → group id),
``group.getInfo`` (title; an empty answer or errors 160/300 mean there is no such group),
``group.getStatTopics`` (the group's topics, newest first, with ``id``, ``created_ms`` and the
counters ``comments``, ``likes``, ``reshares``, ``views``; paged by ``anchor``),
``mediatopic.getByIds`` (the content of new topics, up to 100 at once with ``media_limit=3``)
and ``discussions.getComments`` (``discussionType=GROUP_TOPIC``, ``anchor=FIRST`` then the
answer's ``anchor`` with ``direction=FORWARD``, ``includeRemoved``). The topic list also brings
the comment counts of the topics still inside ``comments_window``: a thread is read again only
when its count changed.

Cursor: ``group_id``; ``newest_ms`` (creation time of the newest topic collected);
``backlog`` (``[down_to, below]`` in ms: topics still to collect when a run hit ``max_posts``
or stopped half-way); ``open`` (topic id → ``[published s, newest comment ms, comment count]``
for topics whose comments are re-checked). A checkpoint follows every page of topics and their
comments.
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
STAT_FIELDS = "id,created_ms,comments,likes,reshares,views"
TOPIC_FIELDS = "media_topic.*,user.uid,user.name,group.uid,group.name,place.*"
COMMENT_FIELDS = "comment.*,user.uid,user.name,group.uid,group.name"
_PAGING = {"anchor", "has_more", "entities", "totalCount", "total_count"}
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
    client = OkClient.for_collection(collection)
    try:
        yield from _collect(collection, client)
    finally:
        client.close()


def _collect(collection: Any, client: OkClient) -> Iterator[Post | Checkpoint | SourceInfo]:
    options: Options = collection.source
    group = resolve_group(client, options.group)
    yield SourceInfo(title=group.title, url=group.url)
    cursor = dict(collection.cursor) if collection.cursor.get("group_id") == group.id else {}
    reader = _Reader(
        collection, client, group, Officials.parse(collection.official_accounts.get("ok", []))
    )
    window = options.comments_window.total_seconds()
    horizon = int((time.time() - window) * 1000) if options.comments else None
    state = _Scan.from_cursor(cursor, horizon)
    anchor: str | None = None
    while not state.finished:
        answer = _call(
            client,
            f"group {group.url}",
            "group.getStatTopics",
            gid=group.id,
            fields=STAT_FIELDS,
            count=PAGE,
            anchor=anchor,
        )
        stats = _list(answer, "topics", "group.getStatTopics", group)
        taken, recheck = state.scan(stats, options.max_posts)
        anchor = answer.get("anchor")
        if state.limited:
            state.stop_for_limit(collection, options.max_posts)
        elif not stats or answer.get("has_more") is False or not anchor:
            state.reach_end()
        targets = {}
        for stat, topic in reader.topics(taken):
            yield topic_post(topic, group.id, reader.entities)
            published = int(stat.get("created_ms") or 0) // 1000
            if options.comments and time.time() - published < window:
                state.open[str(stat["id"])] = [published, 0, 0]
            if options.comments and _count(stat, topic):
                targets[str(stat["id"])] = (0, -1)
        for stat in recheck:
            entry = state.open.get(str(stat["id"]))
            if entry is not None and _count(stat, {}) != entry[2]:
                targets[str(stat["id"])] = (entry[1], entry[2])
        yield from reader.comments(state, targets)
        yield Checkpoint(state.cursor(group.id, window))


def _count(stat: dict[str, Any], topic: dict[str, Any]) -> int:
    """Comments of a topic: the statistics' counter, else the topic's discussion summary."""
    value = stat.get("comments")
    return int(value) if isinstance(value, int) else comments_count(topic)


def _list(answer: Any, key: str, method: str, group: Group) -> list[dict[str, Any]]:
    """The answer's list of items with ids; anything else is a malformed answer. OK leaves
    the list out when it is empty: an object holding nothing but paging is an empty page."""
    items = answer.get(key) if isinstance(answer, dict) else None
    if items is None and isinstance(answer, dict) and set(answer) <= _PAGING:
        items = []
    if not isinstance(items, list):
        raise SourceError(f"not an OK API answer to {method} for group {group.id}: no '{key}' list")
    return [i for i in items if isinstance(i, dict) and i.get("id") is not None]


@dataclass
class _Reader:
    """The content and the comments of a group's topics."""

    collection: Any
    client: OkClient
    group: Group
    officials: Officials
    entities: Entities = field(default_factory=Entities)

    def topics(
        self, stats: list[dict[str, Any]]
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(statistics, media topic) of each topic, the content read by mediatopic.getByIds;
        a topic deleted meanwhile is skipped. Counters missing from the topic come from the
        statistics."""
        for start in range(0, len(stats), BY_IDS):
            chunk = stats[start : start + BY_IDS]
            answer = _call(
                self.client,
                f"group {self.group.url}",
                "mediatopic.getByIds",
                topic_ids=",".join(str(s["id"]) for s in chunk),
                media_limit=3,
                fields=TOPIC_FIELDS,
            )
            found = {
                str(i["id"]): i
                for i in _list(answer, "media_topics", "mediatopic.getByIds", self.group)
            }
            self.entities.add(answer)
            for stat in chunk:
                topic = found.get(str(stat["id"]))
                if topic is not None:
                    yield stat, _with_counters(topic, stat)

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


def _with_counters(topic: dict[str, Any], stat: dict[str, Any]) -> dict[str, Any]:
    merged = {"created_ms": stat.get("created_ms"), **topic}
    for key, summary, field_name in (
        ("likes", "like_summary", "count"),
        ("reshares", "reshare_summary", "count"),
        ("comments", "discussion_summary", "comments_count"),
    ):
        if not isinstance(merged.get(summary), dict) and isinstance(stat.get(key), int):
            merged[summary] = {field_name: stat[key]}
    if not isinstance(merged.get("views_count"), int) and isinstance(stat.get("views"), int):
        merged["views_count"] = stat["views"]
    return merged


@dataclass
class _Scan:
    """Which topics a scan takes, which it re-checks, and the cursor that covers what it has
    yielded so far."""

    last: int  # creation ms of the newest topic collected before this run (0: first run)
    backlog: tuple[int, int] | None  # (down_to, below): creation ms strictly between to collect
    open: dict[str, list[int]]
    horizon: int | None = None  # topics created since (ms) have their comment counts compared
    newest: int = 0
    floor: int | None = None
    passed: bool = False  # the scan went below every topic still to collect
    finished: bool = False
    limited: bool = False
    taken: int = 0
    collected: set[str] = field(default_factory=set)

    @classmethod
    def from_cursor(cls, cursor: dict[str, Any], horizon: int | None) -> _Scan:
        backlog = cursor.get("backlog")
        return cls(
            last=int(cursor.get("newest_ms") or 0),
            backlog=(int(backlog[0]), int(backlog[1])) if backlog else None,
            open={str(k): [int(x) for x in v] for k, v in (cursor.get("open") or {}).items()},
            horizon=horizon,
        )

    @property
    def stop_at(self) -> int:
        return self.backlog[0] if self.backlog else self.last

    def wanted(self, moment: int) -> bool:
        if moment > self.last:
            return True
        return self.backlog is not None and self.backlog[0] < moment < self.backlog[1]

    def scan(
        self, items: list[dict[str, Any]], limit: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Topics of one page (newest first) to collect, and known ones inside the comments
        window whose counts to compare; marks the scan finished where it ends."""
        taken, recheck = [], []
        for item in items:
            key, moment = str(item["id"]), int(item.get("created_ms") or 0)
            if key in self.collected:
                continue  # shifted into this page by a topic published meanwhile
            if self.stop_at and moment <= self.stop_at:
                self.passed = True
                self.backlog = None
                if self.horizon is None or moment < self.horizon:
                    self.finished = True
                    break
            if not self.wanted(moment):
                if key in self.open:
                    recheck.append(item)
                continue
            if self.taken >= limit:
                self.limited = True
                break
            taken.append(item)
            self.collected.add(key)
            self.taken += 1
            self.newest = max(self.newest, moment)
            self.floor = moment if self.floor is None else min(self.floor, moment)
        return taken, recheck

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
        if self.limited or not (self.finished or self.passed):
            down_to = self.backlog[0] if self.backlog else self.last
            if self.last and self.floor is not None:  # a first run leaves older history alone
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

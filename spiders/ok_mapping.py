"""OK API objects → Posts (pure: no network).

Shapes (apiok.ru field sets ``media_topic.*``, ``group.*``, ``user.*``, ``place.*``, and the
``discussions.getComments`` comment bean as public OK clients read it): a media topic has
``id``, ``created_ms``, ``author_ref``/``owner_ref`` (``user:<uid>`` or ``group:<gid>``), ``media``
blocks (``{"type": "text", "text": …}``, ``photo``, ``link`` with ``url``, ``place`` with
``place_ref``, ``reshare`` with ``reshared_topic_ref``), ``discussion_summary.comments_count``,
``like_summary.count``, ``reshare_summary.count`` and ``views_count``; authors and
places come in the answer's ``entities`` (``users``/``groups`` with ``uid`` and ``name``,
``places`` with ``id``, ``name``, ``latitude``, ``longitude``). A comment has ``id`` (opaque),
``author_id`` (or ``author_ref`` ``group:<gid>`` when written as a group), ``text``,
``created_ms`` or ``date`` (``YYYY-MM-DD HH:MM:SS``, Moscow time), ``like_count``,
``reply_to_comment_id`` and, for a removed comment kept by ``includeRemoved``, ``deleted``.

Ids: a topic is ``<owner id>_<topic id>`` (``53038939046008_155010000000003``), a comment
``<owner id>_<topic id>_c<comment id>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from crawler.model import Post

MOSCOW = ZoneInfo("Europe/Moscow")
_REF = re.compile(r"^(user|group|media_topic|place):(\S+)$")
_OFFICIAL = re.compile(r"^(?:(?:https?://)?(?:m\.)?ok\.ru/)?(?:(group|profile)/)?(\d+)/?$")


def ref(value: Any) -> tuple[str, str] | None:
    """``"group:123"`` → ``("group", "123")``."""
    match = _REF.match(str(value or ""))
    return (match.group(1), match.group(2)) if match else None


@dataclass
class Entities:
    """Names and places of the ``entities`` of answers seen so far."""

    names: dict[str, str] = field(default_factory=dict)  # uid or gid → name
    places: dict[str, dict[str, Any]] = field(default_factory=dict)
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, answer: Any) -> Entities:
        found = answer.get("entities") if isinstance(answer, dict) else None
        if not isinstance(found, dict):
            return self
        for kind in ("users", "groups"):
            for item in found.get(kind) or []:
                if isinstance(item, dict) and item.get("uid") and item.get("name"):
                    self.names[str(item["uid"])] = str(item["name"])
        for place in found.get("places") or []:
            if isinstance(place, dict) and place.get("id"):
                self.places[str(place["id"])] = place
        for topic in found.get("media_topics") or []:
            if isinstance(topic, dict) and topic.get("id"):
                self.topics[str(topic["id"])] = topic
        return self


@dataclass(frozen=True)
class Officials:
    """Accounts of ``official_accounts: ok:``: user or group ids, as numbers or ok.ru links."""

    ids: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[int | str]) -> Officials:
        ids = set()
        for entry in entries:
            match = _OFFICIAL.match(str(entry).strip().lower())
            if match:
                ids.add(match.group(2))
        return cls(frozenset(ids))


def utc_ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None
    except (TypeError, ValueError, OverflowError):
        return None


def comment_time(item: dict[str, Any]) -> datetime | None:
    """``created_ms``, else ``date`` read as Moscow time."""
    if item.get("created_ms"):
        return utc_ms(item["created_ms"])
    try:
        local = datetime.strptime(str(item.get("date") or ""), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return local.replace(tzinfo=MOSCOW).astimezone(UTC)


def millis(moment: datetime | None) -> int:
    return int(moment.timestamp() * 1000) if moment else 0


def _owner(topic: dict[str, Any], default: str) -> tuple[str, str]:
    found = ref(topic.get("owner_ref"))
    return found if found else ("group", default)


def topic_id(owner: str, topic: Any) -> str:
    return f"{owner}_{topic}"


def topic_url(kind: str, owner: str, topic: Any) -> str:
    if kind == "user":
        return f"https://ok.ru/profile/{owner}/statuses/{topic}"
    return f"https://ok.ru/group/{owner}/topic/{topic}"


def topic_post(item: dict[str, Any], group: str, entities: Entities | None = None) -> Post:
    """A ``mediatopic.getByIds`` topic as a Post."""
    entities = entities or Entities()
    kind, owner = _owner(item, group)
    number = str(item["id"])
    author = ref(item.get("author_ref")) or (kind, owner)
    media = [m for m in item.get("media") or [] if isinstance(m, dict)]
    text = "\n\n".join(
        str(m.get("text")).strip() for m in media if m.get("type") == "text" and m.get("text")
    )
    repost_of = None
    for block in media:
        if block.get("type") == "reshare":
            original = ref(block.get("reshared_topic_ref"))
            if original:
                shared = entities.topics.get(original[1], {})
                _, shared_owner = _owner(shared, "") if shared else ("group", "")
                repost_of = topic_id(shared_owner, original[1]) if shared_owner else original[1]
                if not text.strip() and shared:
                    text = "\n\n".join(
                        str(m.get("text")).strip()
                        for m in shared.get("media") or []
                        if isinstance(m, dict) and m.get("type") == "text" and m.get("text")
                    )
    return Post(
        platform="ok",
        native_id=topic_id(owner, number),
        kind="post",
        url=topic_url(kind, owner, number),
        author_id=author[1],
        author_name=entities.names.get(author[1]),
        author_is_official=author == ("group", owner),
        text=text,
        published_at=utc_ms(item.get("created_ms")),
        metrics=topic_metrics(item),
        geo=topic_geo(media, entities),
        repost_of=repost_of,
        raw=_topic_raw(item, media),
        deleted=bool(item.get("deleted")),
    )


def topic_metrics(item: dict[str, Any]) -> dict[str, int]:
    metrics = {}
    for name, key, count in (
        ("likes", "like_summary", "count"),
        ("reposts", "reshare_summary", "count"),
        ("comments", "discussion_summary", "comments_count"),
    ):
        value = item.get(key)
        if isinstance(value, dict) and isinstance(value.get(count), int):
            metrics[name] = value[count]
    if isinstance(item.get("views_count"), int):
        metrics["views"] = item["views_count"]
    return metrics


def comments_count(item: dict[str, Any]) -> int:
    return topic_metrics(item).get("comments", 0)


def topic_geo(media: list[dict[str, Any]], entities: Entities) -> dict[str, float] | None:
    """The first attached place with coordinates."""
    for block in media:
        if block.get("type") != "place":
            continue
        found = ref(block.get("place_ref"))
        place = entities.places.get(found[1]) if found else None
        try:
            if place:
                return {"lat": float(place["latitude"]), "lon": float(place["longitude"])}
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _topic_raw(item: dict[str, Any], media: list[dict[str, Any]]) -> dict[str, Any]:
    keep = ("id", "created_ms", "author_ref", "owner_ref")
    raw: dict[str, Any] = {k: item[k] for k in keep if item.get(k) is not None}
    blocks = []
    for block in media:
        entry: dict[str, Any] = {"type": str(block.get("type") or "unknown")}
        for key in ("url", "place_ref", "reshared_topic_ref", "title"):
            if isinstance(block.get(key), str):
                entry[key] = block[key][:500]
        if block.get("type") == "photo" and isinstance(block.get("photo_refs"), list):
            entry["photos"] = len(block["photo_refs"])
        if block.get("type") != "text":
            blocks.append(entry)
    if blocks:
        raw["attachments"] = blocks
    return raw


def comment_author(item: dict[str, Any]) -> str | None:
    """The comment's author id: the group it was written as, else the user."""
    found = ref(item.get("author_ref"))
    if found:
        return found[1]
    return str(item["author_id"]) if item.get("author_id") else None


def comment(
    item: dict[str, Any],
    group: str,
    topic: str,
    entities: Entities | None = None,
    officials: Officials = Officials(),
) -> Post:
    """A ``discussions.getComments`` comment as a Post."""
    entities = entities or Entities()
    number = str(item["id"])
    author = comment_author(item)
    answered = item.get("reply_to_comment_id")
    parent = f"{group}_{topic}_c{answered}" if answered else topic_id(group, topic)
    kind = str(item.get("type") or "").upper()
    deleted = bool(item.get("deleted")) or "REMOVED" in kind or "DELETED" in kind
    raw: dict[str, Any] = {
        k: item[k]
        for k in (
            "id",
            "author_id",
            "author_ref",
            "date",
            "created_ms",
            "reply_to_comment_id",
            "reply_to_id",
            "text",
        )
        if item.get(k) is not None
    }
    if deleted:
        raw["deleted"] = True
    metrics = {"likes": item["like_count"]} if isinstance(item.get("like_count"), int) else {}
    return Post(
        platform="ok",
        native_id=f"{group}_{topic}_c{number}",
        kind="comment",
        parent=parent,
        url=f"https://ok.ru/group/{group}/topic/{topic}",
        author_id=author,
        author_name=entities.names.get(author or "") or item.get("author_name"),
        author_is_official=bool(author) and (author == group or author in officials.ids),
        text=str(item.get("text") or ""),
        published_at=comment_time(item),
        metrics=metrics,
        raw=raw,
        deleted=deleted,
    )

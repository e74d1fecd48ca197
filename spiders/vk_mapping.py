"""VK API objects → Posts (pure: no network).

Ids: a wall post is ``<owner_id>_<post_id>`` (``-61006621_45668``, as in ``vk.com/wall…``), a
comment ``<owner_id>_<post_id>_c<comment_id>``. A comment's ``parent`` is the comment it
answers (``reply_to_comment``, else the thread it sits in) or the post. Mentions written as
``[id1|Name]`` / ``[club1|Name]`` become ``Name``. Attachments are summarised in ``raw``
(kind and link, never the media); ``marked_as_ads`` and ``is_pinned`` stay in ``raw``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crawler.model import Post
from spiders.api import accounts

_MENTION = re.compile(r"\[((?:id|club|public|event)\d+|[A-Za-z0-9_.]+)\|([^\]\[]+)\]")
_PREFIXED_ID = re.compile(r"^(id|club|public|event)(\d+)$")
_LINK_FORM = re.compile(r"^(https?://)?(m\.)?vk\.(com|ru)/")
_PHOTO_KEYS = ("photo_2560", "photo_1280", "photo_807", "photo_604", "photo_130", "photo_75")


@dataclass
class Names:
    """Authors named in an ``extended=1`` answer: id → display name and screen name."""

    names: dict[int, str] = field(default_factory=dict)
    screen_names: dict[int, str] = field(default_factory=dict)

    def add(self, answer: dict[str, Any]) -> Names:
        for profile in answer.get("profiles") or []:
            uid = int(profile["id"])
            full = f"{profile.get('first_name', '')} {profile.get('last_name', '')}".strip()
            if full:
                self.names[uid] = full
            if profile.get("screen_name"):
                self.screen_names[uid] = str(profile["screen_name"]).lower()
        for group in answer.get("groups") or []:
            gid = -int(group["id"])
            if group.get("name"):
                self.names[gid] = str(group["name"])
            if group.get("screen_name"):
                self.screen_names[gid] = str(group["screen_name"]).lower()
        return self


@dataclass(frozen=True)
class Officials:
    """Official accounts of ``official_accounts: vk:`` (ids, ``club…``/``id…``, screen names)."""

    ids: frozenset[int] = frozenset()
    screen_names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[int | str]) -> Officials:
        return cls(*accounts(entries, _LINK_FORM, _prefixed_id))

    def __contains__(self, author: tuple[int, Names]) -> bool:
        author_id, names = author
        return author_id in self.ids or names.screen_names.get(author_id) in self.screen_names


def _prefixed_id(text: str) -> int | None:
    """``id1`` is user 1, ``club1`` (``public1``, ``event1``) community -1."""
    match = _PREFIXED_ID.match(text)
    if match is None:
        return None
    number = int(match.group(2))
    return number if match.group(1) == "id" else -number


def post_id(owner_id: int, item_id: int) -> str:
    return f"{owner_id}_{item_id}"


def comment_id(owner_id: int, post: int, comment: int) -> str:
    return f"{owner_id}_{post}_c{comment}"


def plain(text: str | None) -> str:
    """VK text with mentions ``[id1|Name]`` reduced to the name."""
    return _MENTION.sub(lambda m: m.group(2), text or "")


def utc(timestamp: Any) -> datetime | None:
    return datetime.fromtimestamp(int(timestamp), UTC) if timestamp else None


def wall_post(item: dict[str, Any], names: Names | None = None) -> Post:
    """A ``wall.get`` / ``newsfeed.search`` item as a Post."""
    names = names or Names()
    owner, number = int(item["owner_id"]), int(item["id"])
    author = int(item.get("from_id") or owner)
    history = [h for h in item.get("copy_history") or [] if isinstance(h, dict)]
    text = plain(item.get("text"))
    if not text.strip() and history:  # a bare repost: the original's words are the content
        text = plain(history[0].get("text"))
    return Post(
        platform="vk",
        native_id=post_id(owner, number),
        kind="post",
        url=f"https://vk.com/wall{owner}_{number}",
        author_id=str(author),
        author_name=names.names.get(author),
        author_is_official=author == owner and owner < 0,
        text=text,
        published_at=utc(item.get("date")),
        edited_at=utc(item.get("edited")),
        metrics=_metrics(item),
        geo=parse_geo(item.get("geo")),
        repost_of=post_id(int(history[0]["owner_id"]), int(history[0]["id"])) if history else None,
        raw=_post_raw(item, history),
        deleted=bool(item.get("is_deleted")),
    )


def _metrics(item: dict[str, Any]) -> dict[str, int]:
    metrics = {}
    for name in ("likes", "reposts", "views", "comments"):
        value = item.get(name)
        if isinstance(value, dict) and isinstance(value.get("count"), int):
            metrics[name] = value["count"]
    return metrics


def parse_geo(geo: Any) -> dict[str, float] | None:
    """``{"coordinates": "59.93 30.34"}`` (or ``{"latitude":…, "longitude":…}``) → lat/lon."""
    if not isinstance(geo, dict):
        return None
    coords = geo.get("coordinates")
    try:
        if isinstance(coords, str):
            lat, lon = (float(x) for x in coords.split()[:2])
        elif isinstance(coords, dict):
            lat, lon = float(coords["latitude"]), float(coords["longitude"])
        else:
            return None
    except (ValueError, KeyError, TypeError):
        return None
    return {"lat": lat, "lon": lon}


def _post_raw(item: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    keep = ("id", "owner_id", "from_id", "signer_id", "date", "edited", "post_type", "text")
    raw: dict[str, Any] = {k: item[k] for k in keep if item.get(k) is not None}
    for flag in ("is_pinned", "marked_as_ads", "is_deleted"):
        if item.get(flag):
            raw[flag] = 1
    if item.get("attachments"):
        raw["attachments"] = attachments(item["attachments"])
    if history:
        raw["copy_history"] = [
            {
                **{k: h[k] for k in ("owner_id", "id", "from_id", "date", "text") if k in h},
                "attachments": attachments(h.get("attachments") or []),
            }
            for h in history
        ]
    if isinstance(item.get("geo"), dict):
        raw["geo"] = {k: v for k, v in item["geo"].items() if k in ("type", "coordinates")}
        place = item["geo"].get("place")
        if isinstance(place, dict) and place.get("title"):
            raw["geo"]["place"] = place["title"]
    if isinstance(item.get("copyright"), dict):
        raw["copyright"] = item["copyright"].get("link")
    return raw


def attachments(items: list[Any]) -> list[dict[str, Any]]:
    """Each attachment as its kind plus a link or title (no media bytes, no access keys)."""
    out = []
    for attachment in items:
        if not isinstance(attachment, dict):
            continue
        kind = str(attachment.get("type") or "unknown")
        obj = attachment.get(kind) if isinstance(attachment.get(kind), dict) else {}
        entry: dict[str, Any] = {"type": kind}
        link = _attachment_link(kind, obj)
        if link:
            entry["url"] = link
        title = obj.get("title") or obj.get("question") or obj.get("text")
        if isinstance(title, str) and title.strip():
            entry["title"] = title.strip()[:200]
        out.append(entry)
    return out


def _attachment_link(kind: str, obj: dict[str, Any]) -> str | None:
    if kind == "photo":
        sizes = [s for s in obj.get("sizes") or [] if isinstance(s, dict) and s.get("url")]
        if sizes:
            return max(sizes, key=lambda s: (s.get("width") or 0) * (s.get("height") or 0))["url"]
        return next((obj[k] for k in _PHOTO_KEYS if obj.get(k)), None)
    if kind == "video" and "id" in obj and "owner_id" in obj:
        return f"https://vk.com/video{obj['owner_id']}_{obj['id']}"
    if kind in ("link", "doc") and obj.get("url"):
        return str(obj["url"])
    return None


def flatten(items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Top-level comments followed by the replies ``thread_items_count`` inlined."""
    for item in items:
        yield item
        thread = item.get("thread")
        if isinstance(thread, dict):
            for reply in thread.get("items") or []:
                yield {**reply, "parents_stack": reply.get("parents_stack") or [item["id"]]}


def comment(
    item: dict[str, Any],
    owner_id: int,
    post: int,
    names: Names | None = None,
    officials: Officials = Officials(),
) -> Post:
    """A ``wall.getComments`` item (a comment or a reply) as a Post."""
    names = names or Names()
    number = int(item["id"])
    author = int(item.get("from_id") or 0)
    stack = [int(x) for x in item.get("parents_stack") or []]
    answered = item.get("reply_to_comment") or (stack[-1] if stack else None)
    parent = comment_id(owner_id, post, int(answered)) if answered else post_id(owner_id, post)
    url = f"https://vk.com/wall{owner_id}_{post}?reply={number}"
    if stack:
        url += f"&thread={stack[0]}"
    deleted = bool(item.get("deleted"))
    thread = item.get("thread")
    metrics = {}
    if isinstance(item.get("likes"), dict) and isinstance(item["likes"].get("count"), int):
        metrics["likes"] = item["likes"]["count"]
    if isinstance(thread, dict) and isinstance(thread.get("count"), int):
        metrics["comments"] = thread["count"]
    raw: dict[str, Any] = {
        k: item[k]
        for k in ("id", "from_id", "date", "post_id", "owner_id", "reply_to_user", "text")
        if item.get(k) is not None
    }
    raw["parents_stack"] = stack
    if item.get("reply_to_comment"):
        raw["reply_to_comment"] = item["reply_to_comment"]
    if item.get("attachments"):
        raw["attachments"] = attachments(item["attachments"])
    if deleted:
        raw["deleted"] = True
    return Post(
        platform="vk",
        native_id=comment_id(owner_id, post, number),
        kind="comment",
        parent=parent,
        url=url,
        author_id=str(author) if author else None,
        author_name=names.names.get(author),
        author_is_official=bool(author) and (author == owner_id or (author, names) in officials),
        text=plain(item.get("text")),
        published_at=utc(item.get("date")),
        metrics=metrics,
        raw=raw,
        deleted=deleted,  # storage keeps the text collected before and stamps deleted_at
    )

"""MAX Bot API objects → Posts (pure: no network).

Shapes from the platform's reference (dev.max.ru/docs-api; the OpenAPI ``schema.yaml`` of
max-messenger/max-bot-api-client-go): a ``Message`` has ``sender`` (a ``User``, absent when a
channel posts as itself), ``recipient`` (``chat_id``, ``chat_type``), ``timestamp`` (Unix
milliseconds), ``link`` (a ``LinkedMessage``: ``type`` ``reply`` or ``forward``, its
``sender``, ``chat_id`` for forwards, and the linked ``message`` body), ``body`` (``mid``,
``seq``, ``text``, ``attachments``, ``markup``), ``stat`` (``views``, channels only) and
``url`` (public chats and channels only).

Ids: a message is its ``mid`` (``mid.0000…``), unique on the platform. A reply's ``parent``
is the mid it answers and its kind is ``comment``; a forward's ``repost_of`` is the original's
mid. Attachments are summarised in ``raw`` (kind and link, never media or access tokens).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crawler.model import Post
from spiders.api import accounts

_LINK_FORM = re.compile(r"^(?:https?://)?(?:www\.)?max\.ru/", re.IGNORECASE)


@dataclass(frozen=True)
class Chat:
    """What ``GET /chats/{chat_id}`` tells of the chat or channel."""

    id: int
    type: str  # chat or channel (dialog is refused)
    title: str | None = None
    link: str | None = None
    status: str = "active"

    @classmethod
    def parse(cls, answer: Any) -> Chat:
        if not isinstance(answer, dict) or not isinstance(answer.get("chat_id"), int):
            raise ValueError("no chat_id")
        return cls(
            id=answer["chat_id"],
            type=str(answer.get("type") or "chat"),
            title=answer.get("title") if isinstance(answer.get("title"), str) else None,
            link=answer.get("link") if isinstance(answer.get("link"), str) else None,
            status=str(answer.get("status") or "active"),
        )


@dataclass(frozen=True)
class Officials:
    """Official accounts of ``official_accounts: max:`` (user ids or usernames)."""

    ids: frozenset[int] = frozenset()
    usernames: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[int | str]) -> Officials:
        return cls(*accounts(entries, _LINK_FORM))

    def __contains__(self, user: dict[str, Any]) -> bool:
        username = str(user.get("username") or "").lower()
        return user.get("user_id") in self.ids or (bool(username) and username in self.usernames)


def utc(milliseconds: Any) -> datetime | None:
    if not isinstance(milliseconds, int | float) or milliseconds <= 0:
        return None
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


def mid(message: dict[str, Any]) -> str | None:
    body = message.get("body")
    value = body.get("mid") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


def user_name(user: dict[str, Any]) -> str | None:
    name = user.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    full = f"{user.get('first_name') or ''} {user.get('last_name') or ''}".strip()
    return full or None


def message_post(message: dict[str, Any], chat: Chat, officials: Officials = Officials()) -> Post:
    """A ``GET /messages`` item as a Post (ValueError if it has no ``body.mid``)."""
    native = mid(message)
    if native is None:
        raise ValueError("a message without body.mid")
    body = message["body"]
    link = message.get("link") if isinstance(message.get("link"), dict) else {}
    linked = link.get("message") if isinstance(link.get("message"), dict) else {}
    linked_mid = linked.get("mid") if isinstance(linked.get("mid"), str) else None
    reply = link.get("type") == "reply" and linked_mid
    forward = link.get("type") == "forward" and linked_mid
    sender = message.get("sender") if isinstance(message.get("sender"), dict) else None
    text = body.get("text") if isinstance(body.get("text"), str) else ""
    if not text.strip() and forward:  # a bare forward: the original's words are the content
        text = linked.get("text") if isinstance(linked.get("text"), str) else ""
    if sender is None:  # posted on behalf of the channel (or chat) itself
        author_id, author_name, official = str(chat.id), chat.title, True
    else:
        author_id = str(sender.get("user_id")) if sender.get("user_id") is not None else None
        author_name = user_name(sender)
        official = chat.type == "channel" or sender in officials
    stat = message.get("stat") if isinstance(message.get("stat"), dict) else {}
    views = stat.get("views")
    return Post(
        platform="max",
        native_id=native,
        kind="comment" if reply else "post",
        parent=linked_mid if reply else None,
        url=message.get("url") if isinstance(message.get("url"), str) else None,
        author_id=author_id,
        author_name=author_name,
        author_is_official=official,
        text=text,
        published_at=utc(message.get("timestamp")),
        metrics={"views": views} if isinstance(views, int) else {},
        geo=_geo(body.get("attachments")),
        repost_of=linked_mid if forward else None,
        raw=_raw(message, body, link, linked, sender),
    )


def _geo(attachments: Any) -> dict[str, float] | None:
    for item in attachments if isinstance(attachments, list) else []:
        if isinstance(item, dict) and item.get("type") == "location":
            try:
                return {"lat": float(item["latitude"]), "lon": float(item["longitude"])}
            except (KeyError, TypeError, ValueError):
                return None
    return None


def _raw(
    message: dict[str, Any],
    body: dict[str, Any],
    link: dict[str, Any],
    linked: dict[str, Any],
    sender: dict[str, Any] | None,
) -> dict[str, Any]:
    recipient = message.get("recipient") if isinstance(message.get("recipient"), dict) else {}
    raw: dict[str, Any] = {
        "mid": body.get("mid"),
        "seq": body.get("seq"),
        "timestamp": message.get("timestamp"),
        "chat_id": recipient.get("chat_id"),
        "chat_type": recipient.get("chat_type"),
        "text": body.get("text"),
    }
    if sender is not None:
        raw["sender"] = {k: sender[k] for k in ("user_id", "name", "username") if k in sender}
    if link:
        linked_sender = link.get("sender") if isinstance(link.get("sender"), dict) else {}
        raw["link"] = {
            "type": link.get("type"),
            "mid": linked.get("mid"),
            "chat_id": link.get("chat_id"),
            "sender": linked_sender.get("user_id"),
            "text": linked.get("text"),
        }
    if body.get("attachments"):
        raw["attachments"] = attachments(body["attachments"])
    return {k: v for k, v in raw.items() if v is not None}


def attachments(items: Any) -> list[dict[str, Any]]:
    """Each attachment as its kind plus a link or title (no media, no attachment tokens)."""
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("type") in ("inline_keyboard", "reply_keyboard"):
            continue
        kind = str(item.get("type") or "unknown")
        payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
        entry: dict[str, Any] = {"type": kind}
        if isinstance(payload.get("url"), str):
            entry["url"] = payload["url"]
        for key in ("title", "filename"):
            if isinstance(item.get(key), str) and item[key].strip():
                entry["title"] = item[key].strip()[:200]
        if kind == "location":
            entry.update({k: item[k] for k in ("latitude", "longitude") if k in item})
        out.append(entry)
    return out

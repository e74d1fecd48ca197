"""Telethon messages as Posts (pure: no network, no client).

Works on the raw fields of ``telethon.tl.types.Message`` (``message``, ``date``, ``views``,
``fwd_from``, ``grouped_id``, ``edit_date``, ``replies``, ``reactions``, ``from_id``,
``peer_id``, ``reply_to``, ``post_author``, ``media``), so a message needs no client.

Native ids: ``<channel>/<message id>`` for channel posts, where ``<channel>`` is the channel's
username in lower case (Telegram usernames ignore case; the ``telegram_web`` type uses the same
rule, so one post collected both ways is one post) or, for a channel without a username, its
numeric id; ``<discussion group id>/<message id>`` for comments (a username never starts with
a digit, so the two forms cannot collide). Albums are one post under their first message's id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from telethon.tl import types

from crawler.model import Post

# What the gateway knows about a peer of a message: its User/Channel object, or None.
Lookup = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class ChannelRef:
    """The broadcast channel a source reads."""

    id: int
    username: str | None
    title: str

    @classmethod
    def from_entity(cls, entity: Any) -> ChannelRef:
        return cls(id=entity.id, username=username_of(entity), title=entity.title or "")

    @property
    def prefix(self) -> str:
        """The first part of a post's native id: lower-case username, else the numeric id."""
        return self.username.lower() if self.username else str(self.id)

    @property
    def url(self) -> str:
        return f"https://t.me/{self.username}" if self.username else f"https://t.me/c/{self.id}"

    def post_id(self, message_id: int) -> str:
        return f"{self.prefix}/{message_id}"

    def post_url(self, message_id: int) -> str:
        return f"{self.url}/{message_id}"

    def is_peer(self, peer: Any) -> bool:
        return isinstance(peer, types.PeerChannel) and peer.channel_id == self.id


def username_of(entity: Any) -> str | None:
    """The entity's public username: ``username``, else the first active of ``usernames``."""
    name = getattr(entity, "username", None)
    if name:
        return str(name)
    for extra in getattr(entity, "usernames", None) or []:
        if getattr(extra, "active", False) and extra.username:
            return str(extra.username)
    return None


def peer_id(peer: Any) -> int | None:
    """The bare id of a Peer (user, chat or channel), None for anything else."""
    for attr in ("channel_id", "user_id", "chat_id"):
        value = getattr(peer, attr, None)
        if isinstance(value, int):
            return value
    return None


def display_name(entity: Any) -> str | None:
    """A user's "first last" or a channel's title."""
    if entity is None:
        return None
    if getattr(entity, "title", None):
        return str(entity.title)
    parts = [getattr(entity, "first_name", None), getattr(entity, "last_name", None)]
    name = " ".join(p for p in parts if p)
    return name or username_of(entity)


def is_content(message: Any) -> bool:
    """A message with content (not a service message such as "channel created" or a gap)."""
    return isinstance(message, types.Message)


def media_kind(media: Any) -> str | None:
    """A short name of what a message carries: photo, video, audio, document, webpage, poll…"""
    if media is None or isinstance(media, types.MessageMediaEmpty):
        return None
    if isinstance(media, types.MessageMediaPhoto):
        return "photo"
    if isinstance(media, types.MessageMediaDocument):
        mime = getattr(getattr(media, "document", None), "mime_type", "") or ""
        if getattr(media, "video", False) or mime.startswith("video/"):
            return "video"
        if getattr(media, "voice", False) or mime.startswith("audio/"):
            return "audio"
        return "document"
    name = type(media).__name__
    name = name.removeprefix("MessageMedia").lower()
    return name or "media"


def reactions_count(reactions: Any) -> int | None:
    """Sum of ``reactions.results[].count``; None when the message has no reactions object."""
    if reactions is None:
        return None
    return sum(int(r.count) for r in getattr(reactions, "results", None) or [])


def metrics_of(messages: Sequence[Any]) -> dict[str, int]:
    """Views, forwards, reactions and comments of a post (largest over an album's parts)."""
    metrics: dict[str, int] = {}

    def keep(name: str, value: int | None) -> None:
        if value is not None:
            metrics[name] = max(metrics.get(name, 0), int(value))

    for m in messages:
        keep("views", m.views)
        keep("reposts", m.forwards)
        keep("reactions", reactions_count(m.reactions))
        if m.replies is not None:
            keep("comments", m.replies.replies)
    return metrics


def repost_of(fwd: Any, lookup: Lookup | None = None, message: Any = None) -> str | None:
    """Where a forwarded message comes from: ``<channel>/<post>``, or a name, or an id."""
    if fwd is None:
        return None
    source = fwd.from_id
    entity = lookup(message, source) if (lookup and source is not None) else None
    name = username_of(entity) if entity is not None else None
    if isinstance(source, types.PeerChannel):
        channel = name.lower() if name else str(source.channel_id)
        return f"{channel}/{fwd.channel_post}" if fwd.channel_post else channel
    if fwd.from_name:
        return str(fwd.from_name)
    if name:
        return name.lower()
    ident = peer_id(source)
    return str(ident) if ident is not None else None


def _geo(messages: Sequence[Any]) -> dict[str, float] | None:
    for m in messages:
        point = getattr(m.media, "geo", None)
        if isinstance(point, types.GeoPoint):
            return {"lat": float(point.lat), "lon": float(point.long)}
    return None


def _edited(messages: Sequence[Any]) -> datetime | None:
    dates = [m.edit_date for m in messages if m.edit_date and not m.edit_hide]
    return max(dates, default=None)


def _fwd_raw(fwd: Any) -> dict[str, Any] | None:
    if fwd is None:
        return None
    raw = {
        "from_id": peer_id(fwd.from_id),
        "from_name": fwd.from_name,
        "channel_post": fwd.channel_post,
        "post_author": fwd.post_author,
        "date": fwd.date.isoformat() if fwd.date else None,
    }
    return {k: v for k, v in raw.items() if v is not None}


def _raw(messages: Sequence[Any]) -> dict[str, Any]:
    """The message's own facts, JSON-safe, for provenance (no media bytes or file refs)."""
    first = messages[0]
    raw: dict[str, Any] = {"id": first.id, "date": first.date.isoformat() if first.date else None}
    if len(messages) > 1 or first.grouped_id:
        raw["ids"] = [m.id for m in messages]
        raw["grouped_id"] = first.grouped_id
    kinds = [k for k in (media_kind(m.media) for m in messages) if k]
    if kinds:
        raw["media"] = kinds
    edited = _edited(messages)
    optional = {
        "post_author": first.post_author,
        "edit_date": edited.isoformat() if edited else None,
        "fwd_from": _fwd_raw(first.fwd_from),
        "from_id": peer_id(first.from_id),
        "reply_to_msg_id": getattr(first.reply_to, "reply_to_msg_id", None),
        "reply_to_top_id": getattr(first.reply_to, "reply_to_top_id", None),
    }
    if first.replies is not None:
        optional["replies"] = {
            "count": first.replies.replies,
            "comments": bool(first.replies.comments),
            "channel_id": first.replies.channel_id,
            "max_id": first.replies.max_id,
        }
    for m in messages:
        if m.reactions is not None:
            counts: dict[str, int] = raw.setdefault("reactions", {})
            for r in m.reactions.results or []:
                key = getattr(r.reaction, "emoticon", None) or type(r.reaction).__name__
                counts[key] = counts.get(key, 0) + int(r.count)
    raw.update({k: v for k, v in optional.items() if v is not None})
    return raw


def album_text(messages: Sequence[Any]) -> str:
    """The caption of an album: the first part that has text (Telegram keeps one)."""
    return next((m.message for m in messages if m.message), "")


def channel_post(
    messages: Sequence[Any],
    channel: ChannelRef,
    *,
    official: bool = False,
    lookup: Lookup | None = None,
) -> Post:
    """A channel post from one message or an album's messages (oldest first)."""
    first = messages[0]
    return Post(
        platform="telegram",
        native_id=channel.post_id(first.id),
        kind="post",
        url=channel.post_url(first.id),
        author_id=str(channel.id),
        author_name=first.post_author or channel.title or None,
        author_is_official=official,
        text=album_text(messages),
        published_at=first.date,
        edited_at=_edited(messages),
        metrics=metrics_of(messages),
        geo=_geo(messages),
        repost_of=repost_of(first.fwd_from, lookup, first),
        raw=_raw(messages),
    )


@dataclass(frozen=True)
class Thread:
    """The comment thread of one channel post, in its linked discussion group."""

    channel: ChannelRef
    post_id: int  # the channel post's message id
    group_id: int  # the discussion group's id

    @property
    def post_native_id(self) -> str:
        return self.channel.post_id(self.post_id)

    def comment_id(self, message_id: int) -> str:
        return f"{self.group_id}/{message_id}"

    def parent_of(self, message: Any) -> str:
        """The post for a top-level comment; the answered comment for a reply to a comment.

        Comments answer the group's copy of the post (``reply_to_msg_id``) and carry no
        ``reply_to_top_id``; a reply to a comment has ``reply_to_top_id`` (the copy) and
        ``reply_to_msg_id`` (the comment it answers).
        """
        header = message.reply_to
        target = getattr(header, "reply_to_msg_id", None)
        top = getattr(header, "reply_to_top_id", None)
        if target and top and target != top:
            return self.comment_id(target)
        return self.post_native_id


def is_official(
    message: Any,
    thread: Thread,
    officials: Sequence[int | str],
    lookup: Lookup | None = None,
) -> bool:
    """A comment by the channel itself (or its discussion group, i.e. an anonymous admin) or
    by an account listed under ``official_accounts: telegram:`` (id or username)."""
    sender = message.from_id
    if thread.channel.is_peer(sender) or (
        isinstance(sender, types.PeerChannel) and sender.channel_id == thread.group_id
    ):
        return True
    ident = peer_id(sender)
    ids = {int(o) for o in officials if isinstance(o, int) or str(o).lstrip("-").isdigit()}
    if ident is not None and ident in ids:
        return True
    names = {str(o).lstrip("@").lower() for o in officials if isinstance(o, str)}
    if names and lookup is not None and sender is not None:
        name = username_of(lookup(message, sender))
        return bool(name and name.lower() in names)
    return False


def comment_post(
    message: Any,
    thread: Thread,
    *,
    officials: Sequence[int | str] = (),
    lookup: Lookup | None = None,
) -> Post:
    """One comment of a thread."""
    sender = message.from_id
    entity = lookup(message, sender) if (lookup and sender is not None) else None
    official = is_official(message, thread, officials, lookup)
    if sender is None or thread.channel.is_peer(sender):
        author_id, author_name = str(thread.channel.id), thread.channel.title or None
    else:
        ident = peer_id(sender)
        author_id = str(ident) if ident is not None else None
        author_name = display_name(entity)
    return Post(
        platform="telegram",
        native_id=thread.comment_id(message.id),
        kind="comment",
        parent=thread.parent_of(message),
        url=f"{thread.channel.post_url(thread.post_id)}?comment={message.id}",
        author_id=author_id,
        author_name=message.post_author or author_name,
        author_is_official=official,
        text=message.message or "",
        published_at=message.date,
        edited_at=_edited([message]),
        metrics=metrics_of([message]),
        geo=_geo([message]),
        repost_of=repost_of(message.fwd_from, lookup, message),
        raw={**_raw([message]), "group_id": thread.group_id, "post_id": thread.post_id},
    )

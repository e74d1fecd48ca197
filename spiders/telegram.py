"""Telegram channels and their comment threads, read through Telethon (MTProto).

One Telegram client serves every ``telegram`` source of the process (:func:`open_session`); each
source then reads its channel's history oldest first from the cursor (``min_id``), merges
albums, re-reads posts younger than ``comments_window`` for edits and metrics, and follows
their comment threads from the last comment seen. Mapping lives in ``telegram_mapping``, the
client in ``telegram_gateway``.

Cursor: ``{"last_id": <highest channel message id stored>, "follow": {"<post id>":
{"at": <published, ISO>, "c": <last comment id stored>}}}``; ``follow`` holds the posts still
inside ``comments_window`` (at most ``MAX_FOLLOWED``).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator
from telethon import errors
from telethon.tl import types

from crawler.model import Checkpoint, Post, SourceConfig, SourceError, SourceInfo
from crawler.validators import Duration, duration_field, http_address
from spiders.base import Collection
from spiders.telegram_gateway import (
    ENV_SESSION,
    LOGIN_HINT,
    ChannelNotFound,
    TelegramGateway,
    gateway_factory,
    read_credentials,
)
from spiders.telegram_mapping import (
    ChannelRef,
    Thread,
    channel_post,
    comment_post,
    is_content,
    username_of,
)

CONCURRENCY = 1  # collections at once in a process: one Telegram client, used by one thread
MAX_FOLLOWED = 500  # posts whose edits and comments a source follows at most
CHECKPOINT_EVERY = 50  # posts between two checkpoints
MAX_FLOOD_SLEEPS = 10  # short flood waits slept per source and run before deferring
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
_LINK = re.compile(r"^(?:https?://)?(?:www\.)?(?:t|telegram)\.me/(?:s/)?", re.IGNORECASE)


class Options(SourceConfig):
    """A public or joined Telegram channel, with the comments of its linked discussion group."""

    default_voice: ClassVar[str] = "editorial"  # the posts are the feed's or channel's own
    platform: ClassVar[str] = "telegram"
    site_collections: ClassVar[int | None] = 1  # one Telegram client, one call at a time

    type: Literal["telegram"]
    channel: str | int = Field(
        ...,
        description="Channel username (gorod_n, @gorod_n or https://t.me/gorod_n) or numeric "
        "id (the account must have joined the channel).",
    )
    comments: bool = Field(True, description="Collect comments of the linked discussion group.")
    comments_window: Duration = Field(
        timedelta(days=3),
        description="How long after publication a post is followed: its edits, metrics and new "
        "comments are re-read on every run while it is younger than this.",
    )
    max_messages: int = Field(
        500,
        ge=1,
        le=10000,
        description="New channel messages read per run (and new comments per post); the first "
        "run starts this many messages before the newest.",
    )
    flood_wait_limit: Duration = Field(
        timedelta(seconds=60),
        description="Flood-control waits up to this long are slept; longer ones end the "
        "source's run (what was read is kept) and it is tried again next run.",
    )

    @field_validator("channel", mode="before")
    @classmethod
    def _channel(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("channel must be a username such as gorod_n or a numeric id")
        if isinstance(value, int):
            return value
        if "://" in value:
            http_address(value.strip(), "channel")  # the address form: no credentials
        text = _LINK.sub("", value.strip()).lstrip("@").split("?")[0].strip("/")
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if not _USERNAME.fullmatch(text):
            raise ValueError(
                f"{value!r} is not a channel username (5-32 letters, digits or '_', starting "
                "with a letter) nor a numeric id"
            )
        return text

    @field_validator("comments_window", "flood_wait_limit", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)


# -- the shared session ---------------------------------------------------------------------------
class TelegramSession:
    """What every ``telegram`` source of the process shares: one gateway, one flood-control
    clock; kept open between collections."""

    def __init__(self, gateway: TelegramGateway) -> None:
        self.gateway = gateway
        self.flood_until = 0.0  # time.monotonic() before which Telegram asked us to wait

    def flood_left(self) -> int:
        return max(0, round(self.flood_until - time.monotonic()))

    def usable(self) -> bool:
        """Whether the client can serve the next collection (else the harvester reconnects)."""
        connected = getattr(self.gateway, "connected", None)
        return True if connected is None else bool(connected())


@contextlib.contextmanager
def open_session(collections: list[Collection]) -> Iterator[TelegramSession]:
    """Connect one Telegram client for all ``telegram`` sources of a run."""
    credentials = read_credentials(os.environ)
    factory = gateway_factory(os.environ)
    try:
        gateway = factory(credentials)
    except SourceError:
        raise
    except Exception as exc:
        raise describe_error(exc, "Telegram") from None
    try:
        yield TelegramSession(gateway)
    finally:
        gateway.close()


def collect(collection: Collection) -> Iterator[Any]:
    """Collect one ``telegram`` source (in the run's shared session, or one of its own)."""
    if collection.session is None:
        with open_session([collection]) as session:
            yield from _Collector(collection, session).run()
        return
    yield from _Collector(collection, collection.session).run()


# -- errors ---------------------------------------------------------------------------------------
_GONE_CHANNEL: dict[type[BaseException], str] = {
    errors.ChannelPrivateError: "is private, or this account was banned from it",
    errors.UsernameNotOccupiedError: "does not exist (no one has this username)",
    errors.UsernameInvalidError: "does not exist (no one has this username)",
    errors.ChannelInvalidError: "is not a channel this account can read",
    errors.PeerIdInvalidError: "is not a channel this account can read",
    errors.ChannelBannedError: "is banned by Telegram",
    errors.ChannelPublicGroupNaError: "is not available any more",
}
_SESSION: dict[type[BaseException], str] = {
    errors.AuthKeyUnregisteredError: f"{ENV_SESSION} is no longer logged in (revoked)",
    errors.SessionRevokedError: f"{ENV_SESSION} was logged out (all sessions terminated)",
    errors.AuthKeyDuplicatedError: f"{ENV_SESSION} was used from two places at once and "
    "Telegram cancelled it (use one session in one place only)",
    errors.SessionExpiredError: f"{ENV_SESSION} has expired",
}
_ACCOUNT_GONE = (errors.UserDeactivatedBanError, errors.UserDeactivatedError)
_FLOOD = (errors.FloodWaitError, errors.FloodPremiumWaitError)


def flood_message(seconds: int) -> str:
    return f"Telegram asks to wait {seconds} s (flood control); trying again next run"


def describe_error(exc: BaseException, label: str) -> SourceError:
    """A one-line source error for what Telethon raised (never a secret, never a traceback)."""
    if isinstance(exc, ChannelNotFound):
        numeric = bool(exc.args) and isinstance(exc.args[0], int)
        what = (
            "is unknown to this account: join the channel with it first"
            if numeric
            else "does not exist (no one has this username)"
        )
        return SourceError(f"channel {label} {what}", gone=True)
    for kind, what in _GONE_CHANNEL.items():
        if isinstance(exc, kind):
            return SourceError(f"channel {label} {what}", gone=True)
    for kind, what in _SESSION.items():
        if isinstance(exc, kind):
            return SourceError(f"{what}; {LOGIN_HINT}")
    if isinstance(exc, _ACCOUNT_GONE):
        return SourceError(
            f"the Telegram account of {ENV_SESSION} is deactivated or banned; log in with "
            "another dedicated account",
            gone=True,
        )
    if isinstance(exc, _FLOOD):
        return SourceError(flood_message(exc.seconds))
    if isinstance(exc, errors.RPCError):
        return SourceError(f"Telegram refused a request for {label}: {exc.message or exc}")
    if isinstance(exc, OSError | ConnectionError | TimeoutError):
        return SourceError(f"cannot reach Telegram: {type(exc).__name__}: {exc}")
    return SourceError(f"Telegram client error for {label}: {type(exc).__name__}: {exc}")


class _Deferred(Exception):
    """Telegram asked for a wait longer than the source's flood_wait_limit."""


# -- one source's collection ----------------------------------------------------------------------
class _Collector:
    def __init__(self, collection: Collection, session: TelegramSession) -> None:
        self.collection = collection
        self.options: Options = collection.source  # type: ignore[assignment]
        self.session = session
        self.gateway = session.gateway
        self.officials = list(collection.official_accounts.get("telegram", []))
        self.label = _label(self.options.channel)
        self.now = datetime.now(UTC)
        self.horizon = self.now - self.options.comments_window
        cursor = collection.cursor or {}
        last = cursor.get("last_id")
        self.last_id: int | None = int(last) if isinstance(last, int) else None
        self.follow: dict[str, dict[str, Any]] = {
            key: dict(entry)
            for key, entry in (cursor.get("follow") or {}).items()
            if _parse_time(entry.get("at")) >= self.horizon
        }
        self.live: dict[int, list[Any]] = {}  # post id → its messages as read in this run
        self.sleeps = 0

    def cursor(self) -> dict[str, Any]:
        newest = sorted(self.follow, key=int)[-MAX_FOLLOWED:]
        return {"last_id": self.last_id, "follow": {k: self.follow[k] for k in newest}}

    def run(self) -> Iterator[Any]:
        if self.session.flood_left():
            raise SourceError(
                f"{flood_message(self.session.flood_left())} (asked during an earlier source)"
            )
        try:
            entity = self._call(self.gateway.get_channel, self.options.channel)
            if isinstance(entity, types.ChannelForbidden):
                raise describe_error(errors.ChannelPrivateError(request=None), self.label)
            if not isinstance(entity, types.Channel) or not entity.broadcast:
                what = "a group" if isinstance(entity, types.Channel) else "not a channel"
                raise SourceError(f"{self.label} is {what}: Glas reads channels", gone=True)
            self.channel = ChannelRef.from_entity(entity)
            self.entity = entity
            self.label = f"@{self.channel.username}" if self.channel.username else self.label
            yield SourceInfo(title=self.channel.title or None, url=self.channel.url)
            yield from self._posts()
            yield Checkpoint(self.cursor())
            if self.options.comments:
                yield from self._comments()
        except _Deferred as deferred:
            yield Checkpoint(self.cursor())
            raise SourceError(str(deferred)) from None
        except SourceError:
            yield Checkpoint(self.cursor())
            raise
        except (errors.RPCError, ChannelNotFound, OSError, ConnectionError, TimeoutError) as exc:
            yield Checkpoint(self.cursor())
            raise describe_error(exc, self.label) from None

    # -- flood control ----------------------------------------------------------------------
    def _wait(self, exc: Any) -> None:
        """Sleep a short flood wait (through the gateway); defer the source for a long one."""
        seconds = int(exc.seconds)
        limit = self.options.flood_wait_limit.total_seconds()
        if seconds > limit or self.sleeps >= MAX_FLOOD_SLEEPS:
            self.session.flood_until = time.monotonic() + seconds
            raise _Deferred(flood_message(seconds))
        self.sleeps += 1
        self.gateway.sleep(seconds)

    def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        while True:
            try:
                return func(*args, **kwargs)
            except _FLOOD as exc:
                self._wait(exc)

    def _stream(self, *, min_id: int, reply_to: int | None = None) -> Iterator[Any]:
        """Messages above ``min_id``, oldest first; after a short flood wait, resumed from
        the last message handed out."""
        last = min_id
        while True:
            try:
                for message in self.gateway.iter_messages(
                    self.entity, min_id=last, reply_to=reply_to, reverse=True
                ):
                    if message.id <= last:
                        continue
                    last = message.id
                    yield message
                return
            except _FLOOD as exc:
                self._wait(exc)

    # -- channel posts ----------------------------------------------------------------------
    def _start_id(self) -> int:
        """Where reading starts: before the oldest followed post, else after the last read;
        a first run starts ``max_messages`` ids before the newest message."""
        if self.last_id is None:
            newest = self._call(self._newest)
            self.last_id = max(0, newest.id - self.options.max_messages) if newest else 0
        followed = [int(k) for k in self.follow if int(k) <= self.last_id]
        return min([self.last_id, *(k - 1 for k in followed)])

    def _newest(self) -> Any:
        return next(iter(self.gateway.iter_messages(self.entity, reverse=False, limit=1)), None)

    def _posts(self) -> Iterator[Any]:
        """Channel posts after the start id; an album is complete when a message of another
        group (or none) follows it, a lone message at once."""
        start = self._start_id()
        self.known = self.last_id or 0  # ids above it are new (not re-reads of followed posts)
        self.new = self.units = 0
        pending: list[Any] = []
        for message in self._stream(min_id=start):
            group = getattr(message, "grouped_id", None)
            if pending and group != getattr(pending[-1], "grouped_id", None):
                yield from self._unit(pending)
                pending = []
                if self.new >= self.options.max_messages:
                    break
            pending.append(message)
            if group is None:
                yield from self._unit(pending)
                pending = []
                if self.new >= self.options.max_messages:
                    break
        else:
            if pending:
                yield from self._unit(pending)
        self._forget_deleted(start)

    def _unit(self, unit: list[Any]) -> Iterator[Any]:
        yield from self._emit(unit)
        self.new += unit[0].id > self.known
        self.units += 1
        if self.units % CHECKPOINT_EVERY == 0:
            yield Checkpoint(self.cursor())

    def _emit(self, unit: list[Any]) -> Iterator[Post]:
        """One post from a message or an album; the cursor moves past it."""
        messages = [m for m in unit if is_content(m)]
        if messages:
            first = messages[0]
            yield channel_post(
                messages, self.channel, official=self._is_official(), lookup=self.gateway.lookup
            )
            self.live[first.id] = messages
            if first.date and first.date >= self.horizon:
                entry = self.follow.setdefault(str(first.id), {"c": 0})
                entry["at"] = first.date.isoformat()
        self.last_id = max(self.last_id or 0, *(m.id for m in unit))

    def _forget_deleted(self, start: int) -> None:
        """Followed posts the full re-read did not meet were deleted: stop following them."""
        for key in list(self.follow):
            if start < int(key) <= (self.last_id or 0) and int(key) not in self.live:
                del self.follow[key]

    def _is_official(self) -> bool:
        names = {str(o).lstrip("@").lower() for o in self.officials if isinstance(o, str)}
        ids = {int(o) for o in self.officials if isinstance(o, int)}
        username = (self.channel.username or "").lower()
        return self.channel.id in ids or bool(username and username in names)

    # -- comments ---------------------------------------------------------------------------
    def _comments(self) -> Iterator[Any]:
        for key in sorted(self.follow, key=int):
            messages = self.live.get(int(key))
            holder = next((m for m in messages or [] if m.replies and m.replies.comments), None)
            if holder is None or not holder.replies.channel_id:
                continue
            entry = self.follow[key]
            seen = int(entry.get("c") or 0)
            replies = holder.replies
            if not replies.replies or (replies.max_id is not None and replies.max_id <= seen):
                continue  # nothing new under this post
            thread = Thread(self.channel, post_id=int(key), group_id=replies.channel_id)
            count = 0
            try:
                for message in self._stream(min_id=seen, reply_to=holder.id):
                    if is_content(message):
                        yield comment_post(
                            message, thread, officials=self.officials, lookup=self.gateway.lookup
                        )
                    entry["c"] = message.id
                    count += 1
                    if count >= self.options.max_messages:
                        break
            except errors.MsgIdInvalidError:
                self.collection.warn(
                    f"comments of {self.channel.post_url(int(key))} cannot be read "
                    "(discussion removed?)"
                )
            yield Checkpoint(self.cursor())


def _label(channel: str | int) -> str:
    return f"id {channel}" if isinstance(channel, int) else f"@{channel}"


def _parse_time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


__all__ = ["Options", "collect", "describe_error", "open_session", "username_of"]

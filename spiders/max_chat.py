"""A MAX channel's posts or a MAX group chat's messages, through the official Bot API.

The ЦУР's bot is added to the chat or channel (as an administrator allowed to read all
messages where the platform requires it); Glas reads ``GET /chats/{chat_id}`` for the chat's
facts and ``GET /messages?chat_id=…&from=…&to=…&count=100`` for its messages. The API returns
them newest first; ``from`` is the newer and ``to`` the older time bound (``to`` below
``from``; Unix milliseconds like every time of the API, as the ``maxapi`` package sends them),
so a run pages down in time (dev.max.ru/docs-api/methods/GET/messages).

Cursor: ``chat_id``; ``last_ts`` / ``last_mid`` (the newest message stored); ``gap``
(``[low, high]``: message times still to collect when a run hit ``max_messages`` or stopped
half-way, healed by the next runs like the t.me/s collector's); ``recent`` (mid → ``[time,
first text, time Glas first saw it edited]`` for messages younger than ``edit_window``). Each
run re-reads the messages of ``edit_window``: grown views are stored, and an edited message
keeps its first text (``raw.text_now`` holds the new one, ``edited_at`` when Glas saw it) since
the API gives no edit mark. A checkpoint follows every page.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from crawler.model import Checkpoint, Post, SourceConfig, SourceError, SourceInfo
from crawler.validators import Duration, duration_field, http_address
from spiders.max_client import MAX_BASE, ChatGone, MaxClient
from spiders.max_mapping import Chat, Officials, message_post, mid
from spiders.vk_client import check_env_names

PAGE = 100  # the API's largest count
MAX_RECENT = 500  # messages whose first text the cursor keeps (newest)
_NAME = re.compile(r"^@?[A-Za-z][\w-]*$")


class Options(SourceConfig):
    """Posts of a MAX channel or messages of a MAX group chat, through the MAX Bot API."""

    platform: ClassVar[str] = "max"
    site_collections: ClassVar[int | None] = 10  # one bot, its requests spaced per process

    type: Literal["max_chat"]
    chat: int | str = Field(
        ...,
        description="The chat or channel: its numeric chat_id (e.g. -70000000000005), or its "
        "public link or name (https://max.ru/gorod_news, @gorod_news). The bot must be in it.",
    )
    token_env: str = Field(
        "MAX_BOT_TOKEN", description="Environment variable holding the bot's token."
    )
    api_url: str = Field(
        MAX_BASE,
        description="Base address of the MAX Bot API; GLAS_MAX_API_URL in the environment "
        "overrides it.",
    )
    ca_bundle: str | None = Field(
        None,
        description="PEM file of the certificate authorities to trust for api_url, e.g. the "
        "Russian Ministry of Digital Development's root CA (absent from common trust stores).",
    )
    max_messages: int = Field(500, ge=1, le=10000, description="New messages per run at most.")
    edit_window: Duration = Field(
        timedelta(days=1),
        description="How long after publication a message is re-read (edits, views).",
    )

    @field_validator("edit_window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("chat")
    @classmethod
    def _chat(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            return value
        text = value.strip()
        if "://" in text:
            http_address(text, "chat")
        text = re.sub(r"^(https?://)?(www\.)?max\.ru/", "", text, flags=re.IGNORECASE)
        text = text.strip("/")
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if not _NAME.match(text):
            raise ValueError(
                f"chat must be a numeric chat_id or a public link or name (got {value!r})"
            )
        return text.removeprefix("@")

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        check_env_names(value)
        return value

    @field_validator("api_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return http_address(value, "api_url").rstrip("/")


def collect(collection: Any) -> Iterator[Post | Checkpoint | SourceInfo]:
    """Collect one chat: new messages newest first, then the gap, checkpoint per page."""
    options: Options = collection.source
    client = MaxClient.for_collection(collection)
    try:
        yield from _collect(collection, options, client)
    finally:
        client.close()


def read_chat(client: MaxClient, chat: int | str) -> Chat:
    """The chat's facts; a chat the bot is no longer in is gone, with a line saying why."""
    answer = client.get(f"/chats/{chat}", chat=str(chat))
    try:
        facts = Chat.parse(answer)
    except ValueError:
        raise SourceError(f"not a MAX chat answer from {client.base}/chats/{chat}") from None
    if facts.status in ("removed", "left"):
        raise ChatGone(
            f"the bot was {'removed from' if facts.status == 'removed' else 'taken out of'} "
            f"chat {facts.id} ({facts.title or 'no title'}); add the bot to the chat again as "
            "an administrator allowed to read all messages"
        )
    if facts.status == "closed":
        raise ChatGone(f"chat {facts.id} ({facts.title or 'no title'}) was closed on MAX")
    if facts.type == "dialog":
        raise SourceError(f"chat {facts.id} is a private dialog with the bot, not a chat")
    return facts


def _collect(
    collection: Any, options: Options, client: MaxClient
) -> Iterator[Post | Checkpoint | SourceInfo]:
    chat = read_chat(client, options.chat)
    yield SourceInfo(title=chat.title, url=chat.link)
    cursor = dict(collection.cursor) if collection.cursor.get("chat_id") == chat.id else {}
    officials = Officials.parse(collection.official_accounts.get("max", []))
    now = int(time.time() * 1000)
    state = _State.from_cursor(chat.id, cursor, now, options.edit_window)
    pages = _Pages(client, chat, officials, state)

    # The top: from now down to the newest stored message (or the edit window's start).
    floor = min(state.last, state.window_start) if state.last else None
    for posts in pages.read(None, floor, options.max_messages, top=True):
        yield from posts
        yield Checkpoint(state.cursor())
    if state.limited:
        if state.last:
            collection.warn(
                f"more than max_messages ({options.max_messages}) new messages since the last "
                "run: the newest collected, older ones follow in the next runs"
            )
        return
    state.top_done()
    if state.gap is None:
        yield Checkpoint(state.cursor())
        return
    # The gap a run cut short left: its newest end down to its oldest.
    low, high = state.gap
    for posts in pages.read(high, low, options.max_messages - state.taken, top=False):
        yield from posts
        yield Checkpoint(state.cursor())
    if not state.limited:
        state.gap = None
    yield Checkpoint(state.cursor())


@dataclass
class _State:
    """What a run has stored so far and the cursor that covers it."""

    chat_id: int
    last: int  # time of the newest message stored before this run (0: first run)
    last_mid: str | None
    gap: tuple[int, int] | None  # (low, high): message times not stored yet
    recent: dict[str, list[Any]]
    window_start: int
    newest: int = 0
    newest_mid: str | None = None
    oldest_taken: int | None = None  # oldest new message taken by the top scan
    gap_oldest: int | None = None  # oldest message taken from the gap
    in_top: bool = True
    limited: bool = False
    taken: int = 0
    seen: set[str] = field(default_factory=set)

    @classmethod
    def from_cursor(
        cls, chat_id: int, cursor: dict[str, Any], now: int, window: timedelta
    ) -> _State:
        gap = cursor.get("gap")
        return cls(
            chat_id=chat_id,
            last=int(cursor.get("last_ts") or 0),
            last_mid=cursor.get("last_mid"),
            gap=(int(gap[0]), int(gap[1])) if gap else None,
            recent={str(k): list(v) for k, v in (cursor.get("recent") or {}).items()},
            window_start=now - int(window.total_seconds() * 1000),
        )

    def is_new(self, stamp: int, key: str) -> bool:
        if self.in_top:
            return (
                not self.last or stamp > self.last or (stamp == self.last and key != self.last_mid)
            )
        assert self.gap is not None
        return self.gap[0] <= stamp <= self.gap[1]

    def take(self, stamp: int, key: str) -> None:
        self.taken += 1
        if stamp > self.newest:
            self.newest, self.newest_mid = stamp, key
        if self.in_top:
            self.oldest_taken = (
                stamp if self.oldest_taken is None else min(self.oldest_taken, stamp)
            )
        else:
            self.gap_oldest = stamp if self.gap_oldest is None else min(self.gap_oldest, stamp)

    def top_done(self) -> None:
        self.in_top = False

    def cursor(self) -> dict[str, Any]:
        """Covers every message yielded so far (a scan may still be going)."""
        gap = self.gap
        if self.in_top and self.last and self.oldest_taken is not None:
            # The top scan may stop before it reaches the stored messages: what lies between
            # them and the oldest message taken is a gap (an older gap joins it).
            low = self.gap[0] if self.gap else self.last
            if self.oldest_taken > low:
                gap = (low, self.oldest_taken)
        elif not self.in_top and self.gap is not None and self.gap_oldest is not None:
            gap = (self.gap[0], self.gap_oldest)
        last, last_mid = self.last, self.last_mid
        if self.newest > last:
            last, last_mid = self.newest, self.newest_mid
        kept = sorted(
            ((k, v) for k, v in self.recent.items() if v and int(v[0]) >= self.window_start),
            key=lambda kv: int(kv[1][0]),
        )[-MAX_RECENT:]
        return {
            "chat_id": self.chat_id,
            "last_ts": last or None,
            "last_mid": last_mid,
            "gap": list(gap) if gap else None,
            "recent": dict(kept),
        }

    def remember(self, post: Post, stamp: int, seen_at: str) -> None:
        """Keep the first text of a recent message; an edited one keeps it and is marked."""
        if stamp < self.window_start:
            return
        known = self.recent.get(post.native_id)
        if known is None:
            self.recent[post.native_id] = [stamp, post.text, None]
            return
        if post.text != known[1] and known[2] is None:
            known[2] = seen_at
        if known[2] is not None:
            post.raw = {**(post.raw or {}), "edited": True, "text_now": post.text}
            post.text = known[1]
            post.edited_at = datetime.fromisoformat(known[2])


@dataclass
class _Pages:
    """Pages of ``GET /messages`` newest first, turned into Posts as the state decides."""

    client: MaxClient
    chat: Chat
    officials: Officials
    state: _State

    def read(
        self, upper: int | None, lower: int | None, budget: int, *, top: bool
    ) -> Iterator[list[Post]]:
        """Messages from ``upper`` (None: now) down to ``lower`` (None: as far as ``budget``
        new ones go), one list of Posts per page."""
        state = self.state
        seen_at = datetime.now(UTC).isoformat(timespec="seconds")
        taken = 0
        idle = 0  # pages in a row that brought no message not seen before
        while True:
            params: dict[str, Any] = {"chat_id": self.chat.id, "count": PAGE}
            if upper is not None:
                params["from"] = upper
            if lower is not None:
                params["to"] = lower
            answer = self.client.get("/messages", params, chat=str(self.chat.id))
            items = answer.get("messages") if isinstance(answer, dict) else None
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise SourceError(
                    f"not a MAX messages answer from {self.client.base}/messages "
                    f"(chat {self.chat.id})"
                )
            posts: list[Post] = []
            stamps = []
            unseen = sum(1 for i in items if mid(i) not in state.seen)
            for item in items:
                key, stamp = mid(item), item.get("timestamp")
                if key is None or not isinstance(stamp, int):
                    raise SourceError(
                        f"a message without body.mid or timestamp from {self.client.base}"
                        f"/messages (chat {self.chat.id})"
                    )
                stamps.append(stamp)
                if key in state.seen or (lower is not None and stamp < lower):
                    continue
                if state.is_new(stamp, key):
                    if taken >= budget:
                        state.limited = True
                        break
                    taken += 1
                    state.take(stamp, key)
                elif not (top and stamp >= state.window_start):
                    continue  # stored, and too old to look for edits
                state.seen.add(key)
                try:
                    post = message_post(item, self.chat, self.officials)
                except (ValueError, TypeError, KeyError, AttributeError):
                    raise SourceError(
                        f"a malformed message {key} from {self.client.base}/messages"
                    ) from None
                state.remember(post, stamp, seen_at)
                posts.append(post)
            if posts:
                yield posts
            idle = 0 if unseen else idle + 1
            if state.limited or len(items) < PAGE or not stamps or idle > 1:
                return  # idle twice: the API repeats itself (one repeat is a full millisecond)
            oldest = min(stamps)
            if lower is not None and oldest <= lower:
                return
            upper = oldest if upper is None or oldest < upper else oldest - 1

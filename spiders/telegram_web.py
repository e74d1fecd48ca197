"""Public Telegram channels through the web preview ``https://t.me/s/<channel>``.

A pure :func:`parse_page` turns one preview page into Posts; the :class:`Spider` pages back
with ``?before=<id>`` from the newest post to the stored cursor. Comments are not in the web
preview: the ``telegram`` type (Telethon) collects them.

Cursor: ``{"channel", "last_id", "resume", "edited"}``. Every post with an id above ``last_id``
that a run could reach is stored, except the ids below ``resume.before`` (a gap left when a run
ran out of pages: ``[resume.before, resume.top]`` is stored, ``(last_id, resume.before)`` not
yet); the next run walks down from the newest post to ``resume.top``, then closes the gap.
``edited`` remembers when Glas first saw each recent post edited (the page gives no edit time).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field, field_validator

from crawler.model import Checkpoint, Post, SourceConfig, SourceInfo
from crawler.validators import http_address
from spiders.base import GlasSpider
from spiders.telegram_web_page import ParsedPage, parse_page

USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_URL_FORM = re.compile(
    r"^(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me|telegram\.dog)/(?:s/)?(?P<rest>[^?#]*)",
    re.IGNORECASE,
)
EDITED_MEMORY = 200  # edited posts whose first-seen time the cursor keeps (newest ids)


def normalise_channel(value: str) -> str:
    """The username in ``@name``, ``name``, ``https://t.me/name`` or ``t.me/s/name``."""
    text = value.strip()
    if "://" in text:
        http_address(text, "channel")  # the address form: no credentials, no spaces
    match = _URL_FORM.match(text)
    if match:
        text = match.group("rest").strip("/")
        if text.startswith(("+", "joinchat/")):
            raise ValueError(
                f"{value!r} is a private invite link: the web preview shows public channels only"
            )
        if "/" in text:
            raise ValueError(f"{value!r} links to one post; give the channel, e.g. t.me/s/name")
    text = text.removeprefix("@")
    if not USERNAME.match(text):
        raise ValueError(
            f"{value!r} is not a channel username (4-32 letters, digits or '_', starting with "
            "a letter; e.g. @gorod_news or https://t.me/s/gorod_news)"
        )
    return text


class Options(SourceConfig):
    """A public Telegram channel read through its web preview (no comments)."""

    default_voice: ClassVar[str] = "editorial"  # the posts are the feed's or channel's own
    platform: ClassVar[str] = "telegram"

    type: Literal["telegram_web"]
    channel: str = Field(
        ..., description="Channel username: @name, name, https://t.me/name or t.me/s/name."
    )
    max_pages: int = Field(
        5,
        ge=1,
        le=50,
        description="Pages of about 20 posts read per run, newest first; the first run reads "
        "this many, later runs stop at the last post collected.",
    )
    base_url: str = Field("https://t.me", description="Address of the web preview site.")

    @field_validator("channel", mode="before")
    @classmethod
    def _channel(cls, value: Any) -> Any:
        return normalise_channel(value) if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return http_address(value, "base_url").rstrip("/")


# -- the collector ----------------------------------------------------------------------------
class Spider(GlasSpider):
    """Page back from the newest post to the cursor, at most ``max_pages`` pages a run."""

    name = "telegram_web"
    handle_httpstatus_list: ClassVar[list[int]] = [301, 302, 303, 307, 308, 404]

    async def start(self) -> Any:
        self.channel: str = self.options.channel
        old = self.cursor if _same_channel(self.cursor, self.channel) else {}
        self.last_id: int | None = old.get("last_id")
        self.resume: dict[str, int] | None = old.get("resume")
        self.kept: dict[str, Any] = _cursor(self.channel, self.last_id, self.resume, {})
        self.edited: dict[str, str] = dict(old.get("edited") or {})
        self.seen_at = datetime.now(UTC).replace(microsecond=0)
        self.newest: int | None = None
        self.pages = 0
        officials = self.collection.official_accounts.get("telegram") or []
        self.official = self.channel.lower() in {str(o).lower().lstrip("@") for o in officials}
        yield self._page(None, "top")

    def _page(self, before: int | None, segment: str, url: str | None = None) -> Any:
        url = url or f"{self.options.base_url}/s/{self.channel}"
        if before is not None and "?" not in url:
            url = f"{url}?before={before}"
        return self.request(
            url,
            callback=self.parse_page,
            cb_kwargs={"before": before, "segment": segment},
            meta={"dont_redirect": True},
            dont_filter=True,
        )

    def parse_page(self, response: Any, before: int | None, segment: str) -> Iterator[Any]:
        first = before is None
        if 300 <= response.status < 400:
            yield from self._redirected(response, before, segment)
            return
        if response.status == 404:
            what = f"channel @{self.channel} not found" if first else "page not found"
            raise self.fail(f"{what} (HTTP 404 from {response.url})", gone=first)
        page = parse_page(response.body, response.url, self.channel)
        if page.truncated:
            raise self.fail(
                f"the page {response.url} was cut short (no closing </html>); "
                "nothing of it was stored"
            )
        if not page.has_history:
            if first:
                raise self.fail(
                    f"channel @{self.channel} does not exist, is private or has no web preview "
                    f"(no message history at {response.url})",
                    gone=True,
                )
            raise self.fail(f"no message history at {response.url}")
        for problem in page.problems:
            self.collection.warn(f"{problem} ({response.url})")
        if first and page.title:
            yield SourceInfo(title=page.title, url=f"{self.options.base_url}/s/{self.channel}")
        for post in page.posts:
            yield self._finish(post)
        self.pages += 1
        if first:
            self.newest = page.newest
        yield from self._next(page, before, segment)

    def _redirected(self, response: Any, before: int | None, segment: str) -> Iterator[Any]:
        location = response.headers.get(b"Location", b"").decode("latin-1")
        target = urljoin(response.url, location) if location else "nowhere"
        hops = response.meta.get("glas_hops", 0)
        if urlsplit(target).path.lower().startswith("/s/") and hops < 3:
            request = self._page(before, segment, target)
            request.meta["glas_hops"] = hops + 1
            yield request
            return
        raise self.fail(
            f"channel @{self.channel} does not exist, is private or has no web preview "
            f"(HTTP {response.status} to {target})",
            gone=before is None,
        )

    def _finish(self, post: Post) -> Post:
        post.author_is_official = self.official
        if post.raw and post.raw.get("edited"):
            key = post.native_id.rpartition("/")[2]
            first_seen = self.edited.setdefault(key, self.seen_at.isoformat())
            post.edited_at = datetime.fromisoformat(first_seen)
        return post

    def _next(self, page: ParsedPage, before: int | None, segment: str) -> Iterator[Any]:
        """Ask for the next page, or end the run with the cursor its pages earned."""
        oldest = page.oldest
        at_start = page.before is None  # nothing older exists
        threshold = self.resume["top"] if segment == "top" and self.resume else self.last_id
        reached = at_start or (threshold is not None and oldest is not None and oldest <= threshold)
        budget = self.pages < self.options.max_pages
        if not reached and before is not None and page.before is not None and page.before >= before:
            self.collection.warn(
                f"{self.options.base_url} answered ?before={before} with the "
                "same posts: paging stopped"
            )
            budget = False
        if not reached and budget:
            yield self._checkpoint(self._stopped_state(segment, oldest, final=False))
            yield self._page(page.before, segment)
            return
        if reached and not at_start and segment == "top" and self.resume:
            # Down to what the last run stored: [resume.before, newest] is stored now.
            yield self._checkpoint(self._cursor(self.last_id, {**self.resume, "top": self._top()}))
            if budget:
                yield self._page(self.resume["before"], "gap")
            return
        if reached:
            yield self._checkpoint(self._cursor(self._top(), None))
            return
        state = self._stopped_state(segment, oldest, final=True)
        if self.last_id is not None and state.get("last_id") == self.last_id:
            self.collection.warn(
                f"{self.options.max_pages} pages did not reach the posts collected before; "
                "the rest follows next run (raise max_pages or run more often)"
            )
        yield self._checkpoint(state)

    def _stopped_state(self, segment: str, oldest: int | None, final: bool) -> dict[str, Any]:
        """The cursor if the run stops after this page: it covers stored posts only."""
        if self.last_id is None and self.resume is None:
            # First run: what max_pages reach is the horizon, set once the last page is read.
            return self._cursor(self._top(), None) if final else dict(self.kept)
        if segment == "top" and self.resume:
            return dict(self.kept)  # two gaps cannot be recorded: keep the older one
        if oldest is None:
            return dict(self.kept)
        return self._cursor(self.last_id, {"before": oldest, "top": self._top()})

    def _top(self) -> int | None:
        known = [v for v in (self.newest, self.last_id) if v is not None]
        if self.resume:
            known.append(self.resume["top"])
        return max(known, default=None)

    def _cursor(self, last_id: int | None, resume: dict[str, int] | None) -> dict[str, Any]:
        return _cursor(self.channel, last_id, resume, self.edited)

    def _checkpoint(self, state: dict[str, Any]) -> Checkpoint:
        if self.edited:
            state["edited"] = _recent(self.edited)
        return Checkpoint(state)


def _same_channel(cursor: dict[str, Any], channel: str) -> bool:
    return str(cursor.get("channel", "")).lower() == channel.lower()


def _cursor(
    channel: str, last_id: int | None, resume: dict[str, int] | None, edited: dict[str, str]
) -> dict[str, Any]:
    state: dict[str, Any] = {"channel": channel}
    if last_id is not None:
        state["last_id"] = last_id
    if resume:
        state["resume"] = dict(resume)
    if edited:
        state["edited"] = _recent(edited)
    return state


def _recent(edited: dict[str, str]) -> dict[str, str]:
    newest = sorted(edited, key=int, reverse=True)[:EDITED_MEMORY]
    return {key: edited[key] for key in sorted(newest, key=int)}

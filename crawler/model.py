"""The shapes every stage shares: the Post, collector checkpoints and source settings.

Field names of :class:`Post` are the column names of the ``posts`` table (DESIGN.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crawler.validators import (
    CRON_FIELDS,
    Duration,
    Size,
    check_cron,
    check_timezone,
    duration_field,
    parse_duration,
    size_field,
)

PLATFORMS = ("vk", "ok", "telegram", "max", "rss", "web")
KINDS = ("post", "comment")


@dataclass(slots=True)
class Post:
    """One collected item, post or comment, from any platform."""

    platform: str
    native_id: str
    source_id: str = ""
    kind: str = "post"
    parent: str | None = None
    url: str | None = None
    title: str | None = None
    author_id: str | None = None
    author_name: str | None = None
    author_is_official: bool = False
    text: str = ""
    published_at: datetime | None = None
    edited_at: datetime | None = None
    metrics: dict[str, int] = field(default_factory=dict)
    geo: dict[str, float] | None = None
    repost_of: str | None = None
    raw: dict[str, Any] | None = None
    # The platform says the item was deleted: storage keeps what was collected before and
    # stamps ``deleted_at``; it is never dropped silently.
    deleted: bool = False
    # Not a column: which of ``title`` and ``text`` the platform marks as plain text (a feed's
    # text/plain title); normalisation keeps their "<" and "&" as written instead of reading
    # them as HTML.
    plain_fields: tuple[str, ...] = ()
    # Not a column: an outlet's own post (its source's voice is editorial: a news feed, a
    # media or municipal channel), set by the pipeline; flagging judges it as such.
    editorial: bool = False
    # Added by the pipeline.
    dedupe_key: str | None = None
    # Not a column: keys (platform, native_id) of earlier posts this one copies, best first,
    # one per case (the repost original first). Set by the near-duplicate stage; storage
    # joins the post to their case and merges the cases it links.
    duplicate_of: list[tuple[str, str]] | None = None
    cluster_id: int | None = None
    is_canonical: bool | None = None
    complaint_score: float | None = None
    is_complaint: bool | None = None
    topics: list[str] | None = None
    topic_scores: dict[str, float] | None = None
    places: list[Any] | None = None
    municipality: str | None = None
    answered_at: datetime | None = None
    answered_by: str | None = None
    response_seconds: int | None = None
    # Added by the pipeline, internal: a digest of the post as collected (see
    # crawler.unchanged); a later collection bringing the same digest skips every stage.
    collected_hash: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The post's identity: ``(platform, native_id)`` (invariant 1)."""
        return (self.platform, self.native_id)


POST_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Post))


@dataclass(slots=True)
class Checkpoint:
    """Yielded by a collector: every Post yielded before it is covered by ``cursor``.

    The pipeline stores the cursor in the same transaction as those posts (invariant 2).
    """

    cursor: dict[str, Any]


@dataclass(slots=True)
class SourceInfo:
    """Facts a collector learns about its source (a channel's title, say)."""

    title: str | None = None
    url: str | None = None


class SourceError(Exception):
    """A source failed in a way the operator must see (dead feed, private channel).

    ``gone`` marks sources that will not come back by themselves (deleted, private, banned).
    """

    def __init__(self, message: str, *, gone: bool = False) -> None:
        super().__init__(message)
        self.gone = gone


class Strict(BaseModel):
    """Base for every sources.yaml section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Schedule(Strict):
    """When a source runs: ``every: 15m`` or ``cron: "*/10 * * * *"``, optional ``jitter``."""

    every: Duration | None = Field(None, description="Interval such as 15m, 1h, 1d.")
    cron: str | None = Field(
        None, description="Crontab expression: minute hour day-of-month month day-of-week."
    )
    jitter: Duration | None = Field(None, description="Random delay up to this long, e.g. 30s.")

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if isinstance(value, dict | Schedule):
            return value
        example = "{every: 15m} or {cron: '*/10 * * * *'}"
        hint = ""
        if isinstance(value, str):
            try:
                parse_duration(value)
                hint = f"; did you mean {{every: {value.strip()}}}?"
            except ValueError:
                if len(value.split()) == len(CRON_FIELDS):
                    hint = f"; did you mean {{cron: '{value.strip()}'}}?"
        shown = "nothing" if value is None else repr(value)
        raise ValueError(f"expected a mapping such as {example}, found {shown}{hint}")

    @field_validator("every", "jitter", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("every")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value.total_seconds() < 1:
            raise ValueError("the interval must be at least 1s")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if self.every is not None and self.cron is not None:
            raise ValueError("give either 'every' or 'cron', not both")
        if self.every is None and self.cron is None:
            raise ValueError(
                "missing 'every' (e.g. every: 15m) or 'cron' (e.g. cron: '*/10 * * * *')"
            )
        return self


class SourceConfig(Strict):
    """Fields every source has; each source type subclasses it with its own options.

    A subclass sets ``type`` to a ``Literal`` of its name and ``platform`` to the platform
    its posts belong to.
    """

    platform: ClassVar[str] = "web"
    site_collections: ClassVar[int | None] = (
        None  # collections of its site at once, if not per_site
    )
    default_voice: ClassVar[str] = "residents"  # who writes the source's posts, unless set

    id: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$",
        description="Unique name of the source: letters, digits, '-', '_', '.'.",
    )
    type: str
    municipality: str | None = Field(None, description="Municipality the source covers.")
    schedule: Schedule | None = Field(None, description="Overrides defaults.schedule.")
    enabled: bool = True
    timezone: str | None = Field(
        None, description="IANA zone for times without an offset; overrides defaults.timezone."
    )
    timeout: float | None = Field(
        None, gt=0, description="Seconds before a request is abandoned; overrides the default."
    )
    run_limit: Duration | None = Field(
        None, description="Longest this source's collection may run; overrides the default."
    )
    max_response_size: Size | None = Field(
        None,
        description="Largest answer a web request of this source may bring (after unpacking), "
        "e.g. 50MB; overrides the default.",
    )
    voice: Literal["residents", "editorial"] | None = Field(
        None,
        description="Who writes this source's posts (not its comments): 'residents' (a city "
        "community, a complaints portal) or 'editorial' (a news feed, a media or municipal "
        "channel: its posts are judged complaints only on strong evidence). Default: "
        "'editorial' for rss and Telegram channels, 'residents' for every other type.",
    )
    note: str | None = Field(None, description="Free text for operators.")

    @property
    def post_voice(self) -> str:
        """Who writes this source's posts: ``voice``, or its type's default."""
        return self.voice or self.default_voice

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @field_validator("run_limit", mode="before")
    @classmethod
    def _limit(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("max_response_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return size_field(value)

    def site(self) -> str:
        """The site this source is collected from: requests in flight and delays are counted
        per site over every source of a process (``glas run`` and the daemon keep at most a
        few collections of one site running at once). The host of ``url`` or ``base_url``;
        API sources share their platform's (one token pool, one account)."""
        for name in ("url", "base_url"):
            address = getattr(self, name) if name in type(self).model_fields else None
            if isinstance(address, str):
                host = urlsplit(address).hostname
                if host:
                    return host
        return self.platform

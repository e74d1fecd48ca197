"""Turn Posts into table rows and back; shared by every backend."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from crawler.model import Post

JSON_COLUMNS = ("metrics", "geo", "raw", "topics", "topic_scores", "places")
TIME_COLUMNS = ("published_at", "edited_at", "answered_at")
BOOL_COLUMNS = ("author_is_official", "is_canonical", "is_complaint")

# Filled by collectors, import and flagging; overwritten when a post is collected again.
CONTENT_COLUMNS = (
    "kind",
    "parent",
    "url",
    "title",
    "author_id",
    "author_name",
    "author_is_official",
    "text",
    "published_at",
    "edited_at",
    "metrics",
    "geo",
    "repost_of",
    "dedupe_key",
    "complaint_score",
    "is_complaint",
    "topics",
    "topic_scores",
    "places",
    "municipality",
)
# Set only when a value arrives (an official answer); a later collection without it keeps it.
ANSWER_COLUMNS = ("answered_at", "answered_by", "response_seconds")
UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_text(value: datetime | None) -> str | None:
    """ISO 8601 UTC text with a ``Z``, to the second (sortable as text)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime reached storage; the pipeline must make times UTC")
    return value.astimezone(UTC).strftime(UTC_FORMAT)


def now_text() -> str:
    return utc_text(datetime.now(UTC))  # type: ignore[return-value]


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def dumps(value: Any) -> str | None:
    """Compact, key-sorted JSON (so equal values give equal text), or None."""
    if value is None:
        return None
    return _ENCODER.encode(value)


def post_row(post: Post) -> dict[str, Any]:
    """The column values of ``post`` (JSON and times as text, booleans as 0/1)."""
    row: dict[str, Any] = {
        "platform": post.platform,
        "native_id": post.native_id,
        "source_id": post.source_id,
        "raw": dumps(post.raw),
    }
    for name in CONTENT_COLUMNS + ANSWER_COLUMNS:
        value = getattr(post, name)
        if name in JSON_COLUMNS:
            value = dumps(value)
        elif name in TIME_COLUMNS:
            value = utc_text(value)
        elif name in BOOL_COLUMNS and value is not None:
            value = int(bool(value))
        row[name] = value
    row["content_hash"] = content_hash(row)
    row["deleted"] = bool(post.deleted)  # not a column: storage turns it into deleted_at
    return row


def content_hash(row: dict[str, Any]) -> str:
    """Digest of what a re-collection may change; an equal digest means 'unchanged'."""
    payload = [row.get(name) for name in CONTENT_COLUMNS + ANSWER_COLUMNS]
    return hashlib.blake2b(dumps(payload).encode(), digest_size=16).hexdigest()  # type: ignore[union-attr]


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """Decode JSON columns of a stored row for export."""
    out = dict(row)
    for name in (*JSON_COLUMNS, "platforms", "sources"):
        if name in out and isinstance(out[name], str):
            out[name] = json.loads(out[name])
    for name in (*BOOL_COLUMNS,):
        if name in out and out[name] is not None:
            out[name] = bool(out[name])
    return out

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
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.year < 1000:  # strftime's %Y does not pad them (glibc)
        return value.strftime(UTC_FORMAT)
    return f"{value.replace(tzinfo=None, microsecond=0).isoformat()}Z"  # quicker than strftime


def now_text() -> str:
    return utc_text(datetime.now(UTC))  # type: ignore[return-value]


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
# The same encoder's C core made once: JSONEncoder.encode builds it anew at every call, which
# costs more than encoding the small values of a post (values here are never circular).
_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE = _MAKE_ENCODER and _MAKE_ENCODER(
    None, str, json.encoder.encode_basestring, None, ":", ",", True, False, True
)


def dumps(value: Any) -> str | None:
    """Compact, key-sorted JSON (so equal values give equal text), or None."""
    if value is None:
        return None
    if _C_ENCODE:
        return "".join(_C_ENCODE(value, 0))
    return _ENCODER.encode(value)


def _kind(name: str) -> str | None:
    for kind, names in (("json", JSON_COLUMNS), ("time", TIME_COLUMNS), ("bool", BOOL_COLUMNS)):
        if name in names:
            return kind
    return None


_HASHED_COLUMNS = CONTENT_COLUMNS + ANSWER_COLUMNS
_COLUMN_KINDS = tuple((name, _kind(name)) for name in CONTENT_COLUMNS + ANSWER_COLUMNS)
# What dumps gives for empty ones, without encoding.
_EMPTY_JSON: dict[type, str] = {dict: "{}", list: "[]"}


def post_row(post: Post) -> dict[str, Any]:
    """The column values of ``post`` (JSON and times as text, booleans as 0/1)."""
    row: dict[str, Any] = {
        "platform": post.platform,
        "native_id": post.native_id,
        "source_id": post.source_id,
        "raw": dumps(post.raw),
    }
    for name, how in _COLUMN_KINDS:
        value = getattr(post, name)
        if value is None or how is None:
            pass
        elif how == "json":
            empty = _EMPTY_JSON.get(type(value)) if not value else None
            value = empty if empty is not None else dumps(value)
        elif how == "time":
            value = utc_text(value)
        else:
            value = int(bool(value))
        row[name] = value
    row["content_hash"] = content_hash(row)
    row["collected_hash"] = post.collected_hash
    row["deleted"] = bool(post.deleted)  # not a column: storage turns it into deleted_at
    return row


def content_hash(row: dict[str, Any]) -> str:
    """Digest of what a re-collection may change; an equal digest means 'unchanged'."""
    payload = [row.get(name) for name in _HASHED_COLUMNS]
    return hashlib.blake2b(dumps(payload).encode(), digest_size=16).hexdigest()  # type: ignore[union-attr]


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """Decode JSON columns of a stored row for export."""
    out = dict(row)
    for name in (*JSON_COLUMNS, "platforms", "sources", "cases"):
        if name in out and isinstance(out[name], str):
            out[name] = json.loads(out[name])
    for name in (*BOOL_COLUMNS,):
        if name in out and out[name] is not None:
            out[name] = bool(out[name])
    return out

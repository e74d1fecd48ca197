"""``glas import``: posts from JSONL or CSV files in the Post shape, all or nothing."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crawler.model import PLATFORMS, Post, SourceConfig
from crawler.pipeline import Ingest
from crawler.pseudonymise import PrivacySettings
from dedupe.settings import DedupeSettings
from flagging.settings import FlaggingSettings
from storage import Inbox, StoreResult

# Columns Glas computes or keeps for itself: skipped on import, so an export imports again.
IGNORED = (
    "id",
    "seq",
    "dedupe_key",
    "cluster_id",
    "is_canonical",
    "content_hash",
    "first_seen_at",
    "updated_at",
)
JSON_FIELDS = ("metrics", "geo", "raw", "topics", "topic_scores", "places")
MAX_REPORTED = 50


class ImportFailed(Exception):
    """The file has bad rows; nothing was imported. ``messages`` name file and line."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


class ImportRow(BaseModel):
    """One row of an import file: the Post's fields (``platform``, ``native_id``, ``text``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    platform: Literal["vk", "telegram", "rss", "web"]
    native_id: str = Field(..., min_length=1)
    text: str
    source_id: str | None = None
    kind: Literal["post", "comment"] = "post"
    parent: str | None = None
    url: str | None = None
    title: str | None = None
    author_id: str | None = None
    author_name: str | None = None
    author_is_official: bool = False
    published_at: datetime | None = None
    edited_at: datetime | None = None
    metrics: dict[str, int] | None = None
    geo: dict[str, float] | None = None
    repost_of: str | None = None
    raw: dict[str, Any] | None = None
    complaint_score: float | None = Field(None, ge=0, le=1)
    is_complaint: bool | None = None
    topics: list[str] | None = None
    topic_scores: dict[str, float] | None = None
    places: list[Any] | None = None
    municipality: str | None = None
    answered_at: datetime | None = None
    answered_by: str | None = None
    response_seconds: int | None = Field(None, ge=0)
    deleted_at: datetime | None = None  # set: the post is recorded as deleted

    @field_validator("native_id", "author_id", "parent", "repost_of", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def to_post(self) -> Post:
        fields = self.model_dump(exclude={"deleted_at"})
        return Post(
            **{**fields, "source_id": self.source_id or "", "deleted": self.deleted_at is not None}
        )


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield ``(line, row)``; a row that cannot be read at all comes as an error string."""
    if fmt == "jsonl":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"not valid JSON: {exc.msg} (column {exc.colno})"
                    continue
                yield number, row if isinstance(row, dict) else "expected a JSON object"
        return
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        start = 2
        for record in reader:
            number, start = start, reader.line_num + 1
            if None in record:
                yield number, "more cells than columns in the header"
                continue
            row: dict[str, Any] = {}
            problem = None
            for key, value in record.items():
                if value is None or value == "":
                    continue
                if key in JSON_FIELDS:
                    try:
                        row[key] = json.loads(value)
                    except json.JSONDecodeError:
                        problem = f"'{key}': not valid JSON: {value[:40]!r}"
                        break
                else:
                    row[key] = value
            yield number, problem or row


def parse_row(row: dict[str, Any]) -> Post | list[str]:
    """A Post, or the problems of this row."""
    try:
        return ImportRow.model_validate(
            {k: v for k, v in row.items() if k not in IGNORED}
        ).to_post()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown field '{field}'")
            elif err["type"] == "missing":
                problems.append(f"missing required field '{field}'")
            elif err["type"] == "literal_error" and field == "platform":
                problems.append(f"'platform' must be one of {', '.join(PLATFORMS)}")
            else:
                problems.append(f"'{field}': {err['msg']}")
        return problems


def import_file(
    inbox: Inbox,
    path: Path,
    *,
    fmt: str | None = None,
    source_id: str = "import",
    timezone: str = "Europe/Moscow",
    batch_size: int = 500,
    dedupe: DedupeSettings | None = None,
    flagging: FlaggingSettings | None = None,
    lexicon_base: Path | None = None,
    privacy: PrivacySettings | None = None,
) -> StoreResult:
    """Import every row of ``path`` in one transaction; any bad row imports nothing."""
    fmt = fmt or detect_format(path)
    source = SourceConfig(id=source_id, type="import", timezone=timezone)
    ingest = Ingest(
        inbox,
        source,
        batch_size=batch_size,
        dedupe=dedupe,
        flagging=flagging,
        lexicon_base=lexicon_base,
        privacy=privacy,
    )
    errors: list[str] = []
    rows = 0
    try:
        with inbox.transaction():
            for number, row in read_rows(path, fmt):
                rows += 1
                result = row if isinstance(row, str) else parse_row(row)
                if isinstance(result, Post):
                    if not errors:
                        ingest.add(result)
                        if ingest.invalid:
                            errors.append(f"{path}:{number}: {ingest.warnings[-1]}")
                    continue
                for problem in [result] if isinstance(result, str) else result:
                    errors.append(f"{path}:{number}: {problem}")
            if not errors:
                ingest.close()
            if errors:
                raise ImportFailed(errors)
    except ImportFailed:
        shown = errors[:MAX_REPORTED]
        if len(errors) > MAX_REPORTED:
            shown.append(f"{path}: … and {len(errors) - MAX_REPORTED} more problems")
        shown.append(f"{path}: nothing imported ({len(errors)} problems in {rows} rows)")
        raise ImportFailed(shown) from None
    except UnicodeDecodeError as exc:
        raise ImportFailed([f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8"]) from None
    except OSError as exc:
        raise ImportFailed([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return ingest.stored


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv",):
        return "csv"
    raise ImportFailed([f"{path}: cannot tell the format from the name: pass --format jsonl|csv"])

"""``glas import``: posts from JSONL or CSV files in the Post shape, all or nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crawler.importfile import MAX_INT, LineProblem, read_rows
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
MAX_REPORTED = 50
MAX_TEXT = 100_000  # characters in one text field (a post's text, title, a name, an id)
BOOLEANS = {"true": True, "false": False, "1": True, "0": False}

Text = Annotated[str, Field(max_length=MAX_TEXT)]


class ImportFailed(Exception):
    """The file has bad rows; nothing was imported. ``messages`` name file and line."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


class ImportRow(BaseModel):
    """One row of an import file: the Post's fields (``platform``, ``native_id``, ``text``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    platform: Literal["vk", "ok", "telegram", "max", "rss", "web"]
    native_id: Text = Field(..., min_length=1)
    text: Text
    source_id: Text | None = None
    kind: Literal["post", "comment"] = "post"
    parent: Text | None = None
    url: Text | None = None
    title: Text | None = None
    author_id: Text | None = None
    author_name: Text | None = None
    author_is_official: bool = False
    published_at: datetime | None = None
    edited_at: datetime | None = None
    metrics: dict[str, int] | None = None  # JSON: whole numbers within 64 bits
    geo: dict[str, float] | None = None
    repost_of: Text | None = None
    raw: dict[str, Any] | None = None
    complaint_score: float | None = Field(None, ge=0, le=1)
    is_complaint: bool | None = None
    topics: list[Text] | None = None
    topic_scores: dict[str, float] | None = None
    places: list[Any] | None = None
    municipality: Text | None = None
    answered_at: datetime | None = None
    answered_by: Text | None = None
    response_seconds: int | None = Field(None, ge=0, le=MAX_INT)
    deleted_at: datetime | None = None  # set: the post is recorded as deleted

    @field_validator("native_id", "author_id", "parent", "repost_of", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("author_is_official", "is_complaint", mode="before")
    @classmethod
    def _strict_boolean(cls, value: Any) -> Any:
        """true/false (JSON), 1/0, or the text true, false, 1, 0 (CSV): nothing else."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in BOOLEANS:
            return BOOLEANS[value.strip().lower()]
        raise ValueError("must be true or false (or 1 or 0)")

    def to_post(self) -> Post:
        # The validated values as they are (model_dump would copy each, nested ones too: the
        # dearest step of reading a row; the row is dropped once its Post is made).
        fields = dict(self.__dict__)
        deleted = fields.pop("deleted_at") is not None
        return Post(**{**fields, "source_id": self.source_id or "", "deleted": deleted})


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
            elif err["type"] == "string_too_long":
                found = len(err["input"])
                problems.append(f"'{field}' is longer than {MAX_TEXT:,} characters ({found:,})")
            elif err["type"] == "value_error":
                text = str(err["msg"]).removeprefix("Value error, ")
                problems.append(f"'{field}' {text}, found {err['input']!r}")
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
    first_line: dict[tuple[str, str], int] = {}  # (platform, native_id) → its line
    try:
        with inbox.transaction():
            for number, row in read_rows(path, fmt):
                rows += not isinstance(row, LineProblem)
                result = row if isinstance(row, str) else parse_row(row)
                if isinstance(result, Post):
                    key = (result.platform, result.native_id)
                    if key in first_line:
                        errors.append(
                            f"{path}:{number}: the same post as line {first_line[key]} "
                            f"(platform {key[0]}, native_id {key[1]!r}): a file holds each "
                            "post once"
                        )
                        continue
                    first_line[key] = number
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

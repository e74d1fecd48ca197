"""The ``dedupe:`` section of sources.yaml: near-duplicate thresholds and the matching window."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from crawler.model import Strict
from crawler.validators import Duration, duration_field


class DedupeSettings(Strict):
    """How similar two posts must be to count as one case, and how far back to look."""

    enabled: bool = Field(True, description="Link near-duplicates (exact copies always are).")
    threshold: float = Field(
        88,
        ge=50,
        le=100,
        description="Least similarity (0-100, rapidfuzz token_sort_ratio, or token_set_ratio "
        "when the subset rule allows it) for two texts to be one case.",
    )
    window: Duration = Field(
        timedelta(days=30),
        description="How far back a new post is compared: posts published within this long "
        "of the newest one are in the index.",
    )
    min_chars: int = Field(
        20, ge=1, description="Texts shorter than this (normalised) are never near-duplicates."
    )
    subset_min_words: int = Field(
        6,
        ge=1,
        description="A text whose words are contained in another's counts as its copy only "
        "when it has at least this many words (a two-word comment never swallows a post).",
    )
    subset_length_ratio: float = Field(
        0.6,
        gt=0,
        le=1,
        description="… and only when it is at least this share of the other's length.",
    )
    max_checks: int = Field(
        24, ge=1, le=1000, description="Most candidates confirmed with rapidfuzz per post."
    )

    @field_validator("window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("window")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 60:
            raise ValueError("the window must be at least 1m")
        return value

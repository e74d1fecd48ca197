"""The ``flagging:`` section of sources.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from crawler.model import Strict


class FlaggingSettings(Strict):
    """How posts are flagged: complaint threshold, lexicon overrides, on/off."""

    enabled: bool = Field(
        True, description="Flag posts (complaint score, topics, places); off leaves them empty."
    )
    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="is_complaint is 1 when complaint_score reaches this."
    )
    lexicons: list[Path] = Field(
        default_factory=list,
        description="YAML files extending or replacing the shipped lexicons, applied in order "
        "(relative paths are read from the directory of sources.yaml).",
    )
    topic_model: Literal["auto", "fallback", "posts", "blend", "off"] = Field(
        "auto",
        description="The statistical topic model shipped with Glas (trained on a city portal's "
        "appeals): 'auto' lets it name the topic of a resident's post that reads like such an "
        "appeal (the shipped style model, trained on the appeals against VK comments, is at "
        "least 90% sure of it) and of a complaint where the lexicons find none, where it is "
        "at least 50% sure; 'fallback' only the latter; 'posts' also of every post (not a "
        "comment) that is a complaint or has a lexicon topic, whatever its style (on VK "
        "complaints the model alone is right less often than the lexicons: 0.64 against "
        "0.75); 'blend' averages its probabilities with the lexicons' shares where they find "
        "a topic it knows; 'off': lexicons only. Residents' comments get theirs from the comment "
        "model (comment_model).",
    )
    comment_model: bool = Field(
        True,
        description="The comment model shipped with Glas (trained on hand-labelled VK comments, "
        "with word vectors from the natasha package) judges residents' comments: complaint or "
        "not where the lexicon score is unsure (0.2-0.8) and the text shows no answer style, "
        "and the topic of complaints where the lexicons are unsure of it (with topic_model on). "
        "Off: comments are judged like posts. Loading it takes about a second and 50 MB once "
        "per process.",
    )
    max_topics: int | None = Field(
        None, ge=1, le=20, description="Most topics listed per post (default: the lexicon's, 3)."
    )

    @field_validator("lexicons")
    @classmethod
    def _yaml(cls, value: list[Path]) -> list[Path]:
        for path in value:
            if path.suffix.lower() not in (".yaml", ".yml"):
                raise ValueError(f"lexicon override {str(path)!r} must be a .yaml or .yml file")
        return value

    def lexicon_paths(self, base: Path | None = None) -> list[Path]:
        """The override files, relative ones read from ``base`` (sources.yaml's directory)."""
        return [p if p.is_absolute() or base is None else base / p for p in self.lexicons]

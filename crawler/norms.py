"""Answer norms: how soon an official account must answer a complaint (``norms:`` in
sources.yaml), per topic and/or platform; 24 hours unless set.

The most specific norm wins: a rule naming the topic and the platform, then one naming the
topic, then one naming the platform, then ``default``. A case's topic is its best topic that
some rule names (topics best first, as in routing); its platform is its earliest post's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from crawler.model import PLATFORMS, Strict
from crawler.validators import Duration, duration_field

DEFAULT_NORM = timedelta(hours=24)
Platform = Literal[PLATFORMS]  # type: ignore[valid-type]


def _positive(value: timedelta) -> timedelta:
    if value.total_seconds() < 60:
        raise ValueError("a norm must be at least 1m")
    return value


class NormRule(Strict):
    """One norm: a topic code and/or a platform, and the time an answer may take."""

    topic: str | None = Field(
        None, min_length=1, description="Topic code (see the topics lexicon), e.g. roads."
    )
    platform: Platform | None = Field(  # type: ignore[valid-type]
        None, description="Platform of the case's earliest post: vk, ok, telegram, max, rss, web."
    )
    within: Duration = Field(..., description="Time an official answer may take, e.g. 8h, 2d.")

    @field_validator("within", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("within")
    @classmethod
    def _least(cls, value: timedelta) -> timedelta:
        return _positive(value)

    @model_validator(mode="after")
    def _says_what_it_covers(self) -> NormRule:
        if self.topic is None and self.platform is None:
            raise ValueError("a norm needs 'topic', 'platform' or both besides 'within'")
        return self


class NormSettings(Strict):
    """The ``norms:`` section of sources.yaml."""

    default: Duration = Field(
        DEFAULT_NORM, description="Norm of complaints no rule covers (default 24h)."
    )
    rules: list[NormRule] = Field(
        default_factory=list, description="Topic/platform → norm; more specific wins."
    )

    @field_validator("default", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("default")
    @classmethod
    def _least(cls, value: timedelta) -> timedelta:
        return _positive(value)


class Norms:
    """Applies :class:`NormSettings`: the norm, in seconds, of a case."""

    def __init__(self, settings: NormSettings | None = None) -> None:
        settings = settings or NormSettings()
        self.default = int(settings.default.total_seconds())
        self.both: dict[tuple[str, str], int] = {}
        self.by_topic: dict[str, int] = {}
        self.by_platform: dict[str, int] = {}
        for rule in settings.rules:
            seconds = int(rule.within.total_seconds())
            if rule.topic is not None and rule.platform is not None:
                self.both.setdefault((rule.topic, rule.platform), seconds)
            elif rule.topic is not None:
                self.by_topic.setdefault(rule.topic, seconds)
            else:
                self.by_platform.setdefault(str(rule.platform), seconds)
        self.topics = {t for t, _ in self.both} | set(self.by_topic)

    def seconds(self, topics: Sequence[str] | None, platform: str | None) -> int:
        """The norm of a case with these topics (best first) on this platform."""
        for topic in topics or ["other"]:
            if (topic, platform) in self.both:
                return self.both[(topic, str(platform))]
            if topic in self.by_topic:
                return self.by_topic[topic]
        return self.by_platform.get(str(platform), self.default)

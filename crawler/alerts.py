"""Surge alerts: rules of sources.yaml's ``alerts:``, evaluated as posts are stored.

A rule watches a scope (a topic, a place, a municipality, or several of them at once) and
fires when, within its ``window`` ending now, at least ``min_residents`` distinct residents
(``author_id`` of posts and comments that are not official accounts') wrote in that scope,
and that number is at least ``factor`` times the usual level: the average number of distinct
residents per window over the ``lookback`` before the window (``factor: 0`` leaves the usual
level out).

The pipeline's last stage (:class:`AlertStage`) notes which rules a batch's posts touch; once
the batch is committed, only those rules are evaluated (a batch that touches none costs
nothing). An **episode** is the time a rule's condition holds: it begins at an evaluation
that finds the condition holding when the previous evaluation did not, or when it last held
more than one window ago; it goes on while evaluations find it holding. One alert fires per
episode (the inbox's ``alert_state`` row decides, inside the write transaction, so several
processes never fire one episode twice).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from crawler.model import Post, Strict
from crawler.validators import Duration, duration_field, http_address

log = logging.getLogger("glas.run")

RULE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"
USUAL_CACHE = 3600.0  # seconds a rule's usual level is kept before it is read again


class AlertRule(Strict):
    """One surge rule (``alerts:`` item)."""

    id: str = Field(..., pattern=RULE_ID, description="Unique name of the rule.")
    topic: str | None = Field(None, min_length=1, description="Topic code (topics lexicon).")
    place: str | None = Field(
        None,
        min_length=1,
        description="Part of a place's name as flagging writes it (case and ё/е ignored).",
    )
    municipality: str | None = Field(None, min_length=1, description="Municipality, exactly.")
    min_residents: int = Field(
        ..., ge=1, le=100_000, description="Least distinct residents within the window."
    )
    window: Duration = Field(..., description="How far back from now residents are counted.")
    lookback: Duration = Field(
        timedelta(days=7),
        description="Period before the window whose average per window is the usual level.",
    )
    factor: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="Residents in the window must be at least this times the usual level "
        "(0: no comparison).",
    )

    @field_validator("window", "lookback", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("window")
    @classmethod
    def _window(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 60:
            raise ValueError("the window must be at least 1m")
        return value

    @model_validator(mode="after")
    def _scope(self) -> AlertRule:
        if not (self.topic or self.place or self.municipality):
            raise ValueError("give at least one of 'topic', 'place' or 'municipality'")
        if self.factor and self.lookback < self.window:
            raise ValueError("'lookback' must be at least as long as 'window'")
        return self

    def matches(self, topics: Any, places: Any, municipality: Any) -> bool:
        """Whether a post with these flags belongs to the rule's scope."""
        if self.municipality and municipality != self.municipality:
            return False
        if self.topic and self.topic not in (topics or ()):
            return False
        if self.place:
            wanted = fold(self.place)
            names = (p.get("name") for p in places or () if isinstance(p, dict))
            if not any(wanted in fold(str(name or "")) for name in names):
                return False
        return True


class Webhook(Strict):
    """Where alerts are POSTed (``webhooks:`` item)."""

    id: str = Field(..., pattern=RULE_ID, description="Unique name of the webhook.")
    url: str = Field(..., description="http(s) address the alert's JSON is POSTed to.")
    token_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding a token sent in 'header' (never the token "
        "itself here).",
    )
    header: str = Field(
        "Authorization",
        pattern=r"^[A-Za-z0-9-]+$",
        description="Header of the token: Authorization gets 'Bearer <token>', any other the "
        "token as it is.",
    )
    rules: list[str] | None = Field(
        None, description="Ids of the rules whose alerts go here (default: every rule)."
    )
    timeout: float = Field(10.0, gt=0, le=120, description="Seconds to wait for the receiver.")
    retry_backoff: Duration = Field(
        timedelta(seconds=30),
        description="Wait before the first retry, doubled after each failure up to backoff_max.",
    )
    backoff_max: Duration = Field(timedelta(hours=1), description="Longest wait between tries.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        return http_address(value, "url")

    @field_validator("retry_backoff", "backoff_max", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    def wants(self, rule_id: str) -> bool:
        return self.rules is None or rule_id in self.rules


def fold(text: str) -> str:
    return " ".join(text.lower().replace("ё", "е").split())


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AlertStage:
    """The pipeline's last stage: notes the rules a batch touches; after the batch is
    stored, evaluates them (:meth:`stored`)."""

    def __init__(self, inbox: Any, rules: list[AlertRule], webhooks: list[Webhook]) -> None:
        self.inbox = inbox
        self.rules = rules
        self.webhooks = webhooks
        self.touched: list[AlertRule] = []
        self._usual: dict[str, tuple[float, float]] = {}  # rule id → (read at, usual level)

    def __call__(self, posts: list[Post]) -> list[Post]:
        self.touched = [
            rule
            for rule in self.rules
            if any(
                not p.author_is_official and rule.matches(p.topics, p.places, p.municipality)
                for p in posts
            )
        ]
        return posts

    def stored(self, result: Any) -> None:
        touched, self.touched = self.touched, []
        for rule in touched:
            try:
                evaluate(self.inbox, rule, self.webhooks, usual_cache=self._usual)
            except Exception as exc:  # an alert must never fail the source's harvest
                log.warning("alert rule %s: evaluation failed: %s", rule.id, exc)


def evaluate(
    inbox: Any,
    rule: AlertRule,
    webhooks: list[Webhook],
    *,
    now: datetime | None = None,
    usual_cache: dict[str, tuple[float, float]] | None = None,
) -> dict[str, Any] | None:
    """Evaluate ``rule`` at ``now``; the alert row when a new episode fired, else None."""
    now = now or datetime.now(UTC)
    start = now - rule.window
    found = inbox.alert_window(rule, utc(start), utc(now))
    usual = None
    if rule.factor:
        cached = (usual_cache or {}).get(rule.id)
        if cached is not None and time.monotonic() - cached[0] < min(
            USUAL_CACHE, rule.window.total_seconds()
        ):
            usual = cached[1]
        else:
            usual = inbox.alert_usual_level(rule, utc(start - rule.lookback), utc(start))
            if usual_cache is not None:
                usual_cache[rule.id] = (time.monotonic(), usual)
    residents = found["residents"]
    holds = residents >= rule.min_residents and (usual is None or residents >= rule.factor * usual)
    alert = {
        "rule_id": rule.id,
        "window_start": utc(start),
        "window_end": utc(now),
        "topic": rule.topic,
        "place": rule.place,
        "municipality": rule.municipality,
        "residents": residents,
        "posts": found["posts"],
        "usual_level": None if usual is None else round(usual, 3),
        "cases": found["cases"],
    }
    targets = [w.id for w in webhooks if w.wants(rule.id)]
    fired = inbox.alert_episode(rule.id, holds, utc(now), utc(now - rule.window), alert, targets)
    if fired is not None:
        log.info(
            "alert %s fired: %d residents within %s (usual %s)",
            rule.id,
            residents,
            rule.window,
            alert["usual_level"],
        )
    return fired

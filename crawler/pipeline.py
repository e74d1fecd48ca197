"""The ingest pipeline: items → normalise → pseudonymise → exact key → near-duplicates →
flagging → store.

Collectors hand items to an :class:`Ingest` one at a time. Posts are buffered and stored in
batches; a :class:`~crawler.model.Checkpoint` stores the buffered posts together with the
collector's new cursor in one transaction (invariant 2). The stages, in order: pseudonymised
authors (only when ``privacy: {pseudonymise_authors: true}``), exact key, near-duplicates,
flagging (:func:`default_stages`).

The near-duplicate stage keeps an index of the inbox's recent posts in memory. It is built
once per inbox and process (the first batch loads the window's posts) and shared by every
source's :class:`Ingest`; before each batch it reads the rows changed since (by ``seq``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from crawler import gctuning
from crawler.alerts import AlertRule, AlertStage, Webhook
from crawler.model import KINDS, PLATFORMS, Checkpoint, Post, SourceConfig, SourceInfo
from crawler.normalize import normalise
from crawler.pseudonymise import PrivacySettings, Pseudonymiser, load_key
from crawler.unchanged import SkipUnchanged
from dedupe.exact import add_exact_keys
from dedupe.settings import DedupeSettings
from dedupe.stage import NearDuplicates
from flagging import stage as flagging_stage
from flagging.settings import FlaggingSettings
from storage import Inbox, StoreResult

Stage = Callable[[list[Post]], list[Post]]
MAX_WARNINGS = 20


_NEAR: weakref.WeakKeyDictionary[Inbox, NearDuplicates] = weakref.WeakKeyDictionary()


def near_duplicates(inbox: Inbox, settings: DedupeSettings | None = None) -> NearDuplicates:
    """The near-duplicate stage of ``inbox`` (one per inbox and process, index shared)."""
    settings = settings or DedupeSettings()
    stage = _NEAR.get(inbox)
    if stage is None or stage.settings != settings:
        stage = _NEAR[inbox] = NearDuplicates(settings, recent=inbox.recent_posts)
    return stage


def default_stages(
    inbox: Inbox | None = None,
    dedupe: DedupeSettings | None = None,
    flagging: FlaggingSettings | None = None,
    lexicon_base: Path | None = None,
    privacy: PrivacySettings | None = None,
    alerts: list[AlertRule] | None = None,
    webhooks: list[Webhook] | None = None,
) -> list[Stage]:
    """Stages applied to every batch before it is stored, in order.

    Pseudonymisation (when ``privacy`` asks for it) comes first, so every later stage and the
    inbox see only pseudonyms. Then posts the inbox holds unchanged are left out
    (:mod:`crawler.unchanged`). Without an inbox there is no index of earlier posts: only exact
    keys are set. Flagging comes last; relative lexicon paths are read from ``lexicon_base``
    (sources.yaml's folder). With alert rules, the last stage notes the rules a batch
    touches and evaluates them once it is stored (:mod:`crawler.alerts`). The process's
    garbage collector is tuned for the pipeline (:mod:`crawler.gctuning`).
    """
    gctuning.tune()
    stages: list[Stage] = []
    if privacy is not None and privacy.pseudonymise_authors:
        stages.append(pseudonymise_stage(privacy))
    if inbox is not None:
        settings = (dedupe or DedupeSettings(), flagging or FlaggingSettings(), lexicon_base)
        stages.append(SkipUnchanged(inbox, settings))
    stages.append(add_exact_keys)
    if inbox is not None:
        stages.append(near_duplicates(inbox, dedupe))
    stages.append(flagging_stage(flagging, lexicon_base))
    if inbox is not None and alerts:
        stages.append(AlertStage(inbox, alerts, webhooks or []))
    return stages


def pseudonymise_stage(privacy: PrivacySettings) -> Stage:
    """Pseudonymise the authors of a batch (:mod:`crawler.pseudonymise`).

    The key is read from ``privacy.key_env`` at the first batch; without it the stage raises
    :class:`~crawler.pseudonymise.PseudonymKeyMissing` (a SourceError: the source fails with
    that one line) and nothing of the batch is stored.
    """
    holder: list[Pseudonymiser] = []

    def pseudonymise(posts: list[Post]) -> list[Post]:
        if posts and not holder:
            holder.append(Pseudonymiser(load_key(privacy.key_env)))
        for post in posts:
            holder[0].post(post)
        return posts

    return pseudonymise


class Ingest:
    """Receives one source's collected items and writes them to the inbox in batches."""

    def __init__(
        self,
        inbox: Inbox,
        source: SourceConfig,
        *,
        batch_size: int = 200,
        stages: list[Stage] | None = None,
        dedupe: DedupeSettings | None = None,
        flagging: FlaggingSettings | None = None,
        lexicon_base: Path | None = None,
        privacy: PrivacySettings | None = None,
    ) -> None:
        self.inbox = inbox
        self.source = source
        self.zone = ZoneInfo(source.timezone or "UTC")
        self.batch_size = batch_size
        if stages is None:
            stages = default_stages(inbox, dedupe, flagging, lexicon_base, privacy)
        self.stages = stages
        self.buffer: list[Post] = []
        self.stored = StoreResult()
        self.invalid = 0
        self.warnings: list[str] = []
        self.title: str | None = None
        self.checkpoints = 0
        self.editorial = source.post_voice == "editorial"

    def accept(self, item: object) -> None:
        """Take a Post, a Checkpoint or a SourceInfo from a collector."""
        if isinstance(item, Post):
            self.add(item)
        elif isinstance(item, Checkpoint):
            self.flush(item.cursor)
        elif isinstance(item, SourceInfo):
            self.title = item.title or self.title
        else:
            self.warn(f"collector produced {type(item).__name__}, not a Post: ignored")

    def add(self, post: Post) -> None:
        problem = _problem(post)
        if problem:
            self.invalid += 1
            self.warn(f"invalid post {post.native_id or '?'}: {problem}")
            return
        if not post.source_id:
            post.source_id = self.source.id
        if post.municipality is None:
            post.municipality = self.source.municipality
        post.editorial = self.editorial
        try:
            normalise(post, self.zone)
        except (ValueError, TypeError, OverflowError) as exc:
            self.invalid += 1
            self.warn(f"invalid post {post.native_id}: {exc}")
            return
        self.buffer.append(post)
        if len(self.buffer) >= self.batch_size:
            self.flush()

    def flush(self, cursor: dict | None = None) -> None:
        """Store buffered posts; save ``cursor`` with them when given.

        A stage returns the posts that go on; those it leaves out are stored unchanged
        already. A stage marked ``under_write_lock`` (the near-duplicates) runs last, inside
        the write transaction: holding the inbox's write lock, it sees every post stored
        before by any process, so two reports of one case stored at the same moment by two
        harvesters (``glas worker`` on several machines) end in one case. After storing, a
        stage with a ``stored`` method learns what was written.
        """
        posts, self.buffer = self.buffer, []
        locked = [s for s in self.stages if getattr(s, "under_write_lock", False)]
        posts = self._through([s for s in self.stages if s not in locked], posts)
        if posts or cursor is not None or self.title:
            with self.inbox.transaction():
                posts = self._through(locked, posts)
                result = self.inbox.store(self.source.id, posts, cursor=cursor, title=self.title)
            self.stored += result
            self.title = None  # stored: later batches need not send it again
            for stage in self.stages:
                learn = getattr(stage, "stored", None)
                if learn is not None:
                    learn(result)
        if cursor is not None:
            self.checkpoints += 1

    def _through(self, stages: list[Stage], posts: list[Post]) -> list[Post]:
        for stage in stages:
            before = len(posts)
            posts = stage(posts)
            self.stored.unchanged += before - len(posts)
        return posts

    def close(self) -> None:
        """Store what is left (the cursor stays where the last checkpoint put it)."""
        if self.buffer:
            self.flush()

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)
        elif len(self.warnings) == MAX_WARNINGS:
            self.warnings.append("… more warnings not shown")


def _problem(post: Post) -> str | None:
    if post.platform not in PLATFORMS:
        return f"platform {post.platform!r} is not one of {', '.join(PLATFORMS)}"
    if not isinstance(post.native_id, str) or not post.native_id.strip():
        return "no native_id"
    if post.kind not in KINDS:
        return f"kind {post.kind!r} is not post or comment"
    if not isinstance(post.text, str):
        return "text is not a string"
    return None

"""The rule-based flagger: complaint score, official-answer style, topics, places."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flagging import lexicon, morph, text
from flagging.comment_model import CommentModel
from flagging.learned import TopicModel
from flagging.lexicon import Hit, LexiconError, Matcher
from flagging.places import Located, PlaceFinder, as_dicts

# "Вы", "Вас", "Вам", "Ваш…" with a capital inside a sentence: the polite address of answers.
_GRIEVANCE = ("complaint.problem", "complaint.request", "complaint.dissatisfaction")
_VERBAL = frozenset({"VERB", "INFN", "PRTS"})
_WE = frozenset(
    {"мы", "нас", "нам", "нами", "наш", "наша", "наше", "наши", "нашего", "нашей", "нашем", "нашу"}
    | {"наших", "нашим", "нашими"}
)
# Complaint signals that are no lexicon evidence: they count with the weights of
# complaint.yaml's `signal_weights` (0 when not listed); every other signal (one per complaint
# group, operators' new groups too) counts as it is.
EXTRA_SIGNALS = frozenset(
    {"short", "question", "length", "place_share", "digits", "reply_official", "reply_person", "we"}
)
# Evidence keys of a topic code: its terms ("topic.") and its routing terms ("route."), which
# choose between sectors but are no complaint evidence (the complaint counts "topic." only).
_TOPIC_KEYS = ("topic.", "route.")
_ENDS_TE = re.compile(r"^.{3,}те$", re.MULTILINE)
_POLITE = re.compile(r"(?<=[^.!?\n]\s)(?:Вы|Вас|Вам|Вами|Ваш[а-я]*)\b")


@dataclass(slots=True)
class Flags:
    """What the flagger says about one text."""

    complaint_score: float
    is_complaint: bool
    official_style: bool
    official_score: float
    topics: list[str]
    topic_scores: dict[str, float]
    places: list[dict[str, str]]
    municipality: str | None
    # "rules": lexicons alone; "blend": the average of the lexicons' shares and the topic
    # model's probabilities; "model": the lexicons found no topic in a complaint, the model chose;
    # "portal": a resident's post that reads like a portal appeal, the model chose;
    # "comments": the comment model chose (a resident's comment that is or may be a complaint).
    topic_source: str = "rules"


@dataclass(slots=True)
class _Group:
    weight: float
    cap: float
    negated: str | None  # key that negated hits count for instead (None drops them)
    softened_by: str | None  # a key whose presence halves this group


class Flagger:
    """Compiled lexicons; build once per process (about a second) and reuse.

    ``model`` is the statistical topic model (:mod:`flagging.learned`). When the lexicons find
    a topic the model knows and ``blend`` is on, the scores are the mean of their shares and the
    model's probabilities; when they find none in a complaint, the model names one if it gives
    it at least ``model_min``. With ``posts_first``, the model names the topic of every post (not
    a comment) that is a complaint or has a lexicon topic where it gives its best code at least
    ``model_min``: it learnt from a portal's appeals, which are such posts. With ``style`` (the
    style model, :mod:`flagging.learned`), it names the topic of every resident's post (not a
    comment, an outlet's or an official's) that reads like such an appeal (``portal`` at least
    ``portal_min``) where it is at least ``model_min`` sure (``portal_sure`` when the post is
    no complaint and the lexicons find no topic in it). ``comment_model``
    (:mod:`flagging.comment_model`) judges residents' comments: whether one is a complaint where
    the rules' score is inside its band and the text shows no answer style, and the topic of
    those that are complaints.
    """

    def __init__(
        self,
        overrides: Iterable[str | Path] = (),
        *,
        threshold: float = 0.5,
        model: TopicModel | None = None,
        model_min: float = 0.5,
        blend: bool = False,
        posts_first: bool = False,
        style: TopicModel | None = None,
        portal_min: float = 0.9,
        portal_sure: float = 0.8,
        comment_model: CommentModel | None = None,
    ) -> None:
        if style is not None and (model is None or style.vocabulary != model.vocabulary):
            raise ValueError("the style model was not fitted with this topic model: make train")
        self.model = model
        self.style = style
        self.portal_min = portal_min
        self.portal_sure = portal_sure
        self.comment_model = comment_model
        self.blend = blend
        self.posts_first = posts_first
        self.model_min = model_min
        paths = [str(p) for p in overrides]
        try:
            self._build(lexicon.load(paths), threshold)
        except LexiconError as exc:
            if paths and not str(exc).startswith(tuple(paths)):
                raise LexiconError(f"{', '.join(paths)}: {exc}") from None
            raise

    def _build(self, data: dict[str, Any], threshold: float) -> None:
        self.threshold = threshold
        self.matcher = Matcher()
        self.groups: dict[str, _Group] = {}
        complaint, official = data["complaint"], data["official"]
        self._add_groups("complaint", complaint)
        self._add_groups("official", official)
        self.bias = float(complaint.get("bias", -1.5))
        self.editorial_shift = float(complaint.get("editorial_shift", 0.0))
        weights = complaint.get("signal_weights") or {}
        unknown = sorted(set(weights) - EXTRA_SIGNALS)
        if unknown:
            raise LexiconError(
                f"complaint.signal_weights: unknown signal {unknown[0]!r} "
                f"(expected one of {', '.join(sorted(EXTRA_SIGNALS))})"
            )
        self.signal_weights = {str(k): float(v) for k, v in weights.items()}
        self.question_words = frozenset(complaint.get("question_words") or [])
        self.question_weight = float(complaint.get("question_weight", 1.0))
        self.exclamation_weight = float(complaint.get("exclamation_weight", 0.0))
        self.short_words = int(complaint.get("short_text_words", 3))
        self.negated_verb_weight = float(complaint.get("negated_verb_weight", 0.0))
        self.negated_verb_ignore = frozenset(complaint.get("negated_verb_ignore") or [])
        self.imperative_weight = float(complaint.get("imperative_weight", 0.0))
        self.imperative_ignore = frozenset(complaint.get("imperative_ignore") or [])
        self.official_penalty = float(official.get("complaint_penalty", 0.0))
        self.topic_weight = float(complaint.get("topic_weight", 0.0))
        self.topic_cap = float(complaint.get("topic_cap", 2.0))
        self.official_threshold = float(official.get("threshold", 2.5))
        self.polite_weight = float(official.get("polite_pronoun_weight", 0.0))
        topics = data["topics"]
        self.labels: dict[str, str] = {}
        for code, spec in (topics.get("codes") or {}).items():
            spec = spec or {}
            self.labels[code] = str(spec.get("label", code))
            for term, weight in lexicon.terms_of(spec, f"topics.{code}"):
                self._add(term, f"topic.{code}", weight)
            # Routing terms choose between sectors only: the complaint score does not count
            # them ("снег убран", "урна" tell a yard from a roof or a bin in an answer too).
            routing = {"terms": spec.get("routing"), "remove": spec.get("remove")}
            for term, weight in lexicon.terms_of(routing, f"topics.{code}.routing"):
                self._add(term, f"route.{code}", weight)
        self.labels.setdefault("other", "другое")
        self.topic_term_cap = float(topics.get("cap", 4))
        self.min_topic = float(topics.get("min_score", 0.25))
        self.max_topics = int(topics.get("max_topics", 3))
        places = data["places"]
        self.places = PlaceFinder(places)
        for name, terms in (places.get("municipalities") or {}).items():
            for term in terms or []:
                self._add(str(term), f"municipality.{name}", 1.0)

    def _add(self, term: str, key: str, weight: float) -> None:
        try:
            self.matcher.add(term, key, weight)
        except LexiconError as exc:
            raise LexiconError(f"{key}: {exc}") from None

    def _add_groups(self, section: str, spec: dict[str, Any]) -> None:
        for name, group in (spec.get("groups") or {}).items():
            group = group or {}
            key = f"{section}.{name}"
            negated = group.get("negated", key)
            self.groups[key] = _Group(
                weight=float(group.get("weight", 1.0)),
                cap=float(group.get("cap", 3.0)),
                negated=None if negated in (None, "none") else str(negated),
                softened_by=group.get("softened_by"),
            )
            for term, weight in lexicon.terms_of(group, key):
                self._add(term, key, weight)

    def flag(
        self,
        raw_text: str,
        *,
        official_author: bool = False,
        reply: bool = False,
        editorial: bool = False,
        town: str | None = None,
    ) -> Flags:
        """Flag one text; ``official_author`` marks a text by an official account, ``reply`` a
        comment (a reply to a post or comment), ``editorial`` a post an outlet wrote itself
        (a news item: the complaint score starts from ``editorial_shift`` lower), ``town`` the
        municipality whose known streets (``places.streets``) are looked for."""
        return self.flag_many([raw_text], [official_author], [reply], [editorial], [town])[0]

    def flag_many(
        self,
        texts: Sequence[str],
        official_authors: Sequence[bool] | None = None,
        replies: Sequence[bool] | None = None,
        editorials: Sequence[bool] | None = None,
        towns: Sequence[str | None] | None = None,
    ) -> list[Flags]:
        """Flag many texts: the same as :meth:`flag` each, with one pass of each model for all."""
        officials = official_authors or [False] * len(texts)
        replies = replies or [False] * len(texts)
        editorials = editorials or [False] * len(texts)
        towns = towns or [None] * len(texts)
        out: list[Flags] = []
        words: list[list[str]] = []
        named: list[dict[str, float]] = []
        for raw_text, official, editorial, town in zip(
            texts, officials, editorials, towns, strict=True
        ):
            flags, tokens, signals = self._flag_rules(raw_text or "", official, editorial, town)
            out.append(flags)
            words.append(tokens)
            named.append(signals)
        done: set[int] = set()
        if self.comment_model is not None:
            done = self._ask_comment_model(out, words, named, officials, replies)
        if self.model is not None:
            portal = self._portal_style(words, done, officials, replies, editorials)
            self._ask_topic_model(out, words, done | set(portal), replies, portal)
        return out

    def reads_as_portal(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text reads like a city portal's appeal (the style model at least
        ``portal_min``; all False without it), as the flagger judges residents' posts."""
        model = self.model
        if self.style is None or model is None:
            return [False] * len(texts)
        return self._portal(
            [model.rows_of_words(text.words(text.clean(raw or ""))) for raw in texts]
        )

    def _portal(self, rows: list[list[int]]) -> list[bool]:
        """Whether each text, given by its rows of the topic model, reads like a portal's
        appeal (the style model shares the topic model's vocabulary)."""
        assert self.style is not None
        table = self.style.probabilities_of_rows(rows)
        return [probs[1] >= self.portal_min for probs in table]

    def _portal_style(
        self,
        words: list[list[str]],
        done: set[int],
        officials: Sequence[bool],
        replies: Sequence[bool],
        editorials: Sequence[bool],
    ) -> dict[int, list[int]]:
        """The residents' posts that read like a city portal's appeals, each with its rows of
        the topic model."""
        model = self.model
        if self.style is None or model is None:
            return {}
        rows = {
            n: model.rows_of_words(words[n])
            for n in range(len(words))
            if not (n in done or replies[n] or officials[n] or editorials[n])
        }
        portal = self._portal(list(rows.values()))
        return {n: found for (n, found), ported in zip(rows.items(), portal, strict=True) if ported}

    def _ask_comment_model(
        self,
        out: list[Flags],
        words: list[list[str]],
        named: list[dict[str, float]],
        officials: Sequence[bool],
        replies: Sequence[bool],
    ) -> set[int]:
        """Let the comment model judge residents' comments: complaint where the rules are
        unsure, then the topic of those that may be complaints where the lexicons are unsure of
        it (when the topic model is on: its probabilities are inputs). Returns the texts whose
        topics it set."""
        judge = self.comment_model
        assert judge is not None
        residents = [n for n, r in enumerate(replies) if r and not officials[n]]
        vectors: dict[int, np.ndarray] = {}  # text → its mean word vector, as needed

        def vectors_of(texts: list[int]) -> np.ndarray:
            todo = [n for n in texts if n not in vectors]
            if todo:
                found = judge.word_vectors.mean_unit([words[n] for n in todo])
                vectors.update(zip(todo, found, strict=True))
            return np.array([vectors[n] for n in texts]).reshape(len(texts), judge.dims)

        unsure = [
            n
            for n in residents
            if judge.asks(out[n].complaint_score, out[n].official_score, False, True)
        ]
        # The topic head names the topics of the comments that may be complaints: those the rules
        # call complaints and those the complaint head judges, whatever it decides (a comment it
        # calls no complaint keeps the topic a complaint would get: its best guess).
        likely = {n for n in residents if out[n].is_complaint}.union(unsure)
        if unsure:
            matrix = judge.complaint_matrix(
                [named[n] for n in unsure],
                [out[n].complaint_score for n in unsure],
                vectors_of(unsure),
            )
            for n, p in zip(unsure, judge.complaint_probabilities(matrix).tolist(), strict=True):
                out[n].complaint_score = round(p, 3)
                out[n].is_complaint = out[n].complaint_score >= self.threshold
        model = self.model
        topical = [
            n
            for n in residents
            if n in likely and judge.asks_topic(out[n].topics, out[n].topic_scores)
        ]
        if model is None or not topical:
            return set()
        table = model.probabilities_of_rows([model.rows_of_words(words[n]) for n in topical])
        matrix = judge.topic_matrix(
            [out[n].topic_scores for n in topical],
            [dict(zip(model.codes, probs, strict=True)) for probs in table],
            vectors_of(topical),
        )
        for n, probs in zip(topical, judge.topic_probabilities(matrix).tolist(), strict=True):
            self._use_comment_topics(out[n], dict(zip(judge.codes, probs, strict=True)))
        return set(topical)

    def _use_comment_topics(self, flags: Flags, probs: dict[str, float]) -> None:
        """Topics from the comment model: its best code first ("other" alone when that is it),
        then other codes it gives at least ``min_topic``."""
        ranked = sorted(probs, key=probs.__getitem__, reverse=True)
        best = ranked[0]
        more = [c for c in ranked[1:] if c != "other" and probs[c] >= self.min_topic]
        flags.topics = ["other"] if best == "other" else [best, *more][: self.max_topics]
        flags.topic_scores = {c: round(probs[c], 3) for c in ranked if probs[c] >= 0.0005}
        flags.topic_source = "comments"

    def _ask_topic_model(
        self,
        out: list[Flags],
        words: list[list[str]],
        done: set[int],
        replies: Sequence[bool],
        portal: dict[int, list[int]],
    ) -> None:
        """Let the topic model name the topics of the ``portal`` texts (given with their rows),
        and name or blend those of texts not in ``done`` (one pass for the whole batch)."""
        model = self.model
        assert model is not None
        asks: list[tuple[int, list[int], str, dict[str, float]]] = [
            (n, found, "portal", {}) for n, found in portal.items()
        ]
        for n, (flags, tokens) in enumerate(zip(out, words, strict=True)):
            if n in done:
                continue
            if (
                self.posts_first
                and not replies[n]
                and (flags.is_complaint or flags.topics != ["other"])
            ):
                asks.append((n, model.rows_of_words(tokens), "model", {}))
            elif self.blend and flags.topics[0] in model.codes:  # not codes it never saw
                asks.append((n, model.rows_of_words(tokens), "blend", flags.topic_scores))
            elif flags.topics == ["other"] and flags.is_complaint:  # it learnt complaints
                asks.append((n, model.rows_of_words(tokens), "model", {}))
        if asks:
            table = model.probabilities_of_rows([rows for _, rows, _, _ in asks])
            for (n, _, how, shares), probs in zip(asks, table, strict=True):
                self._use_model(out[n], how, shares, dict(zip(model.codes, probs, strict=True)))

    def _flag_rules(
        self, raw_text: str, official_author: bool, editorial: bool = False, town: str | None = None
    ) -> tuple[Flags, list[str], dict[str, float]]:
        """The lexicons' flags of one text, its words and its named complaint signals."""
        cleaned = text.clean(raw_text)
        tokens = text.words(cleaned)
        located = self.places.locate(cleaned, tokens, town)
        evidence = self._evidence(self._hits(cleaned, tokens, located))
        places = as_dicts(located)
        signals, extra, official_score, official_style = self._signals(
            raw_text, cleaned, tokens, evidence, places
        )
        logit = self.bias + sum(signals.values())
        for name, weight in self.signal_weights.items():
            logit += weight * extra[name]
        if extra["short"]:
            logit = self.bias + (logit - self.bias) / 2
        if editorial:
            logit += self.editorial_shift
        score = round(1.0 / (1.0 + math.exp(-logit)), 3)
        if official_author or official_style:
            score = 0.0
        topics, topic_scores = self._topics(evidence)
        towns = {k.split(".", 1)[1] for k in evidence if k.startswith("municipality.")}
        towns |= {p["name"] for p in places if p["kind"] == "settlement"}
        flags = Flags(
            complaint_score=score,
            is_complaint=score >= self.threshold,
            official_style=official_style,
            official_score=round(official_score, 2),
            topics=topics,
            topic_scores=topic_scores,
            places=places,
            municipality=next(iter(towns)) if len(towns) == 1 else None,
        )
        return flags, tokens, {**signals, **extra}

    def _hits(self, cleaned: str, tokens: list[str], located: list[Located]) -> list[Hit]:
        """The lexicons' hits, topics found with names left out (:meth:`_without_names`)."""
        hits = self.matcher.find(tokens)
        blanked = self._without_names(cleaned, tokens, located)
        if blanked is tokens:
            return hits
        kept = [hit for hit in hits if not hit.key.startswith(_TOPIC_KEYS)]
        return kept + [hit for hit in self.matcher.find(blanked) if hit.key.startswith(_TOPIC_KEYS)]

    def _without_names(self, cleaned: str, tokens: list[str], located: list[Located]) -> list[str]:
        """``tokens`` with names blanked: those of streets named with a type ("на Школьной
        улице": the type word and house numbers stay) and capitalised adjectives inside a
        sentence ("яма на Школьной", "у Больничной остановки"): neither is evidence of the
        topic the word means (schools, clinics); ``tokens`` itself when there is none. Only
        names some topic term could match are blanked: the others change no topic hit."""

        def wanted(word: str) -> bool:
            return self.matcher.can_match(word, _TOPIC_KEYS)

        names = {
            word
            for place in located
            if place.typed
            for word in text.words(cleaned[place.start : place.end])
            if not word.isdigit() and wanted(word)
        }
        names -= self.places.type_words
        names |= text.proper_adjectives(cleaned, wanted)
        if not names:
            return tokens
        return ["" if token in names else token for token in tokens]

    def _use_model(
        self, flags: Flags, how: str, shares: dict[str, float], probs: dict[str, float]
    ) -> None:
        """Set the topics of ``flags`` from the model: blended with the rules' shares, or alone
        (``model`` or ``portal``: only when it gives its best code at least ``model_min``, and a
        ``portal`` post that is no complaint and has no lexicon topic at least ``portal_sure``:
        short adverts, "Отдам кресло", read like terse appeals)."""
        if how == "blend":
            scores = dict(shares)
            for code, p in probs.items():
                scores[code] = scores.get(code, 0.0) + p
            scores = {c: v / 2 for c, v in scores.items()}
        elif max(probs.values()) >= self.model_min and (
            how != "portal"
            or flags.is_complaint
            or flags.topics != ["other"]
            or max(probs.values()) >= self.portal_sure
        ):
            scores = probs
        else:
            return
        ranked = sorted(scores, key=scores.__getitem__, reverse=True)
        topics = [c for c in ranked if c != "other" and scores[c] >= self.min_topic]
        flags.topics = topics[: self.max_topics] or ["other"]
        flags.topic_scores = {c: round(scores[c], 3) for c in ranked if scores[c] >= 0.0005}
        flags.topic_source = how

    def signals(self, raw_text: str) -> dict[str, float]:
        """The named evidence the complaint score is made of (for training and inspection)."""
        return self._flag_rules(raw_text or "", False)[2]

    def _signals(
        self,
        raw: str,
        cleaned: str,
        tokens: list[str],
        evidence: dict[str, float],
        places: list[dict[str, str]],
    ) -> tuple[dict[str, float], dict[str, float], float, bool]:
        """Complaint signals (lexicon evidence; :data:`EXTRA_SIGNALS`), the official-answer
        score and whether the text reads as an official answer.

        The rules' logit is ``bias`` plus the sum of the signals, those of
        :data:`EXTRA_SIGNALS` times their ``signal_weights`` (halved for a short text).
        """
        official_score = sum(v for k, v in evidence.items() if k.startswith("official."))
        if self.polite_weight and "Ва" in cleaned and _POLITE.search(cleaned):
            official_score += self.polite_weight
        request = evidence.get("complaint.request", 0.0)
        official_style = official_score >= self.official_threshold + request / 2
        signals = {k[10:]: v for k, v in evidence.items() if k.startswith("complaint.")}
        verbs = self._verbs(tokens)
        signals["verbs"] = verbs
        signals["official"] = -self.official_penalty * official_score
        local = sum(v for k, v in evidence.items() if k.startswith("topic."))
        signals["topic"] = self.topic_weight * min(local, self.topic_cap)
        asks = "?" in cleaned
        signals["question_when"] = (
            self.question_weight if asks and self.question_words.intersection(tokens) else 0.0
        )
        grievance = any(evidence.get(k, 0) > 0 for k in _GRIEVANCE) or verbs > 0
        outcry = "!" in cleaned and official_score < 1 and grievance
        signals["outcry"] = self.exclamation_weight if outcry else 0.0  # not "Привет!"
        n = len(tokens)
        place_words = sum(p["name"].count(" ") + 1 for p in places) if places else 0
        extra = {
            "short": 1.0 if n < self.short_words else 0.0,
            "question": 1.0 if asks else 0.0,
            "length": math.log1p(n),
            "place_share": min(1.0, place_words / n) if n else 0.0,
            "digits": sum(map(str.isdigit, tokens)) / n if n else 0.0,
            "reply_official": 1.0 if "[club" in raw or "[public" in raw else 0.0,
            "reply_person": 1.0 if "[id" in raw else 0.0,
            "we": 1.0 if _WE.intersection(tokens) else 0.0,
        }
        return signals, extra, official_score, official_style

    def _verbs(self, tokens: list[str]) -> float:
        """Evidence from verbs no lexicon lists: negated ones and polite imperatives."""
        negated = 0
        if "не" in tokens:
            after = [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == "не"]
            for token in after:
                if (
                    morph.tags(token) & _VERBAL
                    and morph.lemma(token) not in self.negated_verb_ignore
                ):
                    negated += 1
                    if negated == 2:
                        break
        imperative = any(
            "impr" in morph.tags(t) and morph.lemma(t) not in self.imperative_ignore
            for t in _ENDS_TE.findall("\n".join(tokens))  # words of 5+ letters ending in -те
        )
        return negated * self.negated_verb_weight + imperative * self.imperative_weight

    def _evidence(self, hits: list[Hit]) -> dict[str, float]:
        """Per key, the summed weights of distinct terms, each group capped and weighted."""
        seen: set[tuple[str, str]] = set()
        sums: dict[str, float] = {}
        for hit in hits:
            key = hit.key
            group = self.groups.get(key)
            if group is not None and hit.negated and group.negated != key:
                if group.negated is None:
                    continue
                key = group.negated
            if (key, hit.term) in seen:
                continue
            seen.add((key, hit.term))
            sums[key] = sums.get(key, 0.0) + hit.weight
        out: dict[str, float] = {}
        for key, total in sums.items():
            group = self.groups.get(key)
            if group is not None:
                out[key] = group.weight * min(total, group.cap)
                if group.softened_by and group.softened_by in sums:
                    out[key] /= 2
            elif key.startswith(_TOPIC_KEYS):
                out[key] = min(total, self.topic_term_cap)
            else:
                out[key] = total
        return out

    def _topics(self, evidence: dict[str, float]) -> tuple[list[str], dict[str, float]]:
        found: dict[str, float] = {}
        for key, value in evidence.items():
            if key.startswith(_TOPIC_KEYS):  # a code's terms and its routing terms
                found[key[6:]] = found.get(key[6:], 0.0) + value
        found = {code: v for code, v in found.items() if v > 0}
        total = sum(found.values()) + 1.0
        scores = {code: round(v / total, 3) for code, v in found.items()}
        scores["other"] = round(scores.get("other", 0.0) + 1.0 / total, 3)
        ranked = sorted(
            (c for c, s in scores.items() if c != "other" and s >= self.min_topic),
            key=lambda c: -scores[c],
        )[: self.max_topics]
        return ranked or ["other"], dict(sorted(scores.items(), key=lambda kv: -kv[1]))

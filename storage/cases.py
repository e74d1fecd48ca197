"""Cases (the ``clusters`` table): which case a post joins, merges, and case summaries.

A new post joins the case of the posts it copies (near-duplicate or repost links), of stored
posts with the same exact text, and of stored reposts of it; when these are several cases,
the oldest absorbs the others (:meth:`CaseWrites._merge_clusters`). A batch of new posts is
placed with a few lookups for the whole batch (:meth:`CaseWrites._place_new`), each post
also seeing the posts placed before it in the batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from crawler.model import Post
from storage.core import KEYS_PER_QUERY, SqlCore, by_platform
from storage.rows import dumps

Key = tuple[str, str]


class Member(NamedTuple):
    """What a cluster's summary needs of one of its posts."""

    id: int | None
    platform: str
    native_id: str
    source_id: str
    author_id: str | None
    is_canonical: int | None
    at: str  # published_at, else first_seen_at
    is_complaint: int | None
    complaint_score: float | None
    answered_at: str | None
    topics: str | None
    municipality: str | None


_MEMBER_COLUMNS = {"at": "coalesce(published_at, first_seen_at) AS at"}
MEMBER_SELECT = ", ".join(_MEMBER_COLUMNS.get(f, f) for f in Member._fields)
SUMMARY_COLUMNS = (
    "canonical_platform",
    "canonical_native_id",
    "size",
    "authors",
    "platforms",
    "sources",
    "first_seen",
    "last_seen",
    "topics",
    "municipality",
    "complaint_score",
    "is_complaint",
    "answered_at",
)


class Placement:
    """Where the new posts of one batch go: targets found for the whole batch at once, then
    updated as each post is placed, so later posts of the batch see earlier ones."""

    def __init__(self) -> None:
        self.by_text: dict[str, int] = {}  # dedupe_key → a case holding that exact text
        self.by_post: dict[Key, int] = {}  # a post (linked to) → its case
        self.reposts: dict[Key, set[int]] = {}  # an original → cases of its stored reposts
        self.merged: dict[int, int] = {}  # a case merged in this batch → the one it joined

    def resolve(self, cluster_id: int) -> int:
        while cluster_id in self.merged:
            cluster_id = self.merged[cluster_id]
        return cluster_id

    def targets(self, row: dict[str, Any], post: Post) -> list[int]:
        """The cases ``row`` belongs to, oldest first (the rule of the module docstring)."""
        found = set(self.reposts.get((row["platform"], row["native_id"]), ()))
        for link in post.duplicate_of or ():
            cluster_id = self.by_post.get(link)
            if cluster_id is not None:
                found.add(cluster_id)
        if row["dedupe_key"] is not None:
            cluster_id = self.by_text.get(row["dedupe_key"])
            if cluster_id is not None:
                found.add(cluster_id)
        return sorted({self.resolve(c) for c in found})

    def placed(self, row: dict[str, Any]) -> None:
        """Make ``row`` (now in case ``row["cluster_id"]``) a target for later posts."""
        cluster_id = row["cluster_id"]
        self.by_post[(row["platform"], row["native_id"])] = cluster_id
        if row["dedupe_key"] is not None:
            self.by_text.setdefault(row["dedupe_key"], cluster_id)
        if row["repost_of"]:
            self.reposts.setdefault((row["platform"], row["repost_of"]), set()).add(cluster_id)


class CaseWrites(SqlCore):
    """Placing posts in cases, merging cases and keeping their summaries current."""

    def _placement(
        self, items: list[tuple[dict[str, Any], Post]], exclude: Sequence[int] = ()
    ) -> Placement:
        """Look up, for a batch of new posts, every stored case they may join (a few
        queries for the whole batch, each on an index); stored posts being moved
        (``exclude``, their ids) are no same-text target of their own."""
        place = Placement()
        texts = sorted({row["dedupe_key"] for row, _ in items if row["dedupe_key"] is not None})
        others = f"AND id NOT IN ({', '.join('?' for _ in exclude)}) " if exclude else ""
        for start in range(0, len(texts), KEYS_PER_QUERY):
            chunk = texts[start : start + KEYS_PER_QUERY]
            for key, cluster_id in self._execute(
                "SELECT dedupe_key, min(cluster_id) FROM posts WHERE dedupe_key IN "
                f"({', '.join('?' for _ in chunk)}) AND cluster_id IS NOT NULL {others}"
                "GROUP BY dedupe_key",
                [*chunk, *exclude],
            ).fetchall():
                place.by_text[key] = cluster_id
        links = {link for _, post in items for link in post.duplicate_of or ()}
        for platform, ids in by_platform(links):
            for native_id, cluster_id in self._execute(
                "SELECT native_id, cluster_id FROM posts WHERE platform = ? AND native_id IN "
                f"({', '.join('?' for _ in ids)}) AND cluster_id IS NOT NULL",
                [platform, *ids],
            ).fetchall():
                place.by_post[(platform, native_id)] = cluster_id
        keys = {(row["platform"], row["native_id"]) for row, _ in items}
        for platform, ids in by_platform(keys):
            for original, cluster_id in self._execute(
                "SELECT repost_of, cluster_id FROM posts WHERE platform = ? AND repost_of IN "
                f"({', '.join('?' for _ in ids)}) AND cluster_id IS NOT NULL",
                [platform, *ids],
            ).fetchall():
                place.reposts.setdefault((platform, original), set()).add(cluster_id)
        return place

    def _merge_clusters(self, targets: list[int], touched: set[int], now: str) -> None:
        """Move every stored post of ``targets[1:]`` into ``targets[0]`` (the oldest case).

        Each moved post and each emptied case gets a new seq; the emptied case keeps
        ``merged_into`` so routing tools can carry their status over.
        """
        if len(targets) < 2:
            return
        into = targets[0]
        for other in targets[1:]:
            ids = self._execute("SELECT id FROM posts WHERE cluster_id = ?", (other,)).fetchall()
            self._executemany(
                "UPDATE posts SET cluster_id = ?, seq = coalesce(?, seq) WHERE id = ?",
                [(into, self._stamp("posts", post_id), post_id) for (post_id,) in ids],
            )
            merged = self._execute(
                "SELECT cluster_id FROM clusters WHERE cluster_id = ? "
                "UNION SELECT cluster_id FROM clusters WHERE merged_into = ?",
                (other, other),
            ).fetchall()
            self._executemany(
                "UPDATE clusters SET merged_into = ?, updated_at = ?, seq = coalesce(?, seq) "
                "WHERE cluster_id = ?",
                [(into, now, self._stamp("clusters", c), c) for (c,) in merged],
            )
            touched.add(other)
        touched.add(into)

    def _insert_clusters(self, summaries: dict[int, dict[str, Any]], now: str) -> None:
        """Insert new cases with their summaries (ids reserved beforehand), one seq each."""
        if not summaries:
            return
        columns = ("cluster_id", *SUMMARY_COLUMNS, "merged_into", "updated_at", "seq")
        rows = []
        for cluster_id, summary in summaries.items():
            self._stamped.add(("clusters", cluster_id))
            values = [summary[name] for name in SUMMARY_COLUMNS]
            rows.append((cluster_id, *values, summary.get("merged_into"), now, self._next_seq()))
        self._insert_rows("clusters", columns, rows)

    def _move_posts(
        self, moved: list[tuple[int, int | None, dict[str, Any], Post]], touched: set[int], now: str
    ) -> None:
        """Place stored posts whose text changed (``(id, case, row, post)``) as new posts are
        placed (:meth:`_placement`), each seeing the moves before it."""
        if not moved:
            return
        place = self._placement(
            [(row, post) for _, _, row, post in moved], [post_id for post_id, *_ in moved]
        )
        for post_id, old, row, post in moved:
            targets = place.targets(row, post)
            row["cluster_id"] = self._assign_cluster(post_id, old, targets, touched, now)
            for other in targets[1:]:
                place.merged[other] = targets[0]
            place.placed(row)

    def _assign_cluster(
        self, post_id: int, old: int | None, targets: list[int], touched: set[int], now: str
    ) -> int:
        """Move a stored post whose text changed: join the oldest of ``targets`` (merging
        the others into it), else keep its case when it is alone there, else open one.
        Returns its case."""
        target = targets[0] if targets else None
        if target is None and old is not None:
            others = self._execute(
                "SELECT count(*) FROM posts WHERE cluster_id = ? AND id != ?", (old, post_id)
            ).fetchone()[0]
            target = old if others == 0 else None
        if target is None:
            (target,) = self._reserve_ids("clusters", "cluster_id", 1)
            self._insert_clusters({target: summary_of([])}, now)
        if target != old:
            self._execute("UPDATE posts SET cluster_id = ? WHERE id = ?", (target, post_id))
            if old is not None:
                touched.add(old)
        touched.add(target)
        self._merge_clusters(targets, touched, now)
        return target

    def _stored_summaries(self, ids: list[int]) -> dict[int, tuple[Any, ...]]:
        """The stored summaries of cases ``ids`` (the values of :data:`SUMMARY_COLUMNS`)."""
        stored: dict[int, tuple[Any, ...]] = {}
        for start in range(0, len(ids), KEYS_PER_QUERY):
            chunk = ids[start : start + KEYS_PER_QUERY]
            for cluster_id, *values in self._execute(
                f"SELECT cluster_id, {', '.join(SUMMARY_COLUMNS)} FROM clusters "
                f"WHERE cluster_id IN ({', '.join('?' for _ in chunk)})",
                chunk,
            ).fetchall():
                stored[cluster_id] = tuple(values)
        return stored

    def _write_summaries(self, rows: list[tuple[Any, ...]]) -> None:
        """Write summaries: rows of the :data:`SUMMARY_COLUMNS` values, ``updated_at``, the
        new seq (None: keep the one given in this transaction) and the case."""
        sets = ", ".join(f"{name} = ?" for name in SUMMARY_COLUMNS)
        self._executemany(
            f"UPDATE clusters SET {sets}, updated_at = ?, seq = coalesce(?, seq) "
            "WHERE cluster_id = ?",
            rows,
        )

    def _append_members(
        self, appended: dict[int, list[dict[str, Any]]], seq_before: int, now: str
    ) -> set[int]:
        """Bring the summaries of stored cases that only gained new posts up to date from
        their stored summary and the new posts alone (a case's cost must not grow with its
        size). Returns the cases this cannot do: a new post earlier than the case's canonical
        one, or naming another municipality than the case's; they need a full refresh."""
        if not appended:
            return set()
        ids = sorted(appended)
        stored = {
            cluster_id: dict(zip(SUMMARY_COLUMNS, values, strict=True))
            for cluster_id, values in self._stored_summaries(ids).items()
        }
        known: set[tuple[int, str]] = set()  # (case, author) of its posts stored before
        for start in range(0, len(ids), KEYS_PER_QUERY):
            chunk = ids[start : start + KEYS_PER_QUERY]
            marks = ", ".join("?" for _ in chunk)
            authors = sorted({r["author_id"] for c in chunk for r in appended[c] if r["author_id"]})
            for first in range(0, len(authors), KEYS_PER_QUERY):
                names = authors[first : first + KEYS_PER_QUERY]
                known.update(
                    self._execute(
                        "SELECT DISTINCT cluster_id, author_id FROM posts WHERE cluster_id IN "
                        f"({marks}) AND author_id IN ({', '.join('?' for _ in names)}) "
                        "AND seq <= ?",
                        [*chunk, *names, seq_before],
                    ).fetchall()
                )
        fallback: set[int] = set()
        changed = []
        for cluster_id in ids:
            old = stored[cluster_id]
            rows = appended[cluster_id]
            times = [r["published_at"] or now for r in rows]
            towns = {r["municipality"] for r in rows if r["municipality"]}
            if (
                old["size"] == 0
                or min(times) <= old["first_seen"]
                or len(towns - {old["municipality"]}) > (0 if old["municipality"] else 1)
            ):
                fallback.add(cluster_id)
                continue
            new = dict(old)
            new["size"] = old["size"] + len(rows)
            new["last_seen"] = max(old["last_seen"], *times)
            new["authors"] = old["authors"] + len(
                {r["author_id"] for r in rows if r["author_id"]}
                - {a for c, a in known if c == cluster_id}
            )
            for name, column in (("platforms", "platform"), ("sources", "source_id")):
                names = set(json.loads(old[name])) | {r[column] for r in rows}
                new[name] = dumps(sorted(names))
            if not old["municipality"] and towns:
                (new["municipality"],) = towns  # the only one any new post names
            for name, pick in (
                ("complaint_score", max),
                ("is_complaint", max),
                ("answered_at", min),
            ):
                values = [v for v in (old[name], *(r[name] for r in rows)) if v is not None]
                new[name] = pick(values) if values else None
            values = tuple(new[name] for name in SUMMARY_COLUMNS)
            changed.append((*values, now, self._stamp("clusters", cluster_id), cluster_id))
        self._write_summaries(changed)
        return fallback

    def _refresh_clusters(
        self, cluster_ids: Iterable[int], now: str, edited: set[int] | frozenset = frozenset()
    ) -> None:
        """Recompute the summaries of ``cluster_ids`` (a few queries for all of them); stamp
        seq on rows whose values changed.

        Clusters in ``edited`` are stamped even when the summary is equal: their canonical
        post's content changed, and the ``inbox`` view shows it.
        """
        ids = sorted(cluster_ids)
        members: dict[int, list[Member]] = {c: [] for c in ids}
        for start in range(0, len(ids), KEYS_PER_QUERY):
            chunk = ids[start : start + KEYS_PER_QUERY]
            marks = ", ".join("?" for _ in chunk)
            for cluster_id, *values in self._execute(
                f"SELECT cluster_id, {MEMBER_SELECT} FROM posts WHERE cluster_id IN ({marks}) "
                "ORDER BY cluster_id, at, id",
                chunk,
            ).fetchall():
                members[cluster_id].append(Member(*values))
        stored = self._stored_summaries(ids)
        changed, canonical = [], []
        for cluster_id in ids:
            summary = summary_of(members[cluster_id])
            values = tuple(summary[name] for name in SUMMARY_COLUMNS)
            if cluster_id not in edited and stored.get(cluster_id) == values:
                continue
            changed.append((*values, now, self._stamp("clusters", cluster_id), cluster_id))
            for member in members[cluster_id]:
                flag = int(member is members[cluster_id][0])
                if member.is_canonical != flag:
                    canonical.append((flag, self._stamp("posts", member.id), member.id))
        self._write_summaries(changed)
        self._executemany(
            "UPDATE posts SET is_canonical = ?, seq = coalesce(?, seq) WHERE id = ?", canonical
        )


def summary_of(members: list[Member]) -> dict[str, Any]:
    """A case's summary from its members in order (earliest first: the canonical post)."""
    if not members:
        return dict.fromkeys(SUMMARY_COLUMNS, None) | {"size": 0, "authors": 0}
    first = members[0]
    flags = [m.is_complaint for m in members if m.is_complaint is not None]
    scores = [m.complaint_score for m in members if m.complaint_score is not None]
    answers = [m.answered_at for m in members if m.answered_at is not None]
    return {
        "canonical_platform": first.platform,
        "canonical_native_id": first.native_id,
        "size": len(members),
        "authors": len({m.author_id for m in members if m.author_id}),
        "platforms": dumps(sorted({m.platform for m in members})),
        "sources": dumps(sorted({m.source_id for m in members})),
        "first_seen": first.at,
        "last_seen": members[-1].at,
        "topics": first.topics,
        "municipality": next((m.municipality for m in members if m.municipality), None),
        "complaint_score": max(scores) if scores else None,
        "is_complaint": max(flags) if flags else None,
        "answered_at": min(answers) if answers else None,
    }


def member_of(row: dict[str, Any], now: str) -> Member:
    """The :class:`Member` of a post row about to be inserted."""
    return Member(
        id=row["id"],
        platform=row["platform"],
        native_id=row["native_id"],
        source_id=row["source_id"],
        author_id=row["author_id"],
        is_canonical=row["is_canonical"],
        at=row["published_at"] or now,
        is_complaint=row["is_complaint"],
        complaint_score=row["complaint_score"],
        answered_at=row["answered_at"],
        topics=row["topics"],
        municipality=row["municipality"],
    )

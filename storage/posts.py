"""Storing a batch of posts: the idempotent upsert every collection and import goes through.

One ``store`` call is one transaction and a few set-based statements per batch, whatever its
size: the stored versions of the batch's posts are read in a few queries, new posts are
placed in cases in memory (:mod:`storage.cases`) and inserted at once with ids reserved
beforehand, changed posts are updated at once, then answers (:mod:`storage.answers`) and case
summaries are brought up to date for the whole batch. Every row that changes gets one new
``seq``; the collector's cursor is saved in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from crawler.model import Post
from storage.answers import AnswerWrites
from storage.cases import CaseWrites, member_of, summary_of
from storage.core import by_platform
from storage.inbox import StoreResult
from storage.rows import ANSWER_COLUMNS, CONTENT_COLUMNS, dumps, now_text, post_row

Key = tuple[str, str]
INSERT_COLUMNS = (
    "id",
    "platform",
    "native_id",
    "source_id",
    *CONTENT_COLUMNS,
    *ANSWER_COLUMNS,
    "raw",
    "content_hash",
    "collected_hash",
    "cluster_id",
    "is_canonical",
    "deleted_at",
    "first_seen_at",
    "updated_at",
    "seq",
)
UPDATE_COLUMNS = (*CONTENT_COLUMNS, "raw", "content_hash", "collected_hash")
_insert_values = itemgetter(*INSERT_COLUMNS)
_update_values = itemgetter(*UPDATE_COLUMNS, *ANSWER_COLUMNS)


class Stored(NamedTuple):
    """What ``store`` needs to know of a post already in the inbox."""

    id: int
    content_hash: str
    collected_hash: str | None
    dedupe_key: str | None
    cluster_id: int | None
    is_canonical: int | None
    deleted_at: str | None


class PostWrites(CaseWrites, AnswerWrites):
    """The ``posts`` table's write path."""

    def store(
        self,
        source_id: str,
        posts: Sequence[Post],
        *,
        cursor: dict[str, Any] | None = None,
        title: str | None = None,
    ) -> StoreResult:
        result = StoreResult()
        now = now_text()
        with self.transaction():
            result.seq_before = self._current_seq()
            batch = _latest_copies(source_id, posts, result)
            known = self._find_posts(set(batch))
            touched: set[int] = set()
            edited: set[int] = set()  # cases whose canonical post's content changed
            answered: set[Key] = set()  # posts an official reply may answer
            new: list[tuple[dict[str, Any], Post]] = []
            updates: list[tuple[Stored, dict[str, Any]]] = []
            moved: list[tuple[Stored, dict[str, Any], Post]] = []
            deletions: list[tuple[int, str | None]] = []
            rehashed: list[tuple[str | None, int]] = []
            for key, (row, post, deleted) in batch.items():
                found = known.get(key)
                if row["author_is_official"] and row["parent"]:
                    answered.add((row["platform"], row["parent"]))
                elif found is None:
                    answered.add(key)  # replied to before it was collected?
                if deleted:
                    row["deleted_at"] = now
                    if found is not None:  # keep what was collected; only mark it deleted
                        if found.deleted_at is None:
                            deletions.append((found.id, row["collected_hash"]))
                            result.updated += 1
                        else:
                            result.unchanged += 1
                        continue
                elif (
                    found is not None
                    and found.deleted_at is None
                    and found.content_hash == row["content_hash"]
                ):
                    result.unchanged += 1
                    if found.collected_hash != row["collected_hash"]:
                        rehashed.append((row["collected_hash"], found.id))
                    continue
                if found is None:
                    new.append((row, post))
                    result.new += 1
                    continue
                updates.append((found, row))
                result.updated += 1
                if found.dedupe_key != row["dedupe_key"] or found.cluster_id is None:
                    moved.append((found, row, post))
            joined: dict[int, list[dict[str, Any]]] = {}  # stored cases new posts joined
            merged = self._insert_new(new, touched, joined, now)
            self._update_posts(updates, now)
            self._mark_deleted(deletions, now)
            self._executemany("UPDATE posts SET collected_hash = ? WHERE id = ?", rehashed)
            self._move_posts([(f.id, f.cluster_id, r, p) for f, r, p in moved], touched, now)
            cases = self._cases_after(updates, moved, merged, touched, edited)
            self._record_answers(answered, touched, now)
            appended = {c: rows for c, rows in joined.items() if c not in touched}
            touched |= self._append_members(appended, result.seq_before, now)
            self._refresh_clusters(touched, now, edited)
            if cursor is not None:
                self._save_cursor(source_id, cursor, now)
            if title:
                self._execute(
                    "UPDATE sources SET title = ? WHERE source_id = ? AND title IS DISTINCT FROM ?",
                    (title, source_id, title),
                )
            result.seq_after = self._current_seq()
            if cases is not None:
                cases.update(((r["platform"], r["native_id"]), r["cluster_id"]) for r, _ in new)
            result.cases = cases
        return result

    def _save_cursor(self, source_id: str, cursor: dict[str, Any], now: str) -> None:
        self._execute(
            "INSERT INTO source_state (source_id, cursor, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (source_id) DO UPDATE SET cursor = excluded.cursor, "
            "updated_at = excluded.updated_at",
            (source_id, dumps(cursor), now),
        )

    def _find_posts(self, keys: set[Key]) -> dict[Key, Stored]:
        """Stored posts by key, read in a few queries for a whole batch."""
        found: dict[Key, Stored] = {}
        for group, ids in by_platform(keys):
            for platform, native_id, *rest in self._execute(
                "SELECT platform, native_id, id, content_hash, collected_hash, dedupe_key, "
                "cluster_id, is_canonical, deleted_at FROM posts WHERE platform = ? "
                f"AND native_id IN ({', '.join('?' for _ in ids)})",
                [group, *ids],
            ).fetchall():
                found[(platform, native_id)] = Stored(*rest)
        return found

    def collected_hashes(self, keys: set[Key]) -> dict[Key, str | None]:
        return {key: stored.collected_hash for key, stored in self._find_posts(keys).items()}

    def _insert_new(
        self,
        items: list[tuple[dict[str, Any], Post]],
        touched: set[int],
        joined: dict[int, list[dict[str, Any]]],
        now: str,
    ) -> bool:
        """Place new posts in cases and insert them (and the cases they open) at once; the
        rows that joined stored cases go to ``joined``. Return whether stored cases merged."""
        if not items:
            return False
        place = self._placement(items)
        opened: dict[int, list[dict[str, Any]]] = {}
        for (row, post), post_id in zip(
            items, self._reserve_ids("posts", "id", len(items)), strict=True
        ):
            row["id"] = post_id
            targets = place.targets(row, post)
            if targets:
                row["cluster_id"], row["is_canonical"] = targets[0], 0
                for other in targets[1:]:
                    place.merged[other] = targets[0]
            else:
                (row["cluster_id"],) = self._reserve_ids("clusters", "cluster_id", 1)
                row["is_canonical"] = 1
                opened[row["cluster_id"]] = []
            place.placed(row)
        for row, _ in items:
            row["cluster_id"] = place.resolve(row["cluster_id"])
            if row["cluster_id"] in opened:
                opened[row["cluster_id"]].append(row)
            else:
                joined.setdefault(row["cluster_id"], []).append(row)
        summaries: dict[int, dict[str, Any]] = {}
        for cluster_id, rows in opened.items():
            if cluster_id in place.merged:  # opened, then joined to another in this batch
                summaries[cluster_id] = {**summary_of([]), "merged_into": place.resolve(cluster_id)}
                continue
            members = sorted((member_of(r, now) for r in rows), key=lambda m: (m.at, m.id))
            for r in rows:
                r["is_canonical"] = int(r["id"] == members[0].id)
            summaries[cluster_id] = summary_of(members)
        self._insert_clusters(summaries, now)
        self._insert_posts([row for row, _ in items], now)
        stored_merges = [c for c in place.merged if c not in opened]
        for other in stored_merges:
            self._merge_clusters([place.resolve(other), other], touched, now)
        return bool(stored_merges)

    def _insert_posts(self, rows: list[dict[str, Any]], now: str) -> None:
        values = []
        for row in rows:
            self._stamped.add(("posts", row["id"]))
            row.update(first_seen_at=now, updated_at=now, seq=self._next_seq())
            values.append(_insert_values(row))
        self._insert_rows("posts", INSERT_COLUMNS, values)

    def _update_posts(self, updates: list[tuple[Stored, dict[str, Any]]], now: str) -> None:
        """Write the new content of changed posts (answers only where one arrived)."""
        sets = [f"{name} = ?" for name in UPDATE_COLUMNS]
        sets += [f"{name} = coalesce(?, {name})" for name in ANSWER_COLUMNS]
        self._executemany(
            f"UPDATE posts SET {', '.join(sets)}, deleted_at = NULL, updated_at = ?, "
            "seq = coalesce(?, seq) WHERE id = ?",
            [
                (*_update_values(row), now, self._stamp("posts", found.id), found.id)
                for found, row in updates
            ],
        )

    def _mark_deleted(self, deletions: list[tuple[int, str | None]], now: str) -> None:
        self._executemany(
            "UPDATE posts SET deleted_at = ?, collected_hash = ?, updated_at = ?, "
            "seq = coalesce(?, seq) WHERE id = ?",
            [
                (now, collected, now, self._stamp("posts", post_id), post_id)
                for post_id, collected in deletions
            ],
        )

    def _cases_after(
        self,
        updates: list[tuple[Stored, dict[str, Any]]],
        moved: list[tuple[Stored, dict[str, Any], Post]],
        merged: bool,
        touched: set[int],
        edited: set[int],
    ) -> dict[Key, int] | None:
        """Note the cases of updated posts (to refresh; ``edited`` where the post is the
        case's canonical one); return their keys and cases for the near-duplicate index, or
        None when cases were merged or posts moved (rows this batch does not list changed
        case: the index must read them back)."""
        current = None
        if merged or moved:
            current = self._find_posts({(r["platform"], r["native_id"]) for _, r in updates})
        cases: dict[Key, int] = {}
        for found, row in updates:
            key = (row["platform"], row["native_id"])
            cluster_id = found.cluster_id if current is None else current[key].cluster_id
            if cluster_id is None:
                continue
            touched.add(cluster_id)
            if found.is_canonical and found.dedupe_key == row["dedupe_key"]:
                edited.add(cluster_id)  # the case shows this post's text: readers see the edit
            cases[key] = cluster_id
        return None if merged or moved else cases


def _latest_copies(
    source_id: str, posts: Sequence[Post], result: StoreResult
) -> dict[Key, tuple[dict[str, Any], Post, bool]]:
    """The batch's rows by key; a post given twice is stored as its last copy (the earlier
    copies count as unchanged)."""
    batch: dict[Key, tuple[dict[str, Any], Post, bool]] = {}
    for post in posts:
        row = post_row(post)
        deleted = row.pop("deleted")
        row["source_id"] = row["source_id"] or source_id
        row["deleted_at"] = None  # the time, when the post comes deleted
        key = (row["platform"], row["native_id"])
        if key in batch:
            result.unchanged += 1
            del batch[key]  # keep the order of the last copy
        batch[key] = (row, post, deleted)
    return batch

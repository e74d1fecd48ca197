"""Official answers: ``answered_at``, ``answered_by`` and ``response_seconds`` of a post.

The earliest official reply wins, whichever of the post and its reply was collected first:
the check runs for the parents of official replies stored now and for new posts (a reply may
have been collected before the post it answers). Posts by official accounts are never
"answered".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.core import SqlCore, by_platform
from storage.rows import UTC_FORMAT

Key = tuple[str, str]


class AnswerWrites(SqlCore):
    """Setting the answer columns of posts from the official replies stored."""

    def _record_answers(self, keys: set[Key], touched: set[int], now: str) -> None:
        """Give the posts of ``keys`` their earliest official reply (two queries per few
        hundred keys and one batch of updates); the cases of changed posts join
        ``touched``."""
        replies: dict[Key, tuple[str, str]] = {}
        for group, parents in by_platform(keys):
            for platform, parent, *reply in self._execute(
                "SELECT platform, parent, published_at, "
                "coalesce(author_name, author_id, source_id) FROM posts "
                "WHERE author_is_official = 1 AND parent IS NOT NULL AND platform = ? "
                f"AND parent IN ({', '.join('?' for _ in parents)}) "
                "AND published_at IS NOT NULL ORDER BY published_at DESC, id DESC",
                [group, *parents],
            ).fetchall():
                replies[(platform, parent)] = tuple(reply)  # the earliest comes last
        updates: list[tuple[Any, ...]] = []
        for group, ids in by_platform(replies):
            for native_id, post_id, published, official, *old, cluster_id in self._execute(
                "SELECT native_id, id, published_at, author_is_official, answered_at, "
                "answered_by, response_seconds, cluster_id FROM posts WHERE platform = ? "
                f"AND native_id IN ({', '.join('?' for _ in ids)})",
                [group, *ids],
            ).fetchall():
                if official:
                    continue
                at, by = replies[(group, native_id)]
                new = [at, by, seconds_between(published, at)]
                if old == new:
                    continue
                updates.append((*new, now, self._stamp("posts", post_id), post_id))
                if cluster_id is not None:
                    touched.add(cluster_id)
        self._executemany(
            "UPDATE posts SET answered_at = ?, answered_by = ?, response_seconds = ?, "
            "updated_at = ?, seq = coalesce(?, seq) WHERE id = ?",
            updates,
        )


def seconds_between(start: str | None, end: str) -> int | None:
    """Whole seconds from ``start`` to ``end`` (UTC texts), never negative; None if unknown."""
    if start is None:
        return None
    began = datetime.strptime(start, UTC_FORMAT)
    answered = datetime.strptime(end, UTC_FORMAT)
    return max(0, int((answered - began).total_seconds()))

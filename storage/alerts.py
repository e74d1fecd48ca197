"""Surge alerts in the inbox: counting a rule's residents, episodes, the webhook outbox.

``alerts`` holds one row per fired alert (with a ``seq``, exported like posts and cases);
``alert_deliveries`` is the durable outbox, one row per alert and webhook (attempts, next
attempt, delivered); ``alert_state`` keeps each rule's episode (whether its condition held at
the last evaluation, and when it last held). The rules themselves are duck-typed
(:class:`crawler.alerts.AlertRule`: ``topic``, ``municipality``, ``matches``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from storage.core import SqlCore
from storage.rows import decode_row, dumps

CASES_IN_ALERT = 20  # cases listed in an alert, most residents first
AT = "coalesce(published_at, first_seen_at)"


class AlertStore(SqlCore):
    """The alert tables' reads and writes."""

    def _scope_rows(self, rule: Any, after: str, until: str, columns: str) -> list[tuple[Any, ...]]:
        """Residents' posts in ``(after, until]`` of the rule's scope: ``columns`` first,
        then topics, places and municipality (filtered exactly here)."""
        where = [
            f"{AT} > ?",
            f"{AT} <= ?",
            "author_is_official = 0",
            "author_id IS NOT NULL",
            "deleted_at IS NULL",
        ]
        params: list[Any] = [after, until]
        if rule.municipality:
            where.append("municipality = ?")
            params.append(rule.municipality)
        if rule.topic:  # a cheap pre-filter; the exact test is rule.matches
            where.append("CAST(topics AS TEXT) LIKE ?")
            params.append(f'%"{rule.topic}"%')
        rows = self._execute(
            f"SELECT {columns}, topics, places, municipality FROM posts "
            f"WHERE {' AND '.join(where)}",
            params,
        ).fetchall()
        width = len(rows[0]) - 3 if rows else 0
        out = []
        for row in rows:
            topics, places, municipality = row[width:]
            topics = json.loads(topics) if isinstance(topics, str) else topics
            places = json.loads(places) if isinstance(places, str) else places
            if rule.matches(topics, places, municipality):
                out.append(tuple(row[:width]))
        return out

    def alert_window(self, rule: Any, start: str, end: str) -> dict[str, Any]:
        """Distinct residents, posts and the cases (most residents first) of the rule's
        scope in ``(start, end]``."""
        rows = self._scope_rows(rule, start, end, "author_id, cluster_id")
        per_case: dict[Any, set[str]] = {}
        for author, case in rows:
            per_case.setdefault(case, set()).add(author)
        ranked = Counter({case: len(a) for case, a in per_case.items() if case is not None})
        return {
            "residents": len({author for author, _ in rows}),
            "posts": len(rows),
            "cases": [case for case, _ in ranked.most_common(CASES_IN_ALERT)],
        }

    def alert_usual_level(self, rule: Any, start: str, end: str) -> float:
        """The average number of distinct residents per window of the rule's scope in
        ``(start, end]`` (windows counted back from ``end``)."""
        window = rule.window.total_seconds()
        rows = self._scope_rows(rule, start, end, f"author_id, {self._epoch(AT)}")
        if not rows:
            return 0.0
        end_epoch, start_epoch = _epoch(end), _epoch(start)
        slots = {(author, int((end_epoch - at) // window)) for author, at in rows}
        windows = max(1.0, (end_epoch - start_epoch) / window)
        return len(slots) / windows

    def alert_episode(
        self,
        rule_id: str,
        holds: bool,
        now: str,
        held_after: str,
        alert: dict[str, Any],
        webhooks: Sequence[str],
    ) -> dict[str, Any] | None:
        """Record one evaluation of a rule; when it begins an episode (holds now, and did
        not at the last evaluation or last held at or before ``held_after``), insert the
        alert and a delivery row per webhook, and return the alert."""
        with self.transaction():
            state = self._execute(
                "SELECT active, last_held_at FROM alert_state WHERE rule_id = ?", (rule_id,)
            ).fetchone()
            if not holds:
                if state is not None and state[0]:
                    self._execute(
                        "UPDATE alert_state SET active = 0, updated_at = ? WHERE rule_id = ?",
                        (now, rule_id),
                    )
                return None
            going_on = state is not None and state[0] and state[1] is not None
            self._execute(
                "INSERT INTO alert_state (rule_id, active, last_held_at, updated_at) "
                "VALUES (?, 1, ?, ?) ON CONFLICT (rule_id) DO UPDATE SET active = 1, "
                "last_held_at = excluded.last_held_at, updated_at = excluded.updated_at",
                (rule_id, now, now),
            )
            if going_on and str(state[1]) > held_after:
                return None
            (alert_id,) = self._reserve_ids("alerts", "alert_id", 1)
            row = {
                **alert,
                "alert_id": alert_id,
                "fired_at": now,
                "cases": dumps(alert.get("cases") or []),
                "seq": self._next_seq(),
            }
            columns = list(row)
            self._execute(
                f"INSERT INTO alerts ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                [row[c] for c in columns],
            )
            self._executemany(
                "INSERT INTO alert_deliveries (alert_id, webhook_id, next_attempt_at) "
                "VALUES (?, ?, ?)",
                [(alert_id, hook, now) for hook in webhooks],
            )
        return decode_row(row)

    def alerts(self, since: str | None = None) -> list[dict[str, Any]]:
        """Alerts fired at or after ``since`` (all when None), oldest first, each with its
        ``deliveries`` (webhook, attempts, delivered_at, last_status, last_error)."""
        where, params = ("WHERE fired_at >= ?", [since]) if since else ("", [])
        rows = [
            decode_row(r)
            for r in self.query_dicts(f"SELECT * FROM alerts {where} ORDER BY alert_id", params)
        ]
        if not rows:
            return rows
        deliveries: dict[int, list[dict[str, Any]]] = {}
        for d in self.query_dicts(
            "SELECT alert_id, webhook_id, attempts, next_attempt_at, delivered_at, last_status, "
            "last_error FROM alert_deliveries WHERE alert_id >= ? ORDER BY alert_id, webhook_id",
            (rows[0]["alert_id"],),
        ):
            deliveries.setdefault(d.pop("alert_id"), []).append(d)
        for row in rows:
            row["deliveries"] = deliveries.get(row["alert_id"], [])
        return rows

    # -- the outbox -------------------------------------------------------------------------
    def claim_deliveries(
        self, webhooks: Sequence[str], now: str, lease_until: str, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Due, undelivered deliveries to ``webhooks`` with their alerts; each is leased
        (its next attempt moved to ``lease_until``) so no other process sends it meanwhile."""
        if not webhooks:
            return []
        marks = ", ".join("?" for _ in webhooks)
        with self.transaction():
            rows = self.query_dicts(
                "SELECT d.webhook_id, d.attempts, a.* FROM alert_deliveries AS d "
                "JOIN alerts AS a ON a.alert_id = d.alert_id "
                f"WHERE d.delivered_at IS NULL AND d.next_attempt_at <= ? "
                f"AND d.webhook_id IN ({marks}) ORDER BY d.alert_id, d.webhook_id LIMIT {limit}",
                [now, *webhooks],
            )
            self._executemany(
                "UPDATE alert_deliveries SET next_attempt_at = ? "
                "WHERE alert_id = ? AND webhook_id = ? AND delivered_at IS NULL",
                [(lease_until, r["alert_id"], r["webhook_id"]) for r in rows],
            )
        return [decode_row(r) for r in rows]

    def delivery_done(self, alert_id: int, webhook_id: str, status: int, now: str) -> None:
        """The receiver answered 2xx: the delivery is done for good."""
        with self.transaction():
            self._execute(
                "UPDATE alert_deliveries SET delivered_at = ?, last_status = ?, last_error = NULL, "
                "attempts = attempts + 1 WHERE alert_id = ? AND webhook_id = ? "
                "AND delivered_at IS NULL",
                (now, status, alert_id, webhook_id),
            )

    def delivery_failed(
        self, alert_id: int, webhook_id: str, status: int | None, error: str, retry_at: str
    ) -> None:
        """The attempt failed: count it and set the next one."""
        with self.transaction():
            self._execute(
                "UPDATE alert_deliveries SET attempts = attempts + 1, last_status = ?, "
                "last_error = ?, next_attempt_at = ? WHERE alert_id = ? AND webhook_id = ? "
                "AND delivered_at IS NULL",
                (status, error[:500], retry_at, alert_id, webhook_id),
            )


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

"""Delivering alerts to webhooks from the inbox's durable outbox (``alert_deliveries``).

Each fired alert has one delivery row per webhook, written in the transaction that fired it:
an alert is never lost, whatever happens to the process. :func:`deliver_due` leases the due
rows (so a daemon and a ``glas run`` never send one at the same time), POSTs each alert's
JSON with the header ``Idempotency-Key: glas-alert-<alert_id>``, and marks the row delivered
as soon as the receiver answers 2xx; any other answer, a timeout or a refused connection
counts as a failed attempt, retried after ``retry_backoff`` doubled per failure (at most
``backoff_max``). A process killed after the receiver's 2xx and before the row is marked
(milliseconds) sends again once the lease ends, with the same Idempotency-Key: a receiver
that honours the key sees the alert once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crawler.alerts import Webhook, utc
from crawler.config import PRODUCT
from crawler.secrets import redact

log = logging.getLogger("glas.run")

LEASE = timedelta(minutes=2)  # a claimed delivery is not tried by another process meanwhile


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is a failed attempt: following it would turn the POST into a GET without the
    alert (the webhook's address is to be fixed in sources.yaml)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass
class Delivered:
    """What one :func:`deliver_due` call did."""

    delivered: int = 0
    failed: int = 0


def payload(alert: dict[str, Any]) -> dict[str, Any]:
    """The JSON body POSTed for an alert (also the ``--json`` shape of ``glas alerts``)."""
    return {
        "id": f"glas-alert-{alert['alert_id']}",
        "alert_id": alert["alert_id"],
        "rule": alert["rule_id"],
        "fired_at": alert["fired_at"],
        "window": {"start": alert["window_start"], "end": alert["window_end"]},
        "topic": alert.get("topic"),
        "place": alert.get("place"),
        "municipality": alert.get("municipality"),
        "residents": alert["residents"],
        "posts": alert["posts"],
        "usual_level": alert.get("usual_level"),
        "cases": alert.get("cases") or [],
        "seq": alert["seq"],
    }


def backoff(hook: Webhook, attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failed attempt (1 for the first)."""
    first = hook.retry_backoff.total_seconds()
    return timedelta(
        seconds=min(first * 2 ** max(0, attempts - 1), hook.backoff_max.total_seconds())
    )


def deliver_due(
    inbox: Any, webhooks: list[Webhook], *, now: datetime | None = None, limit: int = 50
) -> Delivered:
    """Send every due delivery to ``webhooks`` once; return what was delivered and failed."""
    done = Delivered()
    by_id = {hook.id: hook for hook in webhooks}
    if not by_id:
        return done
    now = now or datetime.now(UTC)
    for row in inbox.claim_deliveries(list(by_id), utc(now), utc(now + LEASE), limit):
        hook = by_id[row["webhook_id"]]
        status, error = post(hook, payload(row))
        finished = datetime.now(UTC)
        if error is None:
            inbox.delivery_done(row["alert_id"], hook.id, status, utc(finished))
            done.delivered += 1
            log.info("alert %s delivered to webhook %s", row["alert_id"], hook.id)
            continue
        attempts = row["attempts"] + 1
        retry_at = finished + backoff(hook, attempts)
        inbox.delivery_failed(row["alert_id"], hook.id, status, error, utc(retry_at))
        done.failed += 1
        log.warning(
            "webhook %s: alert %s not delivered (attempt %d: %s); next try at %s",
            hook.id,
            row["alert_id"],
            attempts,
            error,
            utc(retry_at),
        )
    return done


def post(hook: Webhook, body: dict[str, Any]) -> tuple[int | None, str | None]:
    """POST ``body`` to the webhook: ``(status, None)`` on 2xx, else ``(status, problem)``."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Idempotency-Key": body["id"],
        "User-Agent": PRODUCT,
    }
    if hook.token_env:
        token = os.environ.get(hook.token_env, "").strip()
        if not token:
            return None, f"{hook.token_env} is not set in the environment"
        headers[hook.header] = (
            f"Bearer {token}" if hook.header.lower() == "authorization" else token
        )
    data = json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(hook.url, data=data, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=hook.timeout) as response:
            response.read(65536)
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, redact(f"{type(exc).__name__}: {reason}")


DELIVER_EVERY = 2.0  # seconds between two looks at the webhook outbox


def keep_delivering(
    db: str, webhooks: Callable[[], list[Webhook]], wait: Callable[[float], bool]
) -> None:
    """Send due deliveries to the ``webhooks()`` of the moment every :data:`DELIVER_EVERY`
    seconds, over an inbox connection of its own (opened again after a failure), until
    ``wait(seconds)`` says to stop. For a thread of the daemon or of a ``glas worker``: the
    outbox is in the inbox, so nothing is lost when the process stops meanwhile, and each
    delivery is claimed with a lease, so processes that all deliver send none twice."""
    from storage import open_inbox

    inbox = None
    try:
        while True:
            hooks = webhooks()
            if hooks:
                try:
                    inbox = inbox or open_inbox(db)
                    deliver_due(inbox, hooks)
                except Exception as exc:
                    log.warning("webhooks: delivering failed: %s", exc)
                    with contextlib.suppress(Exception):
                        inbox.close()  # type: ignore[union-attr]
                    inbox = None
            if wait(DELIVER_EVERY):
                return
    finally:
        if inbox is not None:
            with contextlib.suppress(Exception):
                inbox.close()

"""What ``glas export`` hands downstream: rows as stored, pseudonymised, routed, Open311 or
GeoJSON.

:func:`plan` turns the command's options and sources.yaml (when there is one: routing rules,
topic labels, time zone, the pseudonym key's variable) into the table to read, a per-page
transform and the columns of a CSV export. Storage is used only through the ``Inbox``
interface, so every backend exports alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from crawler.pseudonymise import KEY_ENV, Pseudonymiser, load_key
from crawler.routing import Router, topic_labels
from storage import open311
from storage.inbox import Inbox

Rows = list[dict[str, Any]]
ROUTE_COLUMNS = ("agency_responsible", "routing")  # added to every exported case


@dataclass
class Plan:
    """How to export: from which table, with which row filter and transform."""

    table: str
    complaints_only: bool  # passed to Inbox.export (Open311 filters cases itself)
    transform: Callable[[Rows], Rows]
    columns: list[str]


def pseudonymiser(config: Any | None) -> Pseudonymiser:
    """The pseudonymiser with the key of sources.yaml's ``privacy.key_env`` (default
    GLAS_PSEUDONYM_KEY); raises PseudonymKeyMissing naming the variable."""
    env = config.privacy.key_env if config is not None else KEY_ENV
    return Pseudonymiser(load_key(env))


def plan(
    inbox: Inbox,
    *,
    fmt: str,
    table: str,
    complaints_only: bool,
    config: Any | None = None,
    pseudonymise: Pseudonymiser | None = None,
) -> Plan:
    """The export of ``table`` (``fmt`` open311 always reads cases) as configured."""
    router = Router(config.routing if config is not None else None)
    if fmt == "geojson":
        return Plan("clusters", False, _geojson(inbox, pseudonymise, complaints_only), [])
    if table == "alerts":
        return Plan(table, False, lambda rows: rows, inbox.export_columns(table))
    if fmt == "open311":
        return Plan(
            "clusters",
            False,
            _open311(inbox, router, config, pseudonymise, complaints_only),
            [],
        )
    columns = inbox.export_columns(table)
    if table == "clusters":
        columns += [c for c in ROUTE_COLUMNS if c not in columns]

        def cases(rows: Rows) -> Rows:
            out = []
            for row in rows:
                agency, how = router.route(row.get("topics"), row.get("municipality"))
                row = {**row, "agency_responsible": agency, "routing": how}
                out.append(pseudonymise.case_row(row) if pseudonymise else row)
            return out

        return Plan(table, complaints_only, cases, columns)

    def posts(rows: Rows) -> Rows:
        return [pseudonymise.post_row(r) for r in rows] if pseudonymise else rows

    return Plan(table, complaints_only, posts, columns)


def _open311(
    inbox: Inbox,
    router: Router,
    config: Any | None,
    pseudonymise: Pseudonymiser | None,
    complaints_only: bool,
) -> Callable[[Rows], Rows]:
    labels = topic_labels(
        config.flagging.lexicon_paths(config.path.parent) if config is not None else ()
    )
    zone: tzinfo = ZoneInfo(config.defaults.timezone) if config is not None else UTC

    def requests(rows: Rows) -> Rows:
        cases = [r for r in rows if open311.wants(r, complaints_only)]
        keys = [
            (r["canonical_platform"], r["canonical_native_id"])
            for r in cases
            if r.get("canonical_platform") and r.get("canonical_native_id")
        ]
        posts = inbox.posts_by_key(keys) if keys else {}
        out = []
        for case in cases:
            post = posts.get((case.get("canonical_platform"), case.get("canonical_native_id")))
            if pseudonymise is not None:
                case = pseudonymise.case_row(case)
                post = pseudonymise.post_row(post) if post is not None else None
            out.append(
                open311.service_request(case, post, labels=labels, route=router.route, zone=zone)
            )
        return out

    return requests


def _geojson(
    inbox: Inbox, pseudonymise: Pseudonymiser | None, complaints_only: bool
) -> Callable[[Rows], Rows]:
    """Cases with coordinates as GeoJSON Features (RFC 7946: a Point at [lon, lat])."""

    def features(rows: Rows) -> Rows:
        cases = [r for r in rows if r.get("size") and open311.wants(r, complaints_only)]
        points = inbox.case_points(r["cluster_id"] for r in cases) if cases else {}
        cases = [r for r in cases if r["cluster_id"] in points]
        keys = [(r["canonical_platform"], r["canonical_native_id"]) for r in cases]
        posts = inbox.posts_by_key(keys) if keys and pseudonymise is None else {}
        out = []
        for case in cases:
            lat, lon = points[case["cluster_id"]]
            post = posts.get((case["canonical_platform"], case["canonical_native_id"])) or {}
            out.append(
                {
                    "type": "Feature",
                    "id": case["cluster_id"],
                    "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
                    "properties": {
                        "case_id": case["cluster_id"],
                        "seq": case["seq"],
                        "topics": case.get("topics") or [],
                        "size": case["size"],
                        "residents": case.get("authors"),
                        "platforms": case.get("platforms") or [],
                        "municipality": case.get("municipality"),
                        "first_seen": case.get("first_seen"),
                        "last_seen": case.get("last_seen"),
                        "is_complaint": case.get("is_complaint"),
                        "answered_at": case.get("answered_at"),
                        "url": post.get("url"),
                    },
                }
            )
        return out

    return features

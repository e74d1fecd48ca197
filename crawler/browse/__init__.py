"""``glas browse``: the inbox in Datasette, with the metadata Glas ships.

An optional extra (``pip install 'glas[browse]'``). :func:`metadata` gives Datasette's
metadata for an inbox file: array facets for topics and platforms, the alerts table, and
canned queries ("overdue", "todays_surges", "cases_by_residents"); the plugin in
``crawler/browse/plugins/`` renders the JSON columns (topics, platforms, places, …) as
readable lists instead of JSON text. Datasette reads SQLite only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

PLUGINS = Path(__file__).resolve().parent / "plugins"
OVERDUE_HOURS = 24  # the default of the overdue query's :hours

CASE = (
    "FROM clusters AS c JOIN posts AS p "
    "ON p.platform = c.canonical_platform AND p.native_id = c.canonical_native_id "
)
QUERIES: dict[str, dict[str, Any]] = {
    "overdue": {
        "title": "Overdue: complaint cases without an official answer",
        "description": "Complaint cases no official account answered, first seen more than "
        ":hours hours ago (default 24), oldest first.",
        "sql": (
            "SELECT c.cluster_id, c.first_seen, "
            "round((julianday('now') - julianday(c.first_seen)) * 24, 1) AS hours_waiting, "
            "c.authors AS residents, c.size, c.topics, c.municipality, c.platforms, p.url, "
            "substr(p.text, 1, 200) AS text "
            f"{CASE}"
            "WHERE c.size > 0 AND coalesce(c.is_complaint, 1) = 1 AND c.answered_at IS NULL "
            "AND c.first_seen < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', "
            f"'-' || coalesce(nullif(:hours, ''), '{OVERDUE_HOURS}') || ' hours') "
            "ORDER BY c.first_seen LIMIT 1000"
        ),
    },
    "todays_surges": {
        "title": "Today's surges",
        "description": "Alerts fired since midnight UTC, newest first.",
        "sql": (
            "SELECT alert_id, rule_id, fired_at, topic, place, municipality, residents, "
            "usual_level, posts, cases FROM alerts "
            "WHERE fired_at >= strftime('%Y-%m-%dT00:00:00Z', 'now') ORDER BY fired_at DESC"
        ),
    },
    "cases_by_residents": {
        "title": "Cases by distinct residents",
        "description": "The cases most residents wrote about, across platforms.",
        "sql": (
            "SELECT c.cluster_id, c.authors AS residents, c.size, c.platforms, c.topics, "
            "c.municipality, c.first_seen, c.last_seen, c.answered_at, p.url, "
            "substr(p.text, 1, 200) AS text "
            f"{CASE}"
            "WHERE c.size > 0 ORDER BY c.authors DESC, c.size DESC, c.cluster_id LIMIT 200"
        ),
    },
}


def available() -> bool:
    """Whether Datasette is installed (the ``browse`` extra)."""
    return importlib.util.find_spec("datasette") is not None


def metadata(database: str) -> dict[str, Any]:
    """Datasette metadata for the inbox served under the name ``database``."""
    array_facets = [{"array": "topics"}, {"array": "platforms"}, "municipality"]
    return {
        "title": "Glas inbox",
        "description": "Residents' posts and cases collected by Glas (see docs/inbox.md).",
        "databases": {
            database: {
                "tables": {
                    "clusters": {
                        "description": "One row per case; size, residents (authors), topics.",
                        "facets": array_facets,
                        "sort_desc": "seq",
                    },
                    "posts": {
                        "description": "Every post and comment collected.",
                        "facets": [{"array": "topics"}, "platform", "municipality"],
                        "sort_desc": "seq",
                    },
                    "alerts": {
                        "description": "Surge alerts (docs/alerts.md).",
                        "facets": ["rule_id", "municipality"],
                        "sort_desc": "alert_id",
                    },
                    "inbox": {"facets": array_facets},
                },
                "queries": QUERIES,
            }
        },
    }


def command(db: Path, metadata_path: Path, host: str, port: int, open_browser: bool) -> list[str]:
    """The arguments of ``datasette serve``."""
    args = [
        "serve",
        str(db),
        "--metadata",
        str(metadata_path),
        "--plugins-dir",
        str(PLUGINS),
        "--host",
        host,
        "--port",
        str(port),
        "--setting",
        "facet_time_limit_ms",
        "1000",
    ]
    return [*args, "--open"] if open_browser else args

"""Datasette plugin shipped by Glas: JSON columns of the inbox rendered as readable values.

Lists of words (topics, platforms, sources, case ids) become comma-separated text; places
become their names; other JSON (metrics, geo, topic scores) is shown indented.
"""

from __future__ import annotations

import json
from typing import Any

from datasette import hookimpl
from markupsafe import Markup, escape

JSON_COLUMNS = {
    "topics",
    "platforms",
    "sources",
    "places",
    "metrics",
    "geo",
    "topic_scores",
    "cases",
    "warnings",
}


@hookimpl
def render_cell(value: Any, column: str) -> Any:
    if column not in JSON_COLUMNS or not isinstance(value, str) or not value.startswith(("[", "{")):
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if isinstance(data, list) and all(isinstance(v, str | int) for v in data):
        text = ", ".join(str(v) for v in data)
        return Markup(f'<span class="glas-list">{escape(text)}</span>')
    if isinstance(data, list) and all(isinstance(v, dict) and "name" in v for v in data):
        names = ", ".join(f"{v['name']} ({v.get('kind', '')})" for v in data)
        return Markup(f'<span class="glas-list">{escape(names)}</span>')
    pretty = json.dumps(data, ensure_ascii=False, indent=1)
    return Markup(f'<pre class="glas-json">{escape(pretty)}</pre>')

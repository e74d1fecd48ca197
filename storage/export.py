"""Exports for downstream tools: rows after a ``seq`` as JSON Lines, CSV, Open311 JSON or
GeoJSON.

:func:`export` pages through :meth:`Inbox.export` by ``seq`` (never OFFSET), hands each page
to a transform (pseudonymising, routing, Open311 mapping) and a writer, and flushes after
each page. With a ``follow`` event it keeps polling for rows committed later until the event
is set (``glas export --follow``).
"""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from storage.inbox import Inbox

PAGE = 500  # rows read per Inbox.export call
Rows = list[dict[str, Any]]


def write_jsonl(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, default=str))
        out.write("\n")
        count += 1
    return count


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return int(value)
    return "" if value is None else value


class Writer:
    """JSON Lines: one row a line (the base of the other formats)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def begin(self) -> None:
        pass

    def write(self, rows: Rows) -> None:
        write_jsonl(rows, self.out)

    def end(self) -> None:
        pass

    def flush(self) -> None:
        self.out.flush()


class CsvWriter(Writer):
    """CSV: the header once, then rows in ``columns`` order."""

    def __init__(self, out: TextIO, columns: list[str]) -> None:
        super().__init__(out)
        self.columns = columns
        self.csv = csv.writer(out)

    def begin(self) -> None:
        self.csv.writerow(self.columns)

    def write(self, rows: Rows) -> None:
        for row in rows:
            self.csv.writerow([_cell(row.get(c)) for c in self.columns])


class JsonArrayWriter(Writer):
    """One JSON array of every row (the body of a GeoReport v2 ``requests.json``)."""

    opening, closing = "[", "]\n"

    def begin(self) -> None:
        self.out.write(self.opening)
        self.first = True

    def write(self, rows: Rows) -> None:
        for row in rows:
            self.out.write("\n" if self.first else ",\n")
            self.out.write(json.dumps(row, ensure_ascii=False, default=str))
            self.first = False

    def end(self) -> None:
        self.out.write(self.closing if self.first else "\n" + self.closing)


class GeoJsonWriter(JsonArrayWriter):
    """One GeoJSON FeatureCollection (RFC 7946) of the features written."""

    opening, closing = '{"type": "FeatureCollection", "features": [', "]}\n"


def export(
    inbox: Inbox,
    writer: Writer,
    *,
    table: str = "posts",
    since_seq: int = 0,
    complaints_only: bool = False,
    limit: int | None = None,
    transform: Callable[[Rows], Rows] | None = None,
    follow: threading.Event | None = None,
    interval: float = 2.0,
    page: int = PAGE,
) -> int:
    """Write rows with ``seq > since_seq`` in ``seq`` order; return how many were written.

    ``transform`` maps each page (it may drop rows); ``limit`` counts written rows. With
    ``follow``, on reaching the newest row wait ``interval`` seconds and read again, until
    ``follow`` is set (the page being written is finished first).
    """
    cursor, count = since_seq, 0
    writer.begin()
    while True:
        want = page if limit is None else min(page, limit - count)
        rows = list(
            inbox.export(table=table, since_seq=cursor, complaints_only=complaints_only, limit=want)
        )
        if rows:
            cursor = max(cursor, int(rows[-1]["seq"]))
            out = transform(rows) if transform is not None else rows
            if limit is not None:
                out = out[: limit - count]
            if out:
                writer.write(out)
                count += len(out)
                writer.flush()
        if limit is not None and count >= limit:
            break
        if len(rows) < want:  # caught up with the inbox
            if follow is None or follow.wait(interval):
                break
        elif follow is not None and follow.is_set():
            break
    writer.end()
    writer.flush()
    return count

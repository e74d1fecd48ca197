"""Read ``glas import`` files (JSON Lines or CSV) strictly, keeping the line of every row.

:func:`read_rows` yields ``(line, row)``, or ``(line, message)`` for a row that cannot be
read. Nothing is guessed: a CSV quote that is never closed, a byte that is not UTF-8, a number
too large or JSON nested too deep is a problem at its line, never a silent repair and never a
crash. The limits keep one bad file from exhausting memory or recursion:

- a line holds at most :data:`MAX_LINE_BYTES` bytes;
- a CSV cell holds at most :data:`MAX_CELL_CHARS` characters (a quote that is never closed
  would make one cell of the rest of the file);
- JSON (a JSONL line, a CSV cell of a JSON column) is nested at most :data:`MAX_JSON_DEPTH`
  levels deep;
- whole numbers fit in 64 bits (as both inboxes store them); ``NaN`` and ``Infinity`` are
  refused, and so is a ``\\u`` escape of half a character (a lone surrogate).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

MAX_LINE_BYTES = 1_000_000
MAX_CELL_CHARS = 1_000_000
MAX_JSON_DEPTH = 64
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
JSON_FIELDS = ("metrics", "geo", "raw", "topics", "topic_scores", "places")

Row = dict[str, Any]
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class LineProblem(str):
    """A problem of a line rather than of a row (a CSV line that is not UTF-8, say)."""


class BadJson(ValueError):
    """JSON that cannot be read; the message says why, for an operator. ``syntax`` is True
    when it is not JSON at all (``column`` says where), False when a limit refuses it."""

    def __init__(self, message: str, *, syntax: bool = False, column: int = 0) -> None:
        super().__init__(message)
        self.syntax = syntax
        self.column = column


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, Row | str]]:
    """Yield ``(line, row)`` for each row of ``path``; ``(line, message)`` for a bad one.

    ``fmt`` is ``jsonl`` or ``csv``. OSError (the file cannot be opened) is the caller's.
    """
    with path.open("rb") as fh:
        if fmt == "jsonl":
            yield from _jsonl_rows(fh)
        else:
            yield from _csv_rows(fh)


def load_json(text: str) -> Any:
    """``json.loads`` within the limits above; :class:`BadJson` says what is wrong."""
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(text) > MAX_JSON_DEPTH:
        raise BadJson(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise BadJson(f"not valid JSON: {exc.msg}", syntax=True, column=exc.colno) from None
    if _SURROGATE_ESCAPE.search(text):
        _check_unicode(value)
    return value


# -- lines --------------------------------------------------------------------------------------
def _lines(fh: BinaryIO) -> Iterator[tuple[int, str, str | None]]:
    """``(line number, text, problem)`` of each line; a line that is too long or not UTF-8
    comes with its problem (and its text as far as it could be read)."""
    number = 0
    while True:
        chunk = fh.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):  # skip the rest of the line
                chunk = fh.readline(MAX_LINE_BYTES)
            yield number, "", f"the line is longer than {MAX_LINE_BYTES:,} bytes"
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            column = len(chunk[: exc.start].decode("utf-8", errors="replace")) + 1
            yield (
                number,
                chunk.decode("utf-8", errors="replace"),
                f"not UTF-8 text (byte 0x{chunk[exc.start]:02x} at column {column}); "
                "save the file as UTF-8",
            )
            continue
        yield number, text.removeprefix("\ufeff") if number == 1 else text, None


# -- JSON Lines ---------------------------------------------------------------------------------
def _jsonl_rows(fh: BinaryIO) -> Iterator[tuple[int, Row | str]]:
    for number, text, problem in _lines(fh):
        if problem:
            yield number, problem
            continue
        if not text.strip():
            continue
        try:
            row = load_json(text)
        except BadJson as exc:
            yield number, f"{exc} (column {exc.column})" if exc.syntax else str(exc)
            continue
        yield number, row if isinstance(row, dict) else "expected a JSON object"


# -- CSV ----------------------------------------------------------------------------------------
class _CsvSource:
    """The lines a ``csv.reader`` reads, with what it needs to say where a problem is: the
    lines of the record being read and the problems found in them (too long, not UTF-8)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.lines = _lines(fh)
        self.record: list[str] = []
        self.problems: list[tuple[int, LineProblem]] = []
        self.fatal = False

    def __iter__(self) -> Iterator[str]:
        for number, text, problem in self.lines:
            if problem:
                self.problems.append((number, LineProblem(problem)))
                if not text:  # a line too long: the record it belongs to is lost
                    self.fatal = True
                    return
            self.record.append(text)
            yield text


def _csv_rows(fh: BinaryIO) -> Iterator[tuple[int, Row | str]]:
    csv.field_size_limit(MAX_CELL_CHARS)
    source = _CsvSource(fh)
    reader = csv.reader(source, strict=True)
    header: list[str] | None = None
    start = 1  # the line where the record being read begins
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            yield from source.problems
            return
        except csv.Error as exc:
            yield from source.problems
            if not source.fatal:  # else the file's end was a line too long, already said
                yield _csv_problem(str(exc), source.record, start, reader.line_num)
            return
        yield from source.problems
        number, start = start, reader.line_num + 1
        source.record, source.problems = [], []
        if not cells:
            continue  # an empty line
        if header is None:
            header = [name.strip() for name in cells]
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                yield number, f"the header names {', '.join(map(repr, repeated))} more than once"
                return
            continue
        if len(cells) > len(header):
            yield number, "more cells than columns in the header"
            continue
        yield number, _csv_row(header, cells)


def _csv_row(header: list[str], cells: list[str]) -> Row | str:
    """The row's non-empty cells by column; JSON columns read as JSON."""
    row: Row = {}
    for key, value in zip(header, cells, strict=False):
        if value == "":
            continue
        if key in JSON_FIELDS:
            try:
                row[key] = load_json(value)
            except BadJson as exc:
                return (
                    f"'{key}': not valid JSON: {value[:40]!r}" if exc.syntax else f"'{key}': {exc}"
                )
        else:
            row[key] = value
    return row


def _csv_problem(error: str, lines: list[str], start: int, last: int) -> tuple[int, str]:
    """A ``csv.Error`` said for an operator, at the line where the bad cell begins."""
    opened = _unclosed_quote(lines, start)
    if "unexpected end of data" in error and opened:
        return opened, (
            "a quoted cell opened on this line is never closed (a '\"' is missing); "
            "the rest of the file would be read into it"
        )
    if "field larger than field limit" in error:
        return opened or start, (
            f"a cell longer than {MAX_CELL_CHARS:,} characters"
            + (" (is the '\"' that opens it on this line never closed?)" if opened else "")
        )
    if "expected after" in error:
        return last, (
            "a quoted cell goes on after its closing '\"': write a '\"' inside a cell as '\"\"'"
        )
    return last, f"not valid CSV: {error}"


def _unclosed_quote(lines: list[str], first: int) -> int | None:
    """The line where a quoted cell still open at the end of ``lines`` began, if any."""
    quoted, field_start, opened = False, True, None
    for offset, line in enumerate(lines):
        index = 0
        while index < len(line):
            char = line[index]
            if quoted:
                if char == '"':
                    if line[index + 1 : index + 2] == '"':
                        index += 2
                        continue
                    quoted = False
                field_start = False
            elif char == '"' and field_start:
                quoted, opened, field_start = True, first + offset, False
            else:
                field_start = char in ",\r\n"
            index += 1
    return opened if quoted else None


# -- JSON numbers and depth ---------------------------------------------------------------------
def _whole_number(text: str) -> int:
    digits = len(text.lstrip("-"))
    value = int(text) if digits <= 20 else None
    if value is None or not MIN_INT <= value <= MAX_INT:
        raise BadJson(
            f"the number {text[:12]}{'…' if len(text) > 12 else ''} ({digits} digits) is too "
            f"large: whole numbers must fit in 64 bits (at most {MAX_INT})"
        )
    return value


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(f"the number {text[:20]} is too large")
    return value


def _no_constant(name: str) -> Any:
    raise BadJson(f"{name} is not a number JSON allows")


# One decoder for every line (json.loads with these hooks would build one per call).
_DECODER = json.JSONDecoder(
    parse_int=_whole_number, parse_float=_number, parse_constant=_no_constant
)


def _check_unicode(value: Any) -> None:
    """Refuse a string holding half of a character (a ``\\ud800`` escape without its pair):
    it is no text either inbox can store."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key)
            _check_unicode(item)
    elif isinstance(value, list):
        for item in value:
            _check_unicode(item)
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = f"U+{ord(value[exc.start]):04X}"
            raise BadJson(f"a \\u escape ({code}) is half of a character: not valid text") from None


def _depth(text: str) -> int:
    """How deep the brackets of ``text`` nest, strings left out."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_JSON_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest

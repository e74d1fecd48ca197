"""`glas import` of malformed files the tests write: each problem is ``FILE:LINE: problem``,
exit status 2, no traceback, and the inbox is left exactly as it was.

The files stand for what really broke an import (issue 17): a CSV quote never closed, a huge
cell, a number of 5,000 digits, JSON nested thousands of levels deep, a byte that is not UTF-8,
``is_complaint: "yes"``, the same post twice in one file.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crawler.importer import import_file
from crawler.importfile import MAX_CELL_CHARS, MAX_JSON_DEPTH, MAX_LINE_BYTES
from storage import open_inbox
from storage.sql import SqlInbox

Glas = Callable[..., subprocess.CompletedProcess[str]]
HEADER = "platform,native_id,text"


def post(native_id: str, text: str = "Во дворе не вывозят мусор", **fields: Any) -> str:
    return json.dumps({"platform": "vk", "native_id": native_id, "text": text, **fields}) + "\n"


@pytest.fixture
def db(db_url: str, tmp_path: Path) -> str:
    """An inbox (``--db``) that already holds two imported posts."""
    (tmp_path / "before.jsonl").write_text(post("-1_1") + post("-1_2", "Яма на Ленина"), "utf-8")
    with open_inbox(db_url) as box:
        import_file(box, tmp_path / "before.jsonl")
    return db_url


def snapshot(db: str) -> list[Any]:
    with open_inbox(db) as box:
        assert isinstance(box, SqlInbox)
        posts = box.query("SELECT platform, native_id, text, seq FROM posts ORDER BY id")
        cases = box.query("SELECT cluster_id, size, seq FROM clusters ORDER BY cluster_id")
        return [*map(tuple, posts), "clusters", *map(tuple, cases)]


def rejected(glas: Glas, db: str, name: str, *, lines: int = 1) -> list[str]:
    """Import ``name``: it must fail cleanly and store nothing. Returns the problem lines."""
    before = snapshot(db)
    result = glas("--db", db, "import", name)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    messages = result.stderr.strip().splitlines()
    assert messages[-1].startswith(f"{name}: nothing imported ("), messages
    assert len(messages) == lines + 1, messages
    assert snapshot(db) == before
    return messages[:-1]


# -- CSV ----------------------------------------------------------------------------------------
@pytest.mark.both_backends
def test_csv_quote_never_closed_is_an_error_at_its_line(
    glas: Glas, db: str, tmp_path: Path
) -> None:
    rows = ["vk,1,один", 'vk,2,"два', "vk,3,три", "vk,4,четыре", "vk,5,пять"]
    (tmp_path / "x.csv").write_text("\n".join([HEADER, *rows]) + "\n", "utf-8")
    assert rejected(glas, db, "x.csv") == [
        "x.csv:3: a quoted cell opened on this line is never closed (a '\"' is missing); "
        "the rest of the file would be read into it"
    ]


def test_csv_quote_never_closed_in_a_record_of_several_lines(
    glas: Glas, db: str, tmp_path: Path
) -> None:
    """The record begins on line 2; the cell left open begins on line 3: line 3 is named."""
    body = f'{HEADER},metrics\nvk,1,"текст\nв две строки","{{""likes"": 1}}\nvk,2,ок,\n'
    (tmp_path / "x.csv").write_text(body, "utf-8")
    assert rejected(glas, db, "x.csv")[0].startswith("x.csv:3: a quoted cell opened on this line")


def test_csv_text_after_a_closing_quote(glas: Glas, db: str, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text(f'{HEADER}\nvk,1,ок\nvk,2,"цитата" и дальше\n', "utf-8")
    assert rejected(glas, db, "x.csv") == [
        "x.csv:3: a quoted cell goes on after its closing '\"': "
        "write a '\"' inside a cell as '\"\"'"
    ]


def test_csv_cell_of_200_thousand_characters(glas: Glas, db: str, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text(f'{HEADER}\nvk,1,"{"ж" * 200_000}"\n', "utf-8")
    assert rejected(glas, db, "x.csv") == [
        "x.csv:2: 'text' is longer than 100,000 characters (200,000)"
    ]


def test_csv_cell_over_the_cell_limit_names_the_open_quote(
    glas: Glas, db: str, tmp_path: Path
) -> None:
    """A quote never closed in a big file: the cell outgrows the limit before the file ends."""
    filler = ("слово " * 150 + "\n") * (MAX_CELL_CHARS // 900 + 10)
    (tmp_path / "x.csv").write_text(f'{HEADER}\nvk,1,ок\nvk,2,"{filler}', "utf-8")
    assert rejected(glas, db, "x.csv") == [
        f"x.csv:3: a cell longer than {MAX_CELL_CHARS:,} characters "
        "(is the '\"' that opens it on this line never closed?)"
    ]


def test_csv_line_over_the_line_limit(glas: Glas, db: str, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text(f"{HEADER}\nvk,1,{'x' * MAX_LINE_BYTES}\nvk,2,ok\n", "utf-8")
    assert rejected(glas, db, "x.csv") == [
        f"x.csv:2: the line is longer than {MAX_LINE_BYTES:,} bytes"
    ]


def test_csv_header_naming_a_column_twice(glas: Glas, db: str, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("platform,native_id,text,text\nvk,1,a,b\n", "utf-8")
    assert rejected(glas, db, "x.csv") == ["x.csv:1: the header names 'text' more than once"]


def test_csv_invalid_utf8_names_its_line(glas: Glas, db: str, tmp_path: Path) -> None:
    body = f'{HEADER}\nvk,1,"две\n'.encode() + "строки".encode("cp1251") + b'"\nvk,2,ok\n'
    (tmp_path / "x.csv").write_bytes(body)
    assert rejected(glas, db, "x.csv") == [
        "x.csv:3: not UTF-8 text (byte 0xf1 at column 1); save the file as UTF-8"
    ]


def test_csv_numbers_and_booleans(glas: Glas, db: str, tmp_path: Path) -> None:
    big = "9" * 5000
    (tmp_path / "x.csv").write_text(
        f"{HEADER},metrics,response_seconds,is_complaint\n"
        f'vk,1,a,"{{""likes"": {big}}}",,\n'
        "vk,2,b,,99999999999999999999999,\n"
        "vk,3,c,,,да\n"
        "vk,4,d,,,yes\n",
        "utf-8",
    )
    assert rejected(glas, db, "x.csv", lines=4) == [
        "x.csv:2: 'metrics': the number 999999999999… (5000 digits) is too large: whole "
        "numbers must fit in 64 bits (at most 9223372036854775807)",
        "x.csv:3: 'response_seconds': Input should be less than or equal to 9223372036854775807",
        "x.csv:4: 'is_complaint' must be true or false (or 1 or 0), found 'да'",
        "x.csv:5: 'is_complaint' must be true or false (or 1 or 0), found 'yes'",
    ]


# -- JSON Lines ---------------------------------------------------------------------------------
def test_jsonl_integer_of_5000_digits(glas: Glas, db: str, tmp_path: Path) -> None:
    line = post("-1_3").replace('"text"', f'"response_seconds": {"1" * 5000}, "text"')
    (tmp_path / "x.jsonl").write_text(post("-1_4") + line, "utf-8")
    assert rejected(glas, db, "x.jsonl") == [
        "x.jsonl:2: the number 111111111111… (5000 digits) is too large: whole numbers must "
        "fit in 64 bits (at most 9223372036854775807)"
    ]


def test_jsonl_raw_nested_thousands_of_levels(glas: Glas, db: str, tmp_path: Path) -> None:
    deep = '{"a": ' * 5000 + "1" + "}" * 5000
    line = post("-1_3").replace('"text"', f'"raw": {deep}, "text"')
    (tmp_path / "x.jsonl").write_text(line, "utf-8")
    assert rejected(glas, db, "x.jsonl") == [
        f"x.jsonl:1: JSON nested more than {MAX_JSON_DEPTH} levels deep"
    ]


def test_jsonl_nesting_at_the_limit_is_read(glas: Glas, db: str, tmp_path: Path) -> None:
    """The row is level 1, so a ``raw`` of 63 levels (brackets in a string do not count)
    makes 64: the limit, still read."""
    levels = MAX_JSON_DEPTH - 1
    raw = json.loads('{"a": ' * levels + '"[{ ]}"' + "}" * levels)
    (tmp_path / "x.jsonl").write_text(post("-1_3", raw=raw), "utf-8")
    result = glas("--db", db, "import", "x.jsonl")
    assert result.returncode == 0, result.stderr
    (tmp_path / "y.jsonl").write_text(post("-1_4", raw={"b": raw}), "utf-8")
    assert rejected(glas, db, "y.jsonl") == [
        f"y.jsonl:1: JSON nested more than {MAX_JSON_DEPTH} levels deep"
    ]


def test_jsonl_nan_and_infinity(glas: Glas, db: str, tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(
        post("-1_3").replace('"text"', '"complaint_score": NaN, "text"')
        + post("-1_4").replace('"text"', '"geo": {"lat": 1e999, "lon": 30}, "text"'),
        "utf-8",
    )
    assert rejected(glas, db, "x.jsonl", lines=2) == [
        "x.jsonl:1: NaN is not a number JSON allows",
        "x.jsonl:2: the number 1e999 is too large",
    ]


def test_jsonl_half_a_character(glas: Glas, db: str, tmp_path: Path) -> None:
    """A lone surrogate escape loads in Python but is no storable text (it crashed with exit
    70); a pair is one character and fine."""
    (tmp_path / "x.jsonl").write_text(
        post("-1_3", raw={"emoji": "😀"})
        + post("-1_4").replace('"text"', '"raw": {"a": "\\ud800"}, "text"'),
        "utf-8",
    )
    assert '"\\ud83d\\ude00"' in (tmp_path / "x.jsonl").read_text("utf-8")
    assert rejected(glas, db, "x.jsonl") == [
        "x.jsonl:2: a \\u escape (U+D800) is half of a character: not valid text"
    ]


def test_jsonl_invalid_utf8_names_its_line(glas: Glas, db: str, tmp_path: Path) -> None:
    start = '{"platform": "vk", "native_id": "-1_4", "text": "'
    bad = start.encode() + "жалоба".encode("cp1251") + b'"}\n'
    (tmp_path / "x.jsonl").write_bytes(post("-1_3").encode() + bad)
    assert rejected(glas, db, "x.jsonl") == [
        f"x.jsonl:2: not UTF-8 text (byte 0xe6 at column {len(start) + 1}); save the file as UTF-8"
    ]


def test_jsonl_line_over_the_line_limit(glas: Glas, db: str, tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(post("-1_3", "я" * MAX_LINE_BYTES) + post("-1_4"), "utf-8")
    assert rejected(glas, db, "x.jsonl") == [
        f"x.jsonl:1: the line is longer than {MAX_LINE_BYTES:,} bytes"
    ]


def test_jsonl_yes_is_no_boolean(glas: Glas, db: str, tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(
        post("-1_3", is_complaint="yes") + post("-1_4", author_is_official=2), "utf-8"
    )
    assert rejected(glas, db, "x.jsonl", lines=2) == [
        "x.jsonl:1: 'is_complaint' must be true or false (or 1 or 0), found 'yes'",
        "x.jsonl:2: 'author_is_official' must be true or false (or 1 or 0), found 2",
    ]


@pytest.mark.both_backends
def test_the_same_post_twice_names_both_lines(glas: Glas, db: str, tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(
        post("-1_3", "первый") + post("-1_4") + post("-1_3", "второй"), "utf-8"
    )
    assert rejected(glas, db, "x.jsonl") == [
        "x.jsonl:3: the same post as line 1 (platform vk, native_id '-1_3'): a file holds each "
        "post once"
    ]


def test_booleans_in_their_written_forms_are_read(glas: Glas, db: str, tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text(
        f"{HEADER},is_complaint,author_is_official\n"
        "vk,10,a,true,0\nvk,11,b,FALSE,1\nvk,12,c,1,false\nvk,13,d,0,True\n",
        "utf-8",
    )
    (tmp_path / "b.jsonl").write_text(
        post("-1_20", is_complaint=True, author_is_official=0)
        + post("-1_21", is_complaint=0, author_is_official=True),
        "utf-8",
    )
    for name in ("b.csv", "b.jsonl"):
        result = glas("--db", db, "import", name)
        assert result.returncode == 0, result.stderr
    with open_inbox(db) as box:
        assert isinstance(box, SqlInbox)
        got = box.query(
            "SELECT native_id, author_is_official FROM posts WHERE native_id IN "
            "('10', '11', '12', '13', '-1_20', '-1_21') ORDER BY native_id"
        )
    assert [tuple(r) for r in got] == [
        ("-1_20", 0),
        ("-1_21", 1),
        ("10", 0),
        ("11", 1),
        ("12", 0),
        ("13", 1),
    ]

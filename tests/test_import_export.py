"""`glas import` and `glas export` on real appeals and VK comments (read from ../shared/data)."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from storage import open_inbox
from storage.migrations import LATEST
from storage.sql import SqlInbox
from tests.conftest import shared

Glas = Callable[..., "subprocess.CompletedProcess[str]"]  # noqa: F821


def appeals_as_posts(limit: int) -> list[dict]:
    """Real St Petersburg appeals (read in place) in the Post shape."""
    rows = []
    with gzip.open(shared("appeals/spb_nash_gorod.jsonl.gz"), "rt", encoding="utf-8") as fh:
        for line in islice(fh, limit):
            a = json.loads(line)
            rows.append(
                {
                    "platform": "web",
                    "native_id": f"gorod.gov.spb.ru/{a['id']}",
                    "source_id": "nash-gorod",
                    "author_id": a["author"],
                    "text": a["text"],
                    "published_at": a["created_dt"],
                    "title": a["reason"],
                    "raw": {"category": a["category"], "district": a["district"]},
                }
            )
    return rows


def vk_comments_as_csv(path: Path, limit: int) -> int:
    """Real VK comments (read in place) written as a Post-shaped CSV."""
    with shared("vk/vk_comments_spb_central.csv").open(encoding="utf-8") as fh:
        source = list(islice(csv.DictReader(fh), limit))
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "platform",
                "native_id",
                "kind",
                "url",
                "author_id",
                "author_name",
                "author_is_official",
                "text",
                "published_at",
                "metrics",
                "geo",
            ]
        )
        for c in source:
            day, time = c["published"].split(" ")
            writer.writerow(
                [
                    "vk",
                    f"-143265175_{c['comment_id']}",
                    "comment",
                    c["url"],
                    c["author"],
                    c["author_name"],
                    c["author_is_official"],
                    c["text"],
                    f"{day.replace('.', '-')}T{time}:00",
                    json.dumps({"likes": int(c["likes"] or 0)}),
                    json.dumps({"lat": float(c["lat"]), "lon": float(c["lon"])})
                    if c["lat"]
                    else "",
                ]
            )
    return len(source)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def count(db: str | Path, sql: str = "SELECT count(*) FROM posts") -> int:
    return scalar(db, sql)


def scalar(db: str | Path, sql: str, params: Sequence[Any] = ()) -> Any:
    with open_inbox(str(db)) as box:
        assert isinstance(box, SqlInbox)
        return box.query(sql, params)[0][0]


@pytest.mark.both_backends
def test_import_real_appeals_jsonl(glas: Glas, tmp_path: Path, db_url: str) -> None:
    rows = appeals_as_posts(3000)
    write_jsonl(tmp_path / "appeals.jsonl", rows)
    result = glas("--db", db_url, "import", "appeals.jsonl")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "appeals.jsonl: 3000 new, 0 updated, 0 unchanged"
    db = db_url
    assert count(db) == 3000
    # Naive portal times are Moscow time: 14:50:40 MSK is 11:50:40 UTC.
    first = scalar(
        db, "SELECT published_at FROM posts WHERE native_id = 'gorod.gov.spb.ru/2947909'"
    )
    assert first == "2020-10-18T11:50:40Z"
    # Appeals repeated word for word are one case.
    texts = {}
    for r in rows:
        texts.setdefault(" ".join(r["text"].lower().split()), []).append(r)
    repeated = [v for v in texts.values() if len(v) > 1 and len(v[0]["text"]) > 40]
    assert repeated, "the slice should hold real repeated appeals"
    ids = [r["native_id"] for r in repeated[0]]
    marks = ",".join("?" * len(ids))
    clusters = scalar(
        db, f"SELECT count(DISTINCT cluster_id) FROM posts WHERE native_id IN ({marks})", ids
    )
    assert clusters == 1
    again = glas("--db", db_url, "import", "appeals.jsonl")
    assert again.stdout.strip() == "appeals.jsonl: 0 new, 0 updated, 3000 unchanged"


@pytest.mark.both_backends
def test_import_real_vk_comments_csv(glas: Glas, tmp_path: Path, db_url: str) -> None:
    n = vk_comments_as_csv(tmp_path / "comments.csv", 400)
    result = glas("--db", db_url, "import", "comments.csv")
    assert result.returncode == 0, result.stderr
    db = db_url
    assert count(db) == n
    assert (
        count(db, "SELECT count(*) FROM posts WHERE kind = 'comment' AND source_id = 'import'") == n
    )
    assert count(db, "SELECT count(*) FROM posts WHERE author_is_official = 1") > 0
    with open_inbox(db) as box:
        assert any((row["geo"] or {}).get("lat", 0) > 59 for row in box.export())


@pytest.mark.both_backends
def test_import_with_one_bad_row_imports_nothing(glas: Glas, tmp_path: Path, db_url: str) -> None:
    rows = appeals_as_posts(6)
    rows[3]["published_at"] = "вчера"
    del rows[4]["native_id"]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    result = glas("--db", db_url, "import", "bad.jsonl")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("bad.jsonl:4: 'published_at':")
    assert lines[1] == "bad.jsonl:5: missing required field 'native_id'"
    assert lines[2].startswith("bad.jsonl:7: not valid JSON")
    assert lines[-1] == "bad.jsonl: nothing imported (3 problems in 7 rows)"
    assert "Traceback" not in result.stderr
    assert count(db_url) == 0


def test_import_csv_errors_name_the_record_line(glas: Glas, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text(
        "platform,native_id,text,metrics\n"
        'vk,1,"многострочный\nтекст",{}\n'
        "vk,2,ok,{broken\n"
        "fb,3,неизвестная платформа,\n",
        encoding="utf-8",
    )
    result = glas("--db", "inbox.db", "import", "x.csv")
    assert result.returncode == 2
    assert result.stderr.splitlines()[:2] == [
        "x.csv:4: 'metrics': not valid JSON: '{broken'",
        "x.csv:5: 'platform' must be one of vk, ok, telegram, max, rss, web",
    ]


def test_import_unknown_field_and_format(glas: Glas, tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "a.jsonl", [{"platform": "vk", "native_id": "1", "text": "t", "likes": 3}]
    )
    result = glas("--db", "inbox.db", "import", "a.jsonl")
    assert result.returncode == 2 and "a.jsonl:1: unknown field 'likes'" in result.stderr
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    result = glas("--db", "inbox.db", "import", "a.txt")
    assert result.returncode == 2 and "--format jsonl|csv" in result.stderr


@pytest.mark.both_backends
def test_export_since_seq_returns_exactly_the_changed_rows(
    glas: Glas, tmp_path: Path, db_url: str
) -> None:
    rows = appeals_as_posts(50)
    write_jsonl(tmp_path / "first.jsonl", rows[:40])
    assert glas("--db", db_url, "import", "first.jsonl").returncode == 0
    stats = json.loads(glas("--db", db_url, "stats", "--json").stdout)
    mark = stats["last_seq"]
    changed = [dict(rows[5], text=rows[5]["text"] + " Прошу ускорить!")]
    write_jsonl(tmp_path / "second.jsonl", rows[:5] + changed + rows[6:])
    assert glas("--db", db_url, "import", "second.jsonl").returncode == 0

    out = glas("--db", db_url, "export", "--since-seq", str(mark))
    exported = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["native_id"] for r in exported) == sorted(
        [rows[5]["native_id"]] + [r["native_id"] for r in rows[40:]]
    )
    assert all(r["seq"] > mark for r in exported)
    assert [r["seq"] for r in exported] == sorted(r["seq"] for r in exported)

    csv_out = glas(
        "--db",
        db_url,
        "export",
        "--since-seq",
        str(mark),
        "--format",
        "csv",
        "-o",
        "changes.csv",
    )
    assert csv_out.returncode == 0 and "changes.csv: 11 rows" in csv_out.stderr
    with (tmp_path / "changes.csv").open(encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    assert len(records) == 11 and "content_hash" not in records[0]
    assert json.loads(records[0]["raw"])["district"]

    latest = json.loads(glas("--db", db_url, "stats", "--json").stdout)["last_seq"]
    nothing = glas("--db", db_url, "export", "--since-seq", str(latest))
    assert nothing.returncode == 0 and nothing.stdout == ""
    clusters = glas("--db", db_url, "export", "--table", "clusters", "--since-seq", str(mark))
    assert all(json.loads(line)["seq"] > mark for line in clusters.stdout.splitlines())


@pytest.mark.both_backends
def test_export_then_import_round_trips(glas: Glas, tmp_path: Path, db_url: str) -> None:
    """From either backend into a SQLite file: the export is the import format."""
    write_jsonl(tmp_path / "a.jsonl", appeals_as_posts(30))
    assert glas("--db", db_url, "import", "a.jsonl").returncode == 0
    assert glas("--db", db_url, "export", "-o", "dump.jsonl").returncode == 0
    result = glas("--db", "two.db", "import", "dump.jsonl")
    assert result.returncode == 0, result.stderr
    assert count(tmp_path / "two.db") == 30


def test_export_of_missing_inbox_is_a_clear_error(glas: Glas) -> None:
    result = glas("--db", "nowhere.db", "export")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "glas: inbox: nowhere.db: no inbox here (run `glas run` or `glas db upgrade`)"
    )


@pytest.mark.both_backends
def test_stats_and_db_upgrade(glas: Glas, tmp_path: Path, db_url: str) -> None:
    up = glas("--db", db_url, "db", "upgrade")
    assert up.returncode == 0 and f"schema version 0 → {LATEST}" in up.stdout
    again = glas("db", "upgrade", "--db", db_url)
    assert f"up to date (version {LATEST})" in again.stdout
    write_jsonl(tmp_path / "a.jsonl", appeals_as_posts(20))
    glas("--db", db_url, "import", "a.jsonl")
    stats = glas("--db", db_url, "stats")
    assert stats.returncode == 0
    assert stats.stdout.startswith("20 posts in ")
    assert "By source" in stats.stdout and "nash-gorod" in stats.stdout


@pytest.mark.parametrize("env_first", [True, False])
def test_glas_db_from_environment(glas: Glas, tmp_path: Path, env_first: bool) -> None:
    from tests.conftest import glas_env

    write_jsonl(tmp_path / "a.jsonl", appeals_as_posts(3))
    env = glas_env(tmp_path, GLAS_DB=str(tmp_path / "env.db"))
    args = ("import", "a.jsonl") if env_first else ("import", "a.jsonl", "--db", "opt.db")
    assert glas(*args, env=env).returncode == 0
    assert (tmp_path / ("env.db" if env_first else "opt.db")).exists()


def test_import_rows_are_the_post_shape() -> None:
    """Every importable field is a Post field: the import contract cannot drift from the model."""
    from crawler.importer import IGNORED, ImportRow
    from crawler.model import POST_FIELDS

    as_post = {"deleted_at": "deleted"}  # the column records when; the Post says whether
    fields = {as_post.get(name, name) for name in ImportRow.model_fields}
    assert fields <= set(POST_FIELDS)
    computed = {"dedupe_key", "cluster_id", "is_canonical"}
    notes = {"duplicate_of", "plain_fields", "editorial"}  # the pipeline's, never columns
    internal = {"collected_hash"}  # a column, but never exported nor imported
    assert set(POST_FIELDS) - fields == computed | notes | internal
    assert computed <= set(IGNORED)

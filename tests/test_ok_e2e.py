"""`glas run` end to end against the local OK server: a group's topics and comments fill the
inbox; official answers answer their parent; a second run adds only what is new; the
credentials never leak; a rejected token is one clear line."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, glas_env
from tests.ok_server import APP_KEY, APP_SECRET, TOKEN, OkServer, load_group

pytestmark = pytest.mark.slow

Glas = Callable[..., subprocess.CompletedProcess[str]]
GID = "70000001234567"


@pytest.fixture
def ok() -> Iterator[OkServer]:
    with OkServer() as server:
        server.add_group(
            load_group(FIXTURES / "ok" / "zarechny_group.json", newest=time.time() - 3600)
        )
        yield server


@pytest.fixture
def setup(ok: OkServer, write_sources: Callable[[str], Path], tmp_path: Path) -> dict[str, str]:
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          ok_api_url: {ok.url}
        official_accounts:
          ok: [571000000099]
        sources:
          - id: zarechny-ok
            type: ok_group
            group: https://ok.ru/zarechny_adm
            municipality: Заречный
            app_key_env: ZARECHNY_OK_APP
            secret_key_env: ZARECHNY_OK_SECRET
            token_env: ZARECHNY_OK_ACCESS
        """)
    return glas_env(
        tmp_path, ZARECHNY_OK_APP=APP_KEY, ZARECHNY_OK_SECRET=APP_SECRET, ZARECHNY_OK_ACCESS=TOKEN
    )


def query(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def topic(number: int, comment: str | None = None) -> str:
    base = f"{GID}_1550100000000{number:02d}"
    return f"{base}_c{comment}" if comment else base


def test_group_fills_the_inbox_then_only_news_arrive(
    glas: Glas, ok: OkServer, setup: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "inbox.db"
    first = glas("run", "--all", env=setup)
    assert first.returncode == 0, first.stdout + first.stderr
    rows = {r["native_id"]: r for r in query(db, "SELECT * FROM posts WHERE platform = 'ok'")}
    assert sum(r["kind"] == "post" for r in rows.values()) == 6
    assert sum(r["kind"] == "comment" for r in rows.values()) == 7
    assert rows[topic(3)]["municipality"] == "Заречный"
    assert rows[topic(2)]["response_seconds"] == 40 * 60  # the group's answer to the topic
    assert rows[topic(3, "MjAwMQ")]["response_seconds"] == 30 * 60  # a listed official's reply
    assert rows[topic(3, "MjAwMQ")]["answered_at"] is not None
    assert rows[topic(2, "MTAwMQ")]["answered_at"] is None  # a resident's comment
    assert rows[topic(3, "MjAwMg")]["deleted_at"] is not None

    secrets = (APP_SECRET, TOKEN)
    for secret in secrets:
        assert secret not in first.stdout + first.stderr
        for path in [*tmp_path.glob("inbox.db*"), *tmp_path.glob("inbox.db.locks/*")]:
            assert path.is_dir() or secret.encode() not in path.read_bytes()
    assert all(call.signed for call in ok.calls)

    seqs = {r["native_id"]: r["seq"] for r in query(db, "SELECT native_id, seq FROM posts")}
    ok.add_comment(
        "155010000000006",
        {
            "id": "MzAwMg",
            "author_id": "571000000003",
            "text": "Двор почистили, спасибо!",
            "created_ms": int(time.time() * 1000),
            "reply_to_comment_id": "MzAwMQ",
        },
    )
    second = glas("run", "--all", env=setup)
    assert second.returncode == 0, second.stdout + second.stderr
    after = {r["native_id"]: r for r in query(db, "SELECT * FROM posts")}
    assert set(after) - set(seqs) == {topic(6, "MzAwMg")}
    changed = {k for k, r in after.items() if k in seqs and r["seq"] != seqs[k]}
    assert changed == set()  # nothing else rewritten


def test_rejected_token_is_one_line_and_never_printed(
    glas: Glas, ok: OkServer, setup: dict[str, str]
) -> None:
    ok.tokens = {"the-right-one"}
    result = glas("run", "--all", env=setup)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "OK access token in $ZARECHNY_OK_ACCESS rejected (PARAM_SESSION_EXPIRED" in output
    assert TOKEN not in output and APP_SECRET not in output
    assert "Traceback" not in output
    assert ok.methods() == ["url.getInfo"]  # no retry storm

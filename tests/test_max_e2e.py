"""`glas run` end to end against the local MAX Bot API server: a channel and a group chat fill
the inbox; an official reply answers the message it replies to; a second run adds only what is
new; the token never leaks; a rejected token and a removed bot are one clear line each."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, glas_env
from tests.max_server import MaxServer, load_chat

pytestmark = pytest.mark.slow

Glas = Callable[..., subprocess.CompletedProcess[str]]
CHAT = -70000000000005
CHANNEL = -70000000000077


def mid(number: int, chat: int = CHAT) -> str:
    return f"mid.{abs(chat):016x}{number:016x}"


@pytest.fixture
def api() -> Iterator[MaxServer]:
    with MaxServer() as server:
        server.add_chat(
            load_chat(FIXTURES / "max" / "zarechny_chat.json", newest=time.time() - 600)
        )
        server.add_chat(
            load_chat(FIXTURES / "max" / "zarechny_channel.json", newest=time.time() - 900)
        )
        yield server


@pytest.fixture
def setup(api: MaxServer, write_sources: Callable[[str], Path], tmp_path: Path) -> dict[str, str]:
    write_sources(f"""
        defaults:
          retry_backoff: 0s
        official_accounts:
          max: ["@zarechny_priemnaya"]
        sources:
          - id: zarechny-adm-max
            type: max_chat
            chat: https://max.ru/zarechny_adm
            api_url: {api.url}
            municipality: Заречный
          - id: zarechny-chat-max
            type: max_chat
            chat: {CHAT}
            api_url: {api.url}
            municipality: Заречный
        """)
    token = f"max-{uuid.uuid4().hex}"
    api.tokens = {token}
    return glas_env(tmp_path, MAX_BOT_TOKEN=token)


def query(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_channel_and_chat_fill_the_inbox_then_only_news_arrive(
    glas: Glas, api: MaxServer, setup: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "inbox.db"
    first = glas("run", "--all", env=setup)
    assert first.returncode == 0, first.stdout + first.stderr
    rows = {r["native_id"]: r for r in query(db, "SELECT * FROM posts WHERE platform = 'max'")}
    assert len(rows) == 3 + 6
    assert sum(r["author_is_official"] for r in rows.values()) == 3 + 1
    lamp = rows[mid(1)]
    assert lamp["answered_at"] is not None and lamp["response_seconds"] == 20 * 60
    assert rows[mid(2)]["answered_at"] is None
    assert rows[mid(3)]["parent"] == mid(1) and rows[mid(3)]["kind"] == "comment"
    forward, original = rows[mid(4)], rows[mid(1, CHANNEL)]
    assert forward["repost_of"] == original["native_id"]
    assert forward["cluster_id"] == original["cluster_id"]  # one case: the channel's post
    assert lamp["municipality"] == "Заречный"
    titles = {r["source_id"]: r["title"] for r in query(db, "SELECT * FROM sources")}
    assert titles["zarechny-adm-max"] == "Администрация Заречного"

    token = setup["MAX_BOT_TOKEN"]
    assert token not in first.stdout + first.stderr
    for path in [*tmp_path.glob("inbox.db*"), *tmp_path.glob("inbox.db.locks/*")]:
        assert path.is_dir() or token.encode() not in path.read_bytes()

    seqs = {r["native_id"]: r["seq"] for r in query(db, "SELECT native_id, seq FROM posts")}
    newest = max(m["timestamp"] for m in api.messages[CHAT])
    api.add_message(
        CHAT,
        {
            "recipient": {"chat_id": CHAT, "chat_type": "chat", "user_id": None},
            "timestamp": newest + 1000,
            "body": {"mid": mid(7), "seq": 7, "text": "Яму на Садовой засыпали, спасибо!"},
            "sender": {"user_id": 300100, "first_name": "Ольга", "last_name": "Петрова"},
        },
    )
    api.edit(mid(2), "Мусор во дворе дома 12 по Садовой уже вывезли.")
    second = glas("run", "--all", env=setup)
    assert second.returncode == 0, second.stdout + second.stderr
    after = {r["native_id"]: r for r in query(db, "SELECT * FROM posts")}
    assert set(after) - set(seqs) == {mid(7)}
    assert {k for k, r in after.items() if k in seqs and r["seq"] != seqs[k]} == {mid(2)}
    edited = after[mid(2)]
    assert edited["text"] == rows[mid(2)]["text"]  # the first text stays: it is the complaint
    assert edited["edited_at"] is not None
    raw = json.loads(edited["raw"])
    assert raw["edited"] is True and raw["text_now"].startswith("Мусор во дворе дома 12")


def test_rejected_token_is_one_line_naming_its_variable(
    glas: Glas, api: MaxServer, setup: dict[str, str]
) -> None:
    setup["MAX_BOT_TOKEN"] = f"max-{uuid.uuid4().hex}"
    result = glas("run", "--all", env=setup)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "MAX token in $MAX_BOT_TOKEN rejected (verify.token: Invalid access_token)" in output
    assert setup["MAX_BOT_TOKEN"] not in output and "Traceback" not in output


def test_removed_bot_is_gone_with_a_line_to_add_it_again(
    glas: Glas, api: MaxServer, setup: dict[str, str], tmp_path: Path
) -> None:
    api.remove_bot(CHAT)
    result = glas("run", "--all", env=setup)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if "zarechny-chat-max" in line]
    assert any("add the bot to the chat again" in line for line in lines), output
    assert "Traceback" not in output
    state = {r["source_id"]: r for r in query(tmp_path / "inbox.db", "SELECT * FROM source_state")}
    assert state["zarechny-chat-max"]["gone"] == 1
    assert "add the bot" in state["zarechny-chat-max"]["last_error"]
    assert state["zarechny-adm-max"]["gone"] == 0  # the channel is read as before

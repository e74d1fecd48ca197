"""`glas run` end to end against the local VK server: a wall with comments and a keyword search
fill the inbox; a second run adds only what is new; official replies answer their parent; the
token never leaks; a rejected token is one clear line."""

from __future__ import annotations

import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, glas_env
from tests.vk_server import VkServer, load_wall

pytestmark = pytest.mark.slow

Glas = Callable[..., subprocess.CompletedProcess[str]]
OWNER = -201234567


@pytest.fixture
def vk() -> Iterator[VkServer]:
    with VkServer() as server:
        server.add_wall(
            load_wall(FIXTURES / "vk" / "zarechny_wall.json", newest=time.time() - 3600)
        )
        server.search_items.append(
            {
                "id": 77,
                "owner_id": -400500600,
                "from_id": 700000777,
                "date": int(time.time()) - 600,
                "post_type": "post",
                "text": "Посёлок Заречный: опять не вывезли мусор с Лесной улицы.",
            }
        )
        yield server


@pytest.fixture
def setup(vk: VkServer, write_sources: Callable[[str], Path], tmp_path: Path) -> dict[str, str]:
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          vk_api_url: {vk.url}
        official_accounts:
          vk: [zhkh_zarechny, 700000099]
        sources:
          - id: zarechny-wall
            type: vk_wall
            owner: zarechny_news
            municipality: Заречный
          - id: zarechny-search
            type: vk_search
            query: Заречный мусор
        """)
    tokens = ",".join(f"vk1.a.{uuid.uuid4().hex}" for _ in range(3))  # used in turn
    return glas_env(tmp_path, VK_TOKEN=tokens)


def query(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_wall_and_search_fill_the_inbox_then_only_news_arrive(
    glas: Glas, vk: VkServer, setup: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "inbox.db"
    first = glas("run", "--all", env=setup)
    assert first.returncode == 0, first.stdout + first.stderr
    rows = {r["native_id"]: r for r in query(db, "SELECT * FROM posts WHERE platform = 'vk'")}
    assert sum(r["kind"] == "post" for r in rows.values()) == 6 + 1
    assert sum(r["kind"] == "comment" for r in rows.values()) == 21
    assert rows["-400500600_77"]["source_id"] == "zarechny-search"
    assert rows["-201234567_3"]["municipality"] == "Заречный"

    answered = rows["-201234567_2_c101"]
    assert answered["answered_at"] is not None
    assert answered["response_seconds"] == 1000  # 4000 → 5000 in the fixture
    assert rows["-201234567_3_c201"]["answered_at"] is not None  # committee, by screen name
    assert rows["-201234567_2_c103"]["answered_at"] is None  # a resident's thanks
    assert rows["-201234567_3_c202"]["deleted_at"] is not None

    for token in setup["VK_TOKEN"].split(","):
        assert token not in first.stdout + first.stderr
        for path in [*tmp_path.glob("inbox.db*"), *tmp_path.glob("inbox.db.locks/*")]:
            assert path.is_dir() or token.encode() not in path.read_bytes()
    assert {c.token for c in vk.calls} == set(setup["VK_TOKEN"].split(","))

    seqs = {r["native_id"]: r["seq"] for r in query(db, "SELECT native_id, seq FROM posts")}
    vk.add_comment(
        OWNER,
        6,
        {
            "id": 305,
            "from_id": OWNER,
            "post_id": 6,
            "owner_id": OWNER,
            "parents_stack": [304],
            "reply_to_comment": 304,
            "date": int(time.time()),
            "text": "На Речной вывоз в пятницу.",
        },
    )
    second = glas("run", "--all", env=setup)
    assert second.returncode == 0, second.stdout + second.stderr
    after = {r["native_id"]: r for r in query(db, "SELECT * FROM posts")}
    assert set(after) - set(seqs) == {"-201234567_6_c305"}
    assert after["-201234567_6_c304"]["answered_at"] is not None
    changed = {k for k, r in after.items() if k in seqs and r["seq"] != seqs[k]}
    assert changed == {"-201234567_6_c304"}  # answered now; nothing else rewritten


def test_rejected_token_is_one_line_and_never_printed(
    glas: Glas, vk: VkServer, setup: dict[str, str]
) -> None:
    vk.tokens = {"the-right-one"}
    setup["VK_TOKEN"] = f"vk1.a.{uuid.uuid4().hex}"
    result = glas("run", "--all", env=setup)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "VK token in $VK_TOKEN rejected (User authorization failed" in output
    assert setup["VK_TOKEN"] not in output
    assert "Traceback" not in output
    assert vk.methods().count("utils.resolveScreenName") == 1  # no retry storm

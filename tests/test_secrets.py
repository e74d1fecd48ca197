"""Secrets never reach the inbox, a log, an export or an error line, even when an API echoes
them: VK errors carrying the token, through `glas run`, `stats`, `status` and `export`."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from crawler.config import load_config
from crawler.secrets import RedactingFilter, redact, secrets
from storage import InboxError, open_inbox
from tests.conftest import FIXTURES, glas_env
from tests.vk_server import VkServer, load_wall

Glas = Callable[..., subprocess.CompletedProcess[str]]


def secret(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


# -- what counts as a secret ---------------------------------------------------------------------
def test_the_variables_sources_yaml_names_are_secrets(
    write_sources: Callable[[str], Path],
) -> None:
    load_config(
        write_sources("""
            privacy:
              key_env: CITY_PEPPER
            sources:
              - id: wall
                type: vk_wall
                owner: zarechny_news
                token_env: [VK_MAIN, VK_SPARE]
            """)
    )
    main, spare, other, pepper = (secret(p) for p in ("vk1.a.", "vk1.a.", "vk1.a.", "pp"))
    env = {"VK_MAIN": f"{main}, {other}", "VK_SPARE": spare, "CITY_PEPPER": pepper}
    text = f"error: token {main} / {other}, then {spare}; key {pepper}"
    assert redact(text, env) == (
        "error: token [redacted $VK_MAIN] / [redacted $VK_MAIN], then [redacted $VK_SPARE]; "
        "key [redacted $CITY_PEPPER]"
    )


def test_telegram_credentials_and_secret_looking_variables_are_secrets() -> None:
    session = "1BVtsOK4Bu3+aXyz/Qw9==" + uuid.uuid4().hex
    env = {
        "TELEGRAM_API_HASH": secret("h"),
        "TELEGRAM_SESSION": session,
        "PGPASSWORD": "correct horse battery",
        "S3_SECRET": secret("s"),
        "SHORT_TOKEN": "abc123",  # too short to tell from an ordinary word: left alone
        "HOME": "/home/glas-operator",  # not a secret's name
    }
    text = (
        f"hash {env['TELEGRAM_API_HASH']} session {session} in a URL ?s={quote(session, safe='')} "
        f"pw correct horse battery, {env['S3_SECRET']}, abc123 at /home/glas-operator"
    )
    assert redact(text, env) == (
        "hash [redacted $TELEGRAM_API_HASH] session [redacted $TELEGRAM_SESSION] in a URL "
        "?s=[redacted $TELEGRAM_SESSION] pw [redacted $PGPASSWORD], [redacted $S3_SECRET], "
        "abc123 at /home/glas-operator"
    )


def test_a_secret_containing_another_is_replaced_whole() -> None:
    inner = secret("tok")
    env = {"A_TOKEN": inner, "B_TOKEN": inner + "-and-more"}
    assert redact(f"x {inner}-and-more y {inner}", env) == (
        "x [redacted $B_TOKEN] y [redacted $A_TOKEN]"
    )
    assert [value for value, _ in secrets(env)][:1] == [inner + "-and-more"]


def test_the_inbox_password_is_a_secret_once_the_inbox_is_opened() -> None:
    password = secret("pw-")
    with pytest.raises(InboxError) as failed:
        open_inbox(f"postgresql://glas:{password}@127.0.0.1:1/glas")  # nothing listens there
    assert password not in str(failed.value)
    assert redact(f"server said: bad password {password}", {}) == (
        "server said: bad password [redacted password of --db]"
    )
    assert redact("see mysql://u:hunter2@db.example/x", {}) == "see mysql://u:***@db.example/x"


def test_log_records_are_redacted_before_any_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    token = secret("vk1.a.")
    monkeypatch.setenv("SOME_TOKEN", token)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("glas.test-secrets")
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"API said {token}")
        except RuntimeError:
            log.exception("call failed with %s", token, extra={"glas": {"error": token}})
    finally:
        log.removeHandler(handler)
    assert token not in out.getvalue()
    assert out.getvalue().startswith("call failed with [redacted $SOME_TOKEN]\n")
    assert "RuntimeError: API said [redacted $SOME_TOKEN]" in out.getvalue()


# -- end to end: a VK API that echoes the token -------------------------------------------------
@pytest.mark.slow
def test_a_token_echoed_by_vk_appears_nowhere(
    glas: Glas, write_sources: Callable[[str], Path], tmp_path: Path
) -> None:
    tokens = [secret("vk1.a."), secret("vk1.a.")]
    pepper, session = secret("pepper-"), secret("1BVtsOK4Bu3+")
    env = glas_env(
        tmp_path, VK_TOKEN=",".join(tokens), CITY_PEPPER=pepper, TELEGRAM_SESSION=session
    )
    with VkServer() as vk:
        vk.add_wall(load_wall(FIXTURES / "vk" / "zarechny_wall.json", newest=time.time() - 3600))
        vk.fail("newsfeed.search", 100, "invalid access_token {token}")
        vk.fail("wall.getComments", 212, f"denied for {{token}}; key {pepper}", post_id=2)
        vk.fail("wall.getComments", 212, f"session {session} denied", post_id=3)
        write_sources(f"""
            defaults:
              request_delay: 0s
              retry_backoff: 0s
              vk_api_url: {vk.url}
            privacy:
              key_env: CITY_PEPPER
            sources:
              - id: zarechny-wall
                type: vk_wall
                owner: zarechny_news
              - id: zarechny-search
                type: vk_search
                query: Заречный мусор
            """)
        outputs = [  # the comments fail in the first run only: then they are known gone
            glas("run", "--all", "--log-json", "-v", env=env),
            glas("run", "--all", "--progress", env=env),
            glas("run", "--all", env=env),
        ]
        echoed = {c.token for c in vk.calls if c.method in ("newsfeed.search", "wall.getComments")}
    assert echoed <= set(tokens) and echoed  # the errors really carried the tokens
    for run in outputs:
        assert run.returncode == 1, run.stdout + run.stderr
    outputs += [
        glas(*command, env=env)
        for command in (
            ("stats",),
            ("stats", "--json"),
            ("status",),
            ("status", "--json"),
            ("export",),
            ("export", "--table", "clusters"),
            ("export", "--format", "csv", "-o", "posts.csv"),
        )
    ]
    printed = "\n".join(r.stdout + r.stderr for r in outputs)
    stored = dump_tables(tmp_path / "inbox.db")
    exported = (tmp_path / "posts.csv").read_text(encoding="utf-8")
    files = b"".join(p.read_bytes() for p in tmp_path.glob("inbox.db*") if p.is_file())
    for value in [*tokens, pepper, session]:
        assert value not in printed
        assert value not in stored
        assert value not in exported
        assert value.encode() not in files
    # The messages are there, with the name of the variable in place of the value.
    assert "glas: zarechny-search: failed: VK error 100 in newsfeed.search: invalid access_token " \
        "[redacted $VK_TOKEN]" in printed  # fmt: skip
    assert "[redacted $CITY_PEPPER]" in stored and "[redacted $TELEGRAM_SESSION]" in stored
    logged = [json.loads(line) for line in outputs[0].stderr.splitlines() if line.startswith("{")]
    failed = next(r for r in logged if r.get("source") == "zarechny-search" and r.get("error"))
    assert failed["error"].endswith("invalid access_token [redacted $VK_TOKEN]")
    assert any("[redacted $VK_TOKEN]" in w for r in logged for w in r.get("warnings") or [])


def dump_tables(db: Path) -> str:
    """Every row of every table of a SQLite inbox, as text."""
    conn = sqlite3.connect(db)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert {"runs", "source_state", "posts", "sources"} <= set(names)
        return "\n".join(
            f"{name}: {row!r}" for name in names for row in conn.execute(f"SELECT * FROM {name}")
        )
    finally:
        conn.close()

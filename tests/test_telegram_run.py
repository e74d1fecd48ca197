"""The `telegram` source type through the real runner, ingest and SQLite inbox.

Only the Telegram client is replaced: ``GLAS_TELEGRAM_GATEWAY`` points the collector's shared
session at :class:`tests.telegram_fakes.FakeTelegram`, which serves real Telethon objects and
raises real Telethon errors (MTProto cannot be served locally).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from telethon import errors
from telethon.tl import types

from crawler.config import load_config
from crawler.runner import RunSummary, run_sources
from storage.rows import utc_text
from storage.sqlite import SqliteInbox
from tests import telegram_fakes
from tests.conftest import glas_env
from tests.telegram_fakes import CHANNEL_ID, GROUP_ID, PRESS_ID, FakeTelegram, city, comment, post

NOW = datetime.now(UTC).replace(microsecond=0)
API_HASH = "0123456789abcdef0123456789abcdef"
SESSION = "1BVtsOHkBu5-SECRET-SESSION-STRING-zz9"
ADM = "adm_gorod_n"

SOURCES = """
    defaults:
      request_delay: 0s
      retry_backoff: 0s
    official_accounts:
      telegram: [{press}, other_official]
    sources:
      - id: adm-n
        type: telegram
        channel: https://t.me/Adm_Gorod_N
        municipality: г. N
        {extra}
"""


class Quiet:
    """A reporter that keeps what the runner tells it."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def started(self, source: Any) -> None:
        pass

    def finished(self, record: Any) -> None:
        self.records.append(record)


@pytest.fixture
def tg(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    fake = city(NOW)
    telegram_fakes.ACTIVE = fake
    monkeypatch.setenv("TELEGRAM_API_ID", "123456")
    monkeypatch.setenv("TELEGRAM_API_HASH", API_HASH)
    monkeypatch.setenv("TELEGRAM_SESSION", SESSION)
    monkeypatch.setenv("GLAS_TELEGRAM_GATEWAY", "tests.telegram_fakes:factory")
    yield fake
    telegram_fakes.ACTIVE = None


Run = Callable[..., RunSummary]


@pytest.fixture
def run(write_sources: Callable[[str], Path], inbox: SqliteInbox) -> Run:
    def go(extra: str = "", sources: str = SOURCES) -> RunSummary:
        text = sources.replace("{press}", str(PRESS_ID)).replace("{extra}", extra)
        config = load_config(write_sources(text))
        return run_sources(config, inbox, config.enabled, Quiet())

    return go


def rows(inbox: SqliteInbox, where: str = "1", *params: Any) -> dict[str, dict[str, Any]]:
    cur = inbox.conn.execute(f"SELECT * FROM posts WHERE {where} ORDER BY id", params)
    names = [d[0] for d in cur.description]
    return {r[names.index("native_id")]: dict(zip(names, r, strict=True)) for r in cur}


def state(inbox: SqliteInbox, source_id: str = "adm-n") -> dict[str, Any]:
    cur = inbox.conn.execute("SELECT * FROM source_state WHERE source_id = ?", (source_id,))
    names = [d[0] for d in cur.description]
    row = dict(zip(names, cur.fetchone(), strict=True))
    row["cursor"] = json.loads(row["cursor"]) if row["cursor"] else None
    return row


def last_run(inbox: SqliteInbox, source_id: str = "adm-n") -> dict[str, Any]:
    cur = inbox.conn.execute(
        "SELECT * FROM runs WHERE source_id = ? ORDER BY run_id DESC LIMIT 1", (source_id,)
    )
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


# -- a first run ---------------------------------------------------------------------------------
def test_first_run_stores_posts_albums_forwards_and_comments(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    summary = run()
    assert [r.status for r in summary.records] == ["ok"], summary.records[0].error
    posts = rows(inbox, "kind = 'post'")
    assert list(posts) == [f"{ADM}/{n}" for n in (101, 102, 110, 113, 114)]
    album = posts[f"{ADM}/110"]
    assert album["text"] == "Благоустройство сквера на Садовой: фото с объекта."
    assert album["url"] == "https://t.me/Adm_Gorod_N/110"
    assert json.loads(album["raw"])["media"] == ["photo", "photo", "video"]
    assert json.loads(album["raw"])["ids"] == [110, 111, 112]
    assert posts[f"{ADM}/113"]["repost_of"] == "mchs_n/451"
    assert json.loads(posts[f"{ADM}/114"]["metrics"]) == {
        "views": 800,
        "reposts": 4,
        "reactions": 49,
        "comments": 2,
    }
    assert posts[f"{ADM}/114"]["edited_at"] is not None
    assert {p["source_id"] for p in posts.values()} == {"adm-n"}
    assert {p["municipality"] for p in posts.values()} == {"г. N"}
    assert inbox.conn.execute("SELECT title FROM sources").fetchone()[0] == "Администрация г. N"


def test_comment_threads_and_official_answers(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    run()
    comments = rows(inbox, "kind = 'comment'")
    assert list(comments) == [f"{GROUP_ID}/{n}" for n in (2001, 2003, 2005, 2010, 2011)]
    assert comments[f"{GROUP_ID}/2001"]["parent"] == f"{ADM}/110"
    assert comments[f"{GROUP_ID}/2003"]["parent"] == f"{ADM}/110"
    by_channel = comments[f"{GROUP_ID}/2005"]
    assert by_channel["parent"] == f"{GROUP_ID}/2001"
    assert by_channel["author_is_official"] == 1
    assert by_channel["author_id"] == str(CHANNEL_ID)
    press = comments[f"{GROUP_ID}/2011"]
    assert (press["parent"], press["author_is_official"]) == (f"{GROUP_ID}/2010", 1)
    assert comments[f"{GROUP_ID}/2010"]["author_name"] == "Гульнара"
    assert comments[f"{GROUP_ID}/2010"]["url"] == "https://t.me/Adm_Gorod_N/114?comment=2010"
    # the storage marks what the official replies answered
    answered = comments[f"{GROUP_ID}/2001"]
    assert answered["answered_at"] == by_channel["published_at"]
    assert answered["response_seconds"] == 2 * 3600
    assert comments[f"{GROUP_ID}/2010"]["response_seconds"] == 3600
    assert comments[f"{GROUP_ID}/2003"]["answered_at"] is None
    # comments only for posts inside comments_window, each thread read once from its start
    assert [(c.reply_to, c.min_id) for c in tg.thread_calls()] == [(110, 0), (114, 0)]


def test_first_run_starts_max_messages_before_the_newest(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    summary = run("max_messages: 3")
    assert summary.records[0].status == "ok"
    assert tg.calls[0].reverse is False and tg.calls[0].limit == 1  # the newest id: 114
    assert tg.history_calls()[0].min_id == 111
    # 111 and 112 belong to an album whose first part is outside: read as they are
    assert list(rows(inbox, "kind = 'post'")) == [f"{ADM}/{n}" for n in (112, 113, 114)]


# -- later runs ----------------------------------------------------------------------------------
def test_second_run_is_incremental_and_follows_recent_posts(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    run()
    cursor = state(inbox)["cursor"]
    assert cursor["last_id"] == 114
    assert sorted(cursor["follow"]) == ["110", "113", "114"]
    assert cursor["follow"]["110"]["c"] == 2005
    # between runs: an edit, more views, a new post and a new comment
    history = tg.history[CHANNEL_ID]
    edited = NOW - timedelta(minutes=30)
    history[-1] = post(
        114,
        history[-1].date,
        "Приём граждан по вопросам ЖКХ перенесён на пятницу, каб. 14.",
        edit_date=edited,
        views=950,
        comments=3,
        max_comment=2012,
    )
    history.append(post(115, NOW - timedelta(minutes=20), "Отключение света на Заречной."))
    tg.threads[(CHANNEL_ID, 114)].append(
        comment(
            2012,
            NOW - timedelta(minutes=10),
            "А на Заречной когда дадут воду?",
            to=1910,
            sender=types.PeerUser(502),
        )
    )
    tg.calls.clear()
    summary = run()
    assert summary.records[0].status == "ok"
    # history re-read from just before the oldest followed post; threads from the last comment
    assert [c.min_id for c in tg.history_calls()] == [109]
    assert [(c.reply_to, c.min_id) for c in tg.thread_calls()] == [(114, 2011)]
    stored = summary.records[0].stored
    assert (stored.new, stored.updated) == (2, 1)
    post_114 = rows(inbox, "native_id = ?", f"{ADM}/114")[f"{ADM}/114"]
    assert post_114["text"] == "Приём граждан по вопросам ЖКХ перенесён на пятницу, каб. 14."
    assert post_114["edited_at"] == utc_text(edited)
    assert json.loads(post_114["metrics"])["views"] == 950
    assert f"{GROUP_ID}/2012" in rows(inbox, "kind = 'comment'")
    assert state(inbox)["cursor"]["last_id"] == 115


def test_posts_older_than_the_window_are_not_reread(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    run("comments_window: 1h")
    assert state(inbox)["cursor"]["follow"] == {}
    assert tg.thread_calls() == []  # every post is older than an hour
    tg.calls.clear()
    run("comments_window: 1h")
    assert [c.min_id for c in tg.history_calls()] == [114]


def test_comments_off(tg: FakeTelegram, run: Run, inbox: SqliteInbox) -> None:
    run("comments: false")
    assert tg.thread_calls() == []
    assert rows(inbox, "kind = 'comment'") == {}


# -- flood control -------------------------------------------------------------------------------
def test_short_flood_wait_is_slept_and_reading_goes_on(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    tg.faults[("history", 113)] = errors.FloodWaitError(request=None, capture=7)
    tg.faults[("thread", 2010)] = errors.FloodWaitError(request=None, capture=3)
    summary = run("flood_wait_limit: 10s")
    assert summary.records[0].status == "ok"
    assert tg.slept == [7, 3]
    assert len(rows(inbox, "kind = 'post'")) == 5
    assert len(rows(inbox, "kind = 'comment'")) == 5
    # resumed after the last message handed out, not from the start
    assert [c.min_id for c in tg.history_calls()] == [0, 112]


def test_long_flood_wait_defers_the_source_and_keeps_what_was_read(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    tg.faults[("history", 113)] = errors.FloodWaitError(request=None, capture=3600)
    summary = run()
    record = summary.records[0]
    assert record.status == "failed"
    assert record.error == "Telegram asks to wait 3600 s (flood control); trying again next run"
    assert not record.gone
    assert tg.slept == []
    # the album 110-112 was still open (its end is known only from the next message): not
    # stored, and the cursor stays before it
    assert list(rows(inbox)) == [f"{ADM}/{n}" for n in (101, 102)]
    assert state(inbox)["cursor"]["last_id"] == 103
    assert last_run(inbox)["error"] == record.error
    # next run: Telegram lets us in again; reading resumes where it stopped
    tg.calls.clear()
    assert run().records[0].status == "ok"
    assert tg.history_calls()[0].min_id == 103
    assert len(rows(inbox, "kind = 'post'")) == 5


def test_long_flood_wait_spares_the_other_telegram_sources_of_the_run(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    tg.add_channel(telegram_fakes.channel_entity(1500100999, "rayon_n", "Район N"), "rayon_n")
    tg.faults[("history", 102)] = errors.FloodWaitError(request=None, capture=900)
    second = "\n      - id: rayon-n\n        type: telegram\n        channel: rayon_n"
    summary = run(second)
    assert [r.status for r in summary.records] == ["failed", "failed"]
    assert "wait 900 s" in summary.records[0].error
    assert "asked during an earlier source" in summary.records[1].error
    assert {c.channel_id for c in tg.calls} == {CHANNEL_ID}  # no request for the second
    assert tg.opened == 1 and tg.closed == 1  # one client for the whole run


# -- operator errors -----------------------------------------------------------------------------
def test_private_channel_is_a_gone_source(tg: FakeTelegram, run: Run, inbox: SqliteInbox) -> None:
    tg.channels["adm_gorod_n"] = errors.ChannelPrivateError(request=None)
    record = run().records[0]
    assert record.status == "failed"
    assert record.error == "channel @Adm_Gorod_N is private, or this account was banned from it"
    assert record.gone
    assert state(inbox)["gone"] == 1


def test_unknown_username(tg: FakeTelegram, run: Run, inbox: SqliteInbox) -> None:
    sources = SOURCES.replace("https://t.me/Adm_Gorod_N", "no_such_channel_n")
    record = run(sources=sources).records[0]
    assert record.error == "channel @no_such_channel_n does not exist (no one has this username)"
    assert record.gone


def test_a_group_is_not_a_channel(tg: FakeTelegram, run: Run, inbox: SqliteInbox) -> None:
    group = telegram_fakes.channel_entity(GROUP_ID, "chat_gorod_n", "Чат", broadcast=False)
    tg.add_channel(group, "chat_gorod_n")
    record = run(sources=SOURCES.replace("https://t.me/Adm_Gorod_N", "chat_gorod_n")).records[0]
    assert record.error == "@chat_gorod_n is a group: Glas reads channels"


@pytest.mark.parametrize(
    ("error", "expected", "gone"),
    [
        (errors.AuthKeyUnregisteredError(request=None), "no longer logged in", False),
        (errors.SessionRevokedError(request=None), "was logged out", False),
        (errors.AuthKeyDuplicatedError(request=None), "two places at once", False),
        (errors.UserDeactivatedBanError(request=None), "deactivated or banned", True),
    ],
)
def test_revoked_session_fails_every_telegram_source(
    tg: FakeTelegram,
    run: Run,
    inbox: SqliteInbox,
    error: Exception,
    expected: str,
    gone: bool,
) -> None:
    tg.connect_error = error
    second = "\n      - id: rayon-n\n        type: telegram\n        channel: rayon_n"
    summary = run(second)
    assert [r.status for r in summary.records] == ["failed", "failed"]
    for record in summary.records:
        assert expected in record.error
        assert record.gone is gone
        assert "TELEGRAM_SESSION" in record.error
    assert tg.calls == []


def test_session_revoked_in_the_middle_keeps_what_was_read(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    tg.faults[("thread", 2010)] = errors.AuthKeyUnregisteredError(request=None)
    record = run().records[0]
    assert record.status == "failed"
    assert "glas telegram login" in record.error
    assert len(rows(inbox, "kind = 'post'")) == 5
    assert state(inbox)["cursor"]["follow"]["110"]["c"] == 2005


@pytest.mark.parametrize(
    "missing",
    [("TELEGRAM_SESSION",), ("TELEGRAM_API_ID", "TELEGRAM_API_HASH")],
)
def test_missing_credentials_are_named(
    tg: FakeTelegram,
    run: Run,
    inbox: SqliteInbox,
    monkeypatch: pytest.MonkeyPatch,
    missing: tuple[str, ...],
) -> None:
    for name in missing:
        monkeypatch.delenv(name)
    record = run().records[0]
    assert record.status == "failed"
    assert record.error.startswith(f"Telegram credentials missing: set {', '.join(missing)} ")
    assert API_HASH not in record.error and SESSION not in record.error
    assert tg.credentials == []


def test_bad_api_id(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_API_ID", "abc")
    assert "TELEGRAM_API_ID must be the number" in run().records[0].error


# -- interruptions -------------------------------------------------------------------------------
def big_channel(tg: FakeTelegram, count: int) -> None:
    start = NOW - timedelta(days=30)
    tg.history[CHANNEL_ID] = [
        post(n, start + timedelta(minutes=n), f"Сообщение {n}: ремонт теплотрассы, участок {n}.")
        for n in range(1, count + 1)
    ]


def test_connection_lost_half_way_keeps_everything_read(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    big_channel(tg, 120)
    tg.faults[("history", 71)] = ConnectionError("Connection to Telegram failed 5 time(s)")
    record = run().records[0]
    assert record.status == "failed"
    assert record.error.startswith("cannot reach Telegram: ConnectionError")
    assert len(rows(inbox)) == 70
    assert state(inbox)["cursor"]["last_id"] == 70
    tg.calls.clear()
    assert run().records[0].status == "ok"
    assert tg.history_calls()[0].min_id == 70
    assert len(rows(inbox)) == 120


def test_collector_crash_keeps_the_last_checkpoint(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    """An unexpected error: posts read so far are stored, the cursor stays at the last
    checkpoint, the next run re-reads the overlap without duplicating anything."""
    big_channel(tg, 120)
    tg.faults[("history", 75)] = RuntimeError("unexpected")
    record = run().records[0]
    assert record.status == "failed"
    assert record.error == "collector error: RuntimeError: unexpected"
    assert len(rows(inbox)) == 74
    assert state(inbox)["cursor"]["last_id"] == 50
    tg.calls.clear()
    summary = run()
    assert tg.history_calls()[0].min_id == 50
    assert (summary.records[0].stored.new, summary.records[0].stored.unchanged) == (46, 24)
    assert len(rows(inbox)) == 120


def test_max_messages_limits_a_run_and_the_next_goes_on(
    tg: FakeTelegram, run: Run, inbox: SqliteInbox
) -> None:
    big_channel(tg, 120)
    run("max_messages: 100")
    assert len(rows(inbox)) == 100 and state(inbox)["cursor"]["last_id"] == 120
    tg.history[CHANNEL_ID].extend(
        post(n, NOW - timedelta(days=2), f"Новость {n}") for n in range(121, 131)
    )
    run("max_messages: 4")
    assert state(inbox)["cursor"]["last_id"] == 124
    assert len(rows(inbox)) == 104


# -- secrets -------------------------------------------------------------------------------------
def test_no_secret_in_logs_inbox_or_errors(
    tg: FakeTelegram,
    run: Run,
    inbox: SqliteInbox,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    tg.faults[("history", 113)] = errors.FloodWaitError(request=None, capture=4000)
    run()
    monkeypatch.setenv("TELEGRAM_SESSION", "not a session " + SESSION)
    tg.connect_error = errors.AuthKeyUnregisteredError(request=None)
    run()
    dump = "\n".join(inbox.conn.iterdump())
    seen = dump + caplog.text + repr(tg.credentials)
    assert tg.credentials[0].session == SESSION  # the fake did receive them
    for secret in (API_HASH, SESSION):
        assert secret not in seen


# -- the command ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_glas_run_command(glas: Any, write_sources: Callable[[str], Path], tmp_path: Path) -> None:
    """`glas run` as a subprocess, with the demo's fake Telegram: output clean (debug logging
    included), no secret."""
    write_sources(SOURCES.replace("{press}", str(PRESS_ID)).replace("{extra}", ""))
    env = glas_env(
        tmp_path,
        TELEGRAM_API_ID="123456",
        TELEGRAM_API_HASH=API_HASH,
        TELEGRAM_SESSION=SESSION,
        GLAS_TELEGRAM_GATEWAY="tests.telegram_fakes:demo",
    )
    first = glas("run", "--all", "-vv", env=env)
    assert first.returncode == 0, first.stderr
    assert "10 new" in first.stdout
    output = first.stdout + first.stderr
    assert "Traceback" not in output
    assert API_HASH not in output and SESSION not in output
    missing = glas("run", "--all", env={k: v for k, v in env.items() if k != "TELEGRAM_SESSION"})
    assert missing.returncode == 1
    assert "adm-n: failed: Telegram credentials missing: set TELEGRAM_SESSION" in missing.stderr
    assert API_HASH not in missing.stderr

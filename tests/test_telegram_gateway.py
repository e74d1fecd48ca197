"""The real gateway (``TelethonGateway``) over a real ``TelegramClient`` whose one network call
is answered from memory the way Telegram's server answers it.

Everything above the wire is Telethon's own code: username resolution, ``iter_messages``
paging with ``min_id``/``reverse``/``reply_to`` (GetHistory, GetReplies with offsets), message
initialisation with the response's users and chats, errors. The subclass replaces
``__call__`` only, as Telethon's own tests do with their client.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from telethon import TelegramClient, errors
from telethon.sessions import StringSession
from telethon.tl import functions, types

from crawler.config import load_config
from crawler.runner import run_sources
from spiders.telegram_gateway import ChannelNotFound, Credentials, TelethonGateway
from storage.sqlite import SqliteInbox
from tests.telegram_fakes import CHANNEL_ID, GROUP_ID, channel_entity, city, post
from tests.test_telegram_run import Quiet

NOW = datetime.now(UTC).replace(microsecond=0)


def server_page(messages: list[Any], offset_id: int, add_offset: int, limit: int) -> list[Any]:
    """What Telegram returns for a history slice: newest first, starting ``add_offset`` after
    the first message older than ``offset_id`` (0: the newest), at most ``limit``."""
    newest_first = sorted(messages, key=lambda m: m.id, reverse=True)
    pos = next(
        (i for i, m in enumerate(newest_first) if not offset_id or m.id < offset_id),
        len(newest_first),
    )
    start = pos + add_offset
    return newest_first[max(0, start) : max(0, start + limit)]


class ReplayClient(TelegramClient):
    """A TelegramClient that never connects: requests are answered from ``FakeTelegram`` data."""

    def __init__(self, data: Any) -> None:
        super().__init__(StringSession(), 1, "0" * 32, receive_updates=False)
        self.data = data
        self.requests: list[Any] = []
        self.faults: dict[int, BaseException] = {}  # request number (from 1) → error

    async def __call__(
        self, request: Any, ordered: bool = False, flood_sleep_threshold: Any = None
    ) -> Any:
        self.requests.append(request)
        fault = self.faults.pop(len(self.requests), None)
        if fault is not None:
            raise fault
        chats = [e for e in self.data.people.values() if isinstance(e, types.Channel)]
        users = [e for e in self.data.people.values() if isinstance(e, types.User)]
        if isinstance(request, functions.contacts.ResolveUsernameRequest):
            entity = self.data.channels.get(request.username.lower())
            if entity is None:
                raise errors.UsernameNotOccupiedError(request)
            return types.contacts.ResolvedPeer(
                peer=types.PeerChannel(entity.id), chats=[entity], users=[]
            )
        if isinstance(request, functions.messages.GetHistoryRequest):
            messages = self.data.history[request.peer.channel_id]
        elif isinstance(request, functions.messages.GetRepliesRequest):
            messages = self.data.threads[(request.peer.channel_id, request.msg_id)]
        else:
            raise AssertionError(f"unexpected request {type(request).__name__}")
        page = server_page(messages, request.offset_id, request.add_offset, request.limit)
        return types.messages.ChannelMessages(
            pts=1, count=len(messages), messages=page, topics=[], chats=chats, users=users
        )


@pytest.fixture
def client() -> ReplayClient:
    data = city(NOW)
    data.add_channel(channel_entity(GROUP_ID, None, "Обсуждение", broadcast=False))
    return ReplayClient(data)


@pytest.fixture
def gateway(client: ReplayClient) -> Iterator[TelethonGateway]:
    made = TelethonGateway(client, page_wait=0)
    yield made
    made.close()


def ids(messages: Any) -> list[int]:
    return [m.id for m in messages]


def test_resolves_a_username(gateway: TelethonGateway) -> None:
    entity = gateway.get_channel("Adm_Gorod_N")
    assert (entity.id, entity.title) == (CHANNEL_ID, "Администрация г. N")


def test_unknown_username(gateway: TelethonGateway) -> None:
    with pytest.raises(ChannelNotFound):
        gateway.get_channel("no_such_channel_n")


def test_history_after_min_id_oldest_first(gateway: TelethonGateway) -> None:
    channel = gateway.get_channel("adm_gorod_n")
    assert ids(gateway.iter_messages(channel, min_id=103)) == [110, 111, 112, 113, 114]
    assert ids(gateway.iter_messages(channel, min_id=0)) == [101, 102, 103, 110, 111, 112, 113, 114]
    assert ids(gateway.iter_messages(channel, min_id=114)) == []


def test_newest_message(gateway: TelethonGateway) -> None:
    channel = gateway.get_channel("adm_gorod_n")
    assert ids(gateway.iter_messages(channel, reverse=False, limit=1)) == [114]


def test_history_pages_through_more_than_a_hundred(
    client: ReplayClient, gateway: TelethonGateway
) -> None:
    client.data.history[CHANNEL_ID] = [post(n, NOW, f"Пост {n}") for n in range(1, 161)]
    channel = gateway.get_channel("adm_gorod_n")
    assert ids(gateway.iter_messages(channel, min_id=20)) == list(range(21, 161))
    pages = [r for r in client.requests if isinstance(r, functions.messages.GetHistoryRequest)]
    assert len(pages) == 3  # the third finds nothing newer: the end


def test_comment_thread_after_the_last_seen(client: ReplayClient, gateway: TelethonGateway) -> None:
    channel = gateway.get_channel("adm_gorod_n")
    assert ids(gateway.iter_messages(channel, reply_to=110, min_id=2001)) == [2003, 2005]
    request = client.requests[-1]
    assert isinstance(request, functions.messages.GetRepliesRequest) and request.msg_id == 110


def test_lookup_finds_the_sender_telegram_sent_along(gateway: TelethonGateway) -> None:
    channel = gateway.get_channel("adm_gorod_n")
    first = next(iter(gateway.iter_messages(channel, reply_to=114)))
    found = gateway.lookup(first, first.from_id)
    assert (found.id, found.username) == (503, "gulya_n")
    assert gateway.lookup(first, types.PeerUser(999)) is None


def test_flood_wait_comes_through_as_telethon_raised_it(
    client: ReplayClient, gateway: TelethonGateway
) -> None:
    channel = gateway.get_channel("adm_gorod_n")
    client.faults[len(client.requests) + 1] = errors.FloodWaitError(request=None, capture=42)
    with pytest.raises(errors.FloodWaitError) as caught:
        list(gateway.iter_messages(channel))
    assert caught.value.seconds == 42


class SleeplessGateway(TelethonGateway):
    """The real gateway with a recorded instead of a real sleep."""

    slept: list[float]

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


BUILT: list[SleeplessGateway] = []


def factory(credentials: Credentials) -> TelethonGateway:
    data = city(NOW)
    data.history[CHANNEL_ID] += [
        post(n, NOW - timedelta(minutes=200 - n), f"Объявление {n}", comments=None)
        for n in range(115, 260)
    ]
    client = ReplayClient(data)
    client.faults[3] = errors.FloodWaitError(request=None, capture=2)  # the second history page
    made = SleeplessGateway(client, page_wait=0)
    made.slept = []
    BUILT.append(made)
    return made


def test_a_whole_run_through_telethon(
    write_sources: Any, inbox: SqliteInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_API_ID", "1")
    monkeypatch.setenv("TELEGRAM_API_HASH", "0" * 32)
    monkeypatch.setenv("TELEGRAM_SESSION", "x")
    monkeypatch.setenv("GLAS_TELEGRAM_GATEWAY", "tests.test_telegram_gateway:factory")
    path = write_sources(
        """
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: adm-n
            type: telegram
            channel: adm_gorod_n
        """
    )
    config = load_config(path)
    summary = run_sources(config, inbox, config.enabled, Quiet())
    assert summary.records[0].status == "ok", summary.records[0].error
    assert BUILT[-1].slept == [2]
    kinds = dict(inbox.conn.execute("SELECT kind, count(*) FROM posts GROUP BY kind").fetchall())
    assert kinds == {"post": 5 + 145, "comment": 5}
    parent = inbox.conn.execute(
        "SELECT parent FROM posts WHERE native_id = ?", (f"{GROUP_ID}/2005",)
    ).fetchone()[0]
    assert parent == f"{GROUP_ID}/2001"


def test_a_session_string_that_is_not_one(
    write_sources: Any, inbox: SqliteInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real factory (no GLAS_TELEGRAM_GATEWAY) refuses a mangled session before any
    network, without echoing it."""
    mangled = "1BQANOTAREALSESSION-but-a-secret"
    monkeypatch.delenv("GLAS_TELEGRAM_GATEWAY", raising=False)
    monkeypatch.setenv("TELEGRAM_API_ID", "1")
    monkeypatch.setenv("TELEGRAM_API_HASH", "0" * 32)
    monkeypatch.setenv("TELEGRAM_SESSION", mangled)
    path = write_sources(
        """
        sources:
          - id: adm-n
            type: telegram
            channel: adm_gorod_n
        """
    )
    config = load_config(path)
    record = run_sources(config, inbox, config.enabled, Quiet()).records[0]
    assert record.error == (
        "TELEGRAM_SESSION is not a Telethon session string; run `glas telegram login` and "
        "store the session it prints in TELEGRAM_SESSION"
    )
    assert mangled not in "\n".join(inbox.conn.iterdump())

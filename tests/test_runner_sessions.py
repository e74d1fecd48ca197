"""API source types share one warm session per process (one Telegram client, one VK token
pool): opened at the first collection, kept for the later ones, closed with the harvester."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from crawler import reactor
from crawler.config import Config, Defaults, OfficialAccounts
from crawler.harvester import Harvester
from crawler.model import Checkpoint, Post, SourceConfig, SourceError
from spiders import SourceType
from storage.inbox import RunRecord
from storage.sqlite import SqliteInbox


@pytest.fixture
def config(tmp_path: Path) -> Config:
    sources = [SourceConfig(id=i, type="api") for i in ("a", "b", "c")]
    return Config(tmp_path / "sources.yaml", Defaults(), sources, OfficialAccounts())


def harvest(config: Config, inbox: SqliteInbox, module: Any, *, close: bool = True) -> list[Any]:
    """Collect every source of ``config`` one after another with one harvester."""
    harvester = Harvester(config, inbox, types={"api": SourceType("api", module)})

    async def go() -> list[RunRecord | None]:
        await harvester.open()
        records = [await harvester.collect(source) for source in config.sources]
        if close:
            await harvester.close()
        return records

    return reactor.run(go)


def test_one_session_serves_every_collection_and_closes_once(
    config: Config, sqlite_inbox: SqliteInbox
) -> None:
    events: list[str] = []

    @contextlib.contextmanager
    def open_session(group: list[Any]) -> Iterator[dict[str, int]]:
        events.append("open")
        yield {"client": 1}
        events.append("close")

    def collect(collection: Any) -> Iterator[Any]:
        events.append(f"collect {collection.source.id} with {collection.session}")
        if collection.source.id == "b":
            raise RuntimeError("collector bug")
        yield Post(platform="telegram", native_id=f"{collection.source.id}/1", text="текст")
        yield Checkpoint({"last": 1})

    module = SimpleNamespace(__name__="spiders.api", open_session=open_session, collect=collect)
    records = harvest(config, sqlite_inbox, module)
    assert events == [
        "open",
        "collect a with {'client': 1}",
        "collect b with {'client': 1}",
        "collect c with {'client': 1}",
        "close",
    ]
    assert [(r.source_id, r.status, r.error) for r in records] == [
        ("a", "ok", None),
        ("b", "failed", "collector error: RuntimeError: collector bug"),
        ("c", "ok", None),
    ]
    assert sqlite_inbox.cursor("a") == {"last": 1}


def test_a_session_that_cannot_open_fails_each_source_with_its_reason_and_rests(
    config: Config, sqlite_inbox: SqliteInbox
) -> None:
    tries: list[str] = []

    @contextlib.contextmanager
    def open_session(group: list[Any]) -> Iterator[None]:
        tries.append(group[0].source.id)
        raise SourceError("TELEGRAM_SESSION is not set")
        yield

    def collect(collection: Any) -> Iterator[Any]:  # never reached
        raise AssertionError("collected without a session")
        yield

    module = SimpleNamespace(__name__="spiders.api", open_session=open_session, collect=collect)
    records = harvest(config, sqlite_inbox, module)
    assert [(r.source_id, r.status, r.error) for r in records] == [
        (s, "failed", "TELEGRAM_SESSION is not set") for s in ("a", "b", "c")
    ]
    assert tries == ["a"], "a failed opening is not retried for a minute"
    state = sqlite_inbox.source_state("b")
    assert state is not None and state["consecutive_failures"] == 1


def test_a_session_that_fails_to_close_loses_nothing(
    config: Config, sqlite_inbox: SqliteInbox
) -> None:
    @contextlib.contextmanager
    def open_session(group: list[Any]) -> Iterator[None]:
        yield
        raise ConnectionError("disconnect failed")

    def collect(collection: Any) -> Iterator[Any]:
        yield Post(platform="telegram", native_id=f"{collection.source.id}/1", text="текст")

    module = SimpleNamespace(__name__="spiders.api", open_session=open_session, collect=collect)
    records = harvest(config, sqlite_inbox, module)
    assert [r.status for r in records] == ["ok", "ok", "ok"]
    assert sqlite_inbox.conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 3


def test_an_unusable_session_is_opened_again_for_the_next_collection(
    config: Config, sqlite_inbox: SqliteInbox
) -> None:
    opened: list[dict[str, bool]] = []

    class Session:
        def __init__(self) -> None:
            self.alive = True

        def usable(self) -> bool:
            return self.alive

    @contextlib.contextmanager
    def open_session(group: list[Any]) -> Iterator[Session]:
        session = Session()
        opened.append({"alive": True})
        yield session

    def collect(collection: Any) -> Iterator[Any]:
        if collection.source.id == "a":
            collection.session.alive = False  # the connection dropped under it
            raise SourceError("cannot reach Telegram: ConnectionError: reset")
        yield Post(platform="telegram", native_id=f"{collection.source.id}/1", text="текст")

    module = SimpleNamespace(__name__="spiders.api", open_session=open_session, collect=collect)
    records = harvest(config, sqlite_inbox, module)
    assert [r.status for r in records] == ["failed", "ok", "ok"]
    assert len(opened) == 2, "the dropped session is replaced once, then kept"

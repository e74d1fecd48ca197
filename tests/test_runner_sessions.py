"""API source types share one session per run (one Telegram client, one VK token pool)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from crawler.config import Config, Defaults, OfficialAccounts
from crawler.model import Checkpoint, Post, SourceConfig, SourceError
from crawler.runner import RunSummary, _collect_type
from spiders.base import Collection
from storage.inbox import RunRecord
from storage.sqlite import SqliteInbox


class Recorder:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.records: list[RunRecord] = []

    def started_(self, source: SourceConfig) -> None:
        self.started.append(source.id)

    def finished(self, record: RunRecord) -> None:
        self.records.append(record)


def reporter() -> Any:
    rec = Recorder()
    return SimpleNamespace(started=rec.started_, finished=rec.finished, rec=rec)


def sources(*ids: str) -> list[SourceConfig]:
    return [SourceConfig(id=i, type="api") for i in ids]


def collections(config: Config) -> list[Collection]:
    return [Collection(source=s, defaults=config.defaults) for s in config.sources]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(tmp_path / "sources.yaml", Defaults(), sources("a", "b"), OfficialAccounts())


def test_one_session_is_shared_by_every_source_of_the_type_and_closed_once(
    config: Config, inbox: SqliteInbox
) -> None:
    events: list[str] = []

    @contextlib.contextmanager
    def open_session(group: list[Collection]) -> Iterator[dict[str, int]]:
        events.append(f"open {len(group)}")
        yield {"client": 1}
        events.append("close")

    def collect(collection: Collection) -> Iterator[Any]:
        events.append(f"collect {collection.source.id} with {collection.session}")
        if collection.source.id == "b":
            raise RuntimeError("collector bug")
        yield Post(platform="telegram", native_id=f"{collection.source.id}/1", text="текст")
        yield Checkpoint({"last": 1})

    module = SimpleNamespace(__name__="spiders.api", open_session=open_session, collect=collect)
    rep, summary = reporter(), RunSummary()
    _collect_type(module, collections(config), config, inbox, rep, summary)
    assert events == [
        "open 2",
        "collect a with {'client': 1}",
        "collect b with {'client': 1}",
        "close",
    ]
    status = {r.source_id: (r.status, r.error) for r in summary.records}
    assert status == {
        "a": ("ok", None),
        "b": ("failed", "collector error: RuntimeError: collector bug"),
    }
    assert inbox.cursor("a") == {"last": 1}


def test_a_session_that_cannot_open_fails_each_source_with_its_reason(
    config: Config, inbox: SqliteInbox
) -> None:
    @contextlib.contextmanager
    def open_session(group: list[Collection]) -> Iterator[None]:
        raise SourceError("TELEGRAM_SESSION is not set", gone=False)
        yield

    def collect(collection: Collection) -> Iterator[Any]:  # never reached
        raise AssertionError("collected without a session")
        yield

    module = SimpleNamespace(__name__="spiders.api", open_session=open_session, collect=collect)
    rep, summary = reporter(), RunSummary()
    _collect_type(module, collections(config), config, inbox, rep, summary)
    assert [(r.source_id, r.status, r.error) for r in summary.records] == [
        ("a", "failed", "TELEGRAM_SESSION is not set"),
        ("b", "failed", "TELEGRAM_SESSION is not set"),
    ]
    assert rep.rec.started == ["a", "b"], "each source's run is recorded and reported"
    state = inbox.source_state("a")
    assert state is not None and state["consecutive_failures"] == 1


def test_a_session_that_fails_to_close_loses_nothing(config: Config, inbox: SqliteInbox) -> None:
    @contextlib.contextmanager
    def open_session(group: list[Collection]) -> Iterator[None]:
        yield
        raise ConnectionError("disconnect failed")

    def collect(collection: Collection) -> Iterator[Any]:
        yield Post(platform="telegram", native_id=f"{collection.source.id}/1", text="текст")

    module = SimpleNamespace(__name__="spiders.api", open_session=open_session, collect=collect)
    summary = RunSummary()
    _collect_type(module, collections(config), config, inbox, reporter(), summary)
    assert [r.status for r in summary.records] == ["ok", "ok"]
    assert inbox.conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 2

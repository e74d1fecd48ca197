"""Surge alerts end to end: `glas run` harvests a VK wall from the local VK server, where
twelve residents write about potholes on Школьная street (flagged roads) within
hours; the rule fires once;
the webhook receiver is down at the first run's end, so the alert waits in the outbox; a
second `glas run` (a new process) delivers it once. The daemon fires and delivers too,
retrying after a 503."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, Background, glas_env
from tests.vk_server import VkServer, load_wall
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.slow

Glas = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def vk() -> Iterator[VkServer]:
    with VkServer() as server:
        server.add_wall(
            load_wall(FIXTURES / "vk" / "zarechny_wall.json", newest=time.time() - 3600)
        )
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def sources(vk: VkServer, receiver: Receiver) -> str:
    return f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          vk_api_url: {vk.url}
        official_accounts:
          vk: [zhkh_zarechny, 700000099]
        alerts:
          - {{id: zarechny-roads, topic: roads, municipality: Заречный,
             min_residents: 5, window: 6h}}
        webhooks:
          - id: dispatch
            url: {receiver.url}
            token_env: GLAS_HOOK_TOKEN
            retry_backoff: 1s
        sources:
          - id: zarechny-wall
            type: vk_wall
            owner: zarechny_news
            municipality: Заречный
        """


def alerts(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT a.alert_id, a.rule_id, a.residents, d.attempts, d.delivered_at "
            "FROM alerts a JOIN alert_deliveries d USING (alert_id) ORDER BY a.alert_id"
        ).fetchall()
    finally:
        conn.close()


def test_glas_run_fires_once_and_delivers_after_the_receiver_is_back(
    glas: Glas,
    vk: VkServer,
    receiver: Receiver,
    write_sources: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    write_sources(sources(vk, receiver))
    env = glas_env(tmp_path, VK_TOKEN="vk1.a.demo-token", GLAS_HOOK_TOKEN="hook-secret-0123456789")
    db = tmp_path / "inbox.db"
    receiver.stop()  # down at the end of the first run
    first = glas("run", "--all", env=env)
    assert first.returncode == 0, first.stderr
    assert "webhooks: 0 alert deliveries sent, 1 to retry later" in first.stdout
    (alert,) = alerts(db)
    assert alert[1:4] == ("zarechny-roads", 12, 1) and alert[4] is None
    assert "hook-secret-0123456789" not in first.stdout + first.stderr
    receiver.start()
    time.sleep(1.1)  # the retry's backoff
    second = glas("run", "--all", env=env)  # a new process: nothing new, the outbox is sent
    assert second.returncode == 0, second.stderr
    assert "webhooks: 1 alert deliveries sent" in second.stdout
    (request,) = receiver.requests
    assert request["headers"]["idempotency-key"] == f"glas-alert-{alert[0]}"
    assert request["headers"]["authorization"] == "Bearer hook-secret-0123456789"
    body = request["body"]
    assert (body["rule"], body["residents"], body["topic"]) == (
        "zarechny-roads",
        12,
        "roads",
    )
    assert len(body["cases"]) >= 1
    (row,) = alerts(db)
    assert row[0] == alert[0] and row[3] == 2 and row[4] is not None  # one alert, delivered


def test_the_daemon_fires_and_retries_until_delivered(
    vk: VkServer,
    receiver: Receiver,
    write_sources: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    write_sources(sources(vk, receiver))
    env = glas_env(tmp_path, VK_TOKEN="vk1.a.demo-token", GLAS_HOOK_TOKEN="hook-secret-0123456789")
    receiver.fail_with = 503  # the first attempt fails
    daemon = Background(("daemon",), tmp_path, env)
    try:
        daemon.wait_until(lambda: len(receiver.requests) >= 1, "the daemon's first attempt")
        receiver.fail_with = None
        daemon.wait_until(lambda: len(receiver.requests) >= 2, "the daemon's retry")
        time.sleep(0.5)  # a third POST would come now if the 2xx were not recorded
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        code, _, err = daemon.finish()
    assert code == 0, err
    assert [r["headers"]["idempotency-key"] for r in receiver.requests] == ["glas-alert-1"] * 2
    (row,) = alerts(tmp_path / "inbox.db")
    assert row[1:4] == ("zarechny-roads", 12, 2) and row[4] is not None

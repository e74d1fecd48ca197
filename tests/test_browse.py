"""`glas browse`: Datasette over a test inbox with the metadata Glas ships, fetched over real
HTTP: the canned queries' JSON, the array facets, the JSON columns rendered."""

from __future__ import annotations

import json
import socket
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler.alerts import AlertRule, AlertStage
from crawler.model import Post, SourceConfig
from crawler.pipeline import Ingest
from dedupe.exact import add_exact_keys
from storage import open_inbox
from tests.conftest import Background, glas_env

NOW = datetime.now(UTC).replace(microsecond=0)


def comment(n: int, text: str, hours_ago: float, topics: list[str], **extra: Any) -> Post:
    return Post(
        platform="vk",
        native_id=f"-201234567_{n}",
        kind="post",
        url=f"https://vk.com/wall-201234567_{n}",
        author_id=str(700000000 + n),
        text=text,
        published_at=NOW - timedelta(hours=hours_ago),
        topics=topics,
        municipality="Заречный",
        is_complaint=True,
        **extra,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "inbox.db"
    rule = AlertRule(id="waste-zarechny", topic="waste", min_residents=3, window="6h", factor=0)  # type: ignore[arg-type]
    with open_inbox(str(path)) as inbox:
        run = Ingest(
            inbox,
            SourceConfig(id="zarechny-wall", type="vk_wall"),
            stages=[add_exact_keys, AlertStage(inbox, [rule], [])],
        )
        run.add(comment(1, "Яма на Школьной улице у дома 3 так и не заделана", 30, ["roads"]))
        for n in range(2, 6):
            run.add(comment(n, f"Мусор на Лесной не вывозят, дом {n}", 1 + n / 10, ["waste"]))
        run.close()  # the first case, 30 hours old and unanswered, is overdue
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read().decode()
    return json.loads(body) if url.split("?")[0].endswith(".json") else body


def test_browse_serves_the_inbox_with_glas_metadata(db: Path, tmp_path: Path) -> None:
    pytest.importorskip("datasette", reason="datasette not installed: pip install 'glas[browse]'")
    port = free_port()
    server = Background(
        ("--db", str(db), "browse", "--port", str(port)), tmp_path, glas_env(tmp_path)
    )
    base = f"http://127.0.0.1:{port}/inbox"

    def up() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/versions.json", timeout=1)
        except OSError:
            return False
        return True

    try:
        server.wait_until(up, "datasette listening", timeout=30)
        overdue = fetch(f"{base}/overdue.json?_shape=array")
        assert [r["cluster_id"] for r in overdue] == [1]
        assert overdue[0]["hours_waiting"] >= 29 and overdue[0]["url"].endswith("_1")
        assert fetch(f"{base}/overdue.json?_shape=array&hours=48") == []
        (surge,) = fetch(f"{base}/todays_surges.json?_shape=array")
        assert (surge["rule_id"], surge["residents"]) == ("waste-zarechny", 4)  # one batch
        by_residents = fetch(f"{base}/cases_by_residents.json?_shape=array")
        assert len(by_residents) == 5 and json.loads(by_residents[0]["topics"])
        table = fetch(f"{base}/clusters.json")
        facets = table["facet_results"]
        assert {"topics", "platforms", "municipality"} <= set(facets)
        assert facets["topics"]["type"] == "array"
        waste = [v for v in facets["topics"]["results"] if v["value"] == "waste"]
        assert waste and waste[0]["count"] == 4
        page = fetch(f"http://127.0.0.1:{port}/inbox/clusters")
        assert '<span class="glas-list">vk</span>' in page  # platforms: a list, not JSON text
    finally:
        server.process.terminate()
        server.finish(timeout=20)

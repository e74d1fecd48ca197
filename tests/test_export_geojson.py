"""`glas export --format geojson`: cases that have coordinates as an RFC 7946 FeatureCollection.

Posts come through the real pipeline (exact keys, near-duplicates, flagging) with ``geo`` as
the VK mapping reads it from a wall item (``{"type": "point", "coordinates": "lat lon"}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawler.model import Post, SourceConfig
from crawler.pipeline import Ingest
from spiders.vk_mapping import parse_geo
from storage import open_inbox

NOW = datetime.now(UTC).replace(microsecond=0)
LENINA = {"type": "point", "coordinates": "56.838011 60.597474"}  # lat lon, as VK gives it
SADOVAYA = {"type": "point", "coordinates": "56.8431 60.6454"}


def vk_post(n: int, owner: int, text: str, geo: dict | None, hours_ago: float) -> Post:
    return Post(
        platform="vk",
        native_id=f"{owner}_{n}",
        url=f"https://vk.com/wall{owner}_{n}",
        author_id=str(700000000 + n),
        author_name=f"Житель {n}",
        text=text,
        published_at=NOW - timedelta(hours=hours_ago),
        geo=parse_geo(geo),
    )


POSTS = [
    # one complaint posted in two communities: one case of two residents; only the copy
    # (not the canonical, earlier post) has a place
    vk_post(
        1,
        -201234567,
        "На улице Ленина у дома 5 провал асфальта, яма глубиной полметра, машины бьют колёса.",
        None,
        5,
    ),
    vk_post(
        2,
        -305000001,
        "На улице Ленина у дома 5 провал асфальта, яма глубиной полметра, машины бьют колёса.",
        LENINA,
        4,
    ),
    vk_post(
        3,
        -201234567,
        "Мусор не вывозят третью неделю, контейнеры на Садовой переполнены.",
        SADOVAYA,
        3,
    ),
    # no place: not in the map
    vk_post(4, -201234567, "Когда включат отопление в школе? Дети сидят в куртках.", None, 2),
    # VK's placeholder of an unknown place (0, 0): not a place
    vk_post(5, -201234567, "Не горят фонари во дворе, темно и страшно.", {"coordinates": "0 0"}, 1),
]


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = str(tmp_path / "inbox.db")
    with open_inbox(url) as inbox:
        run = Ingest(
            inbox, SourceConfig(id="zarechny-wall", type="vk_wall", municipality="Заречный")
        )
        for post in POSTS:
            run.add(post)
        run.close()
    return url


def test_cases_with_coordinates_become_point_features(db: str, glas: Callable) -> None:
    done = glas("--db", db, "export", "--format", "geojson")
    assert done.returncode == 0, done.stderr
    collection = json.loads(done.stdout)
    assert set(collection) == {"type", "features"}  # no "crs": RFC 7946 drops it
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == 2
    lenina, sadovaya = features
    for feature in features:
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
        lon, lat = feature["geometry"]["coordinates"]
        assert -180 <= lon <= 180 and -90 <= lat <= 90
        assert feature["id"] == feature["properties"]["case_id"]
    assert lenina["geometry"]["coordinates"] == [60.597474, 56.838011]  # longitude first
    assert sadovaya["geometry"]["coordinates"] == [60.6454, 56.8431]
    props = lenina["properties"]
    assert (props["size"], props["residents"]) == (2, 2)
    assert "roads" in props["topics"] and props["is_complaint"] is True
    assert props["municipality"] == "Заречный" and props["answered_at"] is None
    assert props["url"] == "https://vk.com/wall-201234567_1"  # the case's canonical post
    assert props["first_seen"] < props["last_seen"]
    assert set(props) == {
        "case_id",
        "seq",
        "topics",
        "size",
        "residents",
        "platforms",
        "municipality",
        "first_seen",
        "last_seen",
        "is_complaint",
        "answered_at",
        "url",
    }
    assert sadovaya["properties"]["topics"][0] == "waste"


def test_since_seq_follow_and_bad_options(db: str, glas: Callable) -> None:
    everything = json.loads(glas("--db", db, "export", "--format", "geojson").stdout)
    last = max(f["properties"]["seq"] for f in everything["features"])
    empty = glas("--db", db, "export", "--format", "geojson", "--since-seq", str(last))
    assert json.loads(empty.stdout) == {"type": "FeatureCollection", "features": []}
    wrong = glas("--db", db, "export", "--format", "geojson", "--table", "posts")
    assert wrong.returncode == 2
    assert wrong.stderr == "glas: --format geojson exports cases: leave out --table posts\n"

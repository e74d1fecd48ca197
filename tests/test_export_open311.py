"""`glas export --format open311`: cases as GeoReport v2 requests, checked against the spec.

The field list and types below are those of the GeoReport v2 ``GET requests`` response
(https://wiki.open311.org/GeoReport_v2, "GET Service Requests" → Response): every request is
checked against it, with ``extended_attributes`` as the only addition (the place servers use
for extensions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler.cli import main
from crawler.model import Post, SourceConfig
from crawler.pipeline import Ingest
from crawler.routing import topic_labels
from spiders.telegram_web_page import parse_page
from spiders.vk_mapping import Names, comment, wall_post
from storage import open311
from storage.inbox import Inbox
from tests.conftest import shared

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

# GeoReport v2, GET Service Requests, Response: field → allowed JSON types (None = null).
W3C = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)$")
GEOREPORT_V2_REQUEST: dict[str, tuple[type | None, ...]] = {
    "service_request_id": (str,),
    "status": (str,),  # open | closed
    "status_notes": (str, None),
    "service_name": (str,),
    "service_code": (str,),
    "description": (str, None),  # no HTML, at most 4,000 characters
    "agency_responsible": (str, None),
    "service_notice": (str, None),
    "requested_datetime": (str,),  # w3c format with a zone
    "updated_datetime": (str,),
    "expected_datetime": (str, None),
    "address": (str, None),
    "address_id": (str, int, None),
    "zipcode": (str, int, None),
    "lat": (float, None),  # WGS84
    "long": (float, None),
    "media_url": (str, None),
}
EXTENSION = "extended_attributes"


def check_request(request: dict[str, Any]) -> None:
    """One request has exactly the spec's fields (plus extended_attributes), typed right."""
    assert set(request) == set(GEOREPORT_V2_REQUEST) | {EXTENSION}, set(request) ^ set(
        GEOREPORT_V2_REQUEST
    )
    for name, kinds in GEOREPORT_V2_REQUEST.items():
        value = request[name]
        allowed = tuple(k for k in kinds if k is not None)
        assert (value is None and None in kinds) or isinstance(value, allowed), (name, value)
    assert request["status"] in ("open", "closed")
    assert request["service_request_id"].strip()
    for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
        assert request[name] is None or W3C.match(request[name]), (name, request[name])
    assert (request["lat"] is None) == (request["long"] is None)
    if request["lat"] is not None:
        assert -90 <= request["lat"] <= 90 and -180 <= request["long"] <= 180
    description = request["description"]
    assert description is None or (len(description) <= 4000 and "<" not in description)
    if request["media_url"] is not None:
        assert request["media_url"].startswith(("http://", "https://"))
    assert isinstance(request[EXTENSION], dict)


def collect(inbox: Inbox, source: str, posts: list[Post], municipality: str | None = None) -> None:
    """One run of one source through the real pipeline (dedupe, flagging, store)."""
    ingest = Ingest(inbox, SourceConfig(id=source, type="rss", municipality=municipality))
    for post in posts:
        ingest.add(post)
    ingest.close()


def vk_item(number: int, text: str, **extra: Any) -> dict[str, Any]:
    """A wall.get item of the made-up community -7001 (the shape of VK API 5.199)."""
    return {
        "id": number,
        "owner_id": -7001,
        "from_id": 390001000 + number,
        "date": int((T0 + timedelta(hours=number)).timestamp()),
        "post_type": "post",
        "text": text,
        "likes": {"count": 3},
        "views": {"count": 120},
        **extra,
    }


PHOTO = {
    "type": "photo",
    "photo": {
        "id": 457239017,
        "owner_id": -7001,
        "sizes": [
            {
                "type": "m",
                "url": "https://sun9-1.userapi.com/impg/m.jpg",
                "width": 130,
                "height": 97,
            },
            {
                "type": "w",
                "url": "https://sun9-1.userapi.com/impg/w.jpg",
                "width": 1280,
                "height": 960,
            },
        ],
    },
}
POTHOLE = "Огромная яма на дороге на улице Строителей, 12, машины бьют колёса! Когда отремонтируют?"
RUBBISH = "Во дворе дома по ул. Садовая, д. 7 третью неделю не чистят снег, к подъезду не пройти"
HOT_WATER = "Третий день нет горячей воды в доме 5, управляющая компания не отвечает на звонки"
GREETING = "Администрация поздравляет жителей с Днём города! Приглашаем на праздничный концерт."
A = "во дворе дома не вывозят мусор контейнеры переполнены третью неделю"
B = "контейнеры переполнены третью неделю крысы бегают по детской площадке"


def populate(inbox: Inbox) -> dict[str, Any]:
    """Cases of every kind: geo + photo, an address, answered, merged, not a complaint."""
    names = Names(names={-7001: "Администрация Кировского района"})
    pothole = wall_post(
        vk_item(
            1, POTHOLE, geo={"type": "point", "coordinates": "59.8797 30.2618"}, attachments=[PHOTO]
        ),
        names,
    )
    hot_water = wall_post(vk_item(2, HOT_WATER), names)
    answer = comment(
        {
            "id": 90,
            "from_id": -7001,
            "date": int((T0 + timedelta(hours=5)).timestamp()),
            "post_id": 2,
            "owner_id": -7001,
            "text": "Добрый день! Передали в управляющую компанию, воду дадут сегодня к 18:00.",
        },
        -7001,
        2,
        names,
    )
    greeting = wall_post(vk_item(3, GREETING, from_id=-7001), names)
    collect(inbox, "vk-kirov", [pothole, hot_water, answer, greeting], "Кировский район")
    rubbish = Post(
        platform="web",
        native_id="gorod.example/appeals/77",
        source_id="portal",
        title="Не вывозят мусор",
        text=RUBBISH,
        url="https://gorod.example/appeals/77",
        author_id="appeal-author-77",
        published_at=T0 + timedelta(hours=3),
    )
    collect(inbox, "portal", [rubbish])
    page = parse_page(
        shared("fixtures/tme_s_xCareers.html").read_bytes(), "https://t.me/s/xCareers", "xCareers"
    )
    photo_post = next(
        p for p in page.posts if any(m.get("kind") == "photo" for m in p.raw.get("media", []))
    )
    collect(inbox, "tme-xcareers", [photo_post])
    collect(inbox, "publics", [post_at("a", A, 10), post_at("b", B, 11)])
    before_merge = inbox.last_seq()
    collect(inbox, "channel", [post_at("c", A + " крысы бегают по детской площадке", 12)])
    return {
        "pothole": pothole,
        "hot_water": hot_water,
        "answer": answer,
        "greeting": greeting,
        "rubbish": rubbish,
        "photo_post": photo_post,
        "before_merge": before_merge,
    }


def post_at(native_id: str, text: str, hours: float) -> Post:
    return Post(
        platform="vk",
        native_id=f"-9_{native_id}",
        text=text,
        author_id=f"77{hours:.0f}",
        published_at=T0 + timedelta(hours=hours),
    )


SOURCES = """
defaults: {request_delay: 0s, retry_backoff: 0s, timezone: Europe/Moscow}
sources:
  - {id: vk-kirov, type: rss, url: "http://replay.invalid/feed.xml"}
routing:
  default: Центр управления регионом
  rules:
    - {topic: roads, agency: Комитет по дорожному хозяйству}
    - {topic: roads, municipality: Кировский район, agency: Дорожная служба Кировского района}
    - {topic: housing, agency: Жилищная инспекция}
"""


@pytest.fixture
def export(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., tuple[int, str, str]]:
    """`glas export ARGS…` run in this process (the command's own ``main``, cwd = the test's
    directory): (exit status, stdout, stderr). tests/test_export_follow.py runs the real
    process, Open311 included."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GLAS_SOURCES", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--db", db_url, "export", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def case_of(inbox: Inbox, post: Post) -> int:
    return int(inbox.posts_by_key([post.key])[post.key]["cluster_id"])


def by_id(requests: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(r["service_request_id"]): r for r in requests}


def test_open311_requests_follow_the_spec_and_the_cases(
    inbox: Inbox,
    write_sources: Callable[[str], Path],
    export: Callable[..., tuple[int, str, str]],
) -> None:
    made = populate(inbox)
    write_sources(SOURCES)
    code, out, err = export("--format", "open311", "--complaints-only")
    assert (code, err) == (0, "")
    requests = json.loads(out)  # one JSON array, the body of requests.json
    assert isinstance(requests, list) and requests
    for request in requests:
        check_request(request)
    got = by_id(requests)
    labels = topic_labels()

    pothole = got[case_of(inbox, made["pothole"])]
    assert pothole["status"] == "open" and pothole["status_notes"] is None
    assert (pothole["service_code"], pothole["service_name"]) == ("roads", labels["roads"])
    assert (pothole["lat"], pothole["long"]) == (59.8797, 30.2618)
    assert pothole["media_url"] == "https://sun9-1.userapi.com/impg/w.jpg"  # largest size
    assert pothole["description"] == POTHOLE
    assert pothole["agency_responsible"] == "Дорожная служба Кировского района"
    assert pothole["requested_datetime"] == "2026-11-02T13:00:00+03:00"  # 10:00Z in Moscow
    assert pothole["extended_attributes"]["routing"] == "rule"
    assert pothole["extended_attributes"]["canonical"]["url"] == "https://vk.com/wall-7001_1"

    answered = got[case_of(inbox, made["hot_water"])]
    assert answered["status"] == "closed"
    assert answered["status_notes"] == "answered by Администрация Кировского района"
    assert answered["updated_datetime"] == "2026-11-02T17:00:00+03:00"  # the answer's time
    assert answered["agency_responsible"] == "Жилищная инспекция"

    rubbish = got[case_of(inbox, made["rubbish"])]
    assert rubbish["description"] == f"Не вывозят мусор. {RUBBISH}"
    assert rubbish["address"] == "улица Садовая, 7" and rubbish["lat"] is None
    assert rubbish["agency_responsible"] == "Центр управления регионом"  # no rule for waste
    assert rubbish["extended_attributes"]["routing"] == "default"

    # Not a complaint: left out with --complaints-only, there without it.
    greeting = case_of(inbox, made["greeting"])
    assert greeting not in got
    everything = by_id(json.loads(export("--format", "open311")[1]))
    assert greeting in everything
    photo = everything[case_of(inbox, made["photo_post"])]  # a real t.me/s post with a photo
    image = next(m["image"] for m in made["photo_post"].raw["media"] if m["kind"] == "photo")
    assert photo["media_url"] == image


def test_a_merged_case_is_closed_and_points_at_the_case_it_joined(
    inbox: Inbox, export: Callable[..., tuple[int, str, str]]
) -> None:
    made = populate(inbox)
    a = inbox.posts_by_key([("vk", "-9_a")])[("vk", "-9_a")]["cluster_id"]
    code, out, err = export("--format", "open311", "--since-seq", str(made["before_merge"]))
    assert code == 0, err
    requests = json.loads(out)
    for request in requests:
        check_request(request)
    changed = by_id(requests)
    merged = [r for r in requests if r["extended_attributes"]["merged_into"] is not None]
    assert len(merged) == 1
    assert merged[0]["status"] == "closed"
    assert merged[0]["status_notes"] == f"merged into case {a}"
    assert merged[0]["extended_attributes"]["merged_into"] == a
    assert changed[a]["status"] == "open" and changed[a]["extended_attributes"]["size"] == 3
    assert set(changed) == {a, int(merged[0]["service_request_id"])}  # only what changed
    # Without sources.yaml: no routing, times in UTC.
    assert changed[a]["agency_responsible"] is None
    assert changed[a]["extended_attributes"]["routing"] == "unmatched"
    assert changed[a]["requested_datetime"].endswith("+00:00")


def test_cases_in_jsonl_and_csv_carry_their_agency(
    inbox: Inbox,
    write_sources: Callable[[str], Path],
    export: Callable[..., tuple[int, str, str]],
) -> None:
    made = populate(inbox)
    write_sources(SOURCES)
    code, out, err = export("--table", "clusters")
    assert code == 0, err
    rows = {r["cluster_id"]: r for r in map(json.loads, out.splitlines())}
    pothole = rows[case_of(inbox, made["pothole"])]
    assert pothole["agency_responsible"] == "Дорожная служба Кировского района"
    assert pothole["routing"] == "rule"
    csv_out = export("--table", "clusters", "--format", "csv")[1]
    header = csv_out.splitlines()[0].split(",")
    assert header[-2:] == ["agency_responsible", "routing"]
    assert "Дорожная служба Кировского района" in csv_out


def test_open311_with_limit_and_empty_results(
    inbox: Inbox, export: Callable[..., tuple[int, str, str]]
) -> None:
    populate(inbox)
    assert len(json.loads(export("--format", "open311", "--limit", "2")[1])) == 2
    last = inbox.last_seq()
    assert export("--format", "open311", "--since-seq", str(last))[:2] == (0, "[]\n")
    wrong = export("--format", "open311", "--table", "posts")
    assert wrong == (2, "", "glas: --format open311 exports cases: leave out --table posts\n")


# -- the mapping's parts (no inbox) -------------------------------------------------------------
def test_description_is_cut_at_a_word_within_the_spec_limit() -> None:
    words = " ".join(["яма"] * 2000)  # 7,999 characters
    text = open311.description({"platform": "vk", "text": words})
    assert text is not None and len(text) <= 4000 and text.endswith("яма…")
    assert open311.description({"platform": "vk", "text": "  "}) is None
    web = {"platform": "rss", "title": "Авария", "text": "Авария на теплотрассе"}
    assert open311.description(web) == "Авария на теплотрассе"  # title already in the text


def test_address_goes_from_the_house_to_the_municipality() -> None:
    places = [
        {"kind": "district", "name": "Кировский район"},
        {"kind": "address", "name": "проспект Стачек, 45"},
    ]
    assert open311.address(places, "Санкт-Петербург") == (
        "проспект Стачек, 45, Кировский район, Санкт-Петербург"
    )
    assert open311.address(places, "Кировский район") == "проспект Стачек, 45, Кировский район"
    assert open311.address([], "Кировский район") is None


def test_media_url_from_a_reposted_original_and_rss_enclosures() -> None:
    repost = {
        "attachments": [],
        "copy_history": [{"attachments": [{"type": "photo", "url": "https://x/1.jpg"}]}],
    }
    assert open311.media_url(repost) == "https://x/1.jpg"
    rss = {
        "enclosures": [
            {"href": "https://x/a.mp3", "type": "audio/mpeg"},
            {"href": "https://x/b.jpg", "type": "image/jpeg"},
        ]
    }
    assert open311.media_url(rss) == "https://x/b.jpg"
    telethon = {"media": ["photo"]}  # Telethon keeps no photo link
    assert open311.media_url(telethon) is None

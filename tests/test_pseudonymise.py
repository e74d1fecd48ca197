"""Pseudonymised authors (152-ФЗ): no author name or id of the input reaches the output.

Input: the real VK comments of ../shared/data (read in place) through the real VK comment
mapping, the real wall.get response (signer ids), a made-up post on a person's wall, and
Telegram channel posts and comments built from real Telethon objects. Output: the bytes of
every export format, with the inbox pseudonymised from the start or only the export.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from telethon.tl import types

from crawler.cli import main
from crawler.model import Post, SourceConfig
from crawler.pipeline import Ingest
from crawler.pseudonymise import (
    KEY_ENV,
    PrivacySettings,
    Pseudonymiser,
    PseudonymKeyMissing,
    load_key,
    scrub_raw,
)
from spiders import telegram_mapping as tg
from spiders.vk_mapping import Names, Officials, comment, wall_post
from storage.inbox import Inbox
from tests import telegram_fakes as fake
from tests.conftest import glas_env, shared

pytestmark = pytest.mark.both_backends

Glas = Callable[..., Any]
KEY = "ключ-для-тестов-0123456789"
T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
VK_GROUP = -143265175  # the community the real comments were written under
MENTION = re.compile(r"\[id(\d+)\|([^\]]+)\]")


class Input:
    """Posts to store, and what must not (or must) appear in any output."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.secret_ids: set[str] = set()  # ids of people: never in a pseudonymised output
        self.secret_names: set[str] = set()
        self.official_names: set[str] = set()  # public bodies: kept


def vk_id(token: str) -> int:
    """The real data's opaque author token ('a' + 12 hex) as a VK user id."""
    return int(token[1:], 16)


def real_vk_comments(data: Input, limit: int = 400) -> None:
    """Real comments through the real mapping; residents get made-up names (the real data
    carries none), official accounts keep their real public names."""
    with shared("vk/vk_comments_spb_central.csv").open(encoding="utf-8") as fh:
        rows = list(islice(csv.DictReader(fh), limit))
    names = Names()
    officials: set[int] = set()
    for number, row in enumerate(rows):
        uid = vk_id(row["author"])
        if row["author_is_official"] == "True":
            names.names[uid] = row["author_name"]
            officials.add(uid)
            data.official_names.add(row["author_name"])
        else:
            names.names[uid] = f"Житель{number:04d} Выдуманный"
            data.secret_ids.add(str(uid))
            data.secret_names.add(names.names[uid])
        data.secret_ids.update(m.group(1) for m in MENTION.finditer(row["text"]))
    for row in rows:
        post_no, reply = re.search(r"wall-\d+_(\d+)\?reply=(\d+)", row["url"]).groups()  # type: ignore[union-attr]
        when = datetime.strptime(row["published"], "%Y.%m.%d %H:%M").replace(tzinfo=UTC)
        item = {
            "id": int(reply),
            "from_id": vk_id(row["author"]),
            "date": int(when.timestamp()),
            "post_id": int(post_no),
            "owner_id": VK_GROUP,
            "text": row["text"],
            "likes": {"count": int(row["likes"] or 0)},
        }
        data.posts.append(
            comment(item, VK_GROUP, int(post_no), names, Officials(ids=frozenset(officials)))
        )


def real_wall_posts(data: Input) -> None:
    """The real wall.get response: community posts signed by people (signer_id)."""
    answer = json.loads(shared("fixtures/vk_wall_get_-61006621.json").read_text("utf-8"))
    names = Names(names={-61006621: "Сообщество Выдуманного посёлка"})
    for item in answer["response"]["items"]:
        data.posts.append(wall_post(item, names))
        if item.get("signer_id"):
            data.secret_ids.add(str(item["signer_id"]))


def personal_wall(data: Input) -> None:
    """A resident's post on their own wall (owner = author) and an official's reply to it."""
    owner = 582913047
    item = {
        "id": 311,
        "owner_id": owner,
        "from_id": owner,
        "date": int(T0.timestamp()),
        "text": "Третью неделю не вывозят мусор с площадки у дома 9 на улице Лесной. Позор!",
        "attachments": [
            {
                "type": "photo",
                "photo": {
                    "owner_id": owner,
                    "sizes": [{"url": "https://sun9-7.userapi.com/impg/b.jpg", "width": 1280}],
                },
            },
            {"type": "video", "video": {"owner_id": owner, "id": 456239}},
        ],
    }
    names = Names(names={owner: "Зинаида Мусорова", -7001: "Администрация района"})
    data.posts.append(wall_post(item, names))
    reply = {
        "id": 312,
        "from_id": -7001,
        "date": int((T0 + timedelta(hours=2)).timestamp()),
        "post_id": 311,
        "owner_id": owner,
        "reply_to_user": owner,
        "text": f"[id{owner}|Зинаида], добрый день! Вывоз организован.",
    }
    data.posts.append(comment(reply, owner, 311, names, Officials(ids=frozenset({-7001}))))
    data.secret_ids.add(str(owner))
    data.secret_names.update({"Зинаида Мусорова"})
    data.official_names.add("Администрация района")


def telegram(data: Input) -> None:
    """A signed channel post forwarded from a person, and residents' comments (Telethon)."""
    channel = tg.ChannelRef.from_entity(fake.channel_entity())
    forwarded = fake.post(
        41,
        T0,
        "Жители просят отремонтировать лифт в доме 3 по улице Мира, он стоит месяц.",
        post_author="Маргарита Подписная",
        fwd_from=types.MessageFwdHeader(date=T0, from_name="Прохор Пересыльный"),
        media=fake.photo_media(5),
    )
    data.posts.append(tg.channel_post([forwarded], channel))
    thread = tg.Thread(channel, 41, fake.GROUP_ID)
    people = {
        731000111: fake.user(731000111, "Евлампия", "Комментаторова", username="evlampia_k"),
        731000222: fake.user(731000222, "Никодим", "Жалобин"),
    }
    press = fake.user(fake.PRESS_ID, "Пресс-служба", "администрации")

    def lookup(message: Any, peer: Any) -> Any:
        ident = tg.peer_id(peer)
        return people.get(ident) or (press if ident == fake.PRESS_ID else None)

    for number, (uid, text) in enumerate(
        [
            (731000111, "Подтверждаю, лифт стоит, пожилые не могут выйти из дома"),
            (731000222, "В соседнем подъезде то же самое, управляющая компания молчит"),
            (fake.PRESS_ID, "Заявка передана в управляющую компанию, ремонт до пятницы."),
        ]
    ):
        message = fake.comment(
            100 + number,
            T0 + timedelta(minutes=10 * (number + 1)),
            text,
            to=41,
            sender=types.PeerUser(uid),
        )
        data.posts.append(
            tg.comment_post(message, thread, officials=[fake.PRESS_ID], lookup=lookup)
        )
    for user in people.values():
        data.secret_ids.add(str(user.id))
        data.secret_names.update({user.first_name, user.last_name})
        if user.username:
            data.secret_names.add(user.username)
    data.secret_names.update({"Маргарита Подписная", "Прохор Пересыльный"})
    data.official_names.add("Пресс-служба администрации")


def everything() -> Input:
    data = Input()
    real_vk_comments(data)
    real_wall_posts(data)
    personal_wall(data)
    telegram(data)
    return data


def store(inbox: Inbox, data: Input, privacy: PrivacySettings | None = None) -> None:
    """Through the real pipeline, one source per platform."""
    for platform in ("vk", "telegram"):
        ingest = Ingest(inbox, SourceConfig(id=f"{platform}-src", type="rss"), privacy=privacy)
        for post in data.posts:
            if post.platform == platform:
                ingest.add(post)
        ingest.close()


def leaks(output: bytes, data: Input) -> list[str]:
    """Every secret id (as a whole number) and name found in ``output``."""
    text = output.decode("utf-8")
    numbers = set(re.findall(r"\d+", text))
    words = set(re.findall(r"\w+", text))
    found = [i for i in data.secret_ids if i in numbers]
    found += [
        name
        for name in data.secret_names
        if set(re.findall(r"\w+", name)) <= words and name in text
    ]
    return sorted(found)


FORMATS = (
    ("--format", "jsonl"),
    ("--format", "csv"),
    ("--table", "clusters"),
    ("--table", "clusters", "--format", "csv"),
    ("--format", "open311"),
)


@pytest.fixture
def export(
    db_url: str,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Callable[..., bytes]:
    """`glas export ARGS…` of the test's inbox, run in this process (the command's own
    ``main``, no sources.yaml); its stdout bytes. The ``glas`` fixture covers the process."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GLAS_SOURCES", raising=False)

    def run(*args: str, db: str = db_url) -> bytes:
        capsysbinary.readouterr()
        code = main(["--db", db, "export", *args])
        captured = capsysbinary.readouterr()
        assert code == 0, captured.err.decode()
        return captured.out

    return run


def every_format(export: Callable[..., bytes], *extra: str) -> bytes:
    return b"".join(export(*args, *extra) for args in FORMATS)


def rows_of(output: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.decode("utf-8").splitlines()]


def test_pseudonymised_exports_leak_no_author(
    inbox: Inbox, db_url: str, export: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = everything()
    store(inbox, data)
    plain = every_format(export)
    assert len(leaks(plain, data)) > 100  # the input's people are there without the option
    monkeypatch.setenv(KEY_ENV, KEY)
    hidden = every_format(export, "--pseudonymise")
    assert leaks(hidden, data) == []
    text = hidden.decode("utf-8")
    for name in data.official_names:  # public bodies stay named
        assert name in text, name
    rows = rows_of(export("--pseudonymise"))
    residents = [r for r in rows if not r["author_is_official"] and r["author_id"]]
    assert residents and all(r["author_id"].startswith("anon-") for r in residents)
    assert all(r["author_name"] is None and r["url"] is None for r in residents)
    wall = next(r for r in rows if r["native_id"].endswith("_311"))
    assert wall["native_id"] == wall["author_id"] + "_311"  # the owner's id, pseudonymised
    assert wall["raw"]["attachments"] == [
        {"type": "photo", "url": "https://sun9-7.userapi.com/impg/b.jpg"},
        {"type": "video"},  # its link names the owner
    ]


def test_the_command_pseudonymises_too(
    inbox: Inbox, db_url: str, glas: Glas, tmp_path: Path
) -> None:
    """The same through the real `glas` process, key in its environment."""
    data = Input()
    telegram(data)
    personal_wall(data)
    store(inbox, data)
    env = glas_env(tmp_path, **{KEY_ENV: KEY})
    result = glas("--db", db_url, "export", "--format", "open311", "--pseudonymise", env=env)
    assert result.returncode == 0, result.stderr
    assert leaks(result.stdout.encode("utf-8"), data) == []
    assert len(json.loads(result.stdout)) >= 2


def test_an_inbox_pseudonymised_from_the_start_agrees_with_pseudonymised_exports(
    inbox: Inbox,
    export: Callable[..., bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    data = everything()
    monkeypatch.setenv(KEY_ENV, KEY)
    store(inbox, data, PrivacySettings(pseudonymise_authors=True))
    stored = json.dumps(list(inbox.export()), ensure_ascii=False, default=str).encode("utf-8")
    assert leaks(stored, data) == []  # nothing personal is even stored
    assert leaks(every_format(export), data) == []

    # The same posts in another inbox, pseudonymised only when exported: the same pseudonyms.
    from storage import open_inbox

    other_url = str(tmp_path / "other.db")
    with open_inbox(other_url) as other:
        store(other, data)
    ours = {r["author_id"] for r in rows_of(export("--pseudonymise"))}
    theirs = {r["author_id"] for r in rows_of(export("--pseudonymise", db=other_url))}
    assert ours == theirs and any(a and a.startswith("anon-") for a in ours)
    # Pseudonymising a pseudonymised inbox again changes nothing.
    assert export("--pseudonymise") == export()


def test_official_answers_still_reach_pseudonymised_posts(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = Input()
    personal_wall(data)
    monkeypatch.setenv(KEY_ENV, KEY)
    store(inbox, data, PrivacySettings(pseudonymise_authors=True))
    rows = list(inbox.export())
    post = next(r for r in rows if r["kind"] == "post")
    reply = next(r for r in rows if r["kind"] == "comment")
    assert reply["parent"] == post["native_id"] and post["native_id"].startswith("anon-")
    assert post["answered_by"] == "Администрация района"
    assert reply["author_name"] == "Администрация района" and reply["url"] is None


def test_without_the_key_nothing_is_stored_and_the_error_names_the_variable(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GLAS_TEST_PSEUDONYM_KEY", raising=False)
    data = Input()
    personal_wall(data)
    privacy = PrivacySettings(pseudonymise_authors=True, key_env="GLAS_TEST_PSEUDONYM_KEY")
    with pytest.raises(
        PseudonymKeyMissing, match="set the environment variable GLAS_TEST_PSEUDONYM_KEY"
    ):
        store(inbox, data, privacy)
    assert list(inbox.export()) == []


def test_export_without_the_key_is_one_clear_line(inbox: Inbox, db_url: str, glas: Glas) -> None:
    data = Input()
    personal_wall(data)
    store(inbox, data)
    result = glas("--db", db_url, "export", "--pseudonymise")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"glas: --pseudonymise: pseudonymising needs a secret key: set the environment variable "
        f"{KEY_ENV} (at least 16 characters, the same for every run and export)\n"
    )


# -- the pieces ---------------------------------------------------------------------------------
def test_pseudonyms_are_keyed_stable_and_idempotent() -> None:
    one, two = Pseudonymiser(b"k" * 16), Pseudonymiser(b"q" * 16)
    token = one.token("vk", "582913047")
    assert re.fullmatch(r"anon-[0-9a-f]{24}", token)
    assert token == one.token("vk", "582913047") != two.token("vk", "582913047")
    assert one.token("telegram", "582913047") != token  # platforms are apart
    assert one.token("vk", token) == token
    assert one.key("vk", "582913047_311_c312") == f"{token}_311_c312"
    assert one.key("vk", "-143265175_18436_c18545") == "-143265175_18436_c18545"
    assert one.key("telegram", "adm_gorod_n/41") == "adm_gorod_n/41"
    assert one.key("telegram", "Прохор Пересыльный", repost=True).startswith("anon-")


def test_the_key_must_be_set_and_long_enough() -> None:
    assert load_key(KEY_ENV, {KEY_ENV: KEY}) == KEY.encode()
    with pytest.raises(PseudonymKeyMissing, match="set the environment variable GLAS_K"):
        load_key("GLAS_K", {})
    with pytest.raises(PseudonymKeyMissing, match="too short"):
        load_key("GLAS_K", {"GLAS_K": "short"})


def test_raw_keeps_only_what_names_no_person() -> None:
    vk = {
        "id": 5,
        "owner_id": 582913047,
        "from_id": 582913047,
        "signer_id": 216078137,
        "text": "[id184772956|Елена], яма",
        "attachments": [{"type": "photo", "url": "https://p/1.jpg", "title": "Елена"}],
        "copy_history": [{"owner_id": -5, "id": 1, "from_id": 7, "text": "x", "attachments": []}],
    }
    assert scrub_raw(vk) == {
        "id": 5,
        "attachments": [{"type": "photo", "url": "https://p/1.jpg"}],
        "copy_history": [{"id": 1, "owner_id": -5, "attachments": []}],
    }
    web = {
        "data_post": "c/1",
        "signature": "Имя",
        "forwarded_from": {"name": "Имя"},
        "media": [{"kind": "document", "title": "Паспорт Иванова.pdf"}],
    }
    assert scrub_raw(web) == {"data_post": "c/1", "media": [{"kind": "document"}]}
    assert scrub_raw(None) is None and scrub_raw(scrub_raw(vk)) == scrub_raw(vk)


# -- sources.yaml `privacy:` through the commands ----------------------------------------------
IMPORT_FIELDS = (
    *("platform", "native_id", "text", "source_id", "kind", "parent", "url", "title"),
    *("author_id", "author_name", "author_is_official", "published_at", "edited_at"),
    *("metrics", "geo", "repost_of", "raw"),
)


def test_glas_import_with_privacy_on_stores_no_author(
    db_url: str, glas: Glas, tmp_path: Path, write_sources: Callable[[str], Path]
) -> None:
    """`privacy:` of sources.yaml applies to `glas import` (and `glas run`, same Ingest)."""
    data = everything()
    rows = [{name: getattr(post, name) for name in IMPORT_FIELDS} for post in data.posts]
    (tmp_path / "posts.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows),
        encoding="utf-8",
    )
    write_sources("""
        privacy:
          pseudonymise_authors: true
        sources:
          - id: feed
            type: rss
            url: http://127.0.0.1:9/feed.xml
    """)
    result = glas("--db", db_url, "import", "posts.jsonl", env=glas_env(tmp_path, **{KEY_ENV: KEY}))
    assert result.returncode == 0, result.stderr
    dump = glas("--db", db_url, "export")
    assert dump.returncode == 0 and len(dump.stdout.splitlines()) == len(rows)
    assert leaks(dump.stdout.encode("utf-8"), data) == []


def test_glas_run_with_privacy_on_and_no_key_stops_before_any_source(
    db_url: str, glas: Glas, write_sources: Callable[[str], Path]
) -> None:
    path = write_sources("""
        privacy:
          pseudonymise_authors: true
        sources:
          - id: feed
            type: rss
            url: http://127.0.0.1:9/feed.xml
    """)
    for command in (("run", "--all"), ("daemon",)):
        result = glas("--db", db_url, *command)
        assert result.returncode == 2, result
        assert result.stderr == (
            f"glas: {path.name}: privacy: pseudonymising needs a secret key: set the environment "
            f"variable {KEY_ENV} (at least 16 characters, the same for every run and export)\n"
        )

"""max_chat in process against the local MAX Bot API server (real HTTP): channel posts and
chat messages, replies, forwards, edits, paging by time with a gap healed, and every error."""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from crawler.config import Defaults
from crawler.model import Checkpoint, Post, SourceError, SourceInfo
from spiders import max_chat
from spiders.base import Collection
from tests.conftest import FIXTURES
from tests.max_server import MaxServer, load_chat

CHAT = -70000000000005
CHANNEL = -70000000000077
NOW = time.time()


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"max-{uuid.uuid4().hex}"
    monkeypatch.setenv("MAX_BOT_TOKEN", value)
    monkeypatch.delenv("GLAS_MAX_API_URL", raising=False)
    return value


@pytest.fixture
def api(token: str) -> Iterator[MaxServer]:
    with MaxServer(tokens={token}) as server:
        server.add_chat(load_chat(FIXTURES / "max" / "zarechny_chat.json", newest=NOW - 600))
        server.add_chat(load_chat(FIXTURES / "max" / "zarechny_channel.json", newest=NOW - 900))
        yield server


def run(
    api: MaxServer, chat: int | str = CHAT, cursor: dict[str, Any] | None = None, **options: Any
) -> tuple[list[Any], Collection]:
    source = max_chat.Options(
        id="zarechny-max", type="max_chat", chat=chat, api_url=api.url, **options
    )
    collection = Collection(
        source=source,
        cursor=cursor or {},
        retries=1,
        defaults=Defaults(retry_backoff="0s"),
        official_accounts={"max": ["@zarechny_priemnaya"]},
    )
    return list(max_chat.collect(collection)), collection


def posts(items: list[Any]) -> dict[str, Post]:
    return {i.native_id: i for i in items if isinstance(i, Post)}


def last_cursor(items: list[Any]) -> dict[str, Any]:
    return [i for i in items if isinstance(i, Checkpoint)][-1].cursor


def mid(number: int, chat: int = CHAT) -> str:
    return f"mid.{abs(chat):016x}{number:016x}"


def message(number: int, stamp_ms: int, text: str, chat: int = CHAT) -> dict[str, Any]:
    return {
        "recipient": {"chat_id": chat, "chat_type": "chat", "user_id": None},
        "timestamp": stamp_ms,
        "body": {"mid": mid(number, chat), "seq": number, "text": text, "attachments": None},
        "sender": {"user_id": 300000 + number, "first_name": "Житель", "last_name": str(number)},
    }


def test_channel_posts_are_official_with_views_and_the_token_in_the_header(
    api: MaxServer, token: str
) -> None:
    items, collection = run(api, chat="https://max.ru/zarechny_adm")
    info = items[0]
    assert isinstance(info, SourceInfo) and info.title == "Администрация Заречного"
    assert info.url == "https://max.ru/zarechny_adm"
    found = posts(items)
    assert len(found) == 3
    first = found[mid(1, CHANNEL)]
    assert first.platform == "max" and first.kind == "post" and first.author_is_official
    assert first.author_id == str(CHANNEL) and first.author_name == "Администрация Заречного"
    assert first.metrics == {"views": 1520} and first.url == "https://max.ru/zarechny_adm/AZ1"
    assert (
        first.published_at is not None
        and abs(first.published_at.timestamp() - (NOW - 900 - 7200)) < 2
    )
    assert collection.error is None and collection.warnings == []
    assert {r.authorization for r in api.requests} == {token}
    assert all("access_token" not in r.params for r in api.requests)
    assert last_cursor(items)["chat_id"] == CHANNEL


def test_chat_replies_forwards_official_answers_and_attachments(api: MaxServer) -> None:
    found = posts(run(api)[0])
    assert len(found) == 6
    answer = found[mid(3)]
    assert answer.kind == "comment" and answer.parent == mid(1)
    assert answer.author_is_official and answer.author_name == "Приёмная администрации"
    resident = found[mid(5)]
    assert resident.parent == mid(1) and not resident.author_is_official
    forward = found[mid(4)]
    assert forward.repost_of == mid(1, CHANNEL)  # the channel's post
    assert forward.text.startswith("Уважаемые жители! С 1 декабря меняется график вывоза ТКО")
    assert forward.kind == "post" and forward.parent is None
    photo = found[mid(6)]
    assert photo.geo == {"lat": 56.8431, "lon": 60.6454}
    assert photo.raw["attachments"][0] == {
        "type": "image",
        "url": "https://i.oneme.ru/i?r=sample-photo",
    }
    assert "att-token-not-kept" not in repr(photo.raw)


def test_next_run_takes_only_new_messages_and_an_edit_keeps_the_first_text(
    api: MaxServer,
) -> None:
    first, _ = run(api)
    cursor = last_cursor(first)
    newest = max(m["timestamp"] for m in api.messages[CHAT])
    assert cursor["last_ts"] == newest and cursor["gap"] is None
    api.add_message(CHAT, message(7, newest + 60_000, "Спасибо, фонари горят!"))
    api.edit(mid(2), "Во дворе дома 12 по Садовой мусор вывезли, спасибо.")
    second, _ = run(api, cursor=cursor)
    found = posts(second)
    assert mid(7) in found and found[mid(1)].edited_at is None  # re-read, not edited
    edited = found[mid(2)]
    assert edited.text.startswith("Во дворе дома 12 по Садовой не вывезли мусор")
    assert edited.raw["edited"] is True and "мусор вывезли" in edited.raw["text_now"]
    assert edited.edited_at is not None
    third, _ = run(api, cursor=last_cursor(second))
    again = posts(third)[mid(2)]
    assert again.edited_at == edited.edited_at and again.text == edited.text


def test_messages_page_down_in_time_and_a_run_cut_by_max_messages_leaves_a_gap_healed_later(
    api: MaxServer,
) -> None:
    cursor = last_cursor(run(api)[0])
    start = cursor["last_ts"]
    for number in range(100, 350):  # 250 new messages, one a second
        api.add_message(CHAT, message(number, start + (number - 99) * 1000, f"сообщение {number}"))
    api.requests.clear()
    collected: set[str] = set()
    warnings: list[str] = []
    for _ in range(4):
        items, collection = run(api, cursor=cursor, max_messages=100)
        collected |= set(posts(items))
        warnings += collection.warnings
        cursor = last_cursor(items)
    assert {mid(n) for n in range(100, 350)} <= collected
    assert cursor["gap"] is None and cursor["last_ts"] == start + 250_000
    assert any("more than max_messages (100)" in w for w in warnings)
    pages = [r.params for r in api.requests if r.path == "/messages"]
    assert all(int(p["count"]) == 100 for p in pages)
    assert all(int(p["to"]) < int(p["from"]) for p in pages if "from" in p and "to" in p)


def test_rejected_token_names_its_variable_and_never_shows_the_token(
    api: MaxServer, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_BOT_TOKEN", "max-wrong-" + uuid.uuid4().hex)
    with pytest.raises(SourceError) as raised:
        run(api)
    message = str(raised.value)
    assert message == "MAX token in $MAX_BOT_TOKEN rejected (verify.token: Invalid access_token)"
    assert len(api.requests) == 1  # no retries of a rejected token


def test_missing_token_is_one_line(api: MaxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAX_BOT_TOKEN")
    with pytest.raises(SourceError, match=r"^no MAX bot token: set the environment variable"):
        run(api)


def test_too_many_requests_back_off_then_succeed(api: MaxServer) -> None:
    api.fault("/messages", status=429, times=2, retry_after="0")
    started = time.monotonic()
    items, collection = run(api)
    assert len(posts(items)) == 6 and collection.error is None
    assert api.paths().count("/messages") == 3
    assert time.monotonic() - started < 5


def test_too_many_requests_without_end_fail_the_source_within_bounds(api: MaxServer) -> None:
    api.fault("/messages", status=429, times=None, retry_after="0")
    with pytest.raises(SourceError, match=r"keeps answering HTTP 429 \(too.many.requests\)"):
        run(api)
    assert api.paths().count("/messages") == max_chat_client_retries() + 1


def max_chat_client_retries() -> int:
    from spiders.max_client import RATE_RETRIES

    return RATE_RETRIES


def test_a_wait_longer_than_a_minute_is_left_to_the_next_run(api: MaxServer) -> None:
    api.fault("/messages", status=429, times=None, retry_after="3600")
    with pytest.raises(SourceError, match=r"asks to wait 3600s \(Retry-After\); the next run"):
        run(api)
    assert api.paths().count("/messages") == 1


def test_an_api_repeating_its_newest_page_does_not_keep_the_run_going(api: MaxServer) -> None:
    start = max(m["timestamp"] for m in api.messages[CHAT])
    for number in range(100, 400):
        api.add_message(CHAT, message(number, start + number, f"сообщение {number}"))
    api.ignore_from = True
    items, collection = run(api, max_messages=1000)
    assert len(posts(items)) == 100 and collection.error is None
    assert api.paths().count("/messages") == 3


def test_removed_bot_is_gone_with_a_line_to_add_it_again(api: MaxServer) -> None:
    api.remove_bot(CHAT)
    with pytest.raises(SourceError) as raised:
        run(api)
    assert raised.value.gone
    assert "add the bot to the chat again as an administrator" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_bot_removed_between_requests_is_gone_too(api: MaxServer) -> None:
    api.fault("/messages", status=403)
    with pytest.raises(SourceError) as raised:
        run(api)
    assert raised.value.gone and "chat.denied" in str(raised.value)
    assert "add the bot to the chat again" in str(raised.value)


def test_unknown_chat_is_gone(api: MaxServer) -> None:
    with pytest.raises(SourceError) as raised:
        run(api, chat=-123)
    assert raised.value.gone and "chat.not.found" in str(raised.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": "oops"}, "not a MAX messages answer from"),
        ({"messages": [{"timestamp": 1}]}, "a message without body.mid or timestamp"),
        (b"<html>gateway</html>", "(not JSON)"),
    ],
)
def test_malformed_answer_fails_the_source_with_one_line(
    api: MaxServer, body: Any, expected: str
) -> None:
    api.fault("/messages", status=200, body=body)
    with pytest.raises(SourceError) as raised:
        run(api)
    assert expected in str(raised.value) and "\n" not in str(raised.value)
    assert not raised.value.gone


def test_malformed_chat_answer_fails_the_source_with_one_line(api: MaxServer) -> None:
    api.fault("/chats/", status=200, body=[{"chat_id": "x"}])
    with pytest.raises(SourceError, match=r"^not a MAX chat answer from http://"):
        run(api)


def test_missing_ca_bundle_file_is_one_line(api: MaxServer, tmp_path: Any) -> None:
    with pytest.raises(SourceError, match=r"ca_bundle .*missing.pem is not a readable file"):
        run(api, ca_bundle=str(tmp_path / "missing.pem"))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (-70000000000005, -70000000000005),
        ("-70000000000005", -70000000000005),
        ("https://max.ru/zarechny_adm", "zarechny_adm"),
        ("@zarechny_adm", "zarechny_adm"),
    ],
)
def test_chat_forms(given: Any, expected: Any) -> None:
    options = max_chat.Options(id="x", type="max_chat", chat=given)
    assert options.chat == expected
    assert options.api_url == "https://platform-api2.max.ru"


def test_a_token_in_token_env_is_refused_without_echo() -> None:
    with pytest.raises(ValidationError) as raised:
        max_chat.Options(id="x", type="max_chat", chat=1, token_env="f9LHodD0cOI-secret.value")
    (error,) = raised.value.errors()
    assert "name of an environment variable" in error["msg"] and "f9LHodD0cOI" not in error["msg"]


def certificates(directory: Path) -> tuple[Path, tuple[str, str]]:
    """A made-up root CA (standing in for the Ministry's) and a server certificate it signed
    for 127.0.0.1: the CA's PEM and (certificate, key) of the server."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def build(subject: str, issuer: x509.Name | None, key: Any, sign: Any, ca: bool) -> Any:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            builder = builder.add_extension(x509.SubjectAlternativeName([address]), critical=False)
        return builder.sign(sign, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("Test Root CA (stands in for the Ministry's)", None, ca_key, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    server = build("127.0.0.1", ca.subject, key, ca_key, False)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    (directory / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return directory / "ca.pem", (str(directory / "server.pem"), str(directory / "server.key"))


def test_https_api_needs_its_root_ca_in_ca_bundle(token: str, tmp_path: Path) -> None:
    ca, pair = certificates(tmp_path)
    with MaxServer(tokens={token}, tls=pair) as secure:
        secure.add_chat(load_chat(FIXTURES / "max" / "zarechny_channel.json", newest=NOW))
        with pytest.raises(SourceError) as raised:
            run(secure, chat=CHANNEL)
        assert "is not trusted: set ca_bundle" in str(raised.value)
        assert not secure.requests  # refused before any request reached the server
        items, collection = run(secure, chat=CHANNEL, ca_bundle=str(ca))
        assert len(posts(items)) == 3 and collection.error is None
        assert secure.url.startswith("https://")


def test_official_accounts_by_id_username_or_link() -> None:
    from spiders.max_mapping import Officials

    officials = Officials.parse([300900, "@Press_Adm", "https://max.ru/zhkh_zarechny", "42"])
    assert {"user_id": 300900} in officials and {"user_id": 42} in officials
    assert {"user_id": 1, "username": "press_adm"} in officials
    assert {"user_id": 2, "username": "ZHKH_Zarechny"} in officials
    assert {"user_id": 3, "username": None} not in officials


def test_an_unreachable_api_is_one_line_after_the_retries(token: str) -> None:
    with MaxServer() as gone:
        address = gone.url  # a port nothing listens on once the server stopped
    source = max_chat.Options(id="x", type="max_chat", chat=CHAT, api_url=address)
    collection = Collection(source=source, retries=1, defaults=Defaults(retry_backoff="0s"))
    with pytest.raises(SourceError, match=r"^cannot connect to http://127\.0\.0\.1:\d+/chats/"):
        list(max_chat.collect(collection))


def test_recent_posts_are_read_again_for_their_views(api: MaxServer) -> None:
    cursor = last_cursor(run(api, chat=CHANNEL)[0])
    api.messages[CHANNEL][0]["stat"]["views"] = 2750
    again = posts(run(api, chat=CHANNEL, cursor=cursor)[0])
    assert again[mid(1, CHANNEL)].metrics == {"views": 2750}
    older = posts(run(api, chat=CHANNEL, cursor=cursor, edit_window="1m")[0])
    assert older == {}  # outside the edit window: nothing is read again

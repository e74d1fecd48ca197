"""The VK client against the local VK server: base address, execute, rate limit, every error."""

from __future__ import annotations

import itertools
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from crawler.model import SourceError
from spiders.vk_client import (
    FLOOD_RETRIES,
    CallFailed,
    Unavailable,
    VkClient,
    api_base,
    execute_code,
    load_tokens,
)
from tests.conftest import FIXTURES
from tests.vk_server import VkServer, load_wall

OWNER = -201234567


@pytest.fixture
def vk() -> Iterator[VkServer]:
    with VkServer() as server:
        server.add_wall(load_wall(FIXTURES / "vk" / "zarechny_wall.json"))
        yield server


def fresh() -> str:
    """A token no other test used (rate and rest state is per token, per process)."""
    return f"vk1.a.{uuid.uuid4().hex}"


def client(vk: VkServer, monkeypatch: pytest.MonkeyPatch, *values: str, **kw: object) -> VkClient:
    monkeypatch.setenv("VK_TEST_TOKEN", ",".join(values or (fresh(),)))
    warnings: list[str] = []
    made = VkClient(
        load_tokens("VK_TEST_TOKEN"), base=vk.url, backoff=0, warn=warnings.append, **kw
    )  # type: ignore[arg-type]
    made.warnings = warnings  # type: ignore[attr-defined]
    return made


def test_base_address_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    class Defaults:
        vk_api_url = "http://127.0.0.1:9/"

    monkeypatch.delenv("GLAS_VK_API_URL", raising=False)
    assert api_base(None) == "https://api.vk.ru"
    assert api_base(Defaults()) == "http://127.0.0.1:9"
    monkeypatch.setenv("GLAS_VK_API_URL", "http://localhost:8/")
    assert api_base(Defaults()) == "http://localhost:8"


def test_calls_reach_the_configured_server_with_version_and_token(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = fresh()
    answer = client(vk, monkeypatch, token).call("wall.get", owner_id=OWNER, count=2)
    assert [p["id"] for p in answer["items"]] == [1, 6]  # the pinned post first
    (call,) = vk.calls
    assert call.method == "wall.get" and call.token == token and call.params["v"] == "5.199"


def test_missing_token_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VK_NOPE", raising=False)
    with pytest.raises(SourceError, match=r"no VK token: set the environment variable \$VK_NOPE"):
        load_tokens(["VK_NOPE"])


def test_execute_batches_25_calls_and_maps_inner_errors(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    vk.fail("wall.getComments", 212, post_id=3)
    calls = [("wall.getComments", {"owner_id": OWNER, "post_id": p}) for p in [2, 3, 6] * 10]
    results = client(vk, monkeypatch).batch(calls)
    assert vk.methods(inner=False) == ["execute", "execute"]
    assert len([c for c in vk.calls if c.inner]) == 30
    assert isinstance(results[1], Unavailable) and results[1].code == 212
    assert [r["count"] for r in results[:3:2]] == [3, 4]
    assert sum(isinstance(r, Unavailable) for r in results) == 10


def test_execute_code_is_vkscript_of_json_calls() -> None:
    code = execute_code([("wall.getComments", {"post_id": 5, "sort": "asc"})])
    assert code == 'return [API.wall.getComments({"post_id":5,"sort":"asc"})];'


def test_inner_error_other_than_availability(vk: VkServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vk.fail("wall.getComments", 100, "invalid post", post_id=2)
    calls = [("wall.getComments", {"owner_id": OWNER, "post_id": p}) for p in (2, 6)]
    first, second = client(vk, monkeypatch).batch(calls)
    assert isinstance(first, CallFailed) and "VK error 100: invalid post" in str(first)
    assert second["count"] == 4


def test_rate_limit_per_token_is_shared_between_clients(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, other = fresh(), fresh()
    one, two = client(vk, monkeypatch, token), client(vk, monkeypatch, token)
    three = client(vk, monkeypatch, other)
    for made in (one, two, three, one, two, three, one):
        made.call("groups.getById", group_id=201234567)
    shared = [c.time for c in vk.calls if c.token == token]
    gaps = [b - a for a, b in itertools.pairwise(shared)]
    assert len(shared) == 5 and min(gaps) >= 0.30
    alone = [c.time for c in vk.calls if c.token == other]
    assert alone[1] - alone[0] >= 0.30


def test_tokens_are_used_in_turn(vk: VkServer, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = fresh(), fresh()
    made = client(vk, monkeypatch, a, b)
    for _ in range(4):
        made.call("groups.getById", group_id=201234567)
    assert [c.token for c in vk.calls] == [a, b, a, b]


# -- errors --------------------------------------------------------------------------------------
def test_rejected_token_fails_once_naming_the_variable(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = fresh()
    vk.tokens = {"another"}
    with pytest.raises(SourceError) as caught:
        client(vk, monkeypatch, token).call("wall.get", owner_id=OWNER)
    assert str(caught.value).startswith("VK token in $VK_TEST_TOKEN rejected (User authorization")
    assert token not in str(caught.value)
    assert len(vk.calls) == 1
    with pytest.raises(SourceError, match="rejected"):  # the next source: no request at all
        client(vk, monkeypatch, token).call("wall.get", owner_id=OWNER)
    assert len(vk.calls) == 1


def test_rejected_token_fails_over_to_the_next(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad, good = fresh(), fresh()
    vk.tokens = {good}
    made = client(vk, monkeypatch, bad, good)
    assert made.call("groups.getById", group_id=201234567)["groups"][0]["id"] == 201234567
    assert made.warnings == [  # type: ignore[attr-defined]
        "VK token in $VK_TEST_TOKEN (#1) rejected (User authorization failed: invalid "
        "access_token (4).); the other tokens carry on"
    ]


@pytest.mark.parametrize("code", [6, 9])
def test_too_many_requests_and_flood_are_retried(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    vk.fail("wall.get", code, times=2)
    answer = client(vk, monkeypatch).call("wall.get", owner_id=OWNER)
    assert answer["count"] == 6 and len(vk.calls) == 3


@pytest.mark.parametrize("code", [6, 9])
def test_endless_flood_gives_up_after_bounded_retries(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    vk.fail("wall.get", code)
    with pytest.raises(SourceError, match=f"VK keeps refusing wall.get: error {code}"):
        client(vk, monkeypatch).call("wall.get", owner_id=OWNER)
    assert len(vk.calls) == FLOOD_RETRIES + 1


def test_captcha_rests_the_token(vk: VkServer, monkeypatch: pytest.MonkeyPatch) -> None:
    token = fresh()
    vk.fail("wall.get", 14)
    with pytest.raises(SourceError) as caught:
        client(vk, monkeypatch, token).call("wall.get", owner_id=OWNER)
    message = str(caught.value)
    assert message.startswith("VK token in $VK_TEST_TOKEN rests until ")
    assert message.endswith("VK asked for a captcha (Captcha needed)")
    with pytest.raises(SourceError, match="captcha"):
        client(vk, monkeypatch, token).call("groups.getById", group_id=201234567)
    assert len(vk.calls) == 1


def test_daily_quota_rests_one_token_and_the_others_continue(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spent, spare = fresh(), fresh()
    vk.fail("wall.get", 29, token=spent)
    made = client(vk, monkeypatch, spent, spare)
    assert made.call("wall.get", owner_id=OWNER)["count"] == 6
    assert "daily quota of wall.get is used up; the other tokens carry on" in made.warnings[0]  # type: ignore[attr-defined]
    later = client(vk, monkeypatch, spent, spare)  # same process, a later source
    for _ in range(2):
        later.call("groups.getById", group_id=201234567)
    assert [c.token for c in vk.calls] == [spent, spare, spare, spare]


@pytest.mark.parametrize("code", [15, 18, 30, 203, 212])
def test_unavailable_codes_are_their_own_kind(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    vk.fail("wall.get", code)
    with pytest.raises(Unavailable) as caught:
        client(vk, monkeypatch).call("wall.get", owner_id=OWNER)
    assert caught.value.code == code and f"(VK error {code}: " in str(caught.value)


def test_http_error_is_retried_then_reported(vk: VkServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vk.http_fault("wall.get", status=502)
    with pytest.raises(SourceError) as caught:
        client(vk, monkeypatch, retries=1).call("wall.get", owner_id=OWNER)
    assert str(caught.value) == f"HTTP 502 from {vk.url}/method/wall.get"
    assert len(vk.calls) == 2


def test_http_error_once_then_success(vk: VkServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vk.http_fault("wall.get", status=503, times=1)
    assert client(vk, monkeypatch).call("wall.get", owner_id=OWNER)["count"] == 6


def test_timeout_is_one_line(vk: VkServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vk.http_fault("wall.get", status=200, delay=1.5)
    with pytest.raises(SourceError) as caught:
        client(vk, monkeypatch, timeout=0.3, retries=0).call("wall.get", owner_id=OWNER)
    assert str(caught.value) == f"no answer from {vk.url}/method/wall.get within 0.3s"


def test_connection_refused_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("VK_TEST_TOKEN", fresh())
    made = VkClient(load_tokens("VK_TEST_TOKEN"), base=f"http://127.0.0.1:{port}", retries=0)
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        made.call("wall.get", owner_id=OWNER)
    assert str(caught.value) == (
        f"cannot connect to http://127.0.0.1:{port}/method/wall.get (connection refused)"
    )
    assert time.monotonic() - started < 5


def test_other_api_errors_name_code_and_method(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SourceError, match=r"^VK error 3 in wall.nothing: Unknown method passed$"):
        client(vk, monkeypatch).call("wall.nothing")


def test_tokens_from_several_variables_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VK_A", " one , two ")
    monkeypatch.setenv("VK_B", "three")
    monkeypatch.delenv("VK_C", raising=False)
    tokens = load_tokens(["VK_A", "VK_B", "VK_C"])
    assert [t.value for t in tokens] == ["one", "two", "three"]
    assert [t.label for t in tokens] == ["$VK_A (#1)", "$VK_A (#2)", "$VK_B"]
    assert "one" not in repr(tokens)


def test_not_json_is_one_line(vk: VkServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vk.http_fault("wall.get", status=200)  # body "fault", not JSON
    with pytest.raises(SourceError) as caught:
        client(vk, monkeypatch).call("wall.get", owner_id=OWNER)
    assert str(caught.value) == f"not a VK API answer from {vk.url}/method/wall.get"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://vk.example", "GLAS_VK_API_URL must start with http:// or https://"),
        ("http://user:hunter2pass@vk.example", "GLAS_VK_API_URL: credentials"),
    ],
)
def test_a_bad_address_in_the_environment_is_one_line_without_secrets(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("GLAS_VK_API_URL", value)
    with pytest.raises(SourceError) as caught:
        api_base(None)
    assert str(caught.value).startswith(f"environment: {message}")
    assert "hunter2pass" not in str(caught.value)


def test_calls_of_different_sources_waiting_for_one_token_share_an_execute(
    vk: VkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = fresh()
    clients = [client(vk, monkeypatch, token) for _ in range(6)]
    clients[0].call("groups.getById", group_id=201234567)  # the token's next turn is 1/3 s away
    answers: dict[int, Any] = {}

    def wall(n: int) -> None:
        answers[n] = clients[n].call("wall.get", owner_id=OWNER, count=2, offset=n % 2)

    threads = [threading.Thread(target=wall, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(answers) == list(range(6)), "every source got its own answer"
    assert [a["items"][0]["id"] for n, a in sorted(answers.items())] == [1, 6, 1, 6, 1, 6]
    top = vk.methods(inner=False)
    assert top[0] == "groups.getById" and len(top) <= 3, top  # six walls in one or two requests
    assert "execute" in top
    assert sum(c.inner for c in vk.calls) >= 5

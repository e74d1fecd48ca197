"""`glas telegram login`: the parts that need no network (the network part needs a real account)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from crawler.cli import EXIT_CONFIG, CliError
from crawler.telegram_login import LoggedIn, advice, api_keys
from tests.conftest import glas_env

Glas = Callable[..., subprocess.CompletedProcess[str]]
HASH = "0123456789abcdef0123456789abcdef"


def without_telegram(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in glas_env(tmp_path).items() if not k.startswith("TELEGRAM_")}
    return {**env, **extra}


def test_missing_keys_exit_2_naming_both(glas: Glas, tmp_path: Path) -> None:
    result = glas("telegram", "login", env=without_telegram(tmp_path), stdin=subprocess.DEVNULL)
    assert result.returncode == EXIT_CONFIG
    assert result.stderr == (
        "glas: set TELEGRAM_API_ID and TELEGRAM_API_HASH in the environment first "
        "(from https://my.telegram.org → API development tools)\n"
    )
    assert result.stdout == ""


def test_missing_hash_only() -> None:
    with pytest.raises(CliError, match=r"^set TELEGRAM_API_HASH in the environment first"):
        api_keys({"TELEGRAM_API_ID": "123456"})


def test_without_a_terminal_it_refuses_before_any_network(glas: Glas, tmp_path: Path) -> None:
    env = without_telegram(tmp_path, TELEGRAM_API_ID="123456", TELEGRAM_API_HASH=HASH)
    result = glas("telegram", "login", env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == EXIT_CONFIG
    assert result.stderr == (
        "glas: telegram login asks for a phone number, a login code and maybe a password: "
        "run it in a terminal\n"
    )
    assert HASH not in result.stdout + result.stderr


def test_api_id_must_be_a_number() -> None:
    with pytest.raises(CliError, match="TELEGRAM_API_ID must be the number") as caught:
        api_keys({"TELEGRAM_API_ID": "my-app", "TELEGRAM_API_HASH": HASH})
    assert caught.value.code == EXIT_CONFIG
    assert HASH not in str(caught.value)


def test_api_keys_read() -> None:
    assert api_keys({"TELEGRAM_API_ID": " 123456 ", "TELEGRAM_API_HASH": HASH}) == (123456, HASH)


def test_advice_shows_the_session_once_with_where_to_keep_it() -> None:
    text = advice(LoggedIn(session="1AbC-session", name="Glas Бот @glas_bot_n", user_id=42))
    assert text.count("1AbC-session") == 1
    assert "\nTELEGRAM_SESSION=1AbC-session\n" in text
    assert "Glas Бот @glas_bot_n (id 42)" in text
    for words in ("never in sources.yaml", "chmod 600", "one machine only", "terminate"):
        assert words in text


def test_login_is_listed_in_help(glas: Glas) -> None:
    result = glas("telegram", "--help")
    assert result.returncode == 0
    assert "login" in result.stdout

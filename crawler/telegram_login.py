"""`glas telegram login`: log a Telegram account in and print its session string.

The session string goes to the operator, once, on this terminal, with advice on where to keep
it (the ``TELEGRAM_SESSION`` environment variable); Glas never writes it to sources.yaml, the
inbox or a log.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from crawler.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, CliError

API_ID, API_HASH, SESSION = "TELEGRAM_API_ID", "TELEGRAM_API_HASH", "TELEGRAM_SESSION"
GET_KEYS = "https://my.telegram.org → API development tools"


@dataclass(frozen=True)
class LoggedIn:
    """Who logged in and the session string that keeps them logged in."""

    session: str
    name: str
    user_id: int


def api_keys(env: Mapping[str, str]) -> tuple[int, str]:
    """api_id and api_hash from the environment, or a CliError naming what is missing."""
    missing = [name for name in (API_ID, API_HASH) if not env.get(name, "").strip()]
    if missing:
        raise CliError(
            f"set {' and '.join(missing)} in the environment first (from {GET_KEYS})",
            EXIT_CONFIG,
        )
    raw_id = env[API_ID].strip()
    if not raw_id.isdigit():
        raise CliError(f"{API_ID} must be the number shown as api_id ({GET_KEYS})", EXIT_CONFIG)
    return int(raw_id), env[API_HASH].strip()


def advice(result: LoggedIn) -> str:
    """What the operator reads after logging in: the session and where to keep it."""
    return "\n".join(
        [
            f"Logged in to Telegram as {result.name} (id {result.user_id}).",
            "",
            "Store this line as an environment variable of the account that runs Glas, for",
            "example in a file only that account can read (chmod 600) loaded by systemd's",
            "EnvironmentFile= or by your cron wrapper; never in sources.yaml or a repository:",
            "",
            f"{SESSION}={result.session}",
            "",
            "It is as good as the account's password: anyone holding it reads everything the",
            "account can. Use it on one machine only: Telegram cancels a session used from two",
            "places at once. Glas only reads with it. To revoke it: Telegram → Settings →",
            "Devices → terminate this session.",
        ]
    )


async def _login(
    api_id: int,
    api_hash: str,
    phone: Callable[[], str],
    code: Callable[[], str],
    password: Callable[[], str],
) -> LoggedIn:
    from telethon import TelegramClient
    from telethon.sessions import StringSession

    client = TelegramClient(StringSession(), api_id, api_hash, receive_updates=False)
    try:
        await client.start(phone=phone, code_callback=code, password=password)
        me = await client.get_me()
        name = " ".join(p for p in (me.first_name, me.last_name) if p) or str(me.id)
        if me.username:
            name += f" @{me.username}"
        return LoggedIn(session=client.session.save(), name=name, user_id=me.id)
    finally:
        await client.disconnect()


def login_command(args: argparse.Namespace) -> int:
    """Ask for the phone number, the login code and, with two-step verification, the
    password; print the session string with advice."""
    from telethon import errors

    api_id, api_hash = api_keys(os.environ)
    if not sys.stdin.isatty():
        raise CliError(
            "telegram login asks for a phone number, a login code and maybe a password: "
            "run it in a terminal",
            EXIT_CONFIG,
        )
    if os.environ.get(SESSION):
        print(f"note: {SESSION} is already set; the new session does not revoke it")
    try:
        result = asyncio.run(
            _login(
                api_id,
                api_hash,
                phone=lambda: input("Phone number of the Glas account (+7…): "),
                code=lambda: input("Login code Telegram sent: "),
                password=lambda: getpass.getpass("Two-step verification password: "),
            )
        )
    except errors.FloodWaitError as exc:
        raise CliError(f"Telegram asks to wait {exc.seconds} s before the next login") from None
    except errors.RPCError as exc:
        raise CliError(f"login refused by Telegram: {exc.message or type(exc).__name__}") from None
    except (OSError, ConnectionError) as exc:
        raise CliError(f"cannot reach Telegram: {exc}", EXIT_FAILED) from None
    except (EOFError, RuntimeError) as exc:  # input closed; Telethon gives up after 3 codes
        raise CliError(f"login abandoned: {exc or type(exc).__name__}") from None
    print(advice(result))
    return EXIT_OK

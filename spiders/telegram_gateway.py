"""The one door to Telegram: a small synchronous interface and its Telethon implementation.

The collector (``spiders/telegram.py``) talks only to a :class:`TelegramGateway`. The real one,
:class:`TelethonGateway`, owns one ``TelegramClient`` (a ``StringSession``) and one asyncio
event loop and drives Telethon's async iterators from plain Python. Telethon's own flood
sleeping is off (``flood_sleep_threshold=0``): every ``FloodWaitError`` reaches the collector,
which decides to sleep (``gateway.sleep``) or to defer the source.

``GLAS_TELEGRAM_GATEWAY=module:callable`` replaces the factory (a callable taking
:class:`Credentials` and returning a gateway): tests serve recorded Telegram objects this way.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from crawler.model import SourceError

ENV_API_ID = "TELEGRAM_API_ID"
ENV_API_HASH = "TELEGRAM_API_HASH"
ENV_SESSION = "TELEGRAM_SESSION"
ENV_FACTORY = "GLAS_TELEGRAM_GATEWAY"
PAGE_WAIT = 1.0  # seconds between two pages of 100 messages (Telegram: ~30 s per 10 requests)
LOGIN_HINT = "run `glas telegram login` and store the session it prints in TELEGRAM_SESSION"


@dataclass(frozen=True)
class Credentials:
    """api_id, api_hash and session string; never shown (repr hides the secrets)."""

    api_id: int
    api_hash: str = field(repr=False)
    session: str = field(repr=False)


def read_credentials(env: Mapping[str, str] = os.environ) -> Credentials:
    """Credentials from the environment; SourceError naming every missing variable."""
    names = (ENV_API_ID, ENV_API_HASH, ENV_SESSION)
    missing = [name for name in names if not env.get(name, "").strip()]
    if missing:
        hint = "; get api_id/api_hash at https://my.telegram.org"
        if ENV_SESSION in missing:
            hint += f", then {LOGIN_HINT}"
        raise SourceError(
            f"Telegram credentials missing: set {', '.join(missing)} in the environment{hint}"
        )
    raw_id = env[ENV_API_ID].strip()
    if not raw_id.isdigit():
        raise SourceError(f"{ENV_API_ID} must be the number my.telegram.org shows (api_id)")
    return Credentials(int(raw_id), env[ENV_API_HASH].strip(), env[ENV_SESSION].strip())


class ChannelNotFound(LookupError):
    """No channel has this username, or the account cannot resolve this numeric id (it has
    not joined the channel)."""


class TelegramGateway(Protocol):
    """What the collector needs from Telegram."""

    def get_channel(self, ref: str | int) -> Any:
        """The ``Channel`` (or other entity) for a username or numeric id."""

    def iter_messages(
        self,
        channel: Any,
        *,
        min_id: int = 0,
        reply_to: int | None = None,
        reverse: bool = True,
        limit: int | None = None,
    ) -> Iterator[Any]:
        """Messages of ``channel`` (or of the comment thread of post ``reply_to``) with an id
        above ``min_id``, oldest first when ``reverse``."""

    def lookup(self, message: Any, peer: Any) -> Any:
        """The User/Channel object Telegram sent along with ``message`` for ``peer``."""

    def sleep(self, seconds: float) -> None:
        """Wait out a flood-control pause."""

    def close(self) -> None:
        """Disconnect."""


Factory = Callable[[Credentials], TelegramGateway]


class TelethonGateway:
    """The real gateway over one ``telethon.TelegramClient`` and one event loop."""

    def __init__(self, client: Any, *, page_wait: float = PAGE_WAIT) -> None:
        self.client = client
        self.page_wait = page_wait
        self._runner = asyncio.Runner()
        self._dialogs_loaded = False

    @classmethod
    def from_credentials(cls, credentials: Credentials) -> TelethonGateway:
        from telethon import TelegramClient
        from telethon.sessions import StringSession

        try:
            session = StringSession(credentials.session)
        except Exception:  # bad version byte, base64 or length: never echo the value
            raise SourceError(
                f"{ENV_SESSION} is not a Telethon session string; {LOGIN_HINT}"
            ) from None
        client = TelegramClient(
            session,
            credentials.api_id,
            credentials.api_hash,
            flood_sleep_threshold=0,
            receive_updates=False,
        )
        return cls(client)

    def start(self) -> TelethonGateway:
        """Connect and check the session is logged in."""
        try:
            self._run(self.client.connect())
            authorized = self._run(self.client.is_user_authorized())
        except BaseException:
            self.close()
            raise
        if not authorized:
            self.close()
            raise SourceError(f"{ENV_SESSION} is not logged in (revoked or expired); {LOGIN_HINT}")
        return self

    def _run(self, awaitable: Any) -> Any:
        async def wrap() -> Any:
            return await awaitable

        return self._runner.run(wrap())

    def get_channel(self, ref: str | int) -> Any:
        from telethon.tl import types

        target: Any = types.PeerChannel(ref) if isinstance(ref, int) and ref > 0 else ref
        try:
            return self._run(self.client.get_entity(target))
        except ValueError:  # Telethon's "no user has this username" / "cannot find entity"
            if not isinstance(ref, int):
                raise ChannelNotFound(ref) from None
        if not self._dialogs_loaded:  # numeric ids resolve only from the account's chats
            self._dialogs_loaded = True
            self._run(self.client.get_dialogs())
            try:
                return self._run(self.client.get_entity(target))
            except ValueError:
                pass
        raise ChannelNotFound(ref)

    def iter_messages(
        self,
        channel: Any,
        *,
        min_id: int = 0,
        reply_to: int | None = None,
        reverse: bool = True,
        limit: int | None = None,
    ) -> Iterator[Any]:
        it = self.client.iter_messages(
            channel,
            limit=limit,
            min_id=min_id,
            reply_to=reply_to,
            reverse=reverse,
            wait_time=self.page_wait,
        ).__aiter__()
        while True:
            try:
                yield self._runner.run(it.__anext__())
            except StopAsyncIteration:
                return

    def lookup(self, message: Any, peer: Any) -> Any:
        from telethon import utils

        try:
            wanted = utils.get_peer_id(peer)
        except (TypeError, ValueError):
            return None
        forward = getattr(message, "forward", None)
        for entity in (
            getattr(message, "sender", None),
            getattr(message, "chat", None),
            getattr(forward, "chat", None),
            getattr(forward, "sender", None),
        ):
            if entity is not None and utils.get_peer_id(entity) == wanted:
                return entity
        return None

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def connected(self) -> bool:
        return bool(self.client.is_connected())

    def close(self) -> None:
        try:
            if self.client.is_connected():
                self._run(self.client.disconnect())
        finally:
            self._runner.close()


def connect(credentials: Credentials) -> TelegramGateway:
    """The default factory: a connected, logged-in Telethon gateway."""
    return TelethonGateway.from_credentials(credentials).start()


def gateway_factory(env: Mapping[str, str] = os.environ) -> Factory:
    """The factory named by ``GLAS_TELEGRAM_GATEWAY`` (``module:callable``), else Telethon."""
    spec = env.get(ENV_FACTORY, "").strip()
    if not spec:
        return connect
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SourceError(f"{ENV_FACTORY}={spec}: cannot load it ({exc})") from None
    return factory  # type: ignore[no-any-return]

"""Inbox backends: where posts, cases and source health are kept."""

from __future__ import annotations

from pathlib import Path

from crawler.secrets import watch_url
from storage.inbox import Inbox, InboxError, SchemaOutdated, StoreResult

__all__ = ["Inbox", "InboxError", "SchemaOutdated", "StoreResult", "open_inbox", "sqlite_path"]


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (``inbox.db``, ``sqlite:///inbox.db``), else None."""
    if url.startswith(("postgresql://", "postgres://")):
        return None
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if "://" in url:
        raise InboxError(
            f"unsupported inbox URL {url!r}: use a file path, sqlite:///… or postgresql://…"
        )
    return Path(url)


def open_inbox(url: str, *, create: bool = True, check_schema: bool = True) -> Inbox:
    """Open the inbox at ``url`` (a file path, ``sqlite:///path`` or ``postgresql://…``).

    ``check_schema=False`` opens an inbox of another schema version (for ``glas db upgrade``).
    A password in ``url`` is redacted from every message from now on.
    """
    watch_url(url)
    path = sqlite_path(url)
    if path is None:
        from storage.postgres import PostgresInbox

        return PostgresInbox(url, create=create, check_schema=check_schema)
    from storage.sqlite import SqliteInbox

    return SqliteInbox(path, create=create, check_schema=check_schema)

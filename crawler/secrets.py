"""The secret values Glas knows of, and :func:`redact`, which takes them out of a text.

Every message Glas stores (``runs.error`` and ``warnings``, ``source_state.last_error``) or
prints (log records, the command's error line, a run's report) goes through :func:`redact`:
an API that echoes a token in its error message cannot put it into the inbox or a log.

The secrets are read from the environment each time, so a value set later is covered too:

- the variables sources.yaml names (every source's ``token_env``, ``privacy.key_env``), each
  comma-separated token of them on its own; :func:`watch_env` registers them when the file
  is loaded;
- ``TELEGRAM_API_HASH``, ``TELEGRAM_SESSION`` and ``GLAS_PSEUDONYM_KEY``;
- any variable whose name ends like a secret's (``…TOKEN``, ``…SECRET``, ``…PASSWORD``,
  ``…KEY``, ``…HASH``, ``…SESSION``, e.g. ``PGPASSWORD``);
- the password of an inbox URL (``postgresql://user:password@…``; :func:`watch_url`), and the
  password part of any URL in the text.

Values shorter than :data:`MIN_LENGTH` are left alone: replacing them would mangle ordinary
words. An occurrence becomes ``[redacted $VK_TOKEN]`` (the variable's name, never its value).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

MIN_LENGTH = 8
ALWAYS = ("TELEGRAM_API_HASH", "TELEGRAM_SESSION", "GLAS_PSEUDONYM_KEY")
SECRET_NAME = re.compile(r"(TOKENS?|SECRETS?|PASSWORD|PASSWD|KEY|HASH|SESSION)$", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+):[^@/\s]+@")

_lock = threading.Lock()
_watched: set[str] = set()  # variable names sources.yaml gave
_values: dict[str, str] = {}  # secret value → label, for secrets not in the environment


def watch_env(names: Iterable[str]) -> None:
    """Treat the values of these environment variables as secrets from now on."""
    with _lock:
        _watched.update(names)


def watch_url(url: str) -> None:
    """Treat the password of ``url`` (a database URL) as a secret from now on."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        with _lock:
            _values[unquote(password)] = "password of --db"
            _values[password] = "password of --db"


def secrets(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``(value, label)`` of every secret known now, longest first (a secret that contains
    another is replaced whole)."""
    env = os.environ if environ is None else environ
    with _lock:
        names = set(_watched)
        found = dict(_values)
    names.update(ALWAYS)
    names.update(name for name in env if SECRET_NAME.search(name))
    for name in sorted(names):
        value = env.get(name, "")
        label = f"${name}"
        for part in {value.strip(), *(p.strip() for p in value.split(","))}:
            found.setdefault(part, label)
    pairs: dict[str, str] = {}
    for value, label in found.items():
        if len(value) < MIN_LENGTH:
            continue
        pairs.setdefault(value, label)
        pairs.setdefault(quote(value, safe=""), label)  # as it appears inside a URL
    return sorted(pairs.items(), key=lambda pair: (-len(pair[0]), pair[0]))


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every known secret replaced by ``[redacted LABEL]`` and URL passwords
    by ``***``."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    for value, label in secrets(environ):
        if value in text:
            text = text.replace(value, f"[redacted {label}]")
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message, exception text and ``glas`` fields are
    redacted before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format: the handler reports it as logging does
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        fields = getattr(record, "glas", None)
        if isinstance(fields, dict):
            record.glas = {key: _redact_value(value) for key, value in fields.items()}
        return True


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    return value

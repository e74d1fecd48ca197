"""Pseudonymised authors (152-ФЗ): keyed hashes instead of author ids, no names or profile links.

One :class:`Pseudonymiser` serves both places it applies: the ingest pipeline (when
``privacy: {pseudonymise_authors: true}`` asks the inbox to keep authors pseudonymised from
the start) and ``glas export --pseudonymise``. Both use the same key (an environment
variable), so an author's pseudonym is the same in the inbox and in every export, and
pseudonymising twice changes nothing.

What changes, for every post not by an official account (officials are public bodies named
in ``official_accounts``; their names stay, and ``answered_by`` names them):

- ``author_id`` becomes ``anon-`` + 24 hex digits of HMAC-SHA256(key, "platform:id");
- ``author_name`` and ``url`` (a link to the item shows its author) are dropped;
- ``raw`` keeps only fields known to carry no person (ids of the item, dates, photo links,
  counts); author ids, signatures, forwarded-from names and the raw text with its
  ``[id…|Name]`` mentions go;
- a key naming a person is pseudonymised in ``native_id``, ``parent`` and ``repost_of`` of
  every post (officials' too): the owner of a VK personal wall (``123_45`` →
  ``anon-…_45``) and a Telegram forward from a person (a name or user id).

``text`` and ``title`` are kept: they are the complaint itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from crawler.model import Post, SourceError, Strict

KEY_ENV = "GLAS_PSEUDONYM_KEY"
PREFIX = "anon-"
MIN_KEY_LENGTH = 16
_TOKEN = re.compile(rf"^{PREFIX}[0-9a-f]{{24}}$")
_VK_PERSONAL_KEY = re.compile(r"^(\d+)(_.*)?$")  # owner id > 0: a person's wall
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# ``raw`` fields that carry no person, whatever the platform (everything else is dropped).
SAFE_RAW = frozenset(
    {
        # VK wall posts and comments
        "id",
        "date",
        "edited",
        "post_type",
        "is_pinned",
        "marked_as_ads",
        "is_deleted",
        "deleted",
        "post_id",
        "parents_stack",
        "reply_to_comment",
        "geo",
        # Telegram (Telethon and t.me/s)
        "ids",
        "grouped_id",
        "edit_date",
        "reply_to_msg_id",
        "reply_to_top_id",
        "replies",
        "reactions",
        "data_post",
        "views",
        "album",
        "reply_to",
        # RSS and websites
        "link",
        "title",
        "summary",
        "published",
        "updated",
        "content",
        "tags",
        "enclosures",
        "list",
        # imported appeals
        "category",
        "district",
    }
)


class PseudonymKeyMissing(SourceError):
    """The key's environment variable is unset or too short (one line, names the variable)."""


class PrivacySettings(Strict):
    """The ``privacy:`` section of sources.yaml."""

    pseudonymise_authors: bool = Field(
        False,
        description="Store authors pseudonymised (keyed hashes, no names, no profile links, "
        "raw scrubbed) from the start; official accounts stay named.",
    )
    key_env: str = Field(
        KEY_ENV,
        description="Environment variable holding the pseudonym key (at least 16 characters); "
        "`glas export --pseudonymise` uses the same one.",
    )

    @field_validator("key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(
                "expected the name of an environment variable (letters, digits, _), "
                "never the key itself"
            )
        return value


def load_key(env: str = KEY_ENV, environ: Mapping[str, str] | None = None) -> bytes:
    """The pseudonym key from the environment variable ``env``."""
    value = (os.environ if environ is None else environ).get(env, "")
    if not value.strip():
        raise PseudonymKeyMissing(
            f"pseudonymising needs a secret key: set the environment variable {env} "
            f"(at least {MIN_KEY_LENGTH} characters, the same for every run and export)"
        )
    if len(value.strip()) < MIN_KEY_LENGTH:
        raise PseudonymKeyMissing(
            f"the key in {env} is too short: use at least {MIN_KEY_LENGTH} characters"
        )
    return value.strip().encode("utf-8")


class Pseudonymiser:
    """Pseudonymises posts (pipeline), exported post rows and case rows."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def token(self, platform: str, value: str) -> str:
        """The pseudonym of ``value`` on ``platform``; a pseudonym is returned as it is."""
        if _TOKEN.match(value):
            return value
        digest = hmac.new(self._key, f"{platform}:{value}".encode(), hashlib.sha256)
        return PREFIX + digest.hexdigest()[:24]

    def key(self, platform: str, value: str | None, *, repost: bool = False) -> str | None:
        """A native id (or ``parent``/``repost_of``) with the person it names pseudonymised."""
        if not value:
            return value
        if platform == "vk":
            match = _VK_PERSONAL_KEY.match(value)
            if match:
                return self.token("vk", match.group(1)) + (match.group(2) or "")
        elif platform == "telegram" and repost and "/" not in value:
            return self.token("telegram", value)  # forwarded from a person: name or user id
        return value

    def fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """New values of the personal fields of a post (a Post's fields or an exported row)."""
        platform = str(values.get("platform") or "")
        official = bool(values.get("author_is_official"))
        out: dict[str, Any] = {
            "native_id": self.key(platform, values.get("native_id")),
            "parent": self.key(platform, values.get("parent")),
            "repost_of": self.key(platform, values.get("repost_of"), repost=True),
            "raw": scrub_raw(values.get("raw")),
        }
        rewritten = out["native_id"] != values.get("native_id")
        if not official:
            author = values.get("author_id")
            out["author_id"] = self.token(platform, str(author)) if author else None
            out["author_name"] = None
        if not official or rewritten:
            out["url"] = None
        return out

    def post(self, post: Post) -> Post:
        """Pseudonymise ``post`` in place (the pipeline stage)."""
        values = {name: getattr(post, name) for name in _POST_FIELDS}
        for name, value in self.fields(values).items():
            setattr(post, name, value)
        return post

    def post_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """An exported ``posts`` row, pseudonymised (a new dict)."""
        return {**row, **self.fields(row)}

    def case_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """An exported ``clusters`` row, pseudonymised (its canonical post's key)."""
        platform = str(row.get("canonical_platform") or "")
        return {**row, "canonical_native_id": self.key(platform, row.get("canonical_native_id"))}


_POST_FIELDS = (
    "platform",
    "native_id",
    "parent",
    "repost_of",
    "raw",
    "author_id",
    "author_name",
    "author_is_official",
    "url",
)


def scrub_raw(raw: Any) -> dict[str, Any] | None:
    """``raw`` with only the fields that name no person (see :data:`SAFE_RAW`)."""
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {k: v for k, v in raw.items() if k in SAFE_RAW}
    owner = raw.get("owner_id")
    if isinstance(owner, int) and owner < 0:  # a VK community, not a person
        out["owner_id"] = owner
    if isinstance(raw.get("attachments"), list):
        out["attachments"] = _media(raw["attachments"], "type", "url")
    if isinstance(raw.get("copy_history"), list):
        out["copy_history"] = [
            {
                **{k: h[k] for k in ("id", "date") if k in h},
                **({"owner_id": h["owner_id"]} if _community(h.get("owner_id")) else {}),
                "attachments": _media(h.get("attachments") or [], "type", "url"),
            }
            for h in raw["copy_history"]
            if isinstance(h, dict)
        ]
    if isinstance(raw.get("media"), list):
        out["media"] = [
            m if isinstance(m, str) else _pick(m, ("kind", "image", "duration"))
            for m in raw["media"]
            if isinstance(m, str | dict)
        ]
    if isinstance(out.get("geo"), dict):
        out["geo"] = _pick(out["geo"], ("type", "coordinates", "place", "lat", "lon"))
    return dict(sorted(out.items()))  # as the inbox keeps JSON: scrubbing twice is a no-op


def _community(owner: Any) -> bool:
    return isinstance(owner, int) and owner < 0


def _media(items: list[Any], kind_key: str, url_key: str) -> list[dict[str, Any]]:
    """Attachments as their kind, with a link only for photos (hosted by the platform)."""
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        entry = {kind_key: item.get(kind_key)}
        if item.get(kind_key) == "photo" and isinstance(item.get(url_key), str):
            entry[url_key] = item[url_key]
        out.append(entry)
    return out


def _pick(item: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: item[k] for k in keys if k in item}

"""VK keyword search (``newsfeed.search``): public posts matching a query, from any wall.

Each run asks for posts published between ``start_time`` (the cursor's newest post, or
``start_time`` back from now on a first run) and now, newest first, paging with
``next_from``. VK returns only the first 1,000 matches of a query; when there are more, the
run says so in a warning (run more often or narrow the query). Cursor: ``newest`` (unix time
of the newest post collected).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from crawler.model import Checkpoint, Post, SourceConfig, SourceError
from crawler.validators import Duration, duration_field
from spiders.vk_client import Unavailable, VkClient, check_env_names
from spiders.vk_mapping import Names, wall_post

PAGE = 200
REACHABLE = 1000


class Options(SourceConfig):
    """Public VK posts matching a search query (newsfeed.search)."""

    platform: ClassVar[str] = "vk"
    site_collections: ClassVar[int | None] = 25  # their calls share execute requests

    type: Literal["vk_search"]
    query: str = Field(
        ...,
        min_length=1,
        description="newsfeed.search query: words, #hashtags, phrases; e.g. 'Заречный мусор'.",
    )
    latitude: float | None = Field(None, ge=-90, le=90, description="Only posts near this point.")
    longitude: float | None = Field(None, ge=-180, le=180, description="Give with latitude.")
    start_time: Duration = Field(
        timedelta(days=1), description="How far back the first run searches (e.g. 1d, 12h)."
    )
    max_posts: int = Field(1000, ge=1, le=1000, description="Posts collected per run at most.")
    token_env: str | list[str] = Field(
        "VK_TOKEN",
        description="Environment variable(s) holding the VK token (as for vk_wall).",
    )

    @field_validator("start_time", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("token_env")
    @classmethod
    def _env_names(cls, value: str | list[str]) -> str | list[str]:
        return check_env_names(value)

    @model_validator(mode="after")
    def _both(self) -> Options:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


def collect(collection: Any) -> Iterator[Post | Checkpoint]:
    """Search once: every page yields its posts; the cursor moves at the end."""
    options: Options = collection.source
    client = VkClient.for_collection(collection)
    now = int(time.time())
    known = int(collection.cursor.get("newest") or 0)
    since = known or now - int(options.start_time.total_seconds())
    params: dict[str, Any] = {
        "q": options.query,
        "extended": 1,
        "count": min(PAGE, options.max_posts),
        "start_time": since,
        "end_time": now,
        "fields": "screen_name",
    }
    if options.latitude is not None:
        params["latitude"], params["longitude"] = options.latitude, options.longitude
    names = Names()
    newest, taken, seen, skipped = known, 0, set(), False
    while True:
        try:
            answer = client.call("newsfeed.search", **params)
        except Unavailable as exc:
            raise SourceError(f"search for {options.query!r} unavailable: {exc}") from None
        names.add(answer)
        if taken == 0:
            total = int(answer.get("total_count") or answer.get("count") or 0)
            if total > REACHABLE:
                collection.warn(
                    f"{total} posts match {options.query!r} since the last run; VK returns only "
                    f"the first {REACHABLE}: run this source more often or narrow the query"
                )
        for item in answer.get("items") or []:
            if not isinstance(item, dict) or "id" not in item:
                continue
            if taken >= options.max_posts:
                skipped = True
                break
            post = wall_post(item, names)
            if post.native_id in seen:
                continue
            seen.add(post.native_id)
            taken += 1
            newest = max(newest, int(item.get("date") or 0))
            yield post
        following = answer.get("next_from")
        if skipped or (following and taken >= options.max_posts):
            collection.warn(
                f"max_posts ({options.max_posts}) reached: older matches of this run skipped"
            )
        if not following or taken >= options.max_posts or not answer.get("items"):
            break
        yield Checkpoint(dict(collection.cursor))  # posts stored; the cursor waits for the end
        params["start_from"] = following
    yield Checkpoint({"newest": newest or None})

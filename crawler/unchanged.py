"""Posts collected again unchanged skip the stages and storage.

Collectors bring the same posts again and again (a feed's last items, a VK wall's first
page, the comments of posts still inside their window). The pipeline digests each post as
collected, after pseudonymisation (so the digest never stands for a real author id),
together with the stages' settings and the Glas version; where the inbox holds the same
digest (``posts.collected_hash``, internal, never exported) the post is unchanged: it is
neither matched, nor flagged, nor written, and counts as unchanged. A changed post, a post
whose settings changed (dedupe, flagging, a new Glas) and a post stored before the column
existed go through every stage as before.
"""

from __future__ import annotations

import hashlib

from crawler import __version__
from crawler.model import Post
from storage import Inbox
from storage.rows import ANSWER_COLUMNS, CONTENT_COLUMNS, dumps

# What a collector gives that storage keeps: the columns less what the stages set (``raw``
# aside: a change there alone does not change the stored post either).
STAGE_COLUMNS = frozenset(
    {"dedupe_key", "complaint_score", "is_complaint", "topics", "topic_scores", "places"}
)
COLLECTED_FIELDS = (
    *(name for name in CONTENT_COLUMNS if name not in STAGE_COLUMNS),
    *ANSWER_COLUMNS,
    "deleted",
    "editorial",  # the source's voice: a change re-flags its posts
)


def collected_hash(post: Post, salt: bytes) -> str:
    """A digest of ``post`` as collected, salted with the settings of the stages."""
    payload = dumps([getattr(post, name) for name in COLLECTED_FIELDS])
    digest = hashlib.blake2b(salt, digest_size=16)
    digest.update(payload.encode())  # type: ignore[union-attr]
    return digest.hexdigest()


class SkipUnchanged:
    """A pipeline stage that leaves out the posts the inbox holds unchanged."""

    def __init__(self, inbox: Inbox, settings: object) -> None:
        self.inbox = inbox
        self.salt = f"glas {__version__} {settings!r}".encode()

    def __call__(self, posts: list[Post]) -> list[Post]:
        for post in posts:
            post.collected_hash = collected_hash(post, self.salt)
        stored = self.inbox.collected_hashes({post.key for post in posts}) if posts else {}
        return [post for post in posts if stored.get(post.key) != post.collected_hash]

"""Schema migrations, recorded in ``schema_migrations`` as they are applied.

Each migration is SQL per backend; the schema is the same in SQLite and PostgreSQL
(column names and meaning), only types differ.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema: posts, clusters, sources, source_state, runs, inbox view",
        """
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('seq', 0);

CREATE TABLE posts (
    id INTEGER PRIMARY KEY,
    platform TEXT NOT NULL,
    native_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'post',
    parent TEXT,
    url TEXT,
    title TEXT,
    author_id TEXT,
    author_name TEXT,
    author_is_official INTEGER NOT NULL DEFAULT 0,
    text TEXT NOT NULL DEFAULT '',
    published_at TEXT,
    edited_at TEXT,
    metrics TEXT,
    geo TEXT,
    repost_of TEXT,
    raw TEXT,
    dedupe_key TEXT,
    cluster_id INTEGER,
    is_canonical INTEGER,
    complaint_score REAL,
    is_complaint INTEGER,
    topics TEXT,
    topic_scores TEXT,
    places TEXT,
    municipality TEXT,
    answered_at TEXT,
    answered_by TEXT,
    response_seconds INTEGER,
    content_hash TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    seq INTEGER NOT NULL,
    UNIQUE (platform, native_id)
);
CREATE UNIQUE INDEX posts_seq ON posts (seq);
CREATE INDEX posts_cluster ON posts (cluster_id);
CREATE INDEX posts_dedupe_key ON posts (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX posts_source_published ON posts (source_id, published_at);
CREATE INDEX posts_parent ON posts (platform, parent) WHERE parent IS NOT NULL;

CREATE TABLE clusters (
    cluster_id INTEGER PRIMARY KEY AUTOINCREMENT,
    canonical_platform TEXT,
    canonical_native_id TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    authors INTEGER NOT NULL DEFAULT 0,
    platforms TEXT,
    sources TEXT,
    first_seen TEXT,
    last_seen TEXT,
    topics TEXT,
    municipality TEXT,
    complaint_score REAL,
    is_complaint INTEGER,
    answered_at TEXT,
    updated_at TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE UNIQUE INDEX clusters_seq ON clusters (seq);

CREATE TABLE sources (
    source_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    platform TEXT NOT NULL,
    municipality TEXT,
    enabled INTEGER NOT NULL,
    title TEXT,
    config TEXT NOT NULL,
    in_config INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);

CREATE TABLE source_state (
    source_id TEXT PRIMARY KEY,
    cursor TEXT,
    last_run_at TEXT,
    last_success_at TEXT,
    last_status TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_new_at TEXT,
    gone INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);

CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    new INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    invalid INTEGER NOT NULL DEFAULT 0,
    warnings TEXT,
    error TEXT,
    duration_seconds REAL,
    pid INTEGER
);
CREATE INDEX runs_source ON runs (source_id, started_at);

CREATE VIEW inbox AS
SELECT
    c.cluster_id, c.seq, c.size, c.authors, c.platforms, c.sources,
    c.first_seen, c.last_seen, c.topics, c.municipality, c.complaint_score,
    c.answered_at, p.platform, p.native_id, p.source_id, p.url, p.title, p.text,
    p.author_name, p.published_at
FROM clusters AS c
JOIN posts AS p
    ON p.platform = c.canonical_platform AND p.native_id = c.canonical_native_id
WHERE c.size > 0 AND coalesce(c.is_complaint, 1) = 1;
""",
    ),
)

MIGRATIONS += (
    Migration(
        2,
        "posts.deleted_at: when a collector saw the post or comment deleted",
        """
ALTER TABLE posts ADD COLUMN deleted_at TEXT;
CREATE INDEX posts_official_parent ON posts (platform, parent)
    WHERE author_is_official = 1 AND parent IS NOT NULL;
""",
    ),
)

MIGRATIONS += (
    Migration(
        3,
        "near-duplicate cases: clusters.merged_into, reposts by original",
        """
ALTER TABLE clusters ADD COLUMN merged_into INTEGER;
CREATE INDEX posts_repost_of ON posts (platform, repost_of) WHERE repost_of IS NOT NULL;
""",
    ),
)

LATEST = MIGRATIONS[-1].version

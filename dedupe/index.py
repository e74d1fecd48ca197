"""The index of recent posts: LSH buckets over MinHash band keys, bounded by a time window.

Every entry is a post (its key, sorted normalised words, numbers, time and case). Buckets map a band
key to the entries sharing it, newest last and capped at ``BUCKET_CAP`` (a phrase
every third post shares would otherwise make lookups linear); an exact map finds copies (the
same words) without scoring. Entries older than the newest time minus the window are purged now
and then, so memory follows the window, not the history.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

BUCKET_CAP = 16
PostKey = tuple[str, str]


@dataclass(slots=True, eq=False)
class Entry:
    """One indexed post (hashed by identity)."""

    key: PostKey
    words: str  # its normalised words, sorted (what scoring needs)
    numbers: frozenset[str]
    at: float  # POSIX seconds
    group: int  # its case: a stored cluster id, or a negative id for one not stored yet
    text_hash: int  # of the original text: a re-collected unchanged post is recognised
    alive: bool = True


class RecentIndex:
    """Recent posts by band key, exact words and post key."""

    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self.by_key: dict[PostKey, Entry] = {}
        # A band key's entries: one entry (most keys), or a list of them, newest last.
        self.buckets: dict[int, Entry | list[Entry]] = {}
        self.exact: dict[str, Entry] = {}
        self.newest = float("-inf")
        self._next_group = -1
        self.merged_groups: dict[int, int] = {}  # groups merged in memory (union-find)
        self._since_purge = 0

    def __len__(self) -> int:
        return len(self.by_key)

    # -- groups ---------------------------------------------------------------------------
    def new_group(self) -> int:
        self._next_group -= 1
        return self._next_group

    def group(self, entry: Entry) -> int:
        """The entry's case, following in-memory merges."""
        group = entry.group
        path = []
        while group in self.merged_groups:
            path.append(group)
            group = self.merged_groups[group]
        for step in path:
            self.merged_groups[step] = group
        return group

    def merge(self, into: int, other: int) -> None:
        if into != other:
            self.merged_groups[other] = into

    # -- entries --------------------------------------------------------------------------
    def add(self, entry_data: tuple, bands: list[int]) -> Entry:
        """Index a post (replacing an older entry of the same key).

        ``entry_data`` is ``(key, words, numbers, at, group, text_hash)``.
        """
        entry = Entry(*entry_data)
        old = self.by_key.get(entry.key)
        if old is not None:
            self.remove(old)
        self.by_key[entry.key] = entry
        buckets = self.buckets
        for band in bands:
            bucket = buckets.setdefault(band, entry)
            if bucket is entry:
                continue
            if type(bucket) is list:
                bucket.append(entry)
                if len(bucket) > BUCKET_CAP:
                    del bucket[0]
            else:
                buckets[band] = [bucket, entry]  # type: ignore[list-item]
        if bands:
            self.exact[entry.words] = entry
        if entry.at > self.newest:
            self.newest = entry.at
        self._since_purge += 1
        if self._since_purge > max(10_000, len(self.by_key) // 4):
            self.purge()
        return entry

    def remove(self, entry: Entry) -> None:
        """Forget an entry (its bucket slots are dropped lazily)."""
        entry.alive = False
        del self.by_key[entry.key]
        if self.exact.get(entry.words) is entry:
            del self.exact[entry.words]

    def purge(self) -> None:
        """Drop entries older than the window and dead bucket slots."""
        self._since_purge = 0
        cutoff = self.newest - self.window
        for entry in [e for e in self.by_key.values() if e.at < cutoff]:
            self.remove(entry)
        buckets = self.buckets
        for band, bucket in list(buckets.items()):
            if type(bucket) is not list:
                if not bucket.alive:  # type: ignore[union-attr]
                    del buckets[band]
                continue
            alive = [e for e in bucket if e.alive]
            if len(alive) > 1:
                buckets[band] = alive
            elif alive:
                buckets[band] = alive[0]
            else:
                del buckets[band]

    def candidates(self, bands: list[int], exclude: PostKey, limit: int) -> list[Entry]:
        """Up to ``limit`` live entries sharing a band key, most shared bands first."""
        hits: Counter[Entry] = Counter()
        get = self.buckets.get
        for band in bands:
            bucket = get(band)
            if bucket is None:
                continue
            if type(bucket) is list:
                hits.update(bucket)
            else:
                hits[bucket] += 1  # type: ignore[index]
        ranked = sorted(hits, key=hits.__getitem__, reverse=True)
        return [e for e in ranked[:limit] if e.alive and e.key != exclude]

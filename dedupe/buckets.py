"""LSH buckets in numpy: for every band key, the rows sharing it, newest first.

Each row has ``bands`` band keys; its *entries* are ``row * bands + band``. A hash table maps
a band key to its newest entry, and every entry points to the previous entry of the same key
(``prior``), so a bucket is a chain read newest first; lookups follow at most ``cap`` links,
which gives what a bucket capped at the ``cap`` newest rows holds.

The table has groups of ``WIDTH`` slots, filled in order and never emptied until a rebuild: a
key lives in the group its high bits name, or, when that group was full, in the next one
with room. A batch's keys are then found and placed with one gather of their groups and a
few numpy calls (the rare keys of full groups one by one), and a lookup costs one ``take``
per link followed, for the whole batch: no Python step per row or band.

A row is looked up after it is chained, from its own entries, so it meets the rows chained
before it (those of its batch too) and never those after it. Rows dropped from the index
stay in their chains until :meth:`Buckets.rebuild` (callers filter them out).
"""

from __future__ import annotations

import numpy as np

WIDTH = 16  # slots per group (128 bytes of keys)
MIN_GROUPS = 1 << 8
CHUNK = 1 << 16  # keys placed at a time when rebuilding (bounds the gathered groups' memory)


class Buckets:
    """Band keys of rows ``0, 1, …`` and the chains of the rows chained so far."""

    def __init__(self, bands: int, cap: int, capacity: int = 1024) -> None:
        self.bands, self.cap = bands, cap
        self.keys = np.zeros((capacity, bands), dtype=np.uint64)  # band keys per row
        self.prior = _entries(capacity * bands)  # per entry, -1: none
        self.chained = np.zeros(capacity, dtype=bool)
        self._table(MIN_GROUPS)

    def _table(self, groups: int) -> None:
        self.slot_keys = np.zeros((groups, WIDTH), dtype=np.int64)  # a key's bits
        self.slot_heads = np.full((groups, WIDTH), -1, dtype=np.int32)  # its newest entry
        self.fill = np.zeros(groups, dtype=np.int64)  # slots used in each group
        self.shift = np.uint64(64 - (groups.bit_length() - 1))
        self.used = 0  # keys in the table

    def __len__(self) -> int:
        """Distinct band keys in the table."""
        return self.used

    def reserve(self, capacity: int) -> None:
        """Room for rows ``0 … capacity - 1`` (keeps what is there)."""
        if capacity <= len(self.chained):
            return
        keys = np.zeros((capacity, self.bands), dtype=np.uint64)
        keys[: len(self.keys)] = self.keys
        prior = _entries(capacity * self.bands)
        prior[: len(self.prior) - 1] = self.prior[:-1]
        chained = np.zeros(capacity, dtype=bool)
        chained[: len(self.chained)] = self.chained
        self.keys, self.prior, self.chained = keys, prior, chained

    def chain(self, first: int, count: int) -> None:
        """Chain rows ``first … first + count - 1`` (their keys set), in order."""
        if 2 * (self.used + count * self.bands) > self.slot_keys.size:  # keep the load ≤ 1/2
            self.rebuild(np.r_[np.flatnonzero(self.chained), np.arange(first, first + count)])
            return
        self._link(np.arange(first * self.bands, (first + count) * self.bands))
        self.chained[first : first + count] = True

    def rebuild(self, rows: np.ndarray) -> None:
        """Forget every chain; chain ``rows`` (ascending) alone."""
        entries = (rows[:, None] * self.bands + np.arange(self.bands)).ravel()
        self.chained.fill(False)
        self.chained[rows] = True
        self._link(entries, fresh=True)

    def compact(self, keep: np.ndarray) -> None:
        """Keep the keys of rows ``keep`` (ascending), renumbered ``0, 1, …``; no chains
        until :meth:`rebuild`."""
        self.keys = self.keys[keep]
        self.prior = _entries(len(keep) * self.bands)
        self.chained = np.zeros(len(keep), dtype=bool)
        self._table(MIN_GROUPS)

    def _link(self, entries: np.ndarray, fresh: bool = False) -> None:
        """Put ``entries`` (ascending) at the head of their keys' chains (in a new table
        sized for them when ``fresh``)."""
        keys, entries = self._by_key(entries)
        starts = np.ones(len(keys), dtype=bool)
        np.not_equal(keys[1:], keys[:-1], out=starts[1:])
        distinct = keys[starts]
        if fresh:  # load at most 1/4: the keys may double before the next rebuild
            self._table(max(MIN_GROUPS, 1 << (4 * len(distinct) // WIDTH).bit_length()))
        if not len(entries):
            return
        slots, heads = [], []
        for start in range(0, len(distinct), CHUNK):
            found = self._slots(distinct[start : start + CHUNK])
            slots.append(found[0])
            heads.append(found[1])
        prior = np.empty_like(entries)
        prior[1:] = entries[:-1]
        prior[starts] = np.concatenate(heads)
        self.prior[entries] = prior
        ends = np.ones_like(starts)
        ends[:-1] = starts[1:]
        self.slot_heads.ravel()[np.concatenate(slots)] = entries[ends]

    def _by_key(self, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The keys of ``entries`` (ascending) and the entries, sorted by key, entries
        ascending within a key."""
        keys = self.keys.ravel()[entries]
        if len(entries) > CHUNK and entries[-1] < 1 << 24:  # a rebuild: a faster sort
            # High 40 bits of the key and the entry in one number; sorted, unless two keys
            # share their high 40 bits (then the stable argsort below).
            packed = (keys & ~np.uint64(0xFFFFFF)) | entries.astype(np.uint64)
            packed.sort()
            by_key = (packed & np.uint64(0xFFFFFF)).astype(np.int64)
            sorted_keys = self.keys.ravel().take(by_key)
            high = packed >> np.uint64(24)
            if not ((high[1:] == high[:-1]) & (sorted_keys[1:] != sorted_keys[:-1])).any():
                return sorted_keys, by_key
        order = np.argsort(keys, kind="stable")
        return keys[order], entries[order]

    def _slots(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The slot of each key (distinct keys), taking a free one for a new key, and the
        key's newest entry (-1 for a new key; the caller sets the new heads)."""
        home = (keys >> self.shift).astype(np.int64)
        bits = keys.view(np.int64)
        fill = self.fill.take(home)
        hit = self.slot_keys.take(home, axis=0) == bits[:, None]  # (free slots hold 0)
        words = hit.view(np.uint64)  # WIDTH booleans as 64-bit words: any() is an "or"
        real = bits != 0  # (a key of 0 is looked for one by one)
        found = ((words[:, 0] | words[:, 1]) != 0) & real
        slots = home * WIDTH + hit.argmax(axis=1)
        heads = np.where(found, self.slot_heads.ravel().take(slots), -1)
        # New keys go to their group, in order; those of full groups, one by one, below.
        new = np.flatnonzero(~found & (fill < WIDTH) & real)
        new = new[np.argsort(home[new], kind="stable")]
        group = home[new]
        starts = np.ones(len(new), dtype=bool)
        np.not_equal(group[1:], group[:-1], out=starts[1:])
        first = np.maximum.accumulate(np.where(starts, np.arange(len(new)), 0))
        at = fill.take(new) + np.arange(len(new)) - first
        room = at < WIDTH
        placed, group, at = new[room], group[room], at[room]
        slots[placed] = group * WIDTH + at
        self.slot_keys.ravel()[slots[placed]] = bits[placed]
        last = np.ones(len(group), dtype=bool)
        np.not_equal(group[1:], group[:-1], out=last[:-1])
        self.fill[group[last]] = at[last] + 1
        self.used += len(placed)
        rest = np.flatnonzero(~found & ((fill >= WIDTH) | ~real))
        for key in [*rest.tolist(), *new[~room].tolist()]:
            slots[key], heads[key] = self._slot(int(home[key]), int(bits[key]))
        return slots, heads

    def _slot(self, group: int, bits: int) -> tuple[int, int]:
        """The slot and newest entry of one key whose group is full, taking a slot for it
        in the next group with room when it is new."""
        mask = len(self.fill) - 1
        while True:
            used = int(self.fill[group])
            same = np.flatnonzero(self.slot_keys[group, :used] == bits)
            if len(same):
                return group * WIDTH + int(same[0]), int(self.slot_heads[group, same[0]])
            if used < WIDTH:
                self.slot_keys[group, used] = bits
                self.fill[group] = used + 1
                self.used += 1
                return group * WIDTH + used, -1
            group = (group + 1) & mask

    def lookup(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """For chained rows ``first … first + count - 1``: pairs (row, earlier row sharing a
        band key), up to ``cap`` earlier rows per band key, newest first (repeats when two
        rows share several keys)."""
        entries = count * self.bands
        links = np.empty((self.cap, entries), dtype=self.prior.dtype)
        links[0] = cursor = self.prior[first * self.bands : first * self.bands + entries]
        for step in range(1, self.cap):
            if step % 4 == 0 and cursor.max() < 0:
                links = links[:step]
                break
            links[step] = cursor = self.prior.take(cursor)  # -1 reads the -1 at the end
        at = np.flatnonzero(links.ravel() >= 0)
        owners = first + at % entries // self.bands
        return owners, (links.ravel()[at] // self.bands).astype(np.int64)

    def bucket(self, key: int) -> list[int]:
        """The rows of one band key, newest first, at most ``cap`` (for tests)."""
        bits = int(np.uint64(key).view(np.int64))
        group = int(np.uint64(key) >> self.shift)
        mask = len(self.fill) - 1
        while True:
            used = int(self.fill[group])
            same = np.flatnonzero(self.slot_keys[group, :used] == bits)
            if len(same) or used < WIDTH:
                break
            group = (group + 1) & mask
        rows: list[int] = []
        entry = int(self.slot_heads[group, same[0]]) if len(same) else -1
        while entry >= 0 and len(rows) < self.cap:
            rows.append(entry // self.bands)
            entry = int(self.prior[entry])
        return rows


def _entries(count: int) -> np.ndarray:
    """A ``prior`` array for ``count`` entries, all -1, and one more -1 at the end (read by
    ``take`` for index -1, so a chain's end stays -1)."""
    return np.full(count + 1, -1, dtype=np.int32)

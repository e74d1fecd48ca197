"""Which encoding a fetched document is in, when its declaration is missing or wrong.

Feeds and web pages of Russian municipal sites are often in windows-1251 or KOI8-R without
saying so, or say so wrongly (a server's default, a copied template's ``<meta>``). The rule,
for a document without a byte-order mark:

1. a document of ASCII bytes only reads the same in all of them: the declaration, else UTF-8;
2. a document that is valid UTF-8 is UTF-8 (text in a single-byte encoding practically never
   is, so a wrong declaration cannot garble a UTF-8 document);
   a document with fewer than :data:`MIN_EVIDENCE` non-ASCII bytes keeps a declaration that
   decodes it (a lone "€" is no evidence);
3. otherwise charset-normalizer weighs the declared encodings against the plausible ones
   (:data:`PLAUSIBLE`) on the document's non-ASCII words: a declaration is kept when it reads
   about as well as the best guess (within :data:`MARGIN` of its "mess" ratio), else the best
   guess wins. The guess is *unsure* when another encoding reads about as well (mess and
   language coherence within :data:`MARGIN`: short texts) or none reads well; collectors
   then warn.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass

import charset_normalizer

# Cyrillic encodings in use on Russian sites (most common first), then Western Latin.
PLAUSIBLE = ("utf_8", "cp1251", "koi8_r", "cp866", "iso8859_5", "mac_cyrillic", "cp1252")
# Charsets web servers announce by default, whatever the document holds: no declaration.
SERVER_DEFAULTS = frozenset({"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"})
MARGIN = 0.05  # mess ratios this close read "about as well"
UNSURE_MESS = 0.1  # a best guess messier than this is unsure whatever the others do
SAMPLE_BYTES = 65_536
MIN_EVIDENCE = 8  # non-ASCII bytes needed to overrule a declaration that decodes

_HIGH_BYTES = bytes(range(0x80, 0x100))
_NON_ASCII_WORD = re.compile(rb"""[^\s<>"'=&;]*[\x80-\xff][^\s<>"'=&;]*""")
_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Reading:
    """How to decode a document: a Python codec name, and whether that is a sure choice."""

    encoding: str
    sure: bool = True


def codec_name(name: str | None) -> str | None:
    """Python's canonical name of an encoding label (``windows-1251`` → ``cp1251``), or None."""
    if not name:
        return None
    label = name.strip().lower()
    for candidate in (label, label.removeprefix("x-")):  # x-mac-cyrillic, x-cp1251
        try:
            return codecs.lookup(candidate).name
        except LookupError:
            continue
    return None


def charset_of(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header, if any."""
    match = _CHARSET_PARAM.search(content_type or "")
    return match.group(1) if match else None


def declared_by_server(charset: str | None) -> str | None:
    """A Content-Type charset, unless it is a server default (ISO-8859-1, ASCII): those are
    sent whatever the document holds, so they declare nothing."""
    if charset and charset.lower().replace("_", "-") not in SERVER_DEFAULTS:
        return charset
    return None


def read_as(body: bytes, declared: Iterable[str | None] = ()) -> Reading:
    """The encoding to decode ``body`` (no byte-order mark) with; see the module docstring.

    ``declared`` lists what the document and its server say, most trusted first; labels
    Python does not know are ignored.
    """
    names = list(dict.fromkeys(n for n in map(codec_name, declared) if n))
    if body.isascii():
        return Reading(names[0] if names else "utf-8")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return Reading("utf-8")
    sample = b" ".join(_NON_ASCII_WORD.findall(body))[:SAMPLE_BYTES]
    if len(sample.translate(None, _HIGH_BYTES)) + MIN_EVIDENCE > len(sample):
        for name in names:  # a few odd bytes are no evidence against a declaration
            try:
                body.decode(name)
            except UnicodeDecodeError:
                continue
            return Reading(name)
    candidates = list(dict.fromkeys([*names, *PLAUSIBLE]))
    matches = sorted(
        charset_normalizer.from_bytes(sample, cp_isolation=candidates),
        key=lambda m: (round(m.chaos, 3), -round(m.coherence, 3), _rank(m.encoding, candidates)),
    )
    if not matches:
        return Reading(names[0] if names else "cp1251", sure=False)
    best = matches[0]
    for name in names:
        match = next((m for m in matches if name in _codecs_of(m)), None)
        if match is not None and match.chaos <= best.chaos + MARGIN:
            return Reading(name)
    rivals = [
        m
        for m in matches[1:]
        if m.chaos <= best.chaos + MARGIN and m.coherence >= best.coherence - MARGIN
    ]
    guess = codec_name(best.encoding) or "cp1251"
    return Reading(guess, sure=not rivals and best.chaos <= UNSURE_MESS)


def _codecs_of(match: charset_normalizer.CharsetMatch) -> set[str]:
    """Every encoding that reads the sample as this match does."""
    return {n for n in map(codec_name, [match.encoding, *match.could_be_from_charset]) if n}


def _rank(encoding: str, candidates: list[str]) -> int:
    name = codec_name(encoding)
    order = [codec_name(c) for c in candidates]
    return order.index(name) if name in order else len(order)

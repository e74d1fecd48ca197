"""Flags never depend on Python's hash seed: a re-collected post must stay 'unchanged'."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO, shared

SCRIPT = """
import gzip, json, sys
from itertools import islice
from crawler.model import Post
from flagging import apply, flagger
rules = flagger()
with gzip.open(sys.argv[1], "rt", encoding="utf-8") as fh:
    for line in islice(fh, 1500):
        row = json.loads(line)
        post = apply(Post(platform="web", native_id=str(row["id"]), text=row["text"]), rules)
        print(json.dumps([post.complaint_score, post.topics, post.topic_scores, post.places,
                          post.municipality], ensure_ascii=False, sort_keys=True))
"""


def flags_with_seed(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
    path = str(shared("appeals/spb_nash_gorod.jsonl.gz"))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, path], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_real_appeals_get_the_same_flags_whatever_the_hash_seed() -> None:
    first, second = flags_with_seed("1"), flags_with_seed("2")
    assert first.count("\n") == 1500
    differing = [
        n
        for n, (a, b) in enumerate(zip(first.splitlines(), second.splitlines(), strict=True))
        if a != b
    ]
    assert differing == []

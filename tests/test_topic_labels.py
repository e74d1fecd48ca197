"""The hand-labelled VK topics: the label files agree with the record of how they were made
(two labellers, the disputed rows adjudicated; tests/data/README.md, "Topic labels")."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from flagging.lexicon import load

DATA = Path(__file__).resolve().parent / "data"
CODES = set(load()["topics"]["codes"])


def read(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def complaints() -> dict[str, tuple[str, str]]:
    """comment_id → (set, topic in the label file) of every labelled complaint."""
    out = {}
    for name, file in (("evaluation", "vk_comment_labels.csv"),
                       ("development", "vk_comment_dev_labels.csv")):  # fmt: skip
        for row in read(file):
            if row["is_complaint"] == "1":
                assert row["comment_id"] not in out, "a comment is in both sets"
                out[row["comment_id"]] = (name, row["topic"])
    return out


def test_every_complaint_has_a_second_blind_topic(complaints: dict[str, tuple[str, str]]) -> None:
    second = read("vk_comment_topic_second.csv")
    assert [r["comment_id"] for r in second] == list(complaints)
    assert {r["topic"] for r in second} <= CODES


def test_label_files_hold_the_agreed_or_adjudicated_topic(
    complaints: dict[str, tuple[str, str]],
) -> None:
    second = {r["comment_id"]: r["topic"] for r in read("vk_comment_topic_second.csv")}
    disputed = {r["comment_id"]: r for r in read("vk_comment_topic_adjudication.csv")}
    for comment_id, (name, topic) in complaints.items():
        row = disputed.get(comment_id)
        if row is None:
            assert topic == second[comment_id], comment_id  # both labellers gave it
        else:
            assert row["set"] == name and row["first"] != row["second"], comment_id
            assert row["second"] == second[comment_id], comment_id
            assert topic == row["adjudicated"], comment_id
            assert row["adjudicated"] in CODES and row["reason"].strip(), comment_id
    assert len(disputed) == 73 and set(disputed) <= set(complaints)

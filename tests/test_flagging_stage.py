"""The flagging stage: settings, lexicon overrides, and posts stored through the pipeline."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from crawler.model import Post, SourceConfig
from crawler.pipeline import Ingest
from dedupe.exact import add_exact_keys
from flagging import FlaggingSettings, LexiconError, check, stage
from storage.sqlite import SqliteInbox


def _posts() -> list[Post]:
    return [
        Post(
            platform="vk",
            native_id="1",
            kind="comment",
            text="Третий день нет горячей воды в доме на ул. Мира, 5! Примите меры.",
        ),
        Post(
            platform="vk",
            native_id="2",
            kind="comment",
            parent="1",
            author_is_official=True,
            text="Здравствуйте! Информация передана в управляющую компанию.",
        ),
        Post(platform="vk", native_id="3", kind="comment", text="Спасибо за чистый двор!"),
    ]


def test_stage_sets_every_field() -> None:
    complaint, answer, thanks = stage(FlaggingSettings())(_posts())
    assert complaint.is_complaint and complaint.complaint_score > 0.8
    assert complaint.topics[0] == "housing" and complaint.topic_scores["housing"] > 0.5
    assert complaint.places == [{"kind": "address", "name": "улица Мира, 5"}]
    assert not answer.is_complaint and answer.complaint_score == 0
    assert not thanks.is_complaint


def test_municipality_from_the_source_is_kept() -> None:
    post = Post(platform="vk", native_id="1", text="В г. Колпино яма", municipality="Тверь")
    other = Post(platform="vk", native_id="2", text="В г. Колпино яма")
    stage()([post, other])
    assert post.municipality == "Тверь" and other.municipality == "Колпино"


def test_disabled_stage_leaves_posts_alone() -> None:
    posts = stage(FlaggingSettings(enabled=False))(_posts())
    assert all(p.is_complaint is None and p.topics is None for p in posts)


def test_web_titles_count(tmp_path: Path) -> None:
    post = Post(platform="web", native_id="1", title="Прорыв трубы", text="ул. Мира, 5")
    stage()([post])
    assert post.is_complaint and post.topics[0] == "housing"


def test_override_file_extends_and_removes(tmp_path: Path) -> None:
    (tmp_path / "local.yaml").write_text(
        textwrap.dedent(
            """
            topics:
              codes:
                transport:
                  terms: [самокат, {"каршеринг": 2.0}]
            complaint:
              groups:
                thanks:
                  remove: [спасибо]
            """
        ),
        encoding="utf-8",
    )
    # topic_model "fallback" (the default): the lexicons alone decide wherever they find a topic
    # ("blend" would average the operator's terms with the statistical model).
    settings = FlaggingSettings(lexicons=[Path("local.yaml")])
    text = "Самокаты брошены посреди тротуара, спасибо"
    before, after = Post("vk", "1", text=text), Post("vk", "2", text=text)
    stage()([before])
    stage(settings, base=tmp_path)([after])
    assert after.topics[0] == "transport" and before.topics[0] != "transport"
    assert after.complaint_score > before.complaint_score


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read lexicon"),
        ("topics: [1, 2\n", "local.yaml:2: not valid YAML"),
        ("complaints: {}\n", "unknown section 'complaints'"),
        ("topics:\n  roads: {terms: [яма]}\n", "topics: unknown key 'roads'"),
        (
            "topics:\n  codes:\n    roads:\n      terms: [{яма: много}]\n",
            "weight of 'яма' must be a number",
        ),
        ("official:\n  groups:\n    done:\n      terms: [ремонт:PRTS]\n", "has no forms with PRTS"),
    ],
)
def test_bad_override_files_are_one_line_errors(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "local.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(LexiconError) as info:
        stage(FlaggingSettings(lexicons=[path]))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "local.yaml" in str(info.value)
    assert check(FlaggingSettings(lexicons=[path])) == str(info.value)


def test_good_overrides_pass_the_check(tmp_path: Path) -> None:
    (tmp_path / "local.yaml").write_text("places:\n  municipalities:\n    Тверь: [тверь]\n")
    settings = FlaggingSettings(lexicons=["local.yaml"])
    assert check(settings, base=tmp_path) is None
    post = Post("vk", "1", text="В Твери на улицах грязь")
    stage(settings, base=tmp_path)([post])
    assert post.municipality == "Тверь"


def test_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match=r"must be a \.yaml or \.yml file"):
        FlaggingSettings(lexicons=["words.txt"])
    with pytest.raises(ValidationError):
        FlaggingSettings(threshold=1.5)
    with pytest.raises(ValidationError):
        FlaggingSettings(treshold=0.4)


def test_flags_are_stored_through_the_pipeline(inbox: SqliteInbox) -> None:
    source = SourceConfig(id="vk-test", type="vk_wall", municipality="Тверь")
    ingest = Ingest(inbox, source, stages=[add_exact_keys, stage()])
    for post in _posts():
        ingest.accept(post)
    ingest.close()
    rows = inbox.conn.execute(
        "SELECT native_id, is_complaint, complaint_score, topics, topic_scores, places,"
        " municipality FROM posts ORDER BY native_id"
    ).fetchall()
    assert [r[1] for r in rows] == [1, 0, 0]
    assert json.loads(rows[0][3])[0] == "housing"
    assert json.loads(rows[0][4])["housing"] > 0.5
    assert json.loads(rows[0][5]) == [{"kind": "address", "name": "улица Мира, 5"}]
    assert rows[0][6] == "Тверь"

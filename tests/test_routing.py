"""Routing hints: the ``routing:`` section of sources.yaml and which agency a case goes to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crawler.config import ConfigError, load_config
from crawler.routing import Route, Router, RoutingRule, RoutingSettings, topic_labels

HEAD = """
defaults: {request_delay: 0s, retry_backoff: 0s}
sources:
  - {id: feed, type: rss, url: "http://replay.invalid/feed.xml"}
"""


def router(*rules: dict[str, str], default: str | None = None) -> Router:
    return Router(
        RoutingSettings(rules=[RoutingRule.model_validate(r) for r in rules], default=default)
    )


def test_the_more_specific_rule_wins() -> None:
    route = router(
        {"topic": "roads", "agency": "Комитет по дорожному хозяйству"},
        {"topic": "roads", "municipality": "Кировский район", "agency": "Дороги Кировского"},
        {"municipality": "Кировский район", "agency": "Администрация Кировского района"},
        default="Центр управления регионом",
    ).route
    assert route(["roads"], "Кировский район") == Route("Дороги Кировского", "rule")
    assert route(["roads"], "кировский  район") == Route("Дороги Кировского", "rule")
    assert route(["roads"], "Выборгский район") == Route("Комитет по дорожному хозяйству", "rule")
    assert route(["waste"], "Кировский район") == Route("Администрация Кировского района", "rule")
    assert route(["waste"], None) == Route("Центр управления регионом", "default")


def test_the_best_topic_with_a_rule_decides() -> None:
    route = router(
        {"topic": "transport", "municipality": "Кировский район", "agency": "Транспорт"},
        {"topic": "roads", "agency": "Дороги"},
    ).route
    assert route(["roads", "transport"], "Кировский район").agency == "Дороги"
    assert route(["ecology", "transport"], "Кировский район").agency == "Транспорт"
    assert route(["ecology", "transport"], "Фрунзенский район") == Route(None, "unmatched")


def test_cases_without_topics_are_other() -> None:
    route = router({"topic": "other", "agency": "Приёмная"}).route
    assert route(None, None) == Route("Приёмная", "rule")
    assert router().route(["roads"], "Кировский район") == Route(None, "unmatched")


def test_routing_section_loads(write_sources: Callable[[str], Path]) -> None:
    path = write_sources(
        HEAD
        + """
routing:
  default: Центр управления регионом
  rules:
    - {topic: roads, agency: Комитет по дорожному хозяйству}
    - {topic: housing, municipality: Кировский район, agency: ЖКС Кировского района}
    - {municipality: Выборгский район, agency: Администрация Выборгского района}
"""
    )
    config = load_config(path)
    assert config.routing.default == "Центр управления регионом"
    assert [r.agency for r in config.routing.rules][1] == "ЖКС Кировского района"
    assert Router(config.routing).route(["housing"], "Кировский район").agency == (
        "ЖКС Кировского района"
    )
    assert load_config(write_sources(HEAD, "plain.yaml")).routing == RoutingSettings()


def errors(write_sources: Callable[[str], Path], text: str) -> list[str]:
    path = write_sources(HEAD + text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [m.removeprefix(f"{path}:") for m in caught.value.messages]


def test_bad_rules_are_reported_with_their_lines(write_sources: Callable[[str], Path]) -> None:
    assert errors(
        write_sources,
        """
routing:
  rules:
    - {topic: road, agency: Дороги}
    - topic: ямы
      agency: Дороги
    - {agency: Кто-то}
    - {topic: roads, agncy: Дороги}
  defualt: Центр
""",
    ) == [
        "7: routing: unknown topic 'road' (known: "
        + ", ".join(topic_labels())
        + "); did you mean 'roads'?",
        "8: routing: unknown topic 'ямы' (known: " + ", ".join(topic_labels()) + ")",
        "10: routing: 'rules[2]': a rule needs 'topic', 'municipality' or both besides 'agency'",
        "11: routing: unknown key 'agncy' in 'rules[3]'; did you mean 'agency'?",
        "12: routing: unknown key 'defualt'; did you mean 'default'?",
    ]


def test_topic_codes_added_by_a_lexicon_override_are_known(
    write_sources: Callable[[str], Path], tmp_path: Path
) -> None:
    (tmp_path / "extra.yaml").write_text(
        "topics:\n  codes:\n    heating_season:\n      label: отопительный сезон\n"
        "      terms: [отопительный сезон]\n",
        encoding="utf-8",
    )
    path = write_sources(
        HEAD
        + """
flagging: {lexicons: [extra.yaml]}
routing:
  rules:
    - {topic: heating_season, agency: Комитет по энергетике}
"""
    )
    assert load_config(path).routing.rules[0].topic == "heating_season"
    assert topic_labels([tmp_path / "extra.yaml"])["heating_season"] == "отопительный сезон"


def test_glas_check_reports_a_bad_topic(
    glas: Callable[..., Any], write_sources: Callable[[str], Path]
) -> None:
    write_sources(HEAD + "routing:\n  rules:\n    - {topic: dorogi, agency: Дороги}\n")
    result = glas("check")
    assert result.returncode == 2
    assert result.stderr.startswith("sources.yaml:6: routing: unknown topic 'dorogi' (known: ")


def test_privacy_section(write_sources: Callable[[str], Path]) -> None:
    config = load_config(
        write_sources(HEAD + "privacy: {pseudonymise_authors: true, key_env: MY_KEY}\n")
    )
    assert config.privacy.pseudonymise_authors and config.privacy.key_env == "MY_KEY"
    assert errors(write_sources, "privacy: {key_env: 'секрет 123'}\n") == [
        "4: privacy: 'key_env': expected the name of an environment variable "
        "(letters, digits, _), never the key itself"
    ]

"""Answer norms: the ``norms:`` section of sources.yaml and which norm a case gets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from crawler.config import ConfigError, load_config
from crawler.norms import NormRule, Norms, NormSettings

HEAD = """
defaults: {request_delay: 0s, retry_backoff: 0s}
sources:
  - {id: feed, type: rss, url: "http://replay.invalid/feed.xml"}
"""
HOUR = 3600


def test_the_most_specific_norm_wins() -> None:
    norms = Norms(
        NormSettings(
            default="12h",
            rules=[
                NormRule(topic="roads", within="48h"),
                NormRule(platform="telegram", within="8h"),
                NormRule(topic="roads", platform="vk", within="4h"),
            ],
        )
    )
    assert norms.seconds(["roads"], "vk") == 4 * HOUR
    assert norms.seconds(["roads"], "telegram") == 48 * HOUR  # the topic before the platform
    assert norms.seconds(["waste", "roads"], "ok") == 48 * HOUR  # best topic with a rule
    assert norms.seconds(["waste"], "telegram") == 8 * HOUR
    assert norms.seconds(None, "ok") == 12 * HOUR
    assert Norms().seconds(["roads"], "vk") == 24 * HOUR  # default 24 hours


def test_norms_section_loads(write_sources: Callable[[str], Path]) -> None:
    config = load_config(
        write_sources(
            HEAD
            + """
norms:
  default: 1d
  rules:
    - {topic: housing, within: 8h}
    - {platform: max, within: 2h}
"""
        )
    )
    norms = Norms(config.norms)
    assert norms.seconds(["housing"], "vk") == 8 * HOUR
    assert norms.seconds(["roads"], "max") == 2 * HOUR
    assert norms.seconds(["roads"], "vk") == 24 * HOUR
    assert load_config(write_sources(HEAD, "plain.yaml")).norms == NormSettings()


def test_mistakes_name_their_line(write_sources: Callable[[str], Path]) -> None:
    path = write_sources(
        HEAD
        + """
norms:
  default: 0s
  rules:
    - {topic: road, within: 48h}
    - {platform: vkk, within: 8h}
    - {topic: roads, within: 8}
    - {within: 8h}
    - {topic: roads, speed: fast, within: 1h}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.messages == [
        f"{path}:6: norms: 'default': a norm must be at least 1m",
        f"{path}:8: norms: unknown topic 'road' (known: housing, roads, transport, landscaping, "
        "waste, ecology, energy, healthcare, education, social, safety, construction, culture, "
        "sport, communications, trade, labour, animals, public_services, other); did you mean "
        "'roads'?",
        f"{path}:9: norms: 'rules[1].platform': input should be 'vk', 'ok', 'telegram', 'max', "
        "'rss' or 'web', found \"vkk\"",
        f"{path}:10: norms: 'rules[2].within': 8 has no unit: write 8s, 8m or 8h",
        f"{path}:11: norms: 'rules[3]': a norm needs 'topic', 'platform' or both besides 'within'",
        f"{path}:12: norms: unknown key 'speed' in 'rules[4]' (allowed: topic, platform, within)",
    ]

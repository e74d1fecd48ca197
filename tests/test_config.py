"""sources.yaml validation, in process: what loads, and the exact message for each mistake.

Every message is ``FILE:LINE: LABEL: what is wrong`` (DESIGN.md invariant 5): LINE is the key's
line for an unknown key, the value's line for a bad value, the source's first line for a
missing field; LABEL is the source id, ``sources[N]``, the section, ``file`` or ``YAML syntax``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from crawler.cli import main
from crawler.config import TOP_LEVEL_KEYS, Config, ConfigError, load_config
from crawler.validators import parse_duration
from spiders import source_types
from tests.conftest import FIXTURES, REPO

SOURCES = FIXTURES / "sources"
TYPES = ", ".join(sorted(source_types()))  # as the messages list them
ALLOWED = ", ".join(TOP_LEVEL_KEYS)
DURATION_HELP = "use a number and a unit (s, m, h, d, w), e.g. 90s, 15m, 1h30m, 2d"
SECRETS = (
    "secrets never go in sources.yaml; keep them in environment variables (a source type that "
    "needs a token has a key naming its variable, e.g. token_env: VK_TOKEN)"
)
ID_RULE = (
    "letters, digits, '-', '_' and '.' only, starting with a letter or digit, at most 80 characters"
)
CREDENTIALS = (
    "credentials in an address are not allowed (the address is stored in the inbox and shown "
    "in errors); remove 'user:password@': Glas reads public addresses, and secrets go in "
    "environment variables (e.g. token_env: VK_TOKEN)"
)
SOURCE_KEYS = (
    "id, type, municipality, schedule, enabled, timezone, timeout, run_limit, max_response_size, "
    "voice, note, url, max_pages"
)


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.messages


# -- files that load ---------------------------------------------------------------------------
def test_demo_sources_load() -> None:
    config = load_config(REPO / "examples" / "demo-sources.yaml")
    assert {s.type for s in config.sources} == set(source_types()), "the demo shows every type"
    feeds = [s for s in config.sources if s.type == "rss"]
    assert [s.id for s in feeds] == ["mos-news", "tverskoy-news", "tverskoy-council"]
    news, district, council = feeds
    assert news.schedule is not None and news.schedule.every == timedelta(minutes=15)
    assert news.schedule.jitter == timedelta(seconds=30)  # the whole defaults.schedule
    assert district.schedule is not None and district.schedule.cron == "*/30 * * * *"
    assert council.schedule is not None and council.schedule.every == timedelta(hours=1)
    assert {s.timeout for s in config.sources} == {20.0}
    assert config.defaults.batch_size == 100
    assert config.path == REPO / "examples" / "demo-sources.yaml"


def test_built_in_defaults_apply_when_the_file_has_none(write_sources: Callable) -> None:
    config = load_config(
        write_sources(
            """
            sources:
              - id: feed
                type: rss
                url: https://example.org/rss
            """
        )
    )
    (feed,) = config.sources
    assert feed.schedule is not None
    assert (feed.schedule.every, feed.schedule.cron) == (timedelta(hours=1), None)
    assert (feed.timezone, feed.timeout, feed.enabled, feed.max_pages) == (
        "Europe/Moscow",
        30.0,
        True,
        1,
    )
    assert (config.defaults.batch_size, config.defaults.retries) == (200, 2)
    assert config.official_accounts.vk == []


def test_sources_inherit_defaults_and_override_them() -> None:
    config = load_config(SOURCES / "full.yaml")
    by_id = {s.id: s for s in config.sources}
    assert list(by_id) == ["city-news", "district-news", "district-council", "old-feed"]

    city = by_id["city-news"]  # everything from defaults
    assert city.schedule is not None
    assert (city.schedule.every, city.schedule.jitter) == (
        timedelta(minutes=15),
        timedelta(seconds=30),
    )
    assert (city.timezone, city.timeout, city.municipality) == ("Europe/Moscow", 20.0, None)

    district = by_id["district-news"]  # from the x-district anchor via '<<: *district'
    assert (district.type, district.municipality) == ("rss", "Тверской район")
    assert district.schedule is not None and district.schedule.every == timedelta(minutes=30)
    assert district.url == "https://tverskoy.example/rss.xml"

    council = by_id["district-council"]  # its own keys win over the merged ones
    assert council.schedule is not None
    assert (council.schedule.cron, council.schedule.every) == ("*/10 8-20 * * mon-fri", None)
    assert (council.timezone, council.timeout, council.max_pages) == ("Asia/Yekaterinburg", 5.5, 3)
    assert council.municipality == "Тверской район"

    assert [s.id for s in config.enabled] == ["city-news", "district-news", "district-council"]
    assert by_id["old-feed"].enabled is False
    assert by_id["old-feed"].note == "Kept for its history; the site is gone."
    assert config.source("old-feed") is by_id["old-feed"]
    with pytest.raises(KeyError):
        config.source("nope")

    assert config.official_accounts.vk == [-12345, "tverskoy_official"]
    assert config.official_accounts.telegram == ["tverskoy_gov"]
    assert config.official_accounts.rss == ["press@tverskoy.example"]
    assert (config.defaults.batch_size, config.defaults.retries) == (100, 3)


def test_anchors_merge_lists_and_aliases(write_sources: Callable) -> None:
    config = load_config(
        write_sources(
            """
            x-feed: &feed {type: rss, municipality: A}
            x-b: &b {municipality: B, enabled: false}
            sources:
              - <<: [*feed, *b]          # earlier mappings win: municipality A
                id: first
                url: https://a.example/rss
                schedule: &often {every: 5m}
              - <<: *feed
                id: second
                url: https://b.example/rss
                schedule: *often
            """
        )
    )
    first, second = config.sources
    assert (first.municipality, first.enabled) == ("A", False)
    assert first.schedule == second.schedule
    assert second.schedule is not None and second.schedule.every == timedelta(minutes=5)


def test_an_explicit_empty_list_of_sources_loads(write_sources: Callable) -> None:
    config = load_config(write_sources("sources: []\n"))
    assert isinstance(config, Config)
    assert config.sources == []


# -- files that do not: (file text, the exact "LINE: LABEL: message" lines) -------------------
MALFORMED: list[tuple[str, str, list[str]]] = [
    (
        "bad-indentation",
        """
        sources:
          - id: feed
            type: rss
           url: https://example.org/rss
        """,
        ["4: YAML syntax: bad indentation: this line does not line up with the lines above it"],
    ),
    (
        "indented-too-far",
        """
        sources:
          - id: feed
            type: rss
              url: https://example.org/rss
        """,
        [
            "4: YAML syntax: unexpected ':': check this line's indentation, "
            "or quote a value that contains ': '"
        ],
    ),
    (
        "tab-indentation",
        "sources:\n\t- id: feed\n",
        ["2: YAML syntax: a tab character: indent with spaces, never tabs"],
    ),
    (
        "unclosed-quote",  # reported where the quote opens, not at the end of the file
        """
        sources:
          - id: "feed
            type: rss
        """,
        ["2: YAML syntax: a quoted value is never closed"],
    ),
    (
        "missing-colon",
        """
        sources:
          - id: feed
            type rss
            url: https://example.org/rss
        """,
        ["3: YAML syntax: expected 'key: value' here (a missing ':', or a space missing after it)"],
    ),
    (
        "undefined-alias",
        """
        sources:
          - <<: *common
            id: feed
        """,
        ["2: YAML syntax: *common names an anchor that is not defined above it"],
    ),
    (
        "two-documents",
        """
        sources: []
        ---
        sources: []
        """,
        ["2: YAML syntax: more than one YAML document (a '---' line): keep one document per file"],
    ),
    (
        "duplicate-id",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/a
          - id: feed
            type: rss
            url: https://example.org/b
        """,
        ["5: feed: duplicate id (first defined at line 2)"],
    ),
    (
        "duplicate-key",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/a
            url: https://example.org/b
        """,
        ["5: feed: duplicate key 'url' (first at line 4)"],
    ),
    (
        "unknown-type",
        """
        sources:
          - id: feed
            type: rs
            url: https://example.org/rss
        """,
        [f"3: feed: unknown type 'rs' (known: {TYPES}); did you mean 'rss'?"],
    ),
    (
        "type-is-a-list",
        """
        sources:
          - id: feed
            type: [rss]
        """,
        [f"3: feed: 'type' must be one of: {TYPES}; found a list"],
    ),
    (
        "unknown-key-typo",  # one mistake, one message: not also "missing 'url'"
        """
        sources:
          - id: feed
            type: rss
            urll: https://example.org/rss
        """,
        ["4: feed: unknown key 'urll'; did you mean 'url'?"],
    ),
    (
        "bad-voice",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            voice: media
        """,
        ["5: feed: 'voice': input should be 'residents' or 'editorial', found \"media\""],
    ),
    (
        "unknown-key-unlike-any",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            colour: red
        """,
        [f"5: feed: unknown key 'colour' (allowed: {SOURCE_KEYS})"],
    ),
    (
        "secret-in-a-source",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            token: 0123456789abcdef
        """,
        [f"5: feed: unknown key 'token': {SECRETS}"],
    ),
    (
        "secret-in-defaults",
        """
        defaults:
          api_token: 0123456789abcdef
        sources: []
        """,
        [f"2: defaults: unknown key 'api_token': {SECRETS}"],
    ),
    (
        "every-in-words",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            schedule:
              every: 15 minutes
        """,
        [f"6: feed: 'schedule.every': '15 minutes' is not a duration: {DURATION_HELP}"],
    ),
    (
        "every-without-unit",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            schedule: {every: 15}
        """,
        ["5: feed: 'schedule.every': 15 has no unit: write 15s, 15m or 15h"],
    ),
    (
        "every-and-cron",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            schedule:
              every: 15m
              cron: "*/10 * * * *"
        """,
        ["5: feed: 'schedule': give either 'every' or 'cron', not both"],
    ),
    (
        "neither-every-nor-cron",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            schedule: {jitter: 30s}
        """,
        [
            "5: feed: 'schedule': missing 'every' (e.g. every: 15m) "
            "or 'cron' (e.g. cron: '*/10 * * * *')"
        ],
    ),
    (
        "cron-out-of-range",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            schedule:
              cron: "61 * * * *"
        """,
        [
            "6: feed: 'schedule.cron': bad cron expression '61 * * * *': "
            "minute '61' is out of range (0-59)"
        ],
    ),
    (
        "cron-fields",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            schedule: {cron: "*/10 * *"}
        """,
        [
            "5: feed: 'schedule.cron': bad cron expression '*/10 * *': it needs 5 fields "
            "(minute hour day-of-month month day-of-week), found 3"
        ],
    ),
    (
        "cron-day-numbers",  # crontab's 1-5 is Mon-Fri; the scheduler would read Tue-Sat
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            schedule: {cron: "0 9 * * 1-5"}
        """,
        [
            "5: feed: 'schedule.cron': bad cron expression '0 9 * * 1-5': write the day of week "
            "as names, e.g. 'mon-fri' for '1-5'; day numbers mean different days to crontab "
            "(0 = Sunday) and the scheduler (0 = Monday)"
        ],
    ),
    (
        "schedule-not-a-mapping",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            schedule: 15m
        """,
        [
            "5: feed: 'schedule': expected a mapping such as {every: 15m} or "
            "{cron: '*/10 * * * *'}, found '15m'; did you mean {every: 15m}?"
        ],
    ),
    (
        "schedule-typo",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            schedule:
              evry: 15m
        """,
        ["6: feed: unknown key 'evry' in 'schedule'; did you mean 'every'?"],
    ),
    (
        "missing-url",  # a missing field points at the source's first line
        """
        sources:
          - id: feed
            type: rss
            municipality: Тверской район
        """,
        ["2: feed: missing required field 'url'"],
    ),
    (
        "missing-type",
        """
        sources:
          - id: a
            type: rss
            url: https://example.org/a

          - id: feed
            url: https://example.org/rss
        """,
        [f"6: feed: missing required field 'type' (one of: {TYPES})"],
    ),
    (
        "missing-id",
        """
        sources:
          - type: rss
            url: https://example.org/rss
        """,
        ["2: sources[0]: missing required field 'id'"],
    ),
    (
        "max-pages-not-a-number",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            max_pages: many
        """,
        ["5: feed: 'max_pages' must be a whole number, found \"many\""],
    ),
    (
        "max-pages-too-many",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            max_pages: 1000
        """,
        ["5: feed: 'max_pages' must be at most 100, found the number 1000"],
    ),
    (
        "url-without-a-host",
        """
        sources:
          - id: feed
            type: rss
            url: 'http://'
        """,
        ["4: feed: url has no host name after http:// (got 'http://')"],
    ),
    (
        "url-with-a-space",
        """
        sources:
          - id: page
            type: html
            url: "https://adm.example.ru/новости района"
            item: .news
        """,
        [
            "4: page: url must not contain spaces or control characters "
            "(got 'https://adm.example.ru/новости района'); write a space in an address as %20"
        ],
    ),
    (
        "url-with-credentials",  # the password is never repeated
        """
        defaults:
          vk_api_url: https://robot:Vk-PASS-1@vk-proxy.example.ru
          contact: https://ops:Contact-PASS-2@cur.example.ru/glas
        sources:
          - id: feed
            type: rss
            url: http://user:Feed-PASS-3@feeds.example.ru/rss
          - id: tg
            type: telegram_web
            channel: gorod_news
            base_url: https://u:Base-PASS-4@tme-mirror.example.ru
          - id: wall
            type: vk_wall
            owner: https://u:Owner-PASS-5@vk.com/gorod
        """,
        [
            f"2: defaults: vk_api_url: {CREDENTIALS}",
            f"3: defaults: contact: {CREDENTIALS}",
            f"7: feed: url: {CREDENTIALS}",
            f"11: tg: base_url: {CREDENTIALS}",
            f"14: wall: owner: {CREDENTIALS}",
        ],
    ),
    (
        "contact-neither-address-nor-e-mail",
        """
        defaults:
          contact: Отдел ЦУР, каб. 5
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
        """,
        [
            "2: defaults: contact must be an http(s) address or an e-mail address "
            "(got 'Отдел ЦУР, каб. 5')"
        ],
    ),
    (
        "enabled-not-a-boolean",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            enabled: maybe
        """,
        ["5: feed: 'enabled' must be true or false, found \"maybe\""],
    ),
    (
        "municipality-a-number",
        """
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            municipality: 5
        """,
        [
            "5: feed: 'municipality' must be text, found the number 5: put it in quotes "
            '(municipality: "5")'
        ],
    ),
    (
        "sources-a-mapping",
        """
        sources:
          feed:
            type: rss
        """,
        ["1: sources: expected a list of sources ('- id: …' items), found a mapping"],
    ),
    (
        "source-a-string",
        """
        sources:
          - https://example.org/rss
        """,
        [
            "2: sources[0]: expected a source (a mapping with 'id', 'type' and its options), "
            'found the text "https://example.org/rss"'
        ],
    ),
    (
        "bad-id-characters",
        """
        sources:
          - id: city news!
            type: rss
            url: https://example.org/rss
        """,
        [f"2: city news!: 'id' must be {ID_RULE}; found \"city news!\""],
    ),
    (
        "id-a-number",
        """
        sources:
          - id: 123
            type: rss
            url: https://example.org/rss
        """,
        ["2: sources[0]: 'id' must be text, found the number 123: put it in quotes (id: \"123\")"],
    ),
    (
        "unknown-top-level-key",
        """
        default:
          timeout: 5
        sources: []
        """,
        ["1: file: unknown key 'default'; did you mean 'defaults'?"],
    ),
    (
        "anchor-outside-x-key",
        """
        common: &common
          type: rss
        sources: []
        """,
        [
            f"1: file: unknown key 'common' (allowed: {ALLOWED}, "
            "and keys starting with 'x-' to hold YAML anchors)"
        ],
    ),
    (
        "unknown-time-zone",
        """
        defaults:
          timezone: Europe/Mosco
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            timezone: Mars/Olympus
        """,
        [
            "2: defaults: 'timezone': unknown time zone 'Europe/Mosco' (use an IANA name like "
            "Europe/Moscow); did you mean 'Europe/Moscow'?",
            "7: feed: 'timezone': unknown time zone 'Mars/Olympus' (use an IANA name like "
            "Europe/Moscow)",
        ],
    ),
    (
        "empty-file",
        "",
        [
            "1: file: the file is empty: expected a 'sources:' list "
            "(see `glas schema` and the README)"
        ],
    ),
    (
        "only-comments",
        """
        # sources:
        #   - id: feed
        """,
        [
            "1: file: the file has only comments: expected a 'sources:' list "
            "(see `glas schema` and the README)"
        ],
    ),
    (
        "no-sources-key",
        """
        defaults:
          timeout: 5
        """,
        ["1: file: no 'sources:' list: add at least one source (see `glas schema` and the README)"],
    ),
    (
        "empty-sources",
        """
        defaults:
          timeout: 5
        sources:
        """,
        ["3: sources: the list is empty: add at least one source"],
    ),
    (
        "a-list-at-the-top",
        """
        - id: feed
          type: rss
        """,
        ["1: file: expected 'sources:' and other keys at the top, found a list"],
    ),
    (
        "url-without-http",
        """
        sources:
          - id: feed
            type: rss
            url: ftp://example.org/rss
        """,
        ["4: feed: url must start with http:// or https:// (got 'ftp://example.org/rss')"],
    ),
    (
        "url-value-on-its-own-line",  # a bad value is reported at the value's line
        """
        sources:
          - id: feed
            type: rss
            url:
              example.org/rss
        """,
        ["5: feed: url must start with http:// or https:// (got 'example.org/rss')"],
    ),
    (
        "url-empty",
        """
        sources:
          - id: feed
            type: rss
            url:
        """,
        ["4: feed: 'url' is empty: expected text"],
    ),
    (
        "timeouts-not-positive",
        """
        defaults:
          timeout: -1
        sources:
          - id: feed
            type: rss
            url: https://example.org/rss
            timeout: 0
        """,
        [
            "2: defaults: 'timeout' must be greater than 0, found the number -1",
            "7: feed: 'timeout' must be greater than 0, found the number 0",
        ],
    ),
    (
        "official-accounts",
        """
        official_accounts:
          vkk: [1]
          rss: press@example.org
          telegram: [[1]]
        sources: []
        """,
        [
            "2: official_accounts: unknown key 'vkk'; did you mean 'vk'?",
            "3: official_accounts: 'rss' must be a list, found \"press@example.org\"",
            "4: official_accounts: 'telegram[0]' must be a whole number or text, found a list",
        ],
    ),
    (
        "merge-of-a-scalar",
        """
        sources:
          - <<: 5
            id: feed
            type: rss
            url: https://example.org/rss
        """,
        ["2: feed: '<<' merges a mapping: write '<<: *name' where '&name' marks a mapping"],
    ),
    (
        "typo-inside-a-merged-anchor",  # reported at the anchor's line, once per source using it
        """
        x-feed: &feed
          type: rss
          urll: https://example.org/rss
        sources:
          - {<<: *feed, id: a}
          - {<<: *feed, id: b}
        """,
        [
            "3: a: unknown key 'urll'; did you mean 'url'?",
            "3: b: unknown key 'urll'; did you mean 'url'?",
        ],
    ),
    (
        "unknown-yaml-tag",
        """
        sources:
          - id: feed
            type: rss
            url: !secret feed_url
        """,
        ["4: feed: unknown YAML tag '!secret': remove it or quote the value"],
    ),
    (
        "several-errors-sorted-by-line",
        """
        sources:
          - id: b
            type: rss
            url: https://example.org/b
            enabled: maybe
          - id: a
            type: rsss
        defaults:
          timeout: 0
        colour: red
        """,
        [
            "5: b: 'enabled' must be true or false, found \"maybe\"",
            f"7: a: unknown type 'rsss' (known: {TYPES}); did you mean 'rss'?",
            "9: defaults: 'timeout' must be greater than 0, found the number 0",
            f"10: file: unknown key 'colour' (allowed: {ALLOWED}, "
            "and keys starting with 'x-' to hold YAML anchors)",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(text, expected, id=name) for name, text, expected in MALFORMED],
)
def test_malformed_file_gives_exact_messages(
    write_sources: Callable, text: str, expected: list[str]
) -> None:
    path = write_sources(text)
    assert problems(path) == [f"{path}:{line}" for line in expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(text, expected, id=name) for name, text, expected in MALFORMED],
)
def test_glas_check_prints_them_and_exits_2(
    write_sources: Callable, capsys: pytest.CaptureFixture[str], text: str, expected: list[str]
) -> None:
    """The command's own entry point (in process): the same lines on stderr, status 2."""
    path = write_sources(text)
    assert main(["check", "--sources", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[: len(expected)] == [f"{path}:{line}" for line in expected]
    assert "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("text", [pytest.param(t, id=name) for name, t, _ in MALFORMED])
def test_every_message_names_the_file_and_a_line_in_it(write_sources: Callable, text: str) -> None:
    path = write_sources(text, name="my sources.yaml")  # a space in the name must not confuse
    line_count = max(1, len(path.read_text(encoding="utf-8").splitlines()))
    for message in problems(path):
        assert message.startswith(f"{path}:"), message
        match = re.match(r"(\d+): ([^:]+): \S", message.removeprefix(f"{path}:"))
        assert match, f"not FILE:LINE: LABEL: message: {message}"
        assert 1 <= int(match.group(1)) <= line_count, message
        assert "Input should" not in message and "pydantic" not in message, message


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    text = "sources:\n  - id: feed\n    municipality: Тверской район\n    type: rss\n"
    path.write_bytes(text.encode("cp1251"))
    assert problems(path) == [
        f"{path}:3: file: not UTF-8 text (byte 0xd2); save the file as UTF-8 "
        "(it looks like Windows-1251)"
    ]


def test_control_character_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - id: feed\x00\n", encoding="utf-8")
    assert problems(path) == [
        f"{path}:2: YAML syntax: a control character (U+0000) that YAML does not allow"
    ]


# -- files made to exhaust memory or recursion: refused at once, at a line -------------------
def test_billion_laughs_is_refused_before_expanding(tmp_path: Path) -> None:
    """Ten anchors, each a list of ten aliases of the one before: 10¹⁰ nodes if expanded."""
    lines = ['x-0: &l0 ["ха", "ха", "ха", "ха", "ха", "ха", "ха", "ха", "ха", "ха"]']
    lines += [f"x-{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 10)]
    path = tmp_path / "sources.yaml"
    path.write_text("\n".join([*lines, "sources: *l9"]) + "\n", encoding="utf-8")
    started = time.monotonic()
    (message,) = problems(path)
    assert time.monotonic() - started < 5
    found = re.fullmatch(
        re.escape(f"{path}:4: YAML: too many alias expansions: the aliases up to here stand for ")
        + r"([\d,]+)"
        + re.escape(
            " nodes; at most 10,000 (or 10 times the nodes written in the file) are allowed"
        ),
        message,
    )
    assert found, message
    assert int(found.group(1).replace(",", "")) > 10_000


def test_twenty_thousand_nested_brackets(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources: " + "[" * 20_000 + "]" * 20_000 + "\n", encoding="utf-8")
    started = time.monotonic()
    assert problems(path) == [
        f"{path}:1: YAML: nested more than 100 levels (mappings and lists inside each other)"
    ]
    assert time.monotonic() - started < 5


def test_deep_indentation_names_the_line_of_level_101(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("".join(f"{'  ' * n}k{n}:\n" for n in range(300)) + "sources: []\n", "utf-8")
    assert problems(path) == [
        f"{path}:101: YAML: nested more than 100 levels (mappings and lists inside each other)"
    ]


@pytest.mark.parametrize(("outer", "refused"), [(40, False), (41, True)])
def test_nesting_counts_what_an_alias_brings(tmp_path: Path, outer: int, refused: bool) -> None:
    """An anchor of 60 levels used inside 40 (the file's mapping and 39 lists) makes 100, the
    limit; one level more is refused at the alias."""
    inner = "[" * 60 + "]" * 60
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"x-deep: &deep {inner}\nx-use: {'[' * (outer - 1)}*deep{']' * (outer - 1)}\n"
        "sources:\n  - {id: feed, type: rss, url: https://example.org/rss}\n",
        encoding="utf-8",
    )
    if refused:
        assert problems(path) == [
            f"{path}:2: YAML: nested more than 100 levels (mappings and lists inside each other)"
        ]
    else:
        assert [s.id for s in load_config(path).sources] == ["feed"]


def test_long_chain_of_merges_is_refused_without_recursion(tmp_path: Path) -> None:
    lines = ["x-0: &m0 {timeout: 5}"]
    lines += [f"x-{n}: &m{n} {{<<: *m{n - 1}}}" for n in range(1, 3000)]
    path = tmp_path / "sources.yaml"
    path.write_text("\n".join([*lines, "sources: []"]) + "\n", encoding="utf-8")
    assert problems(path) == [
        f"{path}:100: YAML: nested more than 100 levels (mappings and lists inside each other)"
    ]


def test_a_shared_anchor_in_thousands_of_sources_loads(tmp_path: Path) -> None:
    """The alias budget grows with the file: 3,000 sources × a 6-key anchor expand to
    39,000 nodes, over the 10,000 floor and under ten times what the file writes."""
    common = "x-common: &common {type: rss, timeout: 10, enabled: true, note: района, "
    common += "municipality: Тверь, max_pages: 1}"
    sources = [f"  - {{<<: *common, id: f{n}, url: 'https://e.ru/{n}'}}" for n in range(3000)]
    path = tmp_path / "sources.yaml"
    path.write_text("\n".join([common, "sources:", *sources]) + "\n", encoding="utf-8")
    config = load_config(path)
    assert len(config.sources) == 3000
    assert {(s.type, s.timeout, s.municipality) for s in config.sources} == {("rss", 10, "Тверь")}


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert problems(path) == [f"{path}: cannot read the file: No such file or directory"]


def test_a_utf8_bom_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_bytes(b"\xef\xbb\xbfsources:\n  - {id: feed, type: rss, url: 'https://e.org/'}\n")
    assert [s.id for s in load_config(path).sources] == ["feed"]


def test_the_broken_fixture_reports_everything_at_once() -> None:
    path = SOURCES / "broken.yaml"
    messages = problems(path)
    assert [int(m.removeprefix(f"{path}:").split(":")[0]) for m in messages] == [
        3,
        4,
        9,
        12,
        17,
        18,
        20,
        23,
    ]
    assert messages[6] == f"{path}:20: city-news: duplicate id (first defined at line 7)"
    assert not any("0123456789abcdef" in m for m in messages)  # a secret is never echoed


# -- durations ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15m", 900),
        ("1h30m", 5400),
        ("90s", 90),
        ("2d", 172800),
        ("1w", 604800),
        ("250ms", 0.25),
        ("1.5h", 5400),
        (" 1h 30m ", 5400),
        ("1H", 3600),
        ("0s", 0),
        ("45", 45),  # a bare number is seconds (sources.yaml refuses it: see every-without-unit)
        (90, 90),
        (2.5, 2.5),
        (timedelta(minutes=3), 180),
    ],
)
def test_parse_duration(text: str | int | float | timedelta, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "expected a duration"),
        ("15 minutes", "'15 minutes' is not a duration: use a number and a unit"),
        ("m", "'m' is not a duration"),
        ("15x", "'15x' is not a duration"),
        ("1h-30m", "'1h-30m' is not a duration"),
        ("-5m", "'-5m' is not a duration"),
        (-5, "must not be negative"),
        (float("nan"), "nan is not a duration"),
        (float("inf"), "too long"),
        ("99999999999d", "too long"),
        (True, "expected a duration"),
        (None, "expected a duration"),
        ([5], "expected a duration"),
    ],
)
def test_parse_duration_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(value)  # type: ignore[arg-type]


# -- sites: politeness per site, for every source of a process -----------------------------------
def test_sites_set_concurrency_delay_and_collections_per_host(write_sources: Callable) -> None:
    path = write_sources("""
        defaults: {per_site: 3}
        sites:
          t.me: {concurrency: 4, delay: 250ms, collections: 8}
          Gorod.Example.RU: {delay: 2s}
        sources:
          - {id: chan, type: telegram_web, channel: gorod_news}
          - {id: news, type: rss, url: "https://gorod.example.ru/rss"}
          - {id: other, type: rss, url: "https://other.example.ru/rss"}
          - {id: wall, type: vk_wall, owner: gorod}
    """)
    config = load_config(path)
    assert config.sites_settings() == {
        "t.me": {"concurrency": 4, "delay": 0.25},
        "gorod.example.ru": {"delay": 2.0},
    }
    chan, news, other, wall = config.sources
    assert [s.site() for s in config.sources] == [
        "t.me",
        "gorod.example.ru",
        "other.example.ru",
        "vk",
    ]
    assert [config.collections_at_once(s) for s in (chan, news, other, wall)] == [8, 3, 3, 25]


def test_sites_mistakes_name_their_line(write_sources: Callable) -> None:
    path = write_sources("""
        sites:
          https://t.me/: {delay: 1s}
          vk.com: {concurency: 2}
          ok.ru: {collections: 0}
        sources:
          - {id: news, type: rss, url: "https://gorod.example.ru/rss"}
    """)
    assert problems(path) == [
        f"{path}:2: sites: 'https://t.me/' is not a host name (write it as in the address, "
        "without http:// or a path, e.g. t.me)",
        f"{path}:3: sites: unknown key 'concurency'; did you mean 'concurrency'?",
        f"{path}:4: sites: 'collections' must be at least 1, found the number 0",
    ]


def test_sizes_need_a_unit(write_sources: Callable) -> None:
    path = write_sources("""
        defaults: {max_response_size: 20, worker_memory: 1GB}
        sources:
          - {id: news, type: rss, url: "https://gorod.example.ru/rss", max_response_size: 2MiB}
    """)
    assert problems(path) == [
        f"{path}:1: defaults: 'max_response_size': 20 has no unit: write 20MB or 20KB"
    ]
    path.write_text(path.read_text().replace("max_response_size: 20,", "max_response_size: 5MB,"))
    config = load_config(path)
    assert config.defaults.max_response_size == 5_000_000
    assert config.defaults.worker_memory == 10**9
    assert config.sources[0].max_response_size == 2 * 2**20

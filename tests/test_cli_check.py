"""`glas check` and `glas schema`, run as the real command (a subprocess in a temporary dir)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from crawler.config import ConfigError, load_config
from tests.conftest import FIXTURES, REPO, glas_env

DEMO = REPO / "examples" / "demo-sources.yaml"
BROKEN = FIXTURES / "sources" / "broken.yaml"
FULL = FIXTURES / "sources" / "full.yaml"

pytestmark = pytest.mark.slow


def test_check_lists_the_sources(glas: Callable, tmp_path: Path) -> None:
    shutil.copy(DEMO, tmp_path / "demo.yaml")
    result = glas("check", "--sources", "demo.yaml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for source_id in ("mos-news", "tverskoy-news", "tverskoy-council"):
        assert any(line.startswith(f"{source_id} ") for line in lines), result.stdout
    assert "cron */30 * * * *" in result.stdout
    assert "every 15m" in result.stdout
    assert lines[-1] == "demo.yaml: ok, 11 sources (11 enabled)"
    assert result.stderr == ""


def test_check_reports_every_error_and_exits_2(glas: Callable) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(BROKEN)
    expected = caught.value.messages
    assert len(expected) == 8

    result = glas("--sources", str(BROKEN), "check")  # the option before the subcommand
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[: len(expected)] == expected  # every problem, in line order, one line each
    assert all(line.startswith(f"{BROKEN}:") for line in lines[: len(expected)])
    assert "0123456789abcdef" not in result.stderr  # the secret in the file is never echoed


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(("check", "--sources", "full.yaml"), {}, id="option-after"),
        pytest.param(("--sources", "full.yaml", "check"), {}, id="option-before"),
        pytest.param(("check",), {"GLAS_SOURCES": "full.yaml"}, id="env"),
        pytest.param(
            ("check", "--sources", "full.yaml"),
            {"GLAS_SOURCES": "missing.yaml"},
            id="option-beats-env",
        ),
        pytest.param(("check",), {}, id="default-sources-yaml"),
    ],
)
def test_where_the_sources_file_comes_from(
    glas: Callable, tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    shutil.copy(FULL, tmp_path / "full.yaml")
    shutil.copy(FULL, tmp_path / "sources.yaml")
    result = glas(*args, env=glas_env(tmp_path, **env))
    assert result.returncode == 0, result.stderr
    name = "sources.yaml" if not env and "--sources" not in args else "full.yaml"
    assert result.stdout.splitlines()[-1] == f"{name}: ok, 4 sources (3 enabled)"
    assert "old-feed" in result.stdout


def _missing(glas: Callable) -> list[str]:
    result = glas("check", "--sources", "nowhere.yaml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()


def test_missing_file_is_one_clear_line(glas: Callable) -> None:
    assert _missing(glas) == [
        "glas: nowhere.yaml: no such file (give --sources PATH or set GLAS_SOURCES)"
    ]


def test_a_directory_is_not_a_sources_file(glas: Callable, tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    for args, env in [(("--sources", "conf"), {}), ((), {"GLAS_SOURCES": "conf"})]:
        result = glas("check", *args, env=glas_env(tmp_path, **env))
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            "glas: conf: is a directory, not a file (give --sources PATH)"
        ]


def test_a_password_in_an_address_is_never_printed(glas: Callable, tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text(
        "sources:\n"
        "  - id: feed\n"
        "    type: rss\n"
        "    url: http://harvester:S3cret-Pa55@feeds.example.ru/rss\n",
        encoding="utf-8",
    )
    result = glas("check")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith(
        "sources.yaml:4: feed: url: credentials in an address are not allowed"
    )
    assert "S3cret-Pa55" not in result.stderr + result.stdout
    assert "environment variable" in result.stderr


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def test_schema_is_json_and_describes_the_file(glas: Callable) -> None:
    result = glas("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False  # unknown top-level keys are errors
    assert schema["required"] == ["sources"]
    assert set(schema["properties"]) == {
        "defaults",
        "sources",
        "sites",
        "official_accounts",
        "dedupe",
        "flagging",
        "routing",
        "norms",
        "privacy",
        "alerts",
        "webhooks",
    }

    items = schema["properties"]["sources"]["items"]
    variants = [_resolve(schema, v) for v in items.get("oneOf") or items.get("anyOf") or [items]]
    types = {v["properties"]["type"].get("const") for v in variants}
    assert "rss" in types
    rss = next(v for v in variants if v["properties"]["type"].get("const") == "rss")
    assert rss["additionalProperties"] is False
    assert {"id", "type", "url"} <= set(rss["required"])
    assert {"url", "max_pages", "schedule", "enabled", "municipality"} <= set(rss["properties"])

    try:
        import jsonschema
    except ImportError:
        return  # not a dependency: the structure above is what editors rely on
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    for path in (DEMO, FULL):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert list(validator.iter_errors(data)) == [], path
    broken = yaml.safe_load(BROKEN.read_text(encoding="utf-8"))
    assert list(validator.iter_errors(broken))

"""Load and validate ``sources.yaml``: every error as ``file:line: source id: what is wrong``.

Each message is ``FILE:LINE: LABEL: what is wrong``. LABEL is the source's id (or
``sources[N]`` when it has no usable id), the section (``defaults``, ``official_accounts``,
``sources``), ``file`` for the file as a whole, or ``YAML syntax``. LINE is the line of the key
for unknown keys, of the value for bad values, and of the source's first line for missing
fields. Every problem is reported at once, sorted by line.
"""

from __future__ import annotations

import difflib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, ValidationError, create_model, field_validator

from crawler.model import Schedule, SourceConfig, Strict, check_timezone
from crawler.yamlfile import Path_, YamlDocument, YamlProblem, read_yaml
from spiders import source_types

__all__ = ["Config", "ConfigError", "check_timezone", "json_schema", "load_config"]

DEFAULT_USER_AGENT = "Glas/0.1 (harvester of a regional management centre; set defaults.user_agent)"
SECRET_WORDS = ("token", "password", "passwd", "api_hash", "secret", "session", "access_key")
TOP_LEVEL_KEYS = ("defaults", "sources", "official_accounts")
EXTENSION_PREFIX = "x-"  # top-level keys ignored by Glas: a place for YAML anchors
INHERITED = ("schedule", "timezone", "timeout")  # what a source takes from defaults
ID_RULE = (
    "letters, digits, '-', '_' and '.' only, starting with a letter or digit, at most 80 characters"
)
HELP = "see `glas schema` and the README"

# pydantic error types that mean "wrong kind of value" → what was expected.
_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


class ConfigError(Exception):
    """sources.yaml is invalid; ``messages`` holds every problem, one line each."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


class Defaults(Strict):
    """Values every source inherits unless it sets its own."""

    schedule: Schedule = Field(
        default_factory=lambda: Schedule(every=timedelta(hours=1)),
        description="Default schedule of every source (every: 1h unless set).",
    )
    timezone: str = Field("Europe/Moscow", description="IANA zone for times without an offset.")
    timeout: float = Field(30.0, gt=0, description="Seconds before a request is abandoned.")
    user_agent: str = Field(DEFAULT_USER_AGENT, description="User-Agent header of web requests.")
    batch_size: int = Field(
        200, ge=1, le=10000, description="Posts stored (and committed) per transaction."
    )
    retries: int = Field(2, ge=0, le=10, description="Retries of a failed request (5xx, timeout).")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)


class OfficialAccounts(Strict):
    """Accounts whose replies are official answers, per platform (ids or screen names)."""

    vk: list[int | str] = Field(default_factory=list)
    telegram: list[int | str] = Field(default_factory=list)
    web: list[str] = Field(default_factory=list)
    rss: list[str] = Field(default_factory=list)


class Config:
    """A validated sources.yaml."""

    def __init__(
        self,
        path: Path,
        defaults: Defaults,
        sources: list[SourceConfig],
        official_accounts: OfficialAccounts,
    ) -> None:
        self.path = path
        self.defaults = defaults
        self.sources = sources
        self.official_accounts = official_accounts

    def source(self, source_id: str) -> SourceConfig:
        """The source named ``source_id``; KeyError when there is none."""
        for source in self.sources:
            if source.id == source_id:
                return source
        raise KeyError(source_id)

    @property
    def enabled(self) -> list[SourceConfig]:
        return [s for s in self.sources if s.enabled]


def load_config(path: str | Path) -> Config:
    """Read and validate ``path``; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    name = str(path)
    try:
        doc = read_yaml(path)
    except YamlProblem as problem:
        if not problem.line:
            raise ConfigError([f"{name}: {problem.message}"]) from None
        raise ConfigError([f"{name}:{problem.line}: {problem.label}: {problem.message}"]) from None
    checker = _Checker(doc)
    config = checker.check(path)
    if checker.errors:
        ordered = sorted(dict.fromkeys(checker.errors), key=lambda e: e[0])  # stable: by line
        raise ConfigError(
            [f"{name}:{line}: {label}: {message}" for line, label, message in ordered]
        )
    assert config is not None
    return config


class _Checker:
    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.errors: list[tuple[int, str, str]] = []
        for problem in doc.problems:
            self.errors.append(
                (problem.line, problem.label or self.label(problem.path), problem.message)
            )

    # -- reporting --------------------------------------------------------------------------
    def error(self, path: Path_, label: str, message: str, *, at_value: bool = False) -> None:
        line = self.doc.value_line_of(path) if at_value else self.doc.line_of(path)
        self.errors.append((line, label, message))

    def label(self, path: Path_) -> str:
        """The label of a problem at ``path``: source id, ``sources[N]``, section or file."""
        if not path:
            return "file"
        if path[0] == "sources" and len(path) > 1 and isinstance(path[1], int):
            return self.source_label(path[1])
        return str(path[0])

    def source_label(self, index: int) -> str:
        sources = self.doc.data.get("sources") if isinstance(self.doc.data, dict) else None
        entry = sources[index] if isinstance(sources, list) and index < len(sources) else None
        ident = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(ident, str) and ident.strip():
            return ident.strip()
        return f"sources[{index}]"

    # -- the file ---------------------------------------------------------------------------
    def check(self, path: Path) -> Config | None:
        data = self.doc.data
        if data is None:
            what = "has only comments" if self.doc.comments_only else "is empty"
            self.error((), "file", f"the file {what}: expected a 'sources:' list ({HELP})")
            return None
        if not isinstance(data, dict):
            self.error(
                (), "file", f"expected 'sources:' and other keys at the top, found {_kind(data)}"
            )
            return None
        for key in data:
            if key in TOP_LEVEL_KEYS or str(key).startswith(EXTENSION_PREFIX):
                continue
            message = _unknown_key(key, TOP_LEVEL_KEYS)
            if "did you mean" not in message and "secrets" not in message:
                message = (
                    f"unknown key '{key}' (allowed: {', '.join(TOP_LEVEL_KEYS)}, "
                    f"and keys starting with '{EXTENSION_PREFIX}' to hold YAML anchors)"
                )
            self.error((key,), "file", message)
        defaults = self.section(data, "defaults", Defaults) or Defaults()
        officials = self.section(data, "official_accounts", OfficialAccounts)
        officials = officials or OfficialAccounts()
        if "sources" not in data:
            self.error((), "file", f"no 'sources:' list: add at least one source ({HELP})")
            return None
        raw_sources = data["sources"]
        if raw_sources is None:
            self.error(("sources",), "sources", "the list is empty: add at least one source")
            return None
        if not isinstance(raw_sources, list):
            self.error(
                ("sources",),
                "sources",
                f"expected a list of sources ('- id: …' items), found {_kind(raw_sources)}",
            )
            return None
        sources: list[SourceConfig] = []
        first_line: dict[str, int] = {}
        for index, entry in enumerate(raw_sources):
            duplicate = False
            ident = entry.get("id") if isinstance(entry, dict) else None
            if isinstance(ident, str) and ident.strip():
                where = ("sources", index, "id")
                if ident.strip() in first_line:
                    duplicate = True
                    self.error(
                        where,
                        ident.strip(),
                        f"duplicate id (first defined at line {first_line[ident.strip()]})",
                        at_value=True,
                    )
                else:
                    first_line[ident.strip()] = self.doc.value_line_of(where)
            source = self.source(index, entry, defaults)
            if source is not None and not duplicate:
                sources.append(source)
        return Config(path, defaults, sources, officials)

    def section(self, data: dict, key: str, model: type[Strict]) -> Any:
        value = data.get(key)
        if value is None or self.doc.is_broken((key,)):
            return None
        if not isinstance(value, dict):
            self.error((key,), key, f"expected a mapping (key: value lines), found {_kind(value)}")
            return None
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            self.report(exc, (key,), key, model)
            return None

    # -- one source -------------------------------------------------------------------------
    def source(self, index: int, entry: Any, defaults: Defaults) -> SourceConfig | None:
        path: Path_ = ("sources", index)
        label = self.source_label(index)
        if not isinstance(entry, dict):
            if not self.doc.is_broken(path):
                self.error(
                    path,
                    label,
                    f"expected a source (a mapping with 'id', 'type' and its options), "
                    f"found {_kind(entry)}",
                )
            return None
        types = source_types()
        kind = entry.get("type")
        if kind is None:
            if not self.doc.is_broken((*path, "type")):
                self.error(
                    path, label, f"missing required field 'type' (one of: {', '.join(types)})"
                )
            return None
        if not isinstance(kind, str):
            self.error(
                (*path, "type"),
                label,
                f"'type' must be one of: {', '.join(types)}; found {_kind(kind)}",
                at_value=True,
            )
            return None
        if kind.strip() not in types:
            self.error(
                (*path, "type"), label, _unknown_value("type", kind, list(types)), at_value=True
            )
            return None
        model = types[kind.strip()].options
        merged = {**entry, "type": kind.strip()}
        for key in INHERITED:
            if merged.get(key) is None and key in model.model_fields:
                merged[key] = getattr(defaults, key)
        try:
            return model.model_validate(merged)
        except ValidationError as exc:
            self.report(exc, path, label, model)
            return None

    def report(self, exc: ValidationError, base: Path_, label: str, model: type) -> None:
        """Turn pydantic's errors into one message per problem, each at its own line."""
        grouped: dict[tuple, list[dict[str, Any]]] = {}
        for err in exc.errors():
            raw = tuple(err["loc"])
            loc = tuple(part for part in raw[:-1] if not _is_union_tag(part))
            if raw and (err["type"] == "extra_forbidden" or not _is_union_tag(raw[-1])):
                loc += raw[-1:]
            grouped.setdefault(loc, []).append(err)
        # An unknown key that is a typo of a missing field ('urll' for 'url') is one mistake:
        # report the typo, not also the missing field.
        typo_of: set[tuple] = set()
        for loc, errs in grouped.items():
            if errs[0]["type"] == "extra_forbidden":
                close = _close_match(loc[-1], _known_keys(model, loc[:-1]))
                if close:
                    typo_of.add((*loc[:-1], close))
        for loc, errs in grouped.items():
            where = (*base, *loc)
            if self.doc.is_broken(where):
                continue  # the YAML problem there is already reported
            kind = errs[0]["type"]
            if kind == "extra_forbidden":
                prefix = _dotted(loc[:-1])
                message = _unknown_key(loc[-1], _known_keys(model, loc[:-1]), prefix=prefix)
                self.error(where, label, message)
            elif kind == "missing":
                if loc not in typo_of:
                    self.error(where, label, f"missing required field '{_dotted(loc)}'")
            elif all(err["type"] in _EXPECTED for err in errs):
                expected = " or ".join(dict.fromkeys(_EXPECTED[err["type"]] for err in errs))
                self.error(
                    where,
                    label,
                    _wrong_type(_dotted(loc), expected, errs[0]["input"]),
                    **_at(where, self.doc),
                )
            else:
                for err in errs:
                    if err["type"] not in _EXPECTED:
                        self.error(where, label, _message(loc, err), **_at(where, self.doc))


def _at(path: Path_, doc: YamlDocument) -> dict[str, bool]:
    """Point at the value when it is a scalar (it may sit on its own line), else at the key."""
    return {"at_value": tuple(path) in doc.value_lines}


def _message(loc: tuple, err: dict[str, Any]) -> str:
    field = _dotted(loc)
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    name = f"'{field}'" if field else "this"
    if kind == "value_error":
        text = str(err["msg"]).removeprefix("Value error, ")
        if not field or text.startswith(f"{loc[-1]} "):  # the message names the field itself
            return text
        return f"'{field}': {text}"
    limits = {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in ctx.items()}
    if kind == "greater_than":
        return f"{name} must be greater than {limits.get('gt')}, found {_shown(value)}"
    if kind == "greater_than_equal":
        return f"{name} must be at least {limits.get('ge')}, found {_shown(value)}"
    if kind == "less_than":
        return f"{name} must be less than {limits.get('lt')}, found {_shown(value)}"
    if kind == "less_than_equal":
        return f"{name} must be at most {limits.get('le')}, found {_shown(value)}"
    if kind == "string_pattern_mismatch":
        if value == "":
            return f"{name} is empty"
        if loc and loc[-1] == "id":
            return f"'id' must be {ID_RULE}; found {_shown(value)}"
        return f"{name} must match {ctx.get('pattern')}, found {_shown(value)}"
    if kind == "string_too_long":
        return f"{name} is too long (at most {ctx.get('max_length')} characters)"
    if kind == "string_too_short":
        return f"{name} is empty"
    text = str(err["msg"])
    return f"{name}: {text[:1].lower()}{text[1:]}, found {_shown(value)}"


def _wrong_type(field: str, expected: str, value: Any) -> str:
    if value is None:
        return f"'{field}' is empty: expected {expected}"
    message = f"'{field}' must be {expected}, found {_shown(value)}"
    if expected == "text" and isinstance(value, int | float | bool | date):
        message += f': put it in quotes ({field.rsplit(".", 1)[-1]}: "{_plain(value)}")'
    return message


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    return _kind(value)


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _is_union_tag(part: Any) -> bool:
    """Whether a part of an error's location names a union member or validator, not a field
    (field names are identifiers; pydantic's tags are like 'int', 'constrained-str')."""
    return isinstance(part, str) and (
        not part.isidentifier() or part in ("int", "str", "float", "bool", "list", "dict")
    )


def _known_keys(model: type, loc: tuple) -> list[str]:
    parent = _model_at(model, loc)
    return list(parent.model_fields) if parent else []


def _model_at(model: type, loc: tuple) -> type | None:
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        annotation = fields[part].annotation
        args = [a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)]
        found = next((a for a in [annotation, *args] if hasattr(a, "model_fields")), None)
        if found is None:
            return None
        model = found
    return model


def _close_match(key: Any, known: list[str] | tuple[str, ...]) -> str | None:
    words = [str(k) for k in known]
    lowered = {w.lower(): w for w in words}
    if str(key).lower() in lowered:
        return lowered[str(key).lower()]
    close = difflib.get_close_matches(str(key), words, n=1)
    return close[0] if close else None


def _looks_secret(key: Any) -> bool:
    text = str(key).lower()
    return not text.endswith("_env") and any(word in text for word in SECRET_WORDS)


def _unknown_key(key: Any, known: list[str] | tuple[str, ...], prefix: str = "") -> str:
    where = f" in '{prefix}'" if prefix else ""
    message = f"unknown key '{key}'{where}"
    if _looks_secret(key):
        env_keys = [k for k in known if str(k).endswith("_env")]
        if env_keys:
            return (
                f"{message}: secrets never go in sources.yaml; put it in an environment variable "
                f"and name the variable here ({env_keys[0]}: VARIABLE_NAME)"
            )
        return (
            f"{message}: secrets never go in sources.yaml; keep them in environment variables "
            "(a source type that needs a token has a key naming its variable, "
            "e.g. token_env: VK_TOKEN)"
        )
    close = _close_match(key, known)
    if close:
        return f"{message}; did you mean '{close}'?"
    if known:
        return f"{message} (allowed: {', '.join(str(k) for k in known)})"
    return message


def _unknown_value(field: str, value: Any, known: list[str]) -> str:
    message = f"unknown {field} '{value}' (known: {', '.join(known)})"
    close = _close_match(value, known)
    return f"{message}; did you mean '{close}'?" if close else message


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the text {json.dumps(value, ensure_ascii=False)}"
    return _shown(value)


def json_schema() -> dict[str, Any]:
    """JSON Schema of sources.yaml, for editors (``glas schema``)."""
    models = [t.options for t in source_types().values()]
    entry = Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007
    file_model = create_model(
        "SourcesFile",
        __base__=Strict,
        defaults=(Defaults, Field(default_factory=Defaults)),
        sources=(list[entry], ...),  # type: ignore[valid-type]
        official_accounts=(OfficialAccounts, Field(default_factory=OfficialAccounts)),
    )
    schema = file_model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Glas sources.yaml"
    # Top-level x-… keys are free: a place for YAML anchors ('x-common: &common').
    schema["patternProperties"] = {f"^{EXTENSION_PREFIX}": {}}
    return schema

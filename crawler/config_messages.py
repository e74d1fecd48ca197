"""Words for sources.yaml problems: pydantic's errors and unknown keys, said plainly."""

from __future__ import annotations

import difflib
import json
from datetime import date
from typing import Any

SECRET_WORDS = ("token", "password", "passwd", "api_hash", "secret", "session", "access_key")
ID_RULE = (
    "letters, digits, '-', '_' and '.' only, starting with a letter or digit, at most 80 characters"
)
# pydantic error types that mean "wrong kind of value" → what was expected.
EXPECTED = {
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


def pydantic_message(loc: tuple, err: dict[str, Any]) -> str:
    field = dotted(loc)
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    name = f"'{field}'" if field else "this"
    if kind == "value_error":
        text = str(err["msg"]).removeprefix("Value error, ")
        if not field or text.startswith((f"{loc[-1]} ", f"{loc[-1]}: ")):  # names the field
            return text
        return f"'{field}': {text}"
    limits = {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in ctx.items()}
    if kind == "greater_than":
        return f"{name} must be greater than {limits.get('gt')}, found {shown_value(value)}"
    if kind == "greater_than_equal":
        return f"{name} must be at least {limits.get('ge')}, found {shown_value(value)}"
    if kind == "less_than":
        return f"{name} must be less than {limits.get('lt')}, found {shown_value(value)}"
    if kind == "less_than_equal":
        return f"{name} must be at most {limits.get('le')}, found {shown_value(value)}"
    if kind == "string_pattern_mismatch":
        if value == "":
            return f"{name} is empty"
        if loc and loc[-1] == "id":
            return f"'id' must be {ID_RULE}; found {shown_value(value)}"
        return f"{name} must match {ctx.get('pattern')}, found {shown_value(value)}"
    if kind == "string_too_long":
        return f"{name} is too long (at most {ctx.get('max_length')} characters)"
    if kind == "string_too_short":
        return f"{name} is empty"
    text = str(err["msg"])
    return f"{name}: {text[:1].lower()}{text[1:]}, found {shown_value(value)}"


def wrong_type_message(field: str, expected: str, value: Any) -> str:
    if value is None:
        return f"'{field}' is empty: expected {expected}"
    message = f"'{field}' must be {expected}, found {shown_value(value)}"
    if expected == "text" and isinstance(value, int | float | bool | date):
        message += f': put it in quotes ({field.rsplit(".", 1)[-1]}: "{_plain(value)}")'
    return message


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def shown_value(value: Any) -> str:
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
    return describe(value)


def dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def is_union_tag(part: Any) -> bool:
    """Whether a part of an error's location names a union member or validator, not a field
    (field names are identifiers; pydantic's tags are like 'int', 'constrained-str')."""
    return isinstance(part, str) and (
        not part.isidentifier() or part in ("int", "str", "float", "bool", "list", "dict")
    )


def known_keys(model: type, loc: tuple) -> list[str]:
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


def close_match(key: Any, known: list[str] | tuple[str, ...]) -> str | None:
    words = [str(k) for k in known]
    lowered = {w.lower(): w for w in words}
    if str(key).lower() in lowered:
        return lowered[str(key).lower()]
    close = difflib.get_close_matches(str(key), words, n=1)
    return close[0] if close else None


def _looks_secret(key: Any) -> bool:
    text = str(key).lower()
    return not text.endswith("_env") and any(word in text for word in SECRET_WORDS)


def unknown_key_message(key: Any, known: list[str] | tuple[str, ...], prefix: str = "") -> str:
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
    close = close_match(key, known)
    if close:
        return f"{message}; did you mean '{close}'?"
    if known:
        return f"{message} (allowed: {', '.join(str(k) for k in known)})"
    return message


def unknown_value_message(field: str, value: Any, known: list[str]) -> str:
    message = f"unknown {field} '{value}' (known: {', '.join(known)})"
    close = close_match(value, known)
    return f"{message}; did you mean '{close}'?" if close else message


def describe(value: Any) -> str:
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
    return shown_value(value)

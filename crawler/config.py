"""Load and validate ``sources.yaml``: every error as ``file:line: source id: what is wrong``.

Each message is ``FILE:LINE: LABEL: what is wrong``. LABEL is the source's id (or
``sources[N]`` when it has no usable id), the section (``defaults``, ``official_accounts``,
``dedupe``, ``routing``, ``norms``, ``privacy``, ``alerts``, ``webhooks``,
``sources``), ``file`` for the file as a whole,
``YAML syntax``, or ``YAML`` for a file over the limits of nesting and aliases. LINE is the
line of the key for unknown keys, of the value for bad values, and of the source's first line
for missing fields. Every problem is reported at once, sorted by line.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, ValidationError, ValidationInfo, create_model, field_validator

from crawler.alerts import AlertRule, Webhook
from crawler.config_messages import (
    EXPECTED,
    close_match,
    describe,
    dotted,
    is_union_tag,
    known_keys,
    pydantic_message,
    unknown_key_message,
    unknown_value_message,
    wrong_type_message,
)
from crawler.model import Schedule, SourceConfig, Strict
from crawler.norms import NormSettings
from crawler.pseudonymise import PrivacySettings
from crawler.routing import RoutingSettings, topic_labels
from crawler.secrets import watch_env
from crawler.validators import (
    Duration,
    Size,
    check_timezone,
    contact_address,
    duration_field,
    http_address,
    size_field,
)
from crawler.yamlfile import Path_, YamlDocument, YamlProblem, read_yaml
from dedupe.settings import DedupeSettings
from flagging.settings import FlaggingSettings
from spiders import source_types

__all__ = ["Config", "ConfigError", "check_timezone", "json_schema", "load_config"]

PRODUCT = "Glas/0.1"
DEFAULT_USER_AGENT = (
    f"{PRODUCT} (harvester of a regional management centre; operator: set defaults.contact)"
)
TOP_LEVEL_KEYS = (
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
)
EXTENSION_PREFIX = "x-"  # top-level keys ignored by Glas: a place for YAML anchors
# what a source takes from defaults
INHERITED = ("schedule", "timezone", "timeout", "run_limit")
HELP = "see `glas schema` and the README"


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
    user_agent: str | None = Field(
        None,
        description="User-Agent header of web requests; by default names Glas and `contact`.",
    )
    contact: str | None = Field(
        None,
        description="URL or e-mail where site owners can reach the operator; shown in the "
        "User-Agent.",
    )
    request_delay: Duration = Field(
        timedelta(seconds=1),
        description="Least delay between two requests to one website (AutoThrottle adapts "
        "upwards from it).",
    )
    retry_backoff: Duration = Field(
        timedelta(seconds=2),
        description="Wait before the first retry of a 5xx/429 answer, doubled on each further "
        "retry; a Retry-After header takes precedence.",
    )
    run_limit: Duration = Field(
        timedelta(minutes=30),
        description="Longest a source's collection may run; a longer one is stopped and "
        "reported as failed (the daemon and glas run).",
    )
    backoff_max: Duration = Field(
        timedelta(hours=6),
        description="Longest pause of a failing source: its schedule is stretched 2x per "
        "consecutive failure up to this; one success restores it.",
    )
    parallel: int = Field(
        64,
        ge=1,
        le=1000,
        description="Collections running at the same time in one harvester process (glas run, "
        "each daemon worker); at most per_site of them on one site.",
    )
    per_site: int = Field(
        4,
        ge=1,
        le=100,
        description="Collections of one site (web host, or the VK or Telegram account) "
        "running at the same time; the site's request limits hold whatever this is.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=32,
        description="Harvester processes of the daemon (each uses one core); a site's sources "
        "always go to one of them at a time.",
    )
    worker_memory: Size = Field(
        800 * 10**6,
        description="Resident memory above which the daemon recycles a worker between "
        "collections (e.g. 800MB).",
    )
    max_response_size: Size = Field(
        20 * 10**6,
        description="Largest answer a web request may bring, after unpacking (e.g. 20MB); a "
        "larger one fails its source.",
    )
    vk_api_url: str | None = Field(
        None,
        description="Base address of a VK-compatible API (default VK's own); GLAS_VK_API_URL "
        "in the environment overrides it.",
    )
    ok_api_url: str | None = Field(
        None,
        description="Base address of an OK-compatible API (default https://api.ok.ru; requests "
        "go to <base>/fb.do); GLAS_OK_API_URL in the environment overrides it.",
    )
    batch_size: int = Field(
        200, ge=1, le=10000, description="Posts stored (and committed) per transaction."
    )
    retries: int = Field(2, ge=0, le=10, description="Retries of a failed request (5xx, timeout).")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("request_delay", "retry_backoff", "run_limit", "backoff_max", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("worker_memory", "max_response_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return size_field(value)

    @field_validator("contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        return contact_address(value) if value is not None else None

    @field_validator("vk_api_url", "ok_api_url")
    @classmethod
    def _http(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            http_address(value, info.field_name or "address")
        return value.rstrip("/") if value else value

    @property
    def web_user_agent(self) -> str:
        """The User-Agent of web requests: ``user_agent`` as given, else Glas and the contact."""
        if self.user_agent:
            return self.user_agent
        if self.contact:
            return f"{PRODUCT} (+{self.contact}; harvester of a regional management centre)"
        return DEFAULT_USER_AGENT


class SiteSettings(Strict):
    """Politeness towards one site, over every source of a process that reads it."""

    concurrency: int | None = Field(
        None, ge=1, le=32, description="Requests in flight to the site at once (default 2)."
    )
    delay: Duration | None = Field(
        None,
        description="Least pause between two requests to the site (default defaults."
        "request_delay).",
    )
    collections: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Collections of the site's sources running at once (default "
        "defaults.per_site; VK 25, so its calls share execute requests).",
    )

    @field_validator("delay", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)


_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class OfficialAccounts(Strict):
    """Accounts whose replies are official answers, per platform (ids or screen names)."""

    vk: list[int | str] = Field(default_factory=list)
    ok: list[int | str] = Field(default_factory=list)
    telegram: list[int | str] = Field(default_factory=list)
    max: list[int | str] = Field(default_factory=list)
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
        dedupe: DedupeSettings | None = None,
        flagging: FlaggingSettings | None = None,
        routing: RoutingSettings | None = None,
        privacy: PrivacySettings | None = None,
        sites: dict[str, SiteSettings] | None = None,
        norms: NormSettings | None = None,
        alerts: list[AlertRule] | None = None,
        webhooks: list[Webhook] | None = None,
    ) -> None:
        self.path = path
        self.alerts = alerts or []
        self.webhooks = webhooks or []
        self.sites = sites or {}
        self._by_id: dict[str, SourceConfig] = {}
        self.defaults = defaults
        self.sources = sources
        self.official_accounts = official_accounts
        self.dedupe = dedupe or DedupeSettings()
        self.flagging = flagging or FlaggingSettings()
        self.routing = routing or RoutingSettings()
        self.privacy = privacy or PrivacySettings()
        self.norms = norms or NormSettings()

    def source(self, source_id: str) -> SourceConfig:
        """The source named ``source_id``; KeyError when there is none."""
        if len(self._by_id) != len(self.sources):  # the list was changed in place
            self._by_id = {source.id: source for source in self.sources}
        return self._by_id[source_id]

    @property
    def enabled(self) -> list[SourceConfig]:
        return [s for s in self.sources if s.enabled]

    def sites_settings(self) -> dict[str, dict[str, float]]:
        """``sites:`` as Scrapy's ``DOWNLOAD_SLOTS`` (concurrency and delay per host)."""
        slots: dict[str, dict[str, float]] = {}
        for host, site in self.sites.items():
            slot: dict[str, float] = {}
            if site.concurrency is not None:
                slot["concurrency"] = site.concurrency
            if site.delay is not None:
                slot["delay"] = site.delay.total_seconds()
            if slot:
                slots[host] = slot
        return slots

    def collections_at_once(self, source: SourceConfig) -> int:
        """How many collections of ``source``'s site may run at once."""
        site = self.sites.get(source.site())
        if site is not None and site.collections is not None:
            return site.collections
        return source.site_collections or self.defaults.per_site


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
    watch_env(secret_variables(config))
    return config


def secret_variables(config: Config) -> list[str]:
    """Names of the environment variables sources.yaml says hold secrets (every source's
    ``token_env``, ``privacy.key_env``, every webhook's ``token_env``, any other ``…_env``
    option such as ok_group's ``app_key_env`` and ``secret_key_env``): their values are
    redacted from every message."""
    names = [config.privacy.key_env]
    names += [hook.token_env for hook in config.webhooks if hook.token_env]
    for source in config.sources:
        for field_name in type(source).model_fields:
            value = getattr(source, field_name, None) if field_name.endswith("_env") else None
            if isinstance(value, str):
                names.append(value)
            elif isinstance(value, list):
                names += [v for v in value if isinstance(v, str)]
    return names


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
                (), "file", f"expected 'sources:' and other keys at the top, found {describe(data)}"
            )
            return None
        for key in data:
            if key in TOP_LEVEL_KEYS or str(key).startswith(EXTENSION_PREFIX):
                continue
            message = unknown_key_message(key, TOP_LEVEL_KEYS)
            if "did you mean" not in message and "secrets" not in message:
                message = (
                    f"unknown key '{key}' (allowed: {', '.join(TOP_LEVEL_KEYS)}, "
                    f"and keys starting with '{EXTENSION_PREFIX}' to hold YAML anchors)"
                )
            self.error((key,), "file", message)
        defaults = self.section(data, "defaults", Defaults) or Defaults()
        officials = self.section(data, "official_accounts", OfficialAccounts)
        officials = officials or OfficialAccounts()
        dedupe = self.section(data, "dedupe", DedupeSettings)
        flagging = self.section(data, "flagging", FlaggingSettings)
        if flagging is not None:
            import flagging as flagging_stage  # compiles the lexicons once; reused by runs

            problem = flagging_stage.check(flagging, base=path.parent)
            if problem:
                self.error(("flagging", "lexicons"), "flagging", problem, at_value=True)
        routing = self.section(data, "routing", RoutingSettings)
        norms = self.section(data, "norms", NormSettings)
        for key in ("routing", "norms"):
            self.check_topics(key, data.get(key), flagging or FlaggingSettings(), path.parent)
        privacy = self.section(data, "privacy", PrivacySettings)
        sites = self.sites(data.get("sites"))
        alerts = self.items(data, "alerts", AlertRule)
        webhooks = self.items(data, "webhooks", Webhook)
        self.check_alerts(data, alerts, webhooks, flagging or FlaggingSettings(), path.parent)
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
                f"expected a list of sources ('- id: …' items), found {describe(raw_sources)}",
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
        return Config(
            path,
            defaults,
            sources,
            officials,
            dedupe,
            flagging,
            routing,
            privacy,
            sites,
            norms,
            [rule for _, rule in alerts],
            [hook for _, hook in webhooks],
        )

    def sites(self, value: Any) -> dict[str, SiteSettings]:
        """``sites:``: host name → politeness settings for it."""
        if value is None or self.doc.is_broken(("sites",)):
            return {}
        if not isinstance(value, dict):
            self.error(
                ("sites",),
                "sites",
                f"expected host names with their settings (t.me: {{delay: 1s}}), "
                f"found {describe(value)}",
            )
            return {}
        sites: dict[str, SiteSettings] = {}
        for host, settings in value.items():
            name = str(host).strip().lower()
            if not _HOST.match(name):
                self.error(
                    ("sites", host),
                    "sites",
                    f"'{host}' is not a host name (write it as in the address, without "
                    "http:// or a path, e.g. t.me)",
                )
                continue
            if not isinstance(settings, dict):
                self.error(
                    ("sites", host),
                    "sites",
                    f"{name}: expected concurrency, delay or collections, found "
                    f"{describe(settings)}",
                )
                continue
            try:
                sites[name] = SiteSettings.model_validate(settings)
            except ValidationError as exc:
                self.report(exc, ("sites", host), "sites", SiteSettings)
        return sites

    def items(self, data: dict, key: str, model: type[Strict]) -> list[tuple[int, Any]]:
        """A top-level list of mappings (``alerts:``, ``webhooks:``): ``(index, item)`` of
        each valid one; every problem reported at its line, duplicate ids too."""
        value = data.get(key)
        if value is None or self.doc.is_broken((key,)):
            return []
        if not isinstance(value, list):
            self.error((key,), key, f"expected a list ('- id: …' items), found {describe(value)}")
            return []
        found: list[tuple[int, Any]] = []
        first_line: dict[str, int] = {}
        for index, entry in enumerate(value):
            if not isinstance(entry, dict):
                self.error((key, index), key, f"expected a mapping, found {describe(entry)}")
                continue
            ident = entry.get("id")
            label = f"{key}: {ident.strip()}" if isinstance(ident, str) and ident.strip() else key
            try:
                item = model.model_validate(entry)
            except ValidationError as exc:
                self.report(exc, (key, index), label, model)
                continue
            line = self.doc.value_line_of((key, index, "id"))
            if item.id in first_line:
                self.error(
                    (key, index, "id"),
                    label,
                    f"duplicate id (first defined at line {first_line[item.id]})",
                    at_value=True,
                )
                continue
            first_line[item.id] = line
            found.append((index, item))
        return found

    def check_alerts(
        self,
        data: dict,
        alerts: list[tuple[int, AlertRule]],
        webhooks: list[tuple[int, Webhook]],
        flagging: FlaggingSettings,
        base: Path,
    ) -> None:
        """Rules name topics of the topics lexicon; webhooks name rules that exist."""
        codes: list[str] | None = None
        for index, rule in alerts:
            if rule.topic is None:
                continue
            if codes is None:
                codes = list(topic_labels(flagging.lexicon_paths(base)))
            if rule.topic not in codes:
                self.error(
                    ("alerts", index, "topic"),
                    f"alerts: {rule.id}",
                    unknown_value_message("topic", rule.topic, codes),
                    at_value=True,
                )
        raw = data.get("alerts") if isinstance(data.get("alerts"), list) else []
        rule_ids = list(
            dict.fromkeys(
                str(e["id"]).strip() for e in raw if isinstance(e, dict) and e.get("id") is not None
            )
        )  # a rule with another problem is still known by its id
        for index, hook in webhooks:
            for position, name in enumerate(hook.rules or []):
                if name not in rule_ids:
                    self.error(
                        ("webhooks", index, "rules", position),
                        f"webhooks: {hook.id}",
                        unknown_value_message("rule", name, rule_ids),
                        at_value=True,
                    )

    def section(self, data: dict, key: str, model: type[Strict]) -> Any:
        value = data.get(key)
        if value is None or self.doc.is_broken((key,)):
            return None
        if not isinstance(value, dict):
            self.error(
                (key,), key, f"expected a mapping (key: value lines), found {describe(value)}"
            )
            return None
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            self.report(exc, (key,), key, model)
            return None

    def check_topics(self, key: str, section: Any, flagging: FlaggingSettings, base: Path) -> None:
        """Every rule's topic (of ``routing:`` or ``norms:``) must be a code of the topics
        lexicon (with its overrides).

        Read from the YAML itself, so a bad code is reported beside other problems of the
        section."""
        rules = section.get("rules") if isinstance(section, dict) else None
        if not isinstance(rules, list) or self.doc.is_broken((key, "rules")):
            return
        codes: list[str] | None = None
        for index, rule in enumerate(rules):
            topic = rule.get("topic") if isinstance(rule, dict) else None
            if not isinstance(topic, str) or not topic.strip():
                continue
            if codes is None:
                codes = list(topic_labels(flagging.lexicon_paths(base)))
            if topic.strip() not in codes:
                self.error(
                    (key, "rules", index, "topic"),
                    key,
                    unknown_value_message("topic", topic.strip(), codes),
                    at_value=True,
                )

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
                    f"found {describe(entry)}",
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
                f"'type' must be one of: {', '.join(types)}; found {describe(kind)}",
                at_value=True,
            )
            return None
        if kind.strip() not in types:
            self.error(
                (*path, "type"),
                label,
                unknown_value_message("type", kind, list(types)),
                at_value=True,
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
            loc = tuple(part for part in raw[:-1] if not is_union_tag(part))
            if raw and (err["type"] == "extra_forbidden" or not is_union_tag(raw[-1])):
                loc += raw[-1:]
            grouped.setdefault(loc, []).append(err)
        # An unknown key that is a typo of a missing field ('urll' for 'url') is one mistake:
        # report the typo, not also the missing field.
        typo_of: set[tuple] = set()
        for loc, errs in grouped.items():
            if errs[0]["type"] == "extra_forbidden":
                close = close_match(loc[-1], known_keys(model, loc[:-1]))
                if close:
                    typo_of.add((*loc[:-1], close))
        for loc, errs in grouped.items():
            where = (*base, *loc)
            if self.doc.is_broken(where):
                continue  # the YAML problem there is already reported
            kind = errs[0]["type"]
            if kind == "extra_forbidden":
                prefix = dotted(loc[:-1])
                message = unknown_key_message(loc[-1], known_keys(model, loc[:-1]), prefix=prefix)
                self.error(where, label, message)
            elif kind == "missing":
                if loc not in typo_of:
                    self.error(where, label, f"missing required field '{dotted(loc)}'")
            elif all(err["type"] in EXPECTED for err in errs):
                expected = " or ".join(dict.fromkeys(EXPECTED[err["type"]] for err in errs))
                self.error(
                    where,
                    label,
                    wrong_type_message(dotted(loc), expected, errs[0]["input"]),
                    **_at(where, self.doc),
                )
            else:
                for err in errs:
                    if err["type"] not in EXPECTED:
                        self.error(where, label, pydantic_message(loc, err), **_at(where, self.doc))


def _at(path: Path_, doc: YamlDocument) -> dict[str, bool]:
    """Point at the value when it is a scalar (it may sit on its own line), else at the key."""
    return {"at_value": tuple(path) in doc.value_lines}


def json_schema() -> dict[str, Any]:
    """JSON Schema of sources.yaml, for editors (``glas schema``)."""
    models = [t.options for t in source_types().values()]
    entry = Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007
    file_model = create_model(
        "SourcesFile",
        __base__=Strict,
        defaults=(Defaults, Field(default_factory=Defaults)),
        sources=(list[entry], ...),  # type: ignore[valid-type]
        sites=(dict[str, SiteSettings], Field(default_factory=dict)),
        official_accounts=(OfficialAccounts, Field(default_factory=OfficialAccounts)),
        dedupe=(DedupeSettings, Field(default_factory=DedupeSettings)),
        flagging=(FlaggingSettings, Field(default_factory=FlaggingSettings)),
        routing=(RoutingSettings, Field(default_factory=RoutingSettings)),
        norms=(NormSettings, Field(default_factory=NormSettings)),
        privacy=(PrivacySettings, Field(default_factory=PrivacySettings)),
        alerts=(list[AlertRule], Field(default_factory=list)),
        webhooks=(list[Webhook], Field(default_factory=list)),
    )
    schema = file_model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Glas sources.yaml"
    # Top-level x-… keys are free: a place for YAML anchors ('x-common: &common').
    schema["patternProperties"] = {f"^{EXTENSION_PREFIX}": {}}
    return schema

"""Surge alerts: rules in sources.yaml, episodes as posts are stored, the webhook outbox
delivered over real HTTP to a local receiver (once; after the receiver comes back; across a
restart), `glas alerts`, and the alerts table exported by seq."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawler.alerts import AlertRule, AlertStage, Webhook, evaluate
from crawler.config import ConfigError, load_config
from crawler.model import Post, SourceConfig
from crawler.pipeline import Ingest
from crawler.webhooks import deliver_due
from dedupe.exact import add_exact_keys
from storage import open_inbox
from storage.sql import SqlInbox
from tests.webhook_receiver import Receiver

TOPICS = (
    "housing, roads, transport, landscaping, waste, ecology, energy, healthcare, education, "
    "social, safety, construction, culture, sport, communications, trade, labour, animals, "
    "public_services, other"
)
NOW = datetime.now(UTC).replace(microsecond=0)
RULE = AlertRule(
    id="roads-zarechny",
    topic="roads",
    municipality="Заречный",
    min_residents=4,
    window=timedelta(hours=3),
    lookback=timedelta(days=7),
    factor=2,
)
COMPLAINTS = [
    "Яма на улице Ленина у остановки, колесо пробил",
    "На Ленина опять провал асфальта, машины объезжают по встречке",
    "Когда отремонтируют дорогу на Ленина? Ямы по колено",
    "Улица Ленина: провал в асфальте растёт, огородите хотя бы",
    "Дорогу на Ленина так и не починили, яма на яме",
]


def post(n: int, author: str, minutes_ago: float, **extra: object) -> Post:
    fields: dict[str, object] = {
        "platform": "vk",
        "native_id": f"-201234567_{n}",
        "kind": "comment",
        "parent": "-201234567_1",
        "url": f"https://vk.com/wall-201234567_1?reply={n}",
        "author_id": author,
        "author_name": f"Житель {author}",
        "text": COMPLAINTS[n % len(COMPLAINTS)],
        "published_at": NOW - timedelta(minutes=minutes_ago),
        "topics": ["roads"],
        "places": [{"kind": "street", "name": "улица Ленина"}],
        "municipality": "Заречный",
        "is_complaint": True,
        "complaint_score": 0.9,
    }
    fields.update(extra)
    return Post(**fields)  # type: ignore[arg-type]


def hook(url: str, **extra: object) -> Webhook:
    return Webhook(id="dispatch", url=url, retry_backoff=timedelta(seconds=1), **extra)  # type: ignore[arg-type]


def ingest(inbox: SqlInbox, stage: AlertStage, posts: list[Post]) -> None:
    source = SourceConfig(id="zarechny-wall", type="vk_wall", municipality="Заречный")
    run = Ingest(inbox, source, stages=[add_exact_keys, stage])
    for p in posts:
        run.add(p)
    run.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


# -- rules in sources.yaml ----------------------------------------------------------------------
def test_rules_and_webhooks_load(write_sources: Callable[[str], Path]) -> None:
    config = load_config(
        write_sources("""
            alerts:
              - {id: roads-zarechny, topic: roads, municipality: Заречный, min_residents: 5,
                 window: 6h, lookback: 14d, factor: 3}
              - {id: lenina, place: улица Ленина, min_residents: 3, window: 1h, factor: 0}
            webhooks:
              - {id: dispatch, url: "https://hooks.example.ru/glas", token_env: GLAS_HOOK_TOKEN,
                 rules: [roads-zarechny]}
            sources:
              - {id: feed, type: rss, url: "https://example.ru/rss"}
            """)
    )
    first, second = config.alerts
    assert (first.window, first.lookback, first.factor) == (
        timedelta(hours=6),
        timedelta(days=14),
        3,
    )
    assert second.lookback == timedelta(days=7) and second.factor == 0
    (webhook,) = config.webhooks
    assert webhook.wants("roads-zarechny") and not webhook.wants("lenina")
    assert webhook.header == "Authorization"


def test_bad_rules_are_reported_at_their_lines(write_sources: Callable[[str], Path]) -> None:
    path = write_sources("""
        alerts:
          - id: roads
            topic: dorogi
            min_residents: 5
            window: 6h
          - id: nothing
            min_residents: 0
            window: 6h
          - id: roads
            municipality: Заречный
            min_residents: 2
            window: soon
        webhooks:
          - id: dispatch
            url: "https://user:secret@hooks.example.ru/glas"
          - id: other
            url: "https://hooks.example.ru/other"
            rules: [rodas]
        sources:
          - {id: feed, type: rss, url: "https://example.ru/rss"}
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = "\n".join(caught.value.messages)
    assert text.splitlines() == [
        f"{path}:3: alerts: roads: unknown topic 'dorogi' (known: {TOPICS})",
        f"{path}:7: alerts: nothing: 'min_residents' must be at least 1, found the number 0",
        f"{path}:12: alerts: roads: 'window': 'soon' is not a duration: use a number and a "
        "unit (s, m, h, d, w), e.g. 90s, 15m, 1h30m, 2d",
        f"{path}:15: webhooks: dispatch: url: credentials in an address are not allowed (the "
        "address is stored in the inbox and shown in errors); remove 'user:password@': Glas "
        "reads public addresses, and secrets go in environment variables (e.g. token_env: "
        "VK_TOKEN)",
        f"{path}:18: webhooks: other: unknown rule 'rodas' (known: roads, nothing); did you "
        "mean 'roads'?",
    ]


def test_a_webhook_names_rules_that_exist(write_sources: Callable[[str], Path]) -> None:
    path = write_sources("""
        alerts:
          - {id: roads, topic: roads, min_residents: 5, window: 6h}
          - {id: roads, topic: waste, min_residents: 5, window: 6h}
        webhooks:
          - id: other
            url: "https://hooks.example.ru/other"
            rules: [rodas]
          - id: third
            url: "https://hooks.example.ru/third"
            token_env: "not a name"
        sources:
          - {id: feed, type: rss, url: "https://example.ru/rss"}
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.messages == [
        f"{path}:3: alerts: roads: duplicate id (first defined at line 2)",
        f"{path}:7: webhooks: other: unknown rule 'rodas' (known: roads); did you mean 'roads'?",
        f"{path}:10: webhooks: third: 'token_env' must match ^[A-Za-z_][A-Za-z0-9_]*$, found "
        '"not a name"',
    ]


def test_a_rule_needs_a_scope() -> None:
    with pytest.raises(ValueError, match="at least one of 'topic', 'place' or 'municipality'"):
        AlertRule(id="x", min_residents=3, window=timedelta(hours=1))


# -- episodes -----------------------------------------------------------------------------------
@pytest.mark.both_backends
def test_a_surge_fires_one_alert_per_episode(inbox: SqlInbox) -> None:
    stage = AlertStage(inbox, [RULE], [hook("http://127.0.0.1:9/none")])
    # the usual level: one resident a day over six days (a week of 3h windows: 6/56 each)
    ingest(inbox, stage, [post(100 + d, f"old{d}", 60 * 24 * d + 600) for d in range(1, 7)])
    assert inbox.alerts() == []
    # three residents within the window: below min_residents
    ingest(inbox, stage, [post(n, f"r{n}", 30 - n) for n in range(3)])
    assert inbox.alerts() == []
    # the fourth distinct resident (a second comment of r0 does not count)
    ingest(inbox, stage, [post(3, "r0", 5), post(4, "r3", 4)])
    (alert,) = inbox.alerts()
    assert alert["rule_id"] == "roads-zarechny"
    assert (alert["residents"], alert["posts"]) == (4, 5)
    assert alert["usual_level"] == pytest.approx(6 / 56, abs=0.001)
    assert (alert["topic"], alert["municipality"], alert["place"]) == ("roads", "Заречный", None)
    assert len(alert["cases"]) >= 1
    assert alert["deliveries"][0]["webhook_id"] == "dispatch"
    assert alert["deliveries"][0]["delivered_at"] is None
    # the surge goes on: more residents, no new alert
    ingest(inbox, stage, [post(5, "r5", 2), post(6, "r6", 1)])
    assert len(inbox.alerts()) == 1
    # the surge ends (the window moves past it), then a new one begins: a second alert
    later = NOW + timedelta(hours=4)
    assert evaluate(inbox, RULE, [], now=later) is None  # condition no longer holds
    fresh = [post(20 + n, f"n{n}", -230) for n in range(4)]  # 10 minutes before `later`
    stored = Ingest(inbox, SourceConfig(id="zarechny-wall", type="vk_wall"), stages=[])
    for p in fresh:
        stored.add(p)
    stored.close()
    second = evaluate(inbox, RULE, [], now=later)
    assert second is not None and second["residents"] == 4
    assert [a["alert_id"] for a in inbox.alerts()] == [alert["alert_id"], second["alert_id"]]
    # exported by seq like the other tables
    rows = list(inbox.export(table="alerts", since_seq=alert["seq"]))
    assert [r["alert_id"] for r in rows] == [second["alert_id"]]


def test_posts_outside_the_scope_touch_no_rule(inbox: SqlInbox) -> None:
    stage = AlertStage(inbox, [RULE], [])
    others = [post(n, f"r{n}", 10, topics=["waste"]) for n in range(6)]
    others += [post(10 + n, f"s{n}", 10, municipality="Городок") for n in range(6)]
    others += [post(20 + n, "official", 10, author_is_official=True) for n in range(6)]
    ingest(inbox, stage, others)
    assert inbox.alerts() == []
    assert inbox.query("SELECT count(*) FROM alert_state") == [(0,)]  # never evaluated


def test_a_place_rule_matches_part_of_a_place_name(inbox: SqlInbox) -> None:
    rule = AlertRule(id="lenina", place="ленина", min_residents=3, window="1h", factor=0)  # type: ignore[arg-type]
    stage = AlertStage(inbox, [rule], [])
    ingest(inbox, stage, [post(n, f"r{n}", 10 + n, topics=["other"]) for n in range(3)])
    (alert,) = inbox.alerts()
    assert alert["place"] == "ленина" and alert["residents"] == 3 and alert["usual_level"] is None


# -- webhooks -----------------------------------------------------------------------------------
def fire(inbox: SqlInbox, webhooks: list[Webhook]) -> dict:
    ingest(inbox, AlertStage(inbox, [RULE], webhooks), [post(n, f"r{n}", 20 - n) for n in range(4)])
    (alert,) = inbox.alerts()
    return alert


@pytest.mark.both_backends
def test_an_alert_is_delivered_once(
    inbox: SqlInbox, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLAS_HOOK_TOKEN", "hook-token-1234567890")
    webhooks = [hook(receiver.url, token_env="GLAS_HOOK_TOKEN")]
    alert = fire(inbox, webhooks)
    assert deliver_due(inbox, webhooks).delivered == 1
    assert deliver_due(inbox, webhooks).delivered == 0
    (request,) = receiver.requests
    assert request["path"] == "/hooks/glas"
    assert request["headers"]["idempotency-key"] == f"glas-alert-{alert['alert_id']}"
    assert request["headers"]["authorization"] == "Bearer hook-token-1234567890"
    assert request["headers"]["content-type"].startswith("application/json")
    body = request["body"]
    assert body["id"] == f"glas-alert-{alert['alert_id']}"
    assert (body["rule"], body["residents"], body["topic"]) == ("roads-zarechny", 4, "roads")
    assert body["cases"] == alert["cases"] and body["seq"] == alert["seq"]
    (delivery,) = inbox.alerts()[0]["deliveries"]
    assert delivery["delivered_at"] is not None and delivery["last_status"] == 200
    assert delivery["attempts"] == 1


@pytest.mark.both_backends
def test_receiver_down_then_up_across_a_restart_delivers_once(
    db_url: str, receiver: Receiver
) -> None:
    webhooks = [hook(receiver.url)]
    receiver.stop()  # down: connection refused
    with open_inbox(db_url) as first:
        assert isinstance(first, SqlInbox)
        fire(first, webhooks)
        assert deliver_due(first, webhooks).failed == 1
        assert deliver_due(first, webhooks).failed == 0  # not due before its backoff
        (delivery,) = first.alerts()[0]["deliveries"]
        assert delivery["attempts"] == 1 and delivery["delivered_at"] is None
        assert "Connection refused" in delivery["last_error"]
    receiver.start()  # up again, same port; a new inbox handle, as after a restart
    receiver.fail_with = 503
    later = datetime.now(UTC) + timedelta(seconds=2)
    with open_inbox(db_url) as second:
        assert deliver_due(second, webhooks, now=later).failed == 1  # 503: retried later
        (delivery,) = second.alerts()[0]["deliveries"]
        assert (delivery["attempts"], delivery["last_status"]) == (2, 503)
    receiver.fail_with = None
    with open_inbox(db_url) as third:
        assert deliver_due(third, webhooks, now=later + timedelta(seconds=5)).delivered == 1
        assert deliver_due(third, webhooks, now=later + timedelta(hours=5)).delivered == 0
    delivered = [r for r in receiver.requests if r["body"]]
    assert len(delivered) == 2  # the 503 one and the delivered one: both the same alert
    assert len({r["headers"]["idempotency-key"] for r in delivered}) == 1


def test_a_redirect_is_a_failed_attempt(inbox: SqlInbox, receiver: Receiver) -> None:
    """Following a 302 would turn the POST into a GET without the alert: retried instead."""
    webhooks = [hook(receiver.url)]
    fire(inbox, webhooks)
    receiver.fail_with = 302
    assert deliver_due(inbox, webhooks).failed == 1
    (delivery,) = inbox.alerts()[0]["deliveries"]
    assert (delivery["last_status"], delivery["delivered_at"]) == (302, None)
    assert len(receiver.requests) == 1  # not followed


def test_a_claimed_delivery_is_not_sent_by_another_process(db_url: str, receiver: Receiver) -> None:
    """Two handles (a daemon and a glas run) share the outbox: a leased row is taken once."""
    webhooks = [hook(receiver.url)]
    with open_inbox(db_url) as one, open_inbox(db_url) as two:
        assert isinstance(one, SqlInbox)
        fire(one, webhooks)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lease = (datetime.now(UTC) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert len(one.claim_deliveries(["dispatch"], now, lease)) == 1
        assert two.claim_deliveries(["dispatch"], now, lease) == []  # type: ignore[attr-defined]


# -- the command ------------------------------------------------------------------------------
def test_glas_alerts_lists_them(
    db_url: str, glas: Callable, receiver: Receiver, tmp_path: Path
) -> None:
    with open_inbox(db_url) as box:
        assert isinstance(box, SqlInbox)
        fire(box, [hook(receiver.url)])
    listed = glas("--db", db_url, "alerts")
    assert listed.returncode == 0, listed.stderr
    assert "roads-zarechny" in listed.stdout and "dispatch pending (0 tries)" in listed.stdout
    as_json = glas("--db", db_url, "alerts", "--since", "1d", "--json")
    (row,) = json.loads(as_json.stdout)
    assert row["rule"] == "roads-zarechny" and row["deliveries"][0]["webhook_id"] == "dispatch"
    assert glas("--db", db_url, "alerts", "--since", "2099-01-01").stdout.startswith("no alerts")
    bad = glas("--db", db_url, "alerts", "--since", "soonish")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    exported = glas("--db", db_url, "export", "--table", "alerts", "--since-seq", "0")
    assert exported.returncode == 0, exported.stderr
    (line,) = exported.stdout.splitlines()
    assert json.loads(line)["rule_id"] == "roads-zarechny"


@pytest.mark.both_backends
def test_glas_db_upgrade_adds_the_alert_tables(db_url: str, glas: Callable) -> None:
    """An inbox of schema 5 with posts in it: `glas db upgrade` adds the alert tables; the
    posts stay, and alerts take their seq after them."""
    old = open_inbox(db_url, check_schema=False)
    assert isinstance(old, SqlInbox)
    old.upgrade(up_to=5)
    old.store("zarechny-wall", [post(n, f"r{n}", 20 - n) for n in range(4)])
    last = old.last_seq()
    old.close()
    refused = glas("--db", db_url, "alerts")
    assert refused.returncode == 1 and "run `glas db upgrade`" in refused.stderr
    upgraded = glas("--db", db_url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "applied 6: surge alerts" in upgraded.stdout and "version 5 → 6" in upgraded.stdout
    with open_inbox(db_url) as box:
        assert isinstance(box, SqlInbox)
        assert box.schema_version() == 6 and box.query("SELECT count(*) FROM posts") == [(4,)]
        alert = evaluate(box, RULE, [hook("http://127.0.0.1:9/none")])
        assert alert is not None and alert["seq"] == last + 1 and alert["residents"] == 4

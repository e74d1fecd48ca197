"""`make eval`: quality of flagging on real data read in place; prints figures, asserts nothing.

1. The hand-labelled VK comments, joined by comment_id to
   ../shared/data/vk/vk_comments_spb_central.csv: complaint precision/recall/F1, topic accuracy
   and macro-F1 on the complaints (rules, the topic model, blends), official answers flagged.
   Two label files: ``vk_comment_labels.csv`` (rows 1-525) is the EVALUATION set: nothing was
   fitted or tuned on it. ``vk_comment_dev_labels.csv`` (rows 526-1260) is the DEVELOPMENT set:
   the complaint ``signal_weights``, some topic lexicon entries and the comment model
   (`make train`) were fitted or chosen on it, so its figures are optimistic. The topic model
   never saw either (it learns from the appeals).
   Complaints are shown with the shipped flagger (rules, and the comment model where they are
   unsure), the rules alone and the trivial rule "every comment not by an official is a
   complaint", each with specificity and 95 % intervals (a bootstrap of whole threads), and
   for the comments under posts none of whose comments the model learnt from (the
   cross-thread figure: the one to quote); topics with every variant.
2. The St Petersburg portal appeals: every appeal is a complaint (recall), every answer_text is
   an official answer (false-positive rate), topic accuracy against the portal's categories,
   and the same per group of districts (the topic model's held-out districts from `make train`).
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_flagging import DISTRICT_GROUPS, code_of  # noqa: E402
from flagging import flagger, learned  # noqa: E402
from flagging.rules import Flagger, Flags  # noqa: E402

BOOTSTRAP = 1000

DATA = ROOT.parent / "shared" / "data"
APPEALS = DATA / "appeals" / "spb_nash_gorod.jsonl.gz"
VK = DATA / "vk" / "vk_comments_spb_central.csv"
LABELS = ROOT / "tests" / "data" / "vk_comment_labels.csv"
DEV_LABELS = ROOT / "tests" / "data" / "vk_comment_dev_labels.csv"
# News items and announcements written for issue 21 without running the flagger (blind).
NEWS_WRITTEN = ROOT / "tests" / "data" / "news_written.csv"
# The complaints' topics by a second, blind labeller, and the rows where the two disagreed with
# the adjudicated code (tests/data/README.md, "Topic labels").
SECOND_TOPICS = ROOT / "tests" / "data" / "vk_comment_topic_second.csv"
ADJUDICATION = ROOT / "tests" / "data" / "vk_comment_topic_adjudication.csv"

# The portal's 15 categories as one topic code each (the strict reading).
CATEGORY_TOPIC = {
    "Благоустройство": "landscaping",
    "Содержание МКД": "housing",
    "Нарушение правил пользования общим имуществом": "housing",
    "Нарушение порядка пользования общим имуществом": "housing",
    "Незаконная информационная и (или) рекламная конструкция": "landscaping",
    "Состояние рекламных или информационных конструкций": "landscaping",
    "Фасад": "housing",
    "Повреждения или неисправность элементов уличной инфраструктуры": "roads",
    "Кровля": "housing",
    "Водоснабжение": "housing",
    "Водоотведение": "housing",
    "Санитарное состояние": "housing",
    "Центральное отопление": "housing",
    "Подвалы": "housing",
    "Незаконная реализация товаров с торгового оборудования (прилавок, ящик, с земли)": "trade",
}

# The portal's finer `reason` words that make other codes right too (the lenient reading):
# "Мусор на газонах" is waste as much as landscaping, "Повреждения дорожного покрытия" roads.
REASON_TOPICS = (
    (("мусор", "урны", "контейнерн", "мусоросборн"), {"waste"}),
    (
        ("проезжей част", "дорожн", "светофор", "парковк", "неровност", "бордюр", "тротуар"),
        {"roads"},
    ),
    (("автомобильных дорог", "асфальт", "лужи"), {"roads"}),
    (("остановочн",), {"transport"}),
    (("провода", "освещени"), {"energy"}),
    (("спортивн",), {"sport"}),
    (("строительн", "земляных"), {"construction"}),
    (("деревь", "насаждени"), {"ecology"}),
    (("инвалид", "пандус"), {"social"}),
    (("люк", "колодц", "ливнев"), {"housing"}),
    (("транспортное средство",), {"roads", "other"}),
)


def accepted(category: str, reason: str) -> set[str]:
    """Topic codes that are right for an appeal of this category and reason."""
    codes = {CATEGORY_TOPIC.get(category, "other")}
    low = reason.lower()
    for words, extra in REASON_TOPICS:
        if any(w in low for w in words):
            codes |= extra
    return codes


def prf(pairs: list[tuple[bool, bool]]) -> tuple[float, float, float]:
    """Precision, recall, F1 of (truth, predicted) pairs."""
    tp = sum(1 for t, p in pairs if t and p)
    fp = sum(1 for t, p in pairs if not t and p)
    fn = sum(1 for t, p in pairs if t and not p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def rates(pairs: list[tuple[bool, bool]]) -> tuple[float, float, float, float]:
    """Precision, recall, F1 and specificity (true negatives among the negatives)."""
    negatives = [p for t, p in pairs if not t]
    specificity = sum(not p for p in negatives) / len(negatives) if negatives else 0.0
    return (*prf(pairs), specificity)


def with_intervals(pairs: list[tuple[bool, bool]], groups: list[str]) -> str:
    """Precision, recall, F1 and specificity with 95 % intervals from a bootstrap that
    resamples whole threads (comments under one post are not independent of each other)."""
    by_group: dict[str, list[tuple[bool, bool]]] = {}
    for pair, group in zip(pairs, groups, strict=True):
        by_group.setdefault(group, []).append(pair)
    threads = list(by_group.values())
    rng = random.Random(2026)
    samples = []
    for _ in range(BOOTSTRAP):
        drawn = [pair for _ in threads for pair in rng.choice(threads)]
        samples.append(rates(drawn))
    names = ("precision", "recall", "F1", "specificity")
    shown = []
    for n, (name, value) in enumerate(zip(names, rates(pairs), strict=True)):
        ranked = sorted(sample[n] for sample in samples)
        low, high = ranked[int(0.025 * BOOTSTRAP)], ranked[int(0.975 * BOOTSTRAP) - 1]
        shown.append(f"{name} {value:.3f} [{low:.2f}-{high:.2f}]")
    return "  ".join(shown)


def thread_of(row: dict[str, str]) -> str:
    """The post a comment is under (from its address: wall-<owner>_<post>?reply=…)."""
    found = re.search(r"wall-?\d+_(\d+)", row.get("url", ""))
    return found.group(1) if found else row["comment_id"]


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    """Macro-averaged F1 over the codes that occur in ``truth``."""
    scores = []
    for code in sorted(set(truth)):
        pairs = [(t == code, p == code) for t, p in zip(truth, predicted, strict=True)]
        scores.append(prf(pairs)[2])
    return sum(scores) / len(scores) if scores else 0.0


def load_vk(labels_path: Path = LABELS) -> list[dict[str, str]]:
    """Labelled comments joined with their text; empty when the labels are not there."""
    if not labels_path.exists():
        return []
    with VK.open(encoding="utf-8", newline="") as fh:
        texts = {row["comment_id"]: row for row in csv.DictReader(fh)}
    with labels_path.open(encoding="utf-8", newline="") as fh:
        labels = list(csv.DictReader(fh))
    rows = []
    for label in labels:
        row = texts.get(label["comment_id"])
        if row is not None:
            rows.append({**row, **{f"label_{k}": v for k, v in label.items()}})
    return rows


def truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "y", "да")


def flag_all(
    rules: Flagger, texts: list[str], officials: list[bool] | None = None, replies: bool = False
) -> list[Flags]:
    """Flags of many texts in batches of 500, as the pipeline flags them."""
    officials = officials or [False] * len(texts)
    out: list[Flags] = []
    for at in range(0, len(texts), 500):
        batch = texts[at : at + 500]
        out += rules.flag_many(batch, officials[at : at + 500], [replies] * len(batch))
    return out


def eval_vk(
    rules: Flagger,
    plain: Flagger,
    rows: list[dict[str, str]],
    title: str,
    seen: set[str] | None = None,
) -> None:
    """Complaint and topic figures of the shipped flagger; ``plain`` is the rules alone.
    ``seen`` are the threads the comment model learnt from: the comments under other posts
    are measured apart too."""
    if not rows:
        print(f"{title}: labels not found; skipped")
        return
    texts = [r["text"] for r in rows]
    officials = [r["author_is_official"] == "True" for r in rows]
    flags = flag_all(rules, texts, officials, replies=True)  # comments under posts
    truth = [truthy(r["label_is_complaint"]) for r in rows]
    print(f"{title}: {len(rows)} comments ({sum(truth)} complaints)")
    threads = [thread_of(r) for r in rows]
    print(f"  complaints (95 % intervals: a bootstrap of the {len(set(threads))} threads)")
    for name, judged in (
        ("SHIPPED (rules + comment model)", [f.is_complaint for f in flags]),
        (
            "rules alone (comment_model: false)",
            [f.is_complaint for f in flag_all(plain, texts, officials, True)],
        ),
        ("trivial: every comment not by an official", [not o for o in officials]),
    ):
        pairs = list(zip(truth, judged, strict=True))
        print(f"    {name:<42} {with_intervals(pairs, threads)}")
    if seen is not None:
        unseen = [n for n, t in enumerate(threads) if t not in seen]
        pairs = [(truth[n], flags[n].is_complaint) for n in unseen]
        print(
            f"    {'SHIPPED, under posts never trained on':<42} "
            f"{with_intervals(pairs, [threads[n] for n in unseen])}  ({len(unseen)} comments)"
        )
    official = [
        f
        for row, f in zip(rows, flags, strict=True)
        if truthy(row.get("label_official_answer", "0"))
    ]
    flagged = sum(f.is_complaint for f in official)
    print(f"  official answers flagged as complaints: {flagged} of {len(official)}")
    style = [
        f.official_style
        for row, f in zip(rows, flags, strict=True)
        if truthy(row.get("label_official_answer", "0")) and row["author_is_official"] != "True"
    ]
    if style:
        print(
            f"  official answers by unmarked authors recognised by style: {sum(style)}/{len(style)}"
        )
    topical = [
        (row, f)
        for row, f in zip(rows, flags, strict=True)
        if truthy(row["label_is_complaint"]) and row.get("label_topic", "").strip()
    ]
    if topical:
        truth = [row["label_topic"].strip() for row, _ in topical]
        print(f"  topics (top-1, on {len(topical)} labelled complaints):")
        items = [(r["text"], f) for r, f in topical]
        for name, predicted in topic_variants(rules, items, comments=True):
            accuracy = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
            print(
                f"    {name:<58} accuracy {accuracy:.3f}  macro-F1 {macro_f1(truth, predicted):.3f}"
            )
        shipped = [f.topics[0] for _, f in topical]
        top2 = sum(t in f.topics[:2] for t, (_, f) in zip(truth, topical, strict=True))
        print(
            f"    {'SHIPPED, the label among its first two topics':<58} accuracy "
            f"{top2 / len(truth):.3f}"
        )
        labellers(topical)
        misses = Counter((t, p) for t, p in zip(truth, shipped, strict=True) if t != p)
        print(
            "    most frequent confusions, shipped (label→predicted):",
            ", ".join(f"{t}→{p} {n}" for (t, p), n in misses.most_common(6)),
        )
        as_posts(rules, texts, [r["label_topic"].strip() for r, _ in topical], items)


def as_posts(rules: Flagger, texts: list[str], truth: list[str], items: list) -> None:
    """What ``topic_model: auto`` would do to these texts as residents' posts: how many the
    style model calls portal appeals, and the topics of the complaints then."""
    model = rules.model
    if rules.style is None or model is None:
        return
    portal = sum(rules.reads_as_portal(texts))
    auto = [f.topics[0] for f in flag_all(rules, [t for t, _ in items])]
    fallback = [f.topics[0] for f in flag_all(Flagger(model=model), [t for t, _ in items])]
    right = [
        sum(t == g for t, g in zip(truth, guesses, strict=True)) for guesses in (auto, fallback)
    ]
    print(
        f"  as residents' posts (not comments): the style model calls {portal} of {len(texts)}"
        f" portal appeals; topics of the complaints with topic_model auto"
        f" {right[0] / len(truth):.3f},"
        f" fallback {right[1] / len(truth):.3f}"
    )


def labeller_topics() -> tuple[dict[str, str], dict[str, str]]:
    """Each complaint's topic by the first labeller and by the second (blind) one, by
    comment_id; empty when the files are not there."""
    if not (SECOND_TOPICS.exists() and ADJUDICATION.exists()):
        return {}, {}
    with SECOND_TOPICS.open(encoding="utf-8", newline="") as fh:
        second = {r["comment_id"]: r["topic"] for r in csv.DictReader(fh)}
    with ADJUDICATION.open(encoding="utf-8", newline="") as fh:
        disputed = {r["comment_id"]: r for r in csv.DictReader(fh)}
    first = {c: (disputed[c]["first"] if c in disputed else t) for c, t in second.items()}
    return first, second


def labellers(topical: list[tuple[dict[str, str], Flags]]) -> None:
    """How often the two labellers agreed, and the shipped top-1 against each one's topics
    (the label file holds the adjudicated ones)."""
    first, second = labeller_topics()
    ids = [row["comment_id"] for row, _ in topical]
    if not ids or any(i not in second for i in ids):
        return
    agreed = sum(first[i] == second[i] for i in ids)
    print(
        f"    labellers: the second (blind) agreed with the first on {agreed} of {len(ids)}"
        f" ({agreed / len(ids):.3f}); the {len(ids) - agreed} others were adjudicated"
    )
    for name, topics in (("first", first), ("second", second)):
        hits = sum(f.topics[0] == topics[row["comment_id"]] for row, f in topical)
        print(
            f"    {f'SHIPPED against the {name} labeller alone':<58} accuracy {hits / len(ids):.3f}"
        )


def topic_variants(
    rules: Flagger, items: list[tuple[str, Flags]], comments: bool = False
) -> list[tuple[str, list[str]]]:
    """Top-1 topic of each (text, shipped flags) by the rules, the topic model and the ways of
    using it (``topic_model: fallback``, the default, and ``blend``); for ``comments``, the
    shipped flags come from the comment model."""
    model = rules.model
    if model is None:
        return [("rules (lexicons) only", [f.topics[0] for _, f in items])]
    alone = Flagger(model=None)  # the same lexicons, no model
    fallback = Flagger(model=model)
    blended = Flagger(model=model, blend=True)
    posts = Flagger(model=model, posts_first=True)
    probs = [model.probabilities(learned.features(t)) for t, _ in items]
    shipped = [f.topics[0] for _, f in items]
    variants = [
        ("rules (lexicons) only", [alone.flag(t).topics[0] for t, _ in items]),
        ("model only (trained on the appeals)", [max(p, key=p.__getitem__) for p in probs]),
    ]
    if comments:
        variants.append(
            ("fallback (as for posts): rules; the model where they find none",
             [_fallback(fallback, t, f) for t, f in items])
        )  # fmt: skip
    else:
        variants.append(
            ("option fallback: rules; the model where they find none",
             [fallback.flag(t).topics[0] for t, _ in items])
        )  # fmt: skip
    variants.append(
        ("option blend: mean of rule shares and model; fallback",
         [blended.flag(t).topics[0] for t, _ in items])
    )  # fmt: skip
    if not comments:
        variants.append(
            ("option posts: the model for complaints and lexicon topics",
             [posts.flag(t).topics[0] for t, _ in items])
        )  # fmt: skip
        variants.append(
            ("SHIPPED auto: the model for portal-style posts; fallback", shipped)
        )  # fmt: skip
    if comments:
        variants.append(("SHIPPED for comments: the comment model (make train)", shipped))
    return variants


def _fallback(rules: Flagger, text: str, shipped: Flags) -> str:
    """The fallback topic of a text flagged a complaint (as the shipped flagger decided)."""
    flags = rules.flag(text)
    if flags.topics == ["other"] and not flags.is_complaint and shipped.is_complaint:
        flags.is_complaint = True  # judge the topic of what the shipped flagger calls a complaint
        model = rules.model
        assert model is not None
        probs = model.probabilities(learned.features(text))
        best = max(probs, key=probs.__getitem__)
        return best if probs[best] >= rules.model_min else "other"
    return flags.topics[0]


def eval_places(rules: Flagger) -> None:
    """Comments whose geocoded ``address`` column names a street and a number: found without
    a gazetteer, and with one of St Petersburg's streets built from another source (the
    addresses of the portal appeals, read in place; the comments never reach it)."""
    with VK.open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if re.search(r"\D+ \d", r["address"])]
    streets = appeal_streets()
    with tempfile.TemporaryDirectory() as folder:
        override = Path(folder) / "spb-streets.yaml"
        override.write_text(
            json.dumps({"places": {"streets": {"Санкт-Петербург": streets}}}, ensure_ascii=False),
            encoding="utf-8",
        )
        known = flagger([override])
        for name, judge, town in (
            ("without a gazetteer", rules, None),
            (f"with {len(streets)} streets of the appeals' addresses", known, "Санкт-Петербург"),
        ):
            found = 0
            for row in rows:
                street = row["address"].split()[0].lower()[:5]
                places = judge.flag(row["text"], town=town).places
                found += street in " ".join(p["name"].lower() for p in places)
            print(
                f"Places, {name}: of {len(rows)} VK comments whose geocoded address has a house "
                f"number, {found / len(rows):.1%} have that street among their places"
            )


def appeal_streets() -> list[str]:
    """The streets of St Petersburg the appeals' addresses name ("г.Санкт-Петербург, улица
    Пестеля, дом 19" → "улица Пестеля")."""
    streets: set[str] = set()
    with gzip.open(APPEALS, "rt", encoding="utf-8") as fh:
        for line in fh:
            parts = (json.loads(line)["address"] or "").split(", ")
            if len(parts) > 2 and parts[0] == "г.Санкт-Петербург" and parts[2].startswith("дом"):
                streets.add(parts[1])
    return sorted(streets)


def eval_appeals(rules: Flagger, plain: Flagger) -> None:
    with gzip.open(APPEALS, "rt", encoding="utf-8") as fh:
        appeals = [json.loads(line) for line in fh]
    began = time.perf_counter()
    flags = flag_all(rules, [a["text"] for a in appeals])
    elapsed = time.perf_counter() - began
    recall = sum(f.is_complaint for f in flags) / len(flags)
    print(f"Appeals (St Petersburg portal): {len(appeals)} appeals, {elapsed:.1f} s")
    answers = [a["answer_text"] for a in appeals if (a.get("answer_text") or "").strip()]
    # Answers are replies: flagged as comments, so the complaint model is asked too.
    answer_flags = flag_all(rules, answers, replies=True)
    wrong = sum(f.is_complaint for f in answer_flags)
    style = sum(f.official_style for f in answer_flags)
    plain_wrong = sum(f.is_complaint for f in flag_all(plain, answers, replies=True))
    print(f"  appeals flagged as complaints (recall): {recall:.3f}")
    print(
        f"  answers, flagged as replies by unmarked authors, taken for complaints: {wrong} of"
        f" {len(answers)} ({wrong / len(answers):.2%};"
        f" rules alone {plain_wrong / len(answers):.2%});"
        f" recognised as official style: {style / len(answers):.1%}"
    )
    strict = sum(
        f.topics[0] == CATEGORY_TOPIC[a["category"]] for a, f in zip(appeals, flags, strict=True)
    )
    lenient = sum(
        f.topics[0] in accepted(a["category"], a["reason"])
        for a, f in zip(appeals, flags, strict=True)
    )
    n = len(appeals)
    print(
        "  (the shipped topic model was trained on these very appeals: the topic figures below are"
        " in-sample for it; the held-out ones are at the end)"
    )
    print(
        f"  topic accuracy (shipped), top-1: {strict / n:.3f} against the 15 categories mapped to"
        f" one code; {lenient / n:.3f} accepting the codes the portal's reason also names"
    )
    truth = [CATEGORY_TOPIC[a["category"]] for a in appeals]
    top = [f.topics[0] for f in flags]
    print(f"  topic macro-F1 (15 categories → codes): {macro_f1(truth, top):.3f}")
    per = Counter()
    right = Counter()
    for a, f in zip(appeals, flags, strict=True):
        per[a["category"]] += 1
        right[a["category"]] += f.topics[0] in accepted(a["category"], a["reason"])
    for category, count in per.most_common():
        print(f"    {category[:60]:<60} {count:>6}  {right[category] / count:.3f}")
    by_district(rules, appeals, flags, answer_flags)


def by_district(
    rules: Flagger, appeals: list[dict], flags: list[Flags], answer_flags: list[Flags]
) -> None:
    """Figures per group of districts: does it hold from one part of the city to another?

    The rules were never fitted to a district. The shipped model saw every district, so its
    figures here are in-sample; the held-out ones come from `make train` (topics.json).
    """
    codes = [code_of(a["category"], a["reason"]) for a in appeals]
    variants = dict(
        topic_variants(rules, [(a["text"], f) for a, f in zip(appeals, flags, strict=True)])
    )
    answered = [bool((a.get("answer_text") or "").strip()) for a in appeals]
    answer_of = iter(answer_flags)
    answer_flagged = [next(answer_of).is_complaint if has else False for has in answered]
    print("  per district group (topic accuracy against the reason-mapped codes of `make train`):")
    print(
        f"    {'districts':<44} {'appeals':>7} {'recall':>7} {'ans→cpl':>8} {'rules':>6}"
        f" {'model*':>6} {'shipped':>7}"
    )
    for group in DISTRICT_GROUPS:
        index = [i for i, a in enumerate(appeals) if a["district"] in group]
        n = len(index)
        answers = sum(answered[i] for i in index)

        def acc(name: str, index: list[int] = index) -> str:
            predicted = variants.get(name)
            if predicted is None:
                return "-"
            return f"{sum(predicted[i] == codes[i] for i in index) / len(index):.3f}"

        print(
            f"    {', '.join(group)[:44]:<44} {n:>7} "
            f"{sum(flags[i].is_complaint for i in index) / n:>7.3f} "
            f"{sum(answer_flagged[i] for i in index) / answers:>8.2%} "
            f"{acc('rules (lexicons) only'):>6} {acc('model only (trained on the appeals)'):>6} "
            f"{acc(next(k for k in variants if k.startswith('SHIPPED'))):>7}"
        )
    model = rules.model
    held = (model.meta.get("held_out_districts") or {}) if model is not None else {}
    if held:
        print(
            "    * model in-sample here. Trained without the group (make train, topics.json),"
            " top-1 accuracy:"
        )
        print(
            f"      {'held-out districts':<42} {'appeals':>7} rules  model fallback blend  posts"
            "  AUTO (shipped; portal style)"
        )
        for name, f in held.items():
            print(
                f"      {name[:42]:<42} {f['appeals']:>7} {f.get('rules', 0):.3f}  "
                f"{f['accuracy']:.3f}  {f.get('fallback', 0):.3f}    {f.get('blend', 0):.3f}  "
                f"{f.get('posts', 0):.3f}  {f.get('auto', 0):.3f} ({f.get('portal', 0):.0%})"
            )


def eval_outlets(rules: Flagger) -> None:
    """News and announcements: outlets' own posts flagged as complaints, as sources of their
    type collect them (feeds and Telegram channels editorial by default, VK walls residents')."""
    from spiders.rss import parse_feed
    from spiders.telegram_web_page import parse_page

    fixtures = DATA / "fixtures"
    mos = parse_feed((fixtures / "rss_mos_ru_news_2022-07-27.xml").read_bytes(), "https://mos.ru")
    channel = parse_page(
        (fixtures / "tme_s_xCareers.html").read_text(encoding="utf-8"),
        "https://t.me/s/xCareers",
        "xCareers",
    )
    wall = json.loads((fixtures / "vk_wall_get_-61006621.json").read_text(encoding="utf-8"))
    demo = [
        post
        for name in ("mos/rss.xml", "district/rss.xml", "municipal/atom.xml")
        for post in parse_feed((ROOT / "examples" / "replay" / name).read_bytes(), "x").posts
    ]
    sets = [
        ("real: mos.ru news (RSS, editorial)", [f"{p.title}\n{p.text}" for p in mos.posts], True),
        ("real: a Telegram channel (t.me/s, editorial)", [p.text for p in channel.posts], True),
        ("real: a VK community's wall (residents)", [i["text"] for i in wall["response"]["items"]],
         False),
        ("written for the demo: municipal feeds (editorial; seen when setting the shift)",
         [f"{p.title}\n{p.text}" for p in demo], True),
    ]  # fmt: skip
    if NEWS_WRITTEN.exists():
        with NEWS_WRITTEN.open(encoding="utf-8", newline="") as fh:
            written = [f"{r['title']}\n{r['text']}" for r in csv.DictReader(fh)]
        sets.append(("written blind (news_written.csv; never tuned on, editorial)", written, True))
    print("Outlets' own posts (news, announcements, adverts) flagged as complaints:")
    real = [0, 0]
    for name, texts, editorial in sets:
        flagged = sum(rules.flag(t, editorial=editorial).is_complaint for t in texts)
        if rules.style is not None:
            name = f"{name} [portal style {sum(rules.reads_as_portal(texts))}]"
        if name.startswith("real"):
            real[0] += flagged
            real[1] += len(texts)
        bound = upper_bound(flagged, len(texts))
        blind = f" ({bound:.0%} at most, 95 %)" if "blind" in name else ""
        print(f"    {name:<80} {flagged:>2} of {len(texts)}{blind}")
    bound = upper_bound(*real)
    print(f"    {'all real ones':<80} {real[0]:>2} of {real[1]} ({bound:.0%} at most, 95 %)")


def upper_bound(k: int, n: int) -> float:
    """The exact (Clopper-Pearson) one-sided 95 % upper bound of a rate seen k times in n."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(0.95, k + 1, n - k))


def main() -> None:
    began = time.perf_counter()
    rules = flagger()
    rules.flag_many(["Когда уберут мусор во дворе?"])  # loads the word vectors
    print(f"rules and models loaded in {time.perf_counter() - began:.2f} s")
    plain = flagger(comments=False)
    rows, dev = load_vk(), load_vk(DEV_LABELS)
    seen = {thread_of(r) for r in dev}
    eval_vk(
        rules, plain, rows, "VK comments, EVALUATION set (tests/data/vk_comment_labels.csv)", seen
    )
    eval_vk(rules, plain, dev, "VK comments, development set (vk_comment_dev_labels.csv; tuned on)")
    eval_places(rules)
    eval_outlets(rules)
    eval_appeals(rules, plain)


if __name__ == "__main__":
    main()

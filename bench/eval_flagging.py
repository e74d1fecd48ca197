"""`make eval`: quality of flagging on real data read in place; prints figures, asserts nothing.

1. The hand-labelled VK comments (tests/data/vk_comment_labels.csv joined by comment_id to
   ../shared/data/vk/vk_comments_spb_central.csv): complaint precision/recall/F1, topic accuracy
   and macro-F1 on the complaints, official answers flagged as complaints.
2. The St Petersburg portal appeals: every appeal is a complaint (recall), every answer_text is
   an official answer (false-positive rate), topic accuracy against the portal's categories.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flagging import flagger  # noqa: E402
from flagging.rules import Flagger  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
APPEALS = DATA / "appeals" / "spb_nash_gorod.jsonl.gz"
VK = DATA / "vk" / "vk_comments_spb_central.csv"
LABELS = ROOT / "tests" / "data" / "vk_comment_labels.csv"

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


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    """Macro-averaged F1 over the codes that occur in ``truth``."""
    scores = []
    for code in sorted(set(truth)):
        pairs = [(t == code, p == code) for t, p in zip(truth, predicted, strict=True)]
        scores.append(prf(pairs)[2])
    return sum(scores) / len(scores) if scores else 0.0


def load_vk() -> list[dict[str, str]]:
    """Labelled comments joined with their text; empty when the labels are not there."""
    if not LABELS.exists():
        return []
    with VK.open(encoding="utf-8", newline="") as fh:
        texts = {row["comment_id"]: row for row in csv.DictReader(fh)}
    with LABELS.open(encoding="utf-8", newline="") as fh:
        labels = list(csv.DictReader(fh))
    rows = []
    for label in labels:
        row = texts.get(label["comment_id"])
        if row is not None:
            rows.append({**row, **{f"label_{k}": v for k, v in label.items()}})
    return rows


def truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "y", "да")


def eval_vk(rules: Flagger, rows: list[dict[str, str]]) -> None:
    if not rows:
        print(f"VK labels: {LABELS.relative_to(ROOT)} not found; skipped")
        return
    flags = [rules.flag(r["text"], official_author=r["author_is_official"] == "True") for r in rows]
    pairs = [
        (truthy(r["label_is_complaint"]), f.is_complaint) for r, f in zip(rows, flags, strict=True)
    ]
    p, r, f1 = prf(pairs)
    positives = sum(t for t, _ in pairs)
    print(f"VK comments, hand-labelled: {len(rows)} ({positives} complaints)")
    print(f"  complaint precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}")
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
        (row["label_topic"].strip(), f.topics[0])
        for row, f in zip(rows, flags, strict=True)
        if truthy(row["label_is_complaint"]) and row.get("label_topic", "").strip()
    ]
    if topical:
        truth, predicted = [t for t, _ in topical], [p for _, p in topical]
        accuracy = sum(t == p for t, p in topical) / len(topical)
        print(
            f"  topic (top-1, on {len(topical)} labelled complaints): accuracy {accuracy:.3f}"
            f"  macro-F1 {macro_f1(truth, predicted):.3f}"
        )
        misses = Counter((t, p) for t, p in topical if t != p).most_common(6)
        print(
            "  most frequent confusions (label→predicted):",
            ", ".join(f"{t}→{p} {n}" for (t, p), n in misses),
        )


def eval_places(rules: Flagger) -> None:
    """Comments whose geocoded ``address`` column names a street and a number."""
    with VK.open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if re.search(r"\D+ \d", r["address"])]
    found = 0
    for row in rows:
        street = row["address"].split()[0].lower()[:5]
        names = " ".join(p["name"].lower() for p in rules.flag(row["text"]).places)
        found += street in names
    print(
        f"Places: of {len(rows)} VK comments whose geocoded address has a house number, "
        f"{found / len(rows):.1%} have that street among their places"
    )


def cv_model(rules: Flagger, rows: list[dict[str, str]]) -> None:
    """5-fold cross-validated logistic regression (char n-grams + rule scores), not shipped."""
    try:
        import numpy as np
        from scipy.sparse import csr_matrix, hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, f1_score
        from sklearn.model_selection import KFold, StratifiedKFold
    except ImportError:
        print("scikit-learn not installed: model comparison skipped")
        return
    texts = [r["text"] for r in rows]
    official = np.array([r["author_is_official"] == "True" for r in rows])
    flags = [rules.flag(t, official_author=o) for t, o in zip(texts, official, strict=True)]
    codes = sorted({r["label_topic"] for r in rows})

    def features(vectorizer, index):  # type: ignore[no-untyped-def]
        grams = vectorizer.transform([texts[i] for i in index])
        extra = [
            [flags[i].complaint_score, flags[i].official_score / 5]
            + [flags[i].topic_scores.get(c, 0.0) for c in codes]
            for i in index
        ]
        return hstack([grams, csr_matrix(extra)]).tocsr()

    def fit_predict(train, test, labels, **kw):  # type: ignore[no-untyped-def]
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2)
        vectorizer.fit([texts[i] for i in train])
        model = LogisticRegression(C=3, max_iter=2000, **kw)
        model.fit(features(vectorizer, train), labels[train])
        return model.predict(features(vectorizer, test))

    y = np.array([truthy(r["label_is_complaint"]) for r in rows])
    predicted = np.zeros(len(y), dtype=bool)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    for train, test in folds.split(texts, y):
        predicted[test] = fit_predict(train, test, y, class_weight="balanced")
    predicted[official] = False
    print("Statistical alternative (5-fold CV on the labelled comments, seed 0):")
    print(
        f"  complaint F1 {f1_score(y, predicted):.3f} (rules on the same rows: "
        f"{f1_score(y, [f.is_complaint for f in flags]):.3f})"
    )
    index = np.array([i for i in range(len(y)) if y[i]])
    topics = np.array([rows[i]["label_topic"] for i in index])
    guessed = np.empty(len(index), dtype=object)
    for train, test in KFold(5, shuffle=True, random_state=0).split(index):
        guessed[test] = fit_predict(
            index[train],
            index[test],
            np.array([rows[i]["label_topic"] for i in range(len(rows))], dtype=object),
        )
    ruled = [flags[i].topics[0] for i in index]
    print(
        f"  topic accuracy {accuracy_score(topics, guessed):.3f}, macro-F1 "
        f"{f1_score(topics, guessed, average='macro'):.3f} (rules: "
        f"{accuracy_score(topics, ruled):.3f}, {f1_score(topics, ruled, average='macro'):.3f})"
    )


def eval_appeals(rules: Flagger) -> None:
    with gzip.open(APPEALS, "rt", encoding="utf-8") as fh:
        appeals = [json.loads(line) for line in fh]
    began = time.perf_counter()
    flags = [rules.flag(a["text"]) for a in appeals]
    elapsed = time.perf_counter() - began
    recall = sum(f.is_complaint for f in flags) / len(flags)
    print(f"Appeals (St Petersburg portal): {len(appeals)} appeals, {elapsed:.1f} s")
    print(f"  appeals flagged as complaints (recall): {recall:.3f}")
    answers = [a["answer_text"] for a in appeals if (a.get("answer_text") or "").strip()]
    answer_flags = [rules.flag(t) for t in answers]
    wrong = sum(f.is_complaint for f in answer_flags)
    style = sum(f.official_style for f in answer_flags)
    print(
        f"  answers flagged as complaints: {wrong} of {len(answers)} ({wrong / len(answers):.2%});"
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
        f"  topic accuracy, top-1: {strict / n:.3f} against the 15 categories mapped to one code;"
        f" {lenient / n:.3f} accepting the codes the portal's reason also names"
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


def main() -> None:
    began = time.perf_counter()
    rules = flagger()
    print(f"rules loaded in {time.perf_counter() - began:.2f} s")
    rows = load_vk()
    eval_vk(rules, rows)
    if rows:
        cv_model(rules, rows)
    eval_places(rules)
    eval_appeals(rules)


if __name__ == "__main__":
    main()

"""`make bench`: how fast each collector turns platform answers into Posts (no network).

Prints figures; asserts nothing. On one core, real data read in place where there is some:
- t.me/s: the real saved xCareers page (../shared/data/fixtures), posts/s;
- html: the project's made-up municipal list and question pages (tests/fixtures/html), items/s;
- VK: the real wall.get capture and the 1,260 real comments in the getComments shape, items/s;
- Telegram (MTProto): real Telethon Message objects with the real appeal texts, messages/s.
Politeness caps real collection far lower (about one page a second per site; 3 VK requests a
second per token): these figures show the parsing never is the bottleneck.
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spiders.html import Options as HtmlOptions  # noqa: E402
from spiders.html_dates import DateReader  # noqa: E402
from spiders.html_pages import parse_item_page, parse_list  # noqa: E402
from spiders.telegram_mapping import ChannelRef, channel_post  # noqa: E402
from spiders.telegram_web_page import parse_page  # noqa: E402
from spiders.vk_mapping import comment, wall_post  # noqa: E402
from tests.telegram_fakes import post as tl_post  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SITES = ROOT / "tests" / "fixtures" / "html"


def rate(label: str, unit: str, work: Callable[[], int], seconds: float = 1.5) -> None:
    """Run ``work`` (returns items done) repeatedly for ``seconds``; print items per second."""
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        done += work()
    spent = time.perf_counter() - began
    print(f"{label:<58} {done / spent:>10,.0f} {unit}/s")


def bench_tme() -> None:
    page = (DATA / "fixtures" / "tme_s_xCareers.html").read_bytes()

    def work() -> int:
        return len(parse_page(page, "https://t.me/s/xCareers", "xCareers").posts)

    rate(f"t.me/s real page ({len(page) // 1024} KiB, {work()} posts)", "posts", work)


def bench_html() -> None:
    news = HtmlOptions.model_validate(
        {
            "id": "b", "type": "html", "url": "http://b/news/", "item": ".news-list .news-item",
            "date": ".news-date-time", "next_page": "a.modern-page-next",
            "follow": {"text": ".news-detail-text", "author": ".news-detail-author span"},
        }
    )  # fmt: skip
    qa = HtmlOptions.model_validate(
        {
            "id": "q", "type": "html", "url": "http://b/priemnaya/",
            "item": "//table[@class='qa-list']//tr[td]", "link": "td.qa-subject a",
            "date": "./td[2]",
            "follow": {"text": ".question-text", "date": ".question-head",
                       "answer": ".answer-text", "answer_date": ".answer-date"},
        }
    )  # fmt: skip
    listing = (SITES / "zarechny" / "news" / "index.html").read_bytes()
    pages = [p.read_bytes() for p in sorted((SITES / "sosnovka" / "priemnaya").glob("vopros-*"))]

    def lists() -> int:
        return len(parse_list(listing, news.url, news, DateReader("Europe/Moscow")).items)

    def items() -> int:
        dates = DateReader("Europe/Moscow")
        for body in pages:
            parse_item_page(body, "http://b/x", qa.follow, qa, dates)  # type: ignore[arg-type]
        return len(pages)

    rate("html list page (UTF-8, Bitrix news), dates by dateparser", "items", lists)
    rate("html question pages (windows-1251, with answers)", "pages", items)


def bench_vk() -> None:
    wall = json.loads((DATA / "fixtures" / "vk_wall_get_-61006621.json").read_text("utf-8"))
    items = wall["response"]["items"]
    rate(
        f"VK wall.get real items ({len(items)})",
        "posts",
        lambda: len([wall_post(i) for i in items]),
    )
    with (DATA / "vk" / "vk_comments_spb_central.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    shaped = [
        {
            "id": n, "from_id": 700000000 + n, "post_id": 1, "owner_id": -143265175,
            "parents_stack": [], "text": row["text"], "likes": {"count": int(row["likes"] or 0)},
            "date": int(datetime.strptime(row["published"], "%Y.%m.%d %H:%M")
                        .replace(tzinfo=UTC).timestamp()),
        }
        for n, row in enumerate(rows, 1)
    ]  # fmt: skip
    rate(
        f"VK getComments items (real texts, {len(shaped):,})",
        "comments",
        lambda: len([comment(i, -143265175, 1) for i in shaped]),
    )


def bench_telegram() -> None:
    with gzip.open(DATA / "appeals" / "spb_nash_gorod.jsonl.gz", "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in islice(fh, 5000)]
    start = datetime(2021, 1, 1, tzinfo=UTC)
    messages = [tl_post(n, start + timedelta(minutes=n), text) for n, text in enumerate(texts, 1)]
    channel = ChannelRef(id=1500100200, username="Adm_Gorod_N", title="Администрация г. N")
    rate(
        f"Telegram Message objects (real appeal texts, {len(messages):,})",
        "messages",
        lambda: len([channel_post([m], channel) for m in messages]),
    )


def main() -> int:
    if not DATA.exists():
        print(f"bench: {DATA} is missing (../shared/data beside the checkout)", file=sys.stderr)
        return 1
    print("collectors: platform answers → Posts, one core, no network\n")
    bench_tme()
    bench_html()
    bench_vk()
    bench_telegram()
    return 0


if __name__ == "__main__":
    sys.exit(main())

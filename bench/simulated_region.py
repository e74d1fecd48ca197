"""A region's sources on this machine, for `make bench`: feeds, t.me/s pages and a VK API.

Many sites, each answering with a latency of 50–500 ms: municipal sites on their own
loopback addresses (``127.0.1.1``, ``127.0.1.2``, … so every site is a host of its own for
the harvester's politeness), a t.me-like site with one page per channel and a VK-compatible
API (``tests/vk_server.py``) with a wall per community. Content is made up, in the shape of
the real thing (RSS 2.0 with guids and pubDates, the t.me/s markup, wall.get items); a new
item appears in each source every few minutes, half the feeds answer conditional GETs with
304. :func:`region` starts it all in this process's threads and returns the sources.yaml.
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VK_SAMPLE = ROOT / "examples" / "replay" / "vk" / "zarechny.json"
SAMPLE_GROUP = 201234567  # the community id of the sample wall
NEW_ITEM_EVERY = 300  # seconds between two new items of a source
PHRASES = (
    "На улице {street} третью неделю не вывозят мусор, контейнеры переполнены.",
    "В доме {house} по улице {street} нет горячей воды с понедельника.",
    "Яма на дороге у остановки «{street}» стала ещё больше, машины объезжают по встречной.",
    "Администрация сообщает: ремонт теплосети на улице {street} завершится к пятнице.",
    "Во дворе дома {house} не горят фонари, дети идут в школу в темноте.",
    "Приглашаем жителей на встречу с главой района в доме культуры в четверг.",
    "Сосульки на крыше дома {house} по улице {street} висят над входом в подъезд.",
    "В поликлинике на {street} нельзя записаться к терапевту, телефон не отвечает.",
    "Благодарим коммунальные службы за быструю уборку снега на улице {street}.",
    "Автобус №{house} снова не пришёл по расписанию, люди мёрзнут на остановке.",
    "Открыта запись в кружки и секции районной библиотеки, занятия бесплатные.",
    "Во дворе на {street} сломали детскую площадку, качели висят на одной цепи.",
)
STREETS = ("Садовая", "Ленина", "Мира", "Гагарина", "Школьная", "Речная", "Полевая", "Лесная")


def text_for(source: str, item: int) -> str:
    """A resident's or an editor's sentence, different for every source and item."""
    digest = int(hashlib.blake2b(f"{source}/{item}".encode(), digest_size=4).hexdigest(), 16)
    phrase = PHRASES[digest % len(PHRASES)]
    street = STREETS[(digest >> 8) % len(STREETS)]
    return f"{phrase.format(street=street, house=digest % 97 + 1)} ({source}, запись {item})"


def newest_item(source: str, now: float) -> int:
    """The number of the newest item of a source at ``now`` (one more every few minutes)."""
    offset = int(hashlib.blake2b(source.encode(), digest_size=2).hexdigest(), 16)
    return int((now + offset) // NEW_ITEM_EVERY)


def rss(source: str, host: str, now: float, items: int = 10) -> bytes:
    newest = newest_item(source, now)
    entries = []
    for number in range(newest, newest - items, -1):
        when = email.utils.formatdate(number * NEW_ITEM_EVERY, usegmt=True)
        link = f"http://{host}/news/{source}/{number}"
        text = html.escape(text_for(source, number))
        entries.append(
            f"<item><title>{text[:60]}</title><link>{link}</link><guid>{link}</guid>"
            f"<pubDate>{when}</pubDate><description>{text}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Новости: {source}</title><link>http://{host}/</link>"
        f"<description>Лента {source}</description>{''.join(entries)}</channel></rss>"
    ).encode()


def tme_page(channel: str, now: float, messages: int = 20) -> bytes:
    """A t.me/s/<channel> page in Telegram's web-preview markup."""
    newest = newest_item(channel, now)
    title = f"Город {channel}"
    parts = []
    for number in range(newest - messages + 1, newest + 1):
        when = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(number * NEW_ITEM_EVERY))
        text = html.escape(text_for(channel, number))
        parts.append(
            '<div class="tgme_widget_message_wrap js-widget_message_wrap"><div class="tgme_widget'
            f'_message text_not_supported_wrap js-widget_message" data-post="{channel}/{number}">'
            '<div class="tgme_widget_message_bubble"><div class="tgme_widget_message_author '
            f'accent_color"><a class="tgme_widget_message_owner_name" href="https://t.me/'
            f'{channel}"><span dir="auto">{title}</span></a></div><div class="tgme_widget_'
            f'message_text js-message_text" dir="auto">{text}</div><div class="tgme_widget_'
            'message_footer compact js-message_footer"><div class="tgme_widget_message_info '
            'short js-message_info"><span class="tgme_widget_message_views">1.2K</span>'
            '<span class="tgme_widget_message_meta"><a class="tgme_widget_message_date" '
            f'href="https://t.me/{channel}/{number}"><time datetime="{when}" class="time">'
            "</time></a></span></div></div></div></div></div>"
        )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>'
        f'{title} – Telegram</title><meta property="og:title" content="{title}"></head>'
        '<body class="widget_frame_base tgme_widget body_widget_post emoji_image nodark">'
        f'<main class="tgme_main" data-url="/{channel}"><div class="tgme_container">'
        '<section class="tgme_channel_history js-message_history">'
        f"{''.join(parts)}</section></div></main></body></html>"
    ).encode()


@dataclass
class Site:
    """One simulated web site: its server thread and the requests it answered."""

    host: str
    server: ThreadingHTTPServer | None = None
    answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.server.server_address[1]}"


def _handler(site: Site, kind: str, latency: tuple[float, float]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(random.uniform(*latency))
            with site.lock:
                site.answered += 1
            path = self.path.split("?", 1)[0]
            now = time.time()
            if path == "/robots.txt":
                return self._send(200, b"User-agent: *\nAllow: /\n", "text/plain")
            if kind == "rss" and path.startswith("/rss/"):
                source = path.removeprefix("/rss/").removesuffix(".xml")
                tag = f'"{newest_item(source, now)}"'
                conditional = int(hashlib.md5(source.encode()).hexdigest(), 16) % 2 == 0
                if conditional and self.headers.get("If-None-Match") == tag:
                    return self._send(304, b"", None, {"ETag": tag})
                extra = {"ETag": tag} if conditional else {}
                return self._send(
                    200, rss(source, site.host, now), "application/rss+xml; charset=utf-8", extra
                )
            if kind == "tme" and path.startswith("/s/"):
                page = tme_page(path.removeprefix("/s/"), now)
                return self._send(200, page, "text/html; charset=utf-8")
            return self._send(404, b"not found", "text/plain")

        def _send(
            self, status: int, body: bytes, ctype: str | None, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def start_site(host: str, kind: str, latency: tuple[float, float]) -> Site:
    site = Site(host)
    site.server = ThreadingHTTPServer((host, 0), _handler(site, kind, latency))
    site.server.daemon_threads = True
    threading.Thread(target=site.server.serve_forever, daemon=True).start()
    return site


def vk_walls(count: int) -> list[dict[str, Any]]:
    """``count`` walls in the shape of the sample wall, each of its own community."""
    text = VK_SAMPLE.read_text("utf-8")
    walls = []
    for number in range(count):
        group = 300_000_000 + number
        data = json.loads(
            text.replace(str(SAMPLE_GROUP), str(group)).replace(
                "zarechny_news", f"sim_public_{number}"
            )
        )
        walls.append(data)
    return walls


@dataclass
class Region:
    """What :func:`region` started: the sites, the VK server and the sources.yaml text."""

    sites: list[Site]
    vk: Any
    sources_yaml: str
    intervals: dict[str, float]

    def stop(self) -> None:
        for site in self.sites:
            if site.server is not None:
                site.server.shutdown()
        self.vk.stop()


def region(
    sources: int,
    every: str,
    *,
    per_host: int = 20,
    share_tme: float = 0.15,
    share_vk: float = 0.05,
    latency: tuple[float, float] = (0.05, 0.5),
    extra_defaults: str = "",
) -> Region:
    """Start a simulated region of ``sources`` sources collected ``every`` (15m, 1m…)."""
    import sys

    sys.path.insert(0, str(ROOT))
    from crawler.validators import parse_duration
    from tests.vk_server import VkServer

    n_tme = int(sources * share_tme)
    n_vk = int(sources * share_vk)
    n_rss = sources - n_tme - n_vk
    hosts = max(1, n_rss // per_host)
    sites = [
        start_site(f"127.0.{1 + n // 250}.{1 + n % 250}", "rss", latency) for n in range(hosts)
    ]
    tme = start_site("127.0.9.1", "tme", latency)
    sites.append(tme)
    vk = VkServer(host="127.0.9.2").start()
    for wall in vk_walls(n_vk):
        vk.add_wall(wall)
    lines = [
        "defaults:",
        f"  schedule: {{every: {every}, jitter: {'1m' if every != '1m' else '5s'}}}",
        f"  vk_api_url: {vk.url}",
        "  timeout: 20",
        *(f"  {line}" for line in extra_defaults.splitlines() if line.strip()),
        "sites:",
        "  127.0.9.1: {concurrency: 8, delay: 100ms, collections: 40}",
        "sources:",
    ]
    for n in range(n_rss):
        site = sites[n % hosts]
        lines.append(f"  - {{id: feed-{n}, type: rss, url: '{site.base}/rss/feed-{n}.xml'}}")
    for n in range(n_tme):
        lines.append(
            f"  - {{id: tme-{n}, type: telegram_web, channel: sim_channel_{n}, "
            f"base_url: '{tme.base}', max_pages: 1}}"
        )
    for n in range(n_vk):
        lines.append(f"  - {{id: vk-{n}, type: vk_wall, owner: sim_public_{n}, max_posts: 20}}")
    seconds = parse_duration(every).total_seconds()
    ids = [f"feed-{n}" for n in range(n_rss)] + [f"tme-{n}" for n in range(n_tme)]
    ids += [f"vk-{n}" for n in range(n_vk)]
    return Region(sites, vk, "\n".join(lines) + "\n", dict.fromkeys(ids, seconds))


def main() -> None:
    """``python bench/simulated_region.py SOURCES EVERY OUT.yaml``: serve a region until
    killed; its sources.yaml is written to OUT.yaml once every site is up."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("sources", type=int)
    parser.add_argument("every")
    parser.add_argument("out", type=Path)
    parser.add_argument("--latency", default="0.05,0.5", help="seconds: min,max per answer")
    parser.add_argument("--defaults", default="", help="more defaults: lines, ';'-separated")
    args = parser.parse_args()
    low, high = (float(x) for x in args.latency.split(","))
    made = region(
        args.sources,
        args.every,
        latency=(low, high),
        extra_defaults=args.defaults.replace(";", "\n"),
    )
    part = args.out.with_name(args.out.name + ".part")
    part.write_text(made.sources_yaml, encoding="utf-8")
    part.replace(args.out)
    threading.Event().wait()


if __name__ == "__main__":
    main()

"""The report as one self-contained HTML page, in Russian, for ЦУР operators.

Everything is inline: styles, and charts as SVG (:mod:`crawler.charts`); there is no script,
font or image from elsewhere, so the file opens offline. Links lead to the residents' posts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from crawler import charts

PLATFORMS = {
    "vk": "ВКонтакте",
    "ok": "Одноклассники",
    "telegram": "Telegram",
    "max": "MAX",
    "rss": "RSS",
    "web": "сайт",
}
DIMENSIONS = (
    ("municipality", "По муниципалитетам", "Муниципалитет"),
    ("topic", "По темам", "Тема"),
    ("agency", "По ответственным (подсказки маршрутизации)", "Ответственный"),
    ("source", "По источникам", "Источник"),
    ("platform", "По площадкам", "Площадка"),
)

WEB = ("https://", "http://")

STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:0;color:#1c2833;background:#f4f6f7}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:2px solid
#c0392b;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
p.note{color:#566573;font-size:13px;margin:4px 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0}
.card{background:#fff;border-radius:6px;padding:10px 14px;min-width:150px;box-shadow:0 1px 2px
#ccd1d1}.card b{display:block;font-size:26px}.card small{font-size:12px;color:#566573}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:6px 0 12px;width:100%}
th,td{border:1px solid #d5d8dc;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#eaeded;font-weight:600}td.n{text-align:right;white-space:nowrap}
table.heat td{text-align:center;min-width:70px}table.heat td b{font-size:15px}
table.heat .muted{color:#2c3e50}table.heat .up{color:#641e16;font-weight:600}
.up{color:#c0392b}.down{color:#239b56}.muted{color:#7f8c8d;font-size:12px}
.bad{color:#c0392b;font-weight:600}.ok{color:#239b56}
figure{background:#fff;margin:8px 0 14px;padding:8px;border-radius:6px}
svg.chart{max-width:100%;height:auto}a{color:#1f618d}
.empty{background:#fff;padding:10px;color:#566573;font-style:italic}
"""


def _when(text: str | None, zone: str, *, date_only: bool = False) -> str:
    if not text:
        return ""
    value = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    local = value.astimezone(ZoneInfo(zone))
    return local.strftime("%d.%m.%Y" if date_only else "%d.%m.%Y %H:%M")


def _hours(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{round(value * 60)} мин"
    if value < 48:
        return f"{value:.1f} ч".replace(".0 ч", " ч")
    return f"{value / 24:.1f} дн".replace(".0 дн", " дн")


def _change(value: int) -> str:
    if value > 0:
        return f'<span class="up">▲ +{value}</span>'
    if value < 0:
        return f'<span class="down">▼ {value}</span>'
    return '<span class="muted">без изменений</span>'


def _share(value: float | None) -> str:
    if value is None:
        return "—"
    css = "ok" if value >= 0.8 else "bad" if value < 0.5 else ""
    return f'<span class="{css}">{value * 100:.0f}%</span>'


def _case_link(case: dict[str, Any] | None, *, text: bool = False) -> str:
    if not case:
        return ""
    label = f"случай №{case['cluster_id']}"
    url = str(case.get("url") or "")
    # Links only to web addresses: an imported post may carry anything in its url.
    link = f'<a href="{escape(url)}">{label}</a>' if url.startswith(WEB) else label
    if text:
        words = (case.get("title") or case.get("text") or "").strip()
        if len(words) > 160:
            words = words[:157].rsplit(" ", 1)[0] + "…"
        link += f"<br><span class='muted'>{escape(words)}</span>"
    return link


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    if not rows:
        return '<p class="empty">Нет данных за период.</p>'
    cls = f' class="{css}"' if css else ""
    out = [f"<table{cls}><thead><tr>"]
    out += [f"<th>{h}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _td(value: Any, numeric: bool = False) -> str:
    return f'<td class="n">{value}</td>' if numeric else f"<td>{value}</td>"


def render(report: dict[str, Any]) -> str:
    """The whole page."""
    zone = report["period"]["timezone"]
    topics = report["topics"]

    def topic(code: str | None) -> str:
        return escape(topics.get(code or "", code or "—"))

    period = report["period"]
    title = "Ситуационный отчёт: обращения жителей"
    place = f" — {escape(period['municipality'])}" if period["municipality"] else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="ru"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}{place}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{title}{place}</h1>",
        f'<p class="note">Период: {_when(period["since"], zone)} — {_when(period["until"], zone)}'
        f" ({period['days']:g} дн.); сравнение с предыдущим периодом той же длины "
        f"(с {_when(period['previous_since'], zone)}). Время: {escape(zone)}. Жители — разные "
        "авторы жалоб (не официальные аккаунты); случай — одна проблема, опубликованная в "
        "одном или нескольких местах.</p>",
        _cards(report),
        _heat_map(report, topic),
        _tension(report, topic),
        _answers(report, topic, zone),
        _recurrence(report, topic, zone),
        _trend(report, topic),
        _largest(report, topic, zone),
        f'<p class="note">Сформировано Glas {_when(_now(), zone)}.</p>',
        "</main></body></html>",
    ]
    return "\n".join(parts)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cards(report: dict[str, Any]) -> str:
    totals = report["totals"]
    overall = (report["answers"].get("all") or [{}])[0]
    recurrence = report["recurrence"]
    cards = [
        (
            totals["residents"],
            "жителей с жалобами",
            totals["residents"] - totals["residents_before"],
        ),
        (totals["cases"], "случаев", totals["cases"] - totals["cases_before"]),
        (
            totals["posts"],
            "жалоб (публикаций и комментариев)",
            totals["posts"] - totals["posts_before"],
        ),
    ]
    out = ['<div class="cards">']
    for value, label, change in cards:
        out.append(
            f'<div class="card"><b>{value}</b><small>{label}<br>{_change(change)}</small></div>'
        )
    share = overall.get("share_in_norm")
    out.append(
        f'<div class="card"><b>{_share(share)}</b><small>ответов в норматив<br>'
        f"медиана {_hours(overall.get('median_hours'))}</small></div>"
    )
    out.append(
        f'<div class="card"><b class="bad">{report["overdue_total"]}</b><small>просрочено без '
        "ответа</small></div>"
    )
    out.append(
        f'<div class="card"><b>{recurrence["recurred_cases"]}</b><small>повторов после ответа'
        f"<br>из {recurrence['answered_cases']} отвеченных</small></div>"
    )
    out.append("</div>")
    return "".join(out)


def _heat_map(report: dict[str, Any], topic: Any) -> str:
    rows = [r for r in report["heat_map"] if r["residents"] or r["cases"] or r["residents_before"]]
    out = [
        "<h2>Тепловая карта: муниципалитеты × темы</h2>",
        '<p class="note">В клетке: жителей с жалобами за период, случаев, и изменение числа '
        "жителей к предыдущему периоду. Чем темнее клетка, тем больше жителей.</p>",
    ]
    if not rows:
        return "".join(out) + '<p class="empty">Жалоб за период нет.</p>'
    places = sorted({r["municipality"] for r in rows})
    by_topic: dict[str, int] = {}
    for r in rows:
        by_topic[r["topic"]] = by_topic.get(r["topic"], 0) + r["residents"]
    codes = sorted(by_topic, key=lambda c: (-by_topic[c], c))
    cell = {(r["municipality"], r["topic"]): r for r in rows}
    peak = max(r["residents"] for r in rows) or 1
    table = ['<table class="heat"><thead><tr><th>Муниципалитет</th>']
    table += [f"<th>{topic(c)}</th>" for c in codes]
    table.append("</tr></thead><tbody>")
    for name in places:
        table.append(f"<tr><th>{escape(name or 'не указан')}</th>")
        for code in codes:
            r = cell.get((name, code))
            if r is None:
                table.append("<td></td>")
                continue
            alpha = 0.08 + 0.5 * r["residents"] / peak
            table.append(
                f'<td style="background:rgba(192,57,43,{alpha:.2f})" '
                f'data-residents="{r["residents"]}" data-cases="{r["cases"]}">'
                f"<b>{r['residents']}</b><br><span class='muted'>случаев: {r['cases']}</span>"
                f"<br>{_change(r['residents_change'])}</td>"
            )
        table.append("</tr>")
    table.append("</tbody></table>")
    return "".join(out + table)


def _tension(report: dict[str, Any], topic: Any) -> str:
    out = [
        "<h2>Точки напряжённости</h2>",
        '<p class="note">Улицы, адреса и районы, названные в жалобах, по темам: где больше '
        "всего разных жителей и где их число растёт быстрее всего. Ссылки ведут к случаям.</p>",
    ]

    def rows(points: Sequence[dict[str, Any]]) -> list[list[str]]:
        return [
            [
                _td(escape(p["place"])),
                _td(escape(p["municipality"] or "")),
                _td(topic(p["topic"])),
                _td(p["residents"], True),
                _td(p["residents_before"], True),
                _td(_change(p["growth"]), True),
                _td("<br>".join(_case_link(c) for c in p["cases_shown"])),
            ]
            for p in points
        ]

    head = ("Место", "Муниципалитет", "Тема", "Жителей", "Было", "Рост", "Случаи")
    most = report["tension_points"]
    if most:
        out.append(
            "<figure>"
            + charts.places_chart(
                [
                    (
                        f"{p['place']} · {report['topics'].get(p['topic'], p['topic'])}",
                        p["residents"],
                        p["residents_before"],
                    )
                    for p in most[:10]
                ],
                "Точки напряжённости",
            )
            + "</figure>"
        )
    out.append("<h3>Больше всего жителей</h3>" + _table(head, rows(most)))
    out.append("<h3>Быстрее всего растут</h3>" + _table(head, rows(report["growing"])))
    return "".join(out)


def _norm_text(report: dict[str, Any]) -> str:
    norms = report["norms"]
    parts = [f"по умолчанию {_hours(norms['default_hours'])}"]
    parts += [
        f"{escape(report['topics'].get(t, t))}: {_hours(h)}" for t, h in norms["by_topic"].items()
    ]
    parts += [f"{PLATFORMS.get(p, p)}: {_hours(h)}" for p, h in norms["by_platform"].items()]
    for key, h in norms["by_topic_and_platform"].items():
        t, p = key.split("/", 1)
        parts.append(f"{escape(report['topics'].get(t, t))} в {PLATFORMS.get(p, p)}: {_hours(h)}")
    return "; ".join(parts)


def _answers(report: dict[str, Any], topic: Any, zone: str) -> str:
    answers = report["answers"]
    out = [
        "<h2>Ответы в норматив</h2>",
        '<p class="note">Случаи-жалобы, впервые замеченные за период. Ответ — первый ответ '
        "официального аккаунта под любой публикацией случая; время — от первой публикации. "
        f"Норматив: {_norm_text(report)}. Доля в норматив считается среди случаев с известным "
        "исходом (отвечены или просрочены); случаи, у которых срок ещё не истёк, ждут. Медиана "
        "и 90-й процентиль — по отвеченным.</p>",
    ]
    by_place = answers.get("municipality") or []
    if by_place:
        out.append(
            "<figure>"
            + charts.share_chart(
                [(r["key"] or "не указан", r["share_in_norm"], r["cases"]) for r in by_place[:15]],
                "Доля ответов в норматив по муниципалитетам",
            )
            + "</figure>"
        )
    head = (
        "",
        "Случаев",
        "С ответом",
        "В норматив",
        "Доля в норматив",
        "Медиана",
        "90-й процентиль",
        "Просрочено",
        "Ждут",
    )
    for dim, label, column in DIMENSIONS:
        items = answers.get(dim) or []
        rows = []
        for r in items:
            key = r["key"]
            if dim == "topic":
                name = topic(key)
            elif dim == "platform":
                name = PLATFORMS.get(key or "", key or "—")
            else:
                name = escape(key or ("не назначен" if dim == "agency" else "не указан"))
            rows.append(
                [
                    _td(name),
                    _td(r["cases"], True),
                    _td(r["answered"], True),
                    _td(r["in_norm"], True),
                    _td(_share(r["share_in_norm"]), True),
                    _td(_hours(r["median_hours"]), True),
                    _td(_hours(r["p90_hours"]), True),
                    _td(r["overdue"], True),
                    _td(r["waiting"], True),
                ]
            )
        out.append(f"<h3>{label}</h3>" + _table((column, *head[1:]), rows))
    overdue = report["overdue"]
    total = report["overdue_total"]
    shown = f" (показаны {len(overdue)} старейших)" if total > len(overdue) else ""
    out.append(f"<h3>Просрочены без ответа: {total}{shown}, сначала самые старые</h3>")
    out.append(
        _table(
            (
                "Случай",
                "Впервые",
                "Ждёт",
                "Норматив",
                "Муниципалитет",
                "Тема",
                "Источник",
                "Ответственный",
            ),
            [
                [
                    _td(_case_link(r["case"], text=True)),
                    _td(_when(r["first_seen"], zone)),
                    _td(f'<span class="bad">{_hours(r["waiting_hours"])}</span>', True),
                    _td(_hours(r["norm_hours"]), True),
                    _td(escape(r["municipality"] or "")),
                    _td(topic(r["topic"])),
                    _td(escape(r["source_id"] or "")),
                    _td(escape(r["agency"] or "не назначен")),
                ]
                for r in overdue
            ],
        )
    )
    return "".join(out)


def _recurrence(report: dict[str, Any], topic: Any, zone: str) -> str:
    rec = report["recurrence"]
    out = [
        "<h2>Повторные обращения</h2>",
        f'<p class="note">То же место и та же тема снова в течение {rec["window_days"]} дней '
        "после официального ответа (новая жалоба — за период, в другом случае). "
        f"Повторились {rec['recurred_cases']} из {rec['answered_cases']} отвеченных случаев с "
        "указанным местом.</p>",
    ]
    out.append(
        _table(
            (
                "Место",
                "Муниципалитет",
                "Тема",
                "Ответ был",
                "Снова через",
                "Новых случаев",
                "Жителей",
                "Отвеченный случай",
                "Новый случай",
            ),
            [
                [
                    _td(escape(i["place"])),
                    _td(escape(i["municipality"] or "")),
                    _td(topic(i["topic"])),
                    _td(_when(i["answered_at"], zone)),
                    _td(f"{i['after_days']:g} дн", True),
                    _td(i["later_cases"], True),
                    _td(i["residents"], True),
                    _td(_case_link(i["answered_case"])),
                    _td(_case_link(i["later_case"], text=True)),
                ]
                for i in rec["items"]
            ],
        )
    )
    return "".join(out)


def _trend(report: dict[str, Any], topic: Any) -> str:
    trend = report["trend"]
    out = [
        "<h2>Динамика по темам</h2>",
        '<p class="note">Разные жители с жалобами по дням (местное время), по темам.</p>',
    ]
    if not trend["residents"]:
        return "".join(out) + '<p class="empty">Жалоб за период нет.</p>'
    series = {report["topics"].get(c, c): v for c, v in trend["residents"].items()}
    out.append(
        "<figure>" + charts.trend_chart(trend["days"], series, "Динамика по темам") + "</figure>"
    )
    return "".join(out)


def _largest(report: dict[str, Any], topic: Any, zone: str) -> str:
    out = [
        "<h2>Крупнейшие случаи</h2>",
        '<p class="note">Случаи с наибольшим числом разных жителей за период, на всех '
        "площадках.</p>",
    ]
    rows = []
    for r in report["largest_cases"]:
        case = r["case"] or {}
        platforms = ", ".join(PLATFORMS.get(p, p) for p in case.get("platforms") or [])
        rows.append(
            [
                _td(_case_link(case, text=True)),
                _td(r["residents"], True),
                _td(r["posts"], True),
                _td(escape(platforms)),
                _td(", ".join(topic(t) for t in case.get("topics") or [])),
                _td(escape(case.get("municipality") or "")),
                _td(_when(case.get("answered_at"), zone) or '<span class="bad">нет ответа</span>'),
            ]
        )
    out.append(
        _table(
            ("Случай", "Жителей", "Публикаций", "Площадки", "Темы", "Муниципалитет", "Ответ"), rows
        )
    )
    return "".join(out)

"""Cases as Open311 GeoReport v2 service requests (the ``GET requests`` response shape).

One request per case (a ``clusters`` row) and its canonical post. Every field of the spec's
response is present (``null`` when Glas does not know it); Glas's own facts go in
``extended_attributes``, the place GeoReport v2 servers use for extensions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

DESCRIPTION_LIMIT = 4000  # characters, as the spec limits description
PLACE_ORDER = ("address", "street", "district", "settlement")
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")

Route = Callable[[Sequence[str] | None, str | None], tuple[str | None, str]]


def wants(case: Mapping[str, Any], complaints_only: bool) -> bool:
    """Whether a case row becomes a request: cases with posts, and cases merged into
    another (reported closed, so tools carry their status over); with ``complaints_only``,
    not cases flagged as no complaint."""
    if not case.get("size") and case.get("merged_into") is None:
        return False
    return not (complaints_only and case.get("is_complaint") is False)


def service_request(
    case: Mapping[str, Any],
    post: Mapping[str, Any] | None,
    *,
    labels: Mapping[str, str],
    route: Route,
    zone: tzinfo = UTC,
) -> dict[str, Any]:
    """The GeoReport v2 request of one case (``post``: its canonical post, decoded)."""
    canonical = post or {}
    topics = list(case.get("topics") or canonical.get("topics") or [])
    code = topics[0] if topics else "other"
    municipality = case.get("municipality") or canonical.get("municipality")
    agency, how = route(topics or None, municipality)
    status, notes, closed_at = _status(case, canonical)
    geo = canonical.get("geo") or {}
    first = case.get("first_seen") or canonical.get("published_at") or case.get("updated_at")
    return {
        "service_request_id": str(case["cluster_id"]),
        "status": status,
        "status_notes": notes,
        "service_name": labels.get(code, code),
        "service_code": code,
        "description": description(post),
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": w3c(first, zone),
        "updated_datetime": w3c(closed_at or case.get("updated_at"), zone),
        "expected_datetime": None,
        "address": address(canonical.get("places"), municipality),
        "address_id": None,
        "zipcode": None,
        "lat": _number(geo.get("lat")),
        "long": _number(geo.get("lon", geo.get("long"))),
        "media_url": media_url(canonical.get("raw")),
        "extended_attributes": {
            "seq": case.get("seq"),
            "size": case.get("size"),
            "authors": case.get("authors"),
            "sources": case.get("sources"),
            "platforms": case.get("platforms"),
            "topics": topics,
            "municipality": municipality,
            "complaint_score": case.get("complaint_score"),
            "merged_into": case.get("merged_into"),
            "routing": how,
            "answered_at": w3c(case.get("answered_at"), zone),
            "answered_by": canonical.get("answered_by"),
            "canonical": None
            if post is None
            else {
                "platform": post.get("platform"),
                "native_id": post.get("native_id"),
                "url": post.get("url"),
            },
        },
    }


def _status(case: Mapping[str, Any], post: Mapping[str, Any]) -> tuple[str, str | None, Any]:
    """(status, status_notes, when it closed)."""
    if case.get("merged_into") is not None:
        return "closed", f"merged into case {case['merged_into']}", None
    if case.get("answered_at"):
        by = post.get("answered_by")
        if not by or post.get("answered_at") != case["answered_at"]:
            by = "an official account"  # the first answer went to another post of the case
        return "closed", f"answered by {by}", case["answered_at"]
    return "open", None, None


def description(post: Mapping[str, Any] | None) -> str | None:
    """The canonical post's words (a web page's title first), at most 4,000 characters."""
    if post is None:
        return None
    text = str(post.get("text") or "").strip()
    title = str(post.get("title") or "").strip()
    if title and post.get("platform") in ("web", "rss") and title not in text:
        text = f"{title}. {text}" if text else title
    if len(text) > DESCRIPTION_LIMIT:
        cut = text[: DESCRIPTION_LIMIT - 1]
        space = cut.rfind(" ")
        text = (cut[:space] if space > DESCRIPTION_LIMIT // 2 else cut).rstrip(" ,.;:") + "…"
    return text or None


def address(places: Any, municipality: str | None) -> str | None:
    """Most specific to most general: house or street, district, settlement, municipality."""
    parts: list[str] = []
    found = [p for p in places or [] if isinstance(p, dict) and p.get("name")]
    street = next((p["name"] for p in found if p.get("kind") in ("address", "street")), None)
    if street:
        parts.append(str(street))
    for kind in ("district", "settlement"):
        name = next((p["name"] for p in found if p.get("kind") == kind), None)
        if name:
            parts.append(str(name))
    if not parts:
        return None
    if municipality and all(municipality.lower() not in p.lower() for p in parts):
        parts.append(municipality)
    return ", ".join(parts)


def media_url(raw: Any) -> str | None:
    """A photo of the post: VK attachments (or the reposted original's), t.me/s media,
    RSS image enclosures."""
    if not isinstance(raw, dict):
        return None
    histories = [h for h in raw.get("copy_history") or [] if isinstance(h, dict)]
    for attachments in [raw.get("attachments"), *(h.get("attachments") for h in histories)]:
        for item in attachments or []:
            if isinstance(item, dict) and item.get("type") == "photo" and item.get("url"):
                return str(item["url"])
    for item in raw.get("media") or []:
        if isinstance(item, dict) and item.get("kind") == "photo" and item.get("image"):
            return str(item["image"])
    for item in raw.get("enclosures") or []:
        if isinstance(item, dict) and str(item.get("type") or "") in PHOTO_TYPES:
            return str(item.get("href") or "") or None
    return None


def w3c(value: Any, zone: tzinfo = UTC) -> str | None:
    """A stored time (UTC text or datetime) as ISO 8601 with the zone's offset."""
    if value is None or value == "":
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(zone).isoformat(timespec="seconds")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

"""A fake Telegram behind the collector's gateway interface, serving REAL Telethon objects.

MTProto cannot be served locally, so tests replace only the client: :class:`FakeTelegram`
implements ``spiders.telegram_gateway.TelegramGateway`` over in-memory channel histories and
comment threads made of real ``telethon.tl.types`` objects (``Message``, ``MessageReplies``,
``MessageFwdHeader``, ``PeerChannel`` …) and raises real Telethon errors. The run finds it
through ``GLAS_TELEGRAM_GATEWAY=tests.telegram_fakes:factory`` (the hook the real code offers
for this), so tests drive the real runner, ingest and SQLite inbox.

The made-up city channel «Администрация г. N» (@Adm_Gorod_N) has a discussion group where
residents comment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from telethon import utils
from telethon.tl import types

from spiders.telegram_gateway import Credentials

CHANNEL_ID = 1500100200
GROUP_ID = 1500100300
USERNAME = "Adm_Gorod_N"  # mixed case on purpose: native ids use it lower-cased
TITLE = "Администрация г. N"
PRESS_ID = 777001  # the administration's press officer (listed in official_accounts)
MCHS_ID = 1400900800  # another channel whose post is forwarded


# -- builders of real TL objects ----------------------------------------------------------------
def channel_entity(
    ident: int = CHANNEL_ID,
    username: str | None = USERNAME,
    title: str = TITLE,
    *,
    broadcast: bool = True,
) -> types.Channel:
    return types.Channel(
        id=ident,
        title=title,
        photo=types.ChatPhotoEmpty(),
        date=datetime(2019, 5, 1, tzinfo=UTC),
        broadcast=broadcast or None,
        megagroup=None if broadcast else True,
        username=username,
        access_hash=-4242424242,
    )


def user(ident: int, first: str, last: str | None = None, username: str | None = None) -> Any:
    return types.User(id=ident, first_name=first, last_name=last, username=username, access_hash=99)


def photo_media(ident: int) -> types.MessageMediaPhoto:
    photo = types.Photo(
        id=ident,
        access_hash=1,
        file_reference=b"\x00\x01",
        date=datetime(2026, 1, 1, tzinfo=UTC),
        sizes=[types.PhotoSize(type="x", w=1280, h=960, size=120_000)],
        dc_id=2,
    )
    return types.MessageMediaPhoto(photo=photo)


def video_media(ident: int) -> types.MessageMediaDocument:
    document = types.Document(
        id=ident,
        access_hash=1,
        file_reference=b"\x00",
        date=datetime(2026, 1, 1, tzinfo=UTC),
        mime_type="video/mp4",
        size=4_000_000,
        dc_id=2,
        attributes=[types.DocumentAttributeVideo(duration=12.0, w=1280, h=720)],
    )
    return types.MessageMediaDocument(document=document, video=True)


def reactions(**counts: int) -> types.MessageReactions:
    emoji = {"like": "👍", "angry": "😡", "heart": "❤", "sad": "😢"}
    return types.MessageReactions(
        results=[
            types.ReactionCount(reaction=types.ReactionEmoji(emoticon=emoji[k]), count=v)
            for k, v in counts.items()
        ]
    )


def post(
    ident: int,
    date: datetime,
    text: str = "",
    *,
    channel_id: int = CHANNEL_ID,
    views: int | None = 1200,
    forwards: int | None = 4,
    comments: int | None = 0,
    max_comment: int | None = None,
    group_id: int = GROUP_ID,
    **extra: Any,
) -> types.Message:
    """A channel post as GetHistory returns it (``post=True``, no ``from_id``)."""
    replies = None
    if comments is not None:
        replies = types.MessageReplies(
            replies=comments,
            replies_pts=1000 + ident,
            comments=True,
            channel_id=group_id,
            max_id=max_comment,
        )
    return types.Message(
        id=ident,
        peer_id=types.PeerChannel(channel_id),
        date=date,
        message=text,
        post=True,
        views=views,
        forwards=forwards,
        replies=replies,
        **extra,
    )


def comment(
    ident: int,
    date: datetime,
    text: str,
    *,
    to: int,
    top: int | None = None,
    sender: Any = None,
    group_id: int = GROUP_ID,
    **extra: Any,
) -> types.Message:
    """A message of the discussion group answering message ``to`` (``top``: thread start)."""
    return types.Message(
        id=ident,
        peer_id=types.PeerChannel(group_id),
        date=date,
        message=text,
        from_id=sender,
        reply_to=types.MessageReplyHeader(reply_to_msg_id=to, reply_to_top_id=top),
        **extra,
    )


def service(ident: int, date: datetime, channel_id: int = CHANNEL_ID) -> types.MessageService:
    return types.MessageService(
        id=ident,
        peer_id=types.PeerChannel(channel_id),
        date=date,
        action=types.MessageActionPinMessage(),
    )


# -- the fake ------------------------------------------------------------------------------------
@dataclass
class Call:
    """One ``iter_messages`` call the collector made."""

    channel_id: int
    min_id: int
    reply_to: int | None
    reverse: bool
    limit: int | None


@dataclass
class FakeTelegram:
    """Channels, histories and threads in memory; faults raised once at a chosen message."""

    channels: dict[str | int, Any] = field(default_factory=dict)  # ref → entity or exception
    history: dict[int, list[Any]] = field(default_factory=dict)  # channel id → messages
    threads: dict[tuple[int, int], list[Any]] = field(default_factory=dict)  # (ch, post) → msgs
    people: dict[int, Any] = field(default_factory=dict)  # peer id (marked) → User/Channel
    faults: dict[tuple[str, int], BaseException] = field(default_factory=dict)
    connect_error: BaseException | None = None
    calls: list[Call] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)
    credentials: list[Credentials] = field(default_factory=list)
    opened: int = 0
    closed: int = 0

    # ``faults`` keys: ("history", message id) or ("thread", message id) or ("channel", 0).
    def add_channel(self, entity: Any, *refs: str | int) -> None:
        for ref in (*refs, entity.id):
            self.channels[ref.lower() if isinstance(ref, str) else ref] = entity
        self.people[utils.get_peer_id(entity)] = entity
        self.history.setdefault(entity.id, [])

    def add_people(self, *entities: Any) -> None:
        for entity in entities:
            self.people[utils.get_peer_id(entity)] = entity

    # -- the gateway interface ----------------------------------------------------------------
    def get_channel(self, ref: str | int) -> Any:
        fault = self.faults.pop(("channel", 0), None)
        if fault is not None:
            raise fault
        found = self.channels.get(ref.lower() if isinstance(ref, str) else ref)
        if found is None:
            from telethon.errors import UsernameNotOccupiedError

            raise UsernameNotOccupiedError(request=None)
        if isinstance(found, BaseException):
            raise found
        return found

    def iter_messages(
        self,
        channel: Any,
        *,
        min_id: int = 0,
        reply_to: int | None = None,
        reverse: bool = True,
        limit: int | None = None,
    ) -> Iterator[Any]:
        self.calls.append(Call(channel.id, min_id, reply_to, reverse, limit))
        if reply_to is None:
            kind, messages = "history", self.history.get(channel.id, [])
        else:
            kind = "thread"
            messages = self.threads.get((channel.id, reply_to))
            if messages is None:
                from telethon.errors import MsgIdInvalidError

                raise MsgIdInvalidError(request=None)
        ordered = sorted(messages, key=lambda m: m.id, reverse=not reverse)
        if reverse:
            ordered = [m for m in ordered if m.id > min_id]
        for count, message in enumerate(ordered):
            if limit is not None and count >= limit:
                return
            fault = self.faults.pop((kind, message.id), None)
            if fault is not None:
                raise fault
            yield message

    def lookup(self, message: Any, peer: Any) -> Any:
        return self.people.get(utils.get_peer_id(peer))

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def close(self) -> None:
        self.closed += 1

    # -- helpers for tests --------------------------------------------------------------------
    def history_calls(self) -> list[Call]:
        return [c for c in self.calls if c.reply_to is None and c.reverse]

    def thread_calls(self) -> list[Call]:
        return [c for c in self.calls if c.reply_to is not None]


ACTIVE: FakeTelegram | None = None


def factory(credentials: Credentials) -> FakeTelegram:
    """``GLAS_TELEGRAM_GATEWAY`` target: the fake a test installed as ``ACTIVE``."""
    if ACTIVE is None:
        raise RuntimeError("no FakeTelegram installed (tests.telegram_fakes.ACTIVE)")
    ACTIVE.credentials.append(credentials)
    if ACTIVE.connect_error is not None:
        raise ACTIVE.connect_error
    ACTIVE.opened += 1
    return ACTIVE


# -- the city channel ----------------------------------------------------------------------------
def ago(now: datetime, **delta: float) -> datetime:
    return (now - timedelta(**delta)).replace(microsecond=0)


def city(now: datetime | None = None) -> FakeTelegram:
    """@Adm_Gorod_N: old posts (out of the 3-day window), recent ones with comments, an album,
    a forward, an edited post and a service message; residents, the press officer and the
    channel itself comment."""
    now = now or datetime.now(UTC)
    tg = FakeTelegram()
    tg.add_channel(channel_entity(), USERNAME)
    mchs = channel_entity(MCHS_ID, "MCHS_N", "МЧС г. N")
    residents = [
        user(501, "Ольга", "К.", "olga_k"),
        user(502, "Пётр"),
        user(503, "Гульнара", None, "gulya_n"),
        user(PRESS_ID, "Пресс-служба", "администрации", "press_adm_n"),
    ]
    tg.add_people(mchs, *residents)
    old = ago(now, days=12)
    tg.history[CHANNEL_ID] = [
        post(
            101,
            old,
            "Графики отключения горячей воды на июнь опубликованы на сайте.",
            comments=None,
        ),
        post(
            102,
            old + timedelta(hours=3),
            "На улице Ленина начался ямочный ремонт дорожного покрытия.",
            comments=None,
        ),
        service(103, old + timedelta(hours=4)),
        # album: three messages sharing grouped_id, caption on the second
        post(
            110,
            ago(now, hours=30),
            "",
            grouped_id=7001,
            media=photo_media(1),
            comments=3,
            max_comment=2005,
        ),
        post(
            111,
            ago(now, hours=30),
            "Благоустройство сквера на Садовой: фото с объекта.",
            grouped_id=7001,
            media=photo_media(2),
            comments=None,
            views=None,
        ),
        post(
            112,
            ago(now, hours=30),
            "",
            grouped_id=7001,
            media=video_media(3),
            comments=None,
            views=None,
        ),
        post(
            113,
            ago(now, hours=20),
            "Внимание! Штормовое предупреждение на 18–19 ноября.",
            fwd_from=types.MessageFwdHeader(
                date=ago(now, hours=21), from_id=types.PeerChannel(MCHS_ID), channel_post=451
            ),
            views=5400,
            forwards=88,
            comments=0,
        ),
        post(
            114,
            ago(now, hours=6),
            "Приём граждан по вопросам ЖКХ перенесён на четверг, каб. 12.",
            edit_date=ago(now, hours=5),
            views=800,
            reactions=reactions(like=40, angry=7, sad=2),
            comments=2,
            max_comment=2011,
        ),
    ]
    tg.threads[(CHANNEL_ID, 110)] = [
        comment(
            2001,
            ago(now, hours=29),
            "Когда уберут строительный мусор у дома 5 по Садовой? Вторую неделю лежит.",
            to=1900,
            sender=types.PeerUser(501),
        ),
        comment(
            2003,
            ago(now, hours=28),
            "Ответили бы хоть кто-нибудь…",
            to=1900,
            sender=types.PeerUser(502),
        ),
        comment(
            2005,
            ago(now, hours=27),
            "Мусор вывезут до пятницы, подрядчику выдано предписание.",
            to=2001,
            top=1900,
            sender=types.PeerChannel(CHANNEL_ID),
            post_author="Пресс-служба",
        ),
    ]
    tg.threads[(CHANNEL_ID, 114)] = [
        comment(
            2010,
            ago(now, hours=5),
            "В поликлинике №2 на Мира опять не работает запись к терапевту.",
            to=1910,
            sender=types.PeerUser(503),
        ),
        comment(
            2011,
            ago(now, hours=4),
            "Запись восстановлена, приносим извинения.",
            to=2010,
            top=1910,
            sender=types.PeerUser(PRESS_ID),
        ),
    ]
    return tg


def demo(credentials: Credentials) -> FakeTelegram:
    """``GLAS_TELEGRAM_GATEWAY`` target for ``make demo``: the city channel, dated from the
    start of the current hour (so a second run a minute later sees the same posts)."""
    return city(datetime.now(UTC).replace(minute=0, second=0, microsecond=0))

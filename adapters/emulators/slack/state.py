"""What the emulated Slack workspace holds: channels, messages with threads and edits, ephemeral
messages per user, opened views, and the trigger ids and response URLs handed out.
"""

from __future__ import annotations

import copy
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.clock import Clock

from .world import SlackUser, SlackWorld

KEEP: Any = object()
"""Marker for "argument omitted" (``chat.update`` keeps the previous blocks)."""


@dataclass
class SlackMessage:
    """A message in a channel; ``replies`` holds its thread, ``edits`` its earlier versions.

    ``metadata`` is the message metadata an app attached (``{"event_type", "event_payload"}``); the Web
    API returns it only to calls that ask ``include_all_metadata``.
    """

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None
    bot_id: str | None = None
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edits: list[dict[str, Any]] = field(default_factory=list)
    edited_ts: str | None = None
    deleted: bool = False
    replies: list[SlackMessage] = field(default_factory=list)
    metadata: dict[str, Any] | None = None

    @property
    def by_bot(self) -> bool:
        return self.bot_id is not None

    def to_api(self, team_id: str, app_id: str | None = None, *, include_metadata: bool = False) -> dict[str, Any]:
        """The message object the Web API returns and payloads embed (with ``metadata`` if asked and set)."""
        data: dict[str, Any] = {"type": "message", "text": self.text, "ts": self.ts, "user": self.user}
        if self.bot_id:
            data.update(subtype="bot_message", bot_id=self.bot_id, app_id=app_id)
        if self.reply_broadcast:  # a thread reply also sent to the channel is that, whoever sent it
            data["subtype"] = "thread_broadcast"
        data["team"] = team_id
        if self.blocks is not None:
            data["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments is not None:
            data["attachments"] = copy.deepcopy(self.attachments)
        if self.thread_ts:
            data["thread_ts"] = self.thread_ts
        elif self.replies:
            data.update(thread_ts=self.ts, reply_count=len(self.replies), latest_reply=self.replies[-1].ts)
        if self.edited_ts:
            data["edited"] = {"user": self.user, "ts": self.edited_ts}
        if include_metadata and self.metadata is not None:
            data["metadata"] = copy.deepcopy(self.metadata)
        return data

    def to_json(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "user": self.user,
            "text": self.text,
            "blocks": self.blocks,
            "byBot": self.by_bot,
            "threadTs": self.thread_ts,
            "replyBroadcast": self.reply_broadcast,
            "edits": len(self.edits),
            "deleted": self.deleted,
            "replies": [r.to_json() for r in self.replies],
            "metadata": self.metadata,
        }


@dataclass
class EphemeralMessage:
    """A message only ``user`` sees in ``channel``; replaced or deleted only through a response URL."""

    channel: str
    user: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False


@dataclass
class ChannelState:
    """A channel's members and its timeline (top-level messages and broadcast replies)."""

    id: str
    name: str
    members: set[str]
    is_private: bool = False
    messages: list[SlackMessage] = field(default_factory=list)
    is_im: bool = False
    is_mpim: bool = False  # a group direct message (Slack names it ``mpdm-alice--bob--carol-1``)


@dataclass
class OpenedView:
    """A modal opened with ``views.open`` (``history`` keeps each earlier version)."""

    id: str
    user: str
    view: dict[str, Any]
    hash: str
    trigger_id: str
    root_view_id: str
    external_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Trigger:
    """A ``trigger_id`` handed out with an interaction; valid for a few seconds, usable once."""

    id: str
    user: str
    issued_at: float
    used: bool = False


@dataclass
class ResponseUrl:
    """A ``response_url`` handed out with a slash command or an interaction."""

    token: str
    kind: Literal["commands", "actions"]
    channel: str
    user: str
    issued_at: float
    message_ts: str | None = None
    is_ephemeral: bool = False
    uses: int = 0


class SlackState:
    """The workspace's mutable state, seeded from a :class:`SlackWorld`."""

    def __init__(self, world: SlackWorld, clock: Clock) -> None:
        self.world = world
        self.clock = clock
        self.channels: dict[str, ChannelState] = {
            c.id: ChannelState(c.id, c.name, set(c.members), c.is_private) for c in world.channels
        }
        self.ephemeral: list[EphemeralMessage] = []
        self.views: dict[str, OpenedView] = {}
        self.triggers: dict[str, Trigger] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self._index: dict[tuple[str, str], SlackMessage] = {}
        self._last_micros = 0
        self._serial = itertools.count(1)
        self.listeners: list[Callable[[], None]] = []
        """Called (with no arguments) after every change to messages or views, e.g. by the web console."""

    def changed(self) -> None:
        """Tell the :attr:`listeners` that messages or views changed."""
        for listener in list(self.listeners):
            listener()

    # ids

    def new_ts(self) -> str:
        """A message ``ts`` (``"seconds.micros"``) from the clock, strictly increasing."""
        micros = int(self.clock.now().timestamp() * 1_000_000)
        self._last_micros = max(micros, self._last_micros + 1)
        return f"{self._last_micros // 1_000_000}.{self._last_micros % 1_000_000:06d}"

    def new_trigger(self, user: str) -> Trigger:
        serial = next(self._serial)
        trigger_id = f"{1000000 + serial}.{int(self.clock.now().timestamp())}.{secrets.token_hex(16)}"
        trigger = Trigger(trigger_id, user, self.clock.monotonic())
        self.triggers[trigger_id] = trigger
        return trigger

    def new_response_url(
        self,
        kind: Literal["commands", "actions"],
        channel: str,
        user: str,
        message_ts: str | None = None,
        is_ephemeral: bool = False,
    ) -> ResponseUrl:
        token = f"{self.world.team_id}/{next(self._serial)}/{secrets.token_hex(12)}"
        url = ResponseUrl(token, kind, channel, user, self.clock.monotonic(), message_ts, is_ephemeral)
        self.response_urls[f"{kind}/{token}"] = url
        return url

    # lookups

    def channel(self, ref: str) -> ChannelState:
        """A channel by id or name (``"#ops"``, ``"ops"``), or a user id for the app's DM with that user
        (opened on first use, as ``chat.postMessage(channel=<user id>)`` does); KeyError if unknown."""
        if ref in self.channels:
            return self.channels[ref]
        name = ref.removeprefix("#")
        for channel in self.channels.values():
            if channel.name == name and not (channel.is_im or channel.is_mpim):
                return channel
        if any(u.id == ref for u in self.world.users):
            return self.im(ref)
        raise KeyError(f"no Slack channel {ref!r}")

    def im(self, user_id: str) -> ChannelState:
        """The app's direct-message channel with a user."""
        channel_id = f"D{user_id[1:]}"
        if channel_id not in self.channels:
            members = {user_id, self.world.bot_user_id}
            self.channels[channel_id] = ChannelState(channel_id, user_id, members, is_private=True, is_im=True)
        return self.channels[channel_id]

    def mpim(self, user_ids: tuple[str, ...]) -> ChannelState:
        """The group direct message between these users and the app (opened on first use)."""
        users = sorted(user_ids)
        names = [self.user(u).name for u in users]
        channel_id = "G" + "".join(u[-3:] for u in users).upper()
        if channel_id not in self.channels:
            members = {*users, self.world.bot_user_id}
            self.channels[channel_id] = ChannelState(
                channel_id, f"mpdm-{'--'.join(names)}-1", members, is_private=True, is_mpim=True
            )
        return self.channels[channel_id]

    def find(self, channel: str, ts: str) -> SlackMessage | None:
        """A message (top-level or reply) by channel id and ts."""
        return self._index.get((channel, ts))

    def user(self, ref: str) -> SlackUser:
        return self.world.user(ref)

    # changes

    def post(
        self,
        channel: ChannelState,
        *,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        bot_id: str | None = None,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> SlackMessage:
        """Add a message; with ``thread_ts`` it joins that thread (whose parent must exist)."""
        parent = None
        if thread_ts is not None:
            parent = self.find(channel.id, thread_ts)
            if parent is None:
                raise KeyError(thread_ts)
            if parent.thread_ts:  # a reply to a reply joins the parent's thread
                parent = self.find(channel.id, parent.thread_ts) or parent
        msg = SlackMessage(
            channel=channel.id,
            ts=self.new_ts(),
            user=user,
            text=text,
            blocks=copy.deepcopy(blocks),
            attachments=copy.deepcopy(attachments),
            bot_id=bot_id,
            thread_ts=parent.ts if parent else None,
            reply_broadcast=reply_broadcast and parent is not None,
            metadata=copy.deepcopy(metadata),
        )
        if parent is not None:
            parent.replies.append(msg)
        if parent is None or msg.reply_broadcast:
            channel.messages.append(msg)
        self._index[(channel.id, msg.ts)] = msg
        self.changed()
        return msg

    def update(
        self,
        msg: SlackMessage,
        *,
        text: str | None,
        blocks: Any = KEEP,
        attachments: Any = KEEP,
        metadata: Any = KEEP,
    ) -> SlackMessage:
        """Edit a message: omitted ``blocks``/``attachments``/``metadata`` are kept, ``[]`` removes blocks
        or attachments."""
        msg.edits.append({"text": msg.text, "blocks": msg.blocks, "attachments": msg.attachments})
        if text is not None:
            msg.text = text
        if blocks is not KEEP:
            msg.blocks = copy.deepcopy(blocks) or None
        if attachments is not KEEP:
            msg.attachments = copy.deepcopy(attachments) or None
        if metadata is not KEEP:
            msg.metadata = copy.deepcopy(metadata)
        msg.edited_ts = self.new_ts()
        self.changed()
        return msg

    def delete(self, msg: SlackMessage) -> None:
        msg.deleted = True
        self.changed()

    def post_ephemeral(
        self,
        channel: ChannelState,
        user: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> EphemeralMessage:
        msg = EphemeralMessage(channel.id, user, self.new_ts(), text, copy.deepcopy(blocks), thread_ts)
        self.ephemeral.append(msg)
        self.changed()
        return msg

    def ephemeral_for(self, user: str, channel: str | None = None) -> list[EphemeralMessage]:
        """The ephemeral messages a user (key or id) has seen, optionally in one channel."""
        try:
            user_id = self.user(user).id
        except KeyError:
            user_id = user
        return [
            m
            for m in self.ephemeral
            if m.user == user_id and (channel is None or m.channel == self.channel(channel).id)
        ]

    def find_ephemeral(self, channel: str, ts: str) -> EphemeralMessage | None:
        return next((m for m in self.ephemeral if m.channel == channel and m.ts == ts), None)

    def open_view(self, user: str, view: dict[str, Any], trigger_id: str) -> OpenedView:
        view_id = f"V{next(self._serial):010d}"
        opened = OpenedView(view_id, user, {}, "", trigger_id, view_id, view.get("external_id"))
        self._set_view(opened, view)
        self.views[view_id] = opened
        self.changed()
        return opened

    def update_view(self, opened: OpenedView, view: dict[str, Any]) -> OpenedView:
        opened.history.append(opened.view)
        self._set_view(opened, view)
        self.changed()
        return opened

    def _set_view(self, opened: OpenedView, view: dict[str, Any]) -> None:
        opened.hash = f"{int(self.clock.now().timestamp())}.{secrets.token_hex(4)}"
        opened.view = {
            **copy.deepcopy(view),
            "id": opened.id,
            "team_id": self.world.team_id,
            "app_id": self.world.app_id,
            "bot_id": self.world.bot_id,
            "root_view_id": opened.root_view_id,
            "previous_view_id": None,
            "hash": opened.hash,
            "state": {"values": {}},
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
        }

    # views for tests and the console

    def snapshot(self) -> dict[str, Any]:
        """Channels with their messages and threads, ephemeral messages and views, JSON-ready."""
        return {
            "team": {"id": self.world.team_id, "name": self.world.team_name},
            "channels": [
                {
                    "id": c.id,
                    "name": c.name,
                    "members": sorted(c.members),
                    "messages": [m.to_json() for m in c.messages],
                }
                for c in self.channels.values()
            ],
            "ephemeral": [
                {"channel": m.channel, "user": m.user, "ts": m.ts, "text": m.text, "deleted": m.deleted}
                for m in self.ephemeral
            ],
            "views": [
                {"id": v.id, "user": v.user, "closed": v.closed, "view": v.view, "errors": v.errors}
                for v in self.views.values()
            ],
        }

"""Activities as Teams sends them to a bot's ``/api/messages`` (shapes from ``samples/chat/teams/``)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .world import Team, TeamsChannel, TeamsUser, TeamsWorld

CHANNEL_ID = "msteams"

_AT_TAG = re.compile(r"<at>(.*?)</at>", re.DOTALL)


@dataclass(frozen=True)
class ActivityFactory:
    """Builds inbound activities for one world, addressed back to ``service_url``."""

    world: TeamsWorld
    service_url: str
    locale: str = "en-US"

    # team scope

    def installation_update(
        self, activity_id: str, now: datetime, *, action: str, team: Team, user: TeamsUser
    ) -> dict[str, Any]:
        """``installationUpdate`` for the app added to / removed from a team (``action`` add, remove…)."""
        general = team.general
        activity = self._base("installationUpdate", activity_id, now, user.account(), self._channel(general.id))
        activity["action"] = action
        activity["channelData"] = {
            "settings": {"selectedChannel": {"id": general.id}},
            "channel": {"id": general.id},
            "team": self._team_info(team),
            "tenant": {"id": self.world.tenant_id},
            "source": {"name": "message"},
        }
        return activity

    def personal_installation_update(
        self, activity_id: str, now: datetime, *, action: str, user: TeamsUser
    ) -> dict[str, Any]:
        """``installationUpdate`` for the app added to / removed from a user's personal scope."""
        conversation = self._personal(user)
        activity = self._base("installationUpdate", activity_id, now, user.account(), conversation)
        activity["action"] = action
        activity["channelData"] = {"tenant": {"id": self.world.tenant_id}, "source": {"name": "message"}}
        return activity

    def bot_added_to_team(self, activity_id: str, now: datetime, *, team: Team, user: TeamsUser) -> dict[str, Any]:
        """``conversationUpdate`` with ``eventType: teamMemberAdded`` listing the bot itself."""
        sender = {"id": user.id, "aadObjectId": user.aad_object_id}
        activity = self._base("conversationUpdate", activity_id, now, sender, self._channel(team.id))
        activity.pop("entities", None)
        activity.pop("locale", None)
        activity["membersAdded"] = [{"id": self.world.bot_id}]
        activity["channelData"] = {
            "eventType": "teamMemberAdded",
            "team": self._team_info(team),
            "tenant": {"id": self.world.tenant_id},
        }
        return activity

    def channel_message(
        self,
        activity_id: str,
        now: datetime,
        *,
        channel: TeamsChannel,
        user: TeamsUser,
        text: str,
        root_id: str | None = None,
        mention: bool = True,
        mentions: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A channel ``message``; a new post unless ``root_id`` names the thread it replies in. ``mentions``: see
        :meth:`_add_text`."""
        conversation = self._channel(f"{channel.id};messageid={root_id or activity_id}")
        activity = self._base("message", activity_id, now, user.account(), conversation)
        if root_id is not None:
            activity["replyToId"] = root_id
        self._add_text(activity, text, mention, mentions)
        activity["channelData"] = {
            "teamsChannelId": channel.id,
            "teamsTeamId": channel.team_id,
            "channel": {"id": channel.id},
            "team": {"id": channel.team_id},
            "tenant": {"id": self.world.tenant_id},
        }
        return activity

    def personal_message(
        self, activity_id: str, now: datetime, *, user: TeamsUser, text: str, mentions: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """A ``message`` in the user's 1:1 chat with the bot (no mention needed, but one may be typed)."""
        activity = self._base("message", activity_id, now, user.account(), self._personal(user))
        self._add_text(activity, text, False, mentions)
        activity["channelData"] = {"tenant": {"id": self.world.tenant_id}}
        return activity

    def group_chat_message(
        self, activity_id: str, now: datetime, *, conversation_id: str, user: TeamsUser, text: str
    ) -> dict[str, Any]:
        """A ``message`` in a group chat with the bot; Teams delivers one only when it @mentions the bot."""
        activity = self._base("message", activity_id, now, user.account(), self._group_chat(conversation_id))
        self._add_text(activity, text, mention=True)
        activity["channelData"] = {"tenant": {"id": self.world.tenant_id}}
        return activity

    def adaptive_card_action(
        self,
        activity_id: str,
        now: datetime,
        *,
        conversation_id: str,
        card_message_id: str,
        channel: TeamsChannel | None,
        user: TeamsUser,
        verb: str,
        data: dict[str, Any],
        action_id: str,
        trigger: str = "manual",
    ) -> dict[str, Any]:
        """``invoke`` ``adaptiveCard/action``: an ``Action.Execute`` click (or refresh) on a card message."""
        conversation = self._channel(conversation_id) if channel else self._personal_id(conversation_id)
        activity = self._base("invoke", activity_id, now, user.account(), conversation)
        activity.pop("entities", None)
        activity["name"] = "adaptiveCard/action"
        activity["replyToId"] = card_message_id
        activity["value"] = {
            "action": {"type": "Action.Execute", "id": action_id, "verb": verb, "data": data},
            "trigger": trigger,
        }
        activity["channelData"] = self._click_channel_data(channel)
        return activity

    def card_submit(
        self,
        activity_id: str,
        now: datetime,
        *,
        conversation_id: str,
        card_message_id: str,
        channel: TeamsChannel | None,
        user: TeamsUser,
        value: dict[str, Any],
    ) -> dict[str, Any]:
        """An ``Action.Submit`` click: a ``message`` with ``value`` and ``replyToId``, no ``text``."""
        conversation = self._channel(conversation_id) if channel else self._personal_id(conversation_id)
        activity = self._base("message", activity_id, now, user.account(), conversation)
        activity.pop("entities", None)
        activity["replyToId"] = card_message_id
        activity["value"] = value
        channel_data = self._click_channel_data(channel)
        channel_data["legacy"] = {"replyToId": f"1:1legacy{card_message_id}"}
        activity["channelData"] = channel_data
        return activity

    # pieces

    def _base(
        self, kind: str, activity_id: str, now: datetime, sender: dict[str, Any], conversation: dict[str, Any]
    ) -> dict[str, Any]:
        stamp = now.isoformat(timespec="milliseconds")
        # as Teams clients do: the sender's device's time zone, and the time there
        zone = next((u.time_zone for u in self.world.users if u.id == sender.get("id")), "Etc/UTC")
        return {
            "type": kind,
            "id": activity_id,
            "timestamp": stamp.replace("+00:00", "Z"),
            "localTimestamp": now.astimezone(ZoneInfo(zone)).isoformat(timespec="milliseconds"),
            "localTimezone": zone,
            "channelId": CHANNEL_ID,
            "serviceUrl": self.service_url,
            "from": sender,
            "conversation": conversation,
            "recipient": self.world.bot_account(),
            "locale": self.locale,
            "entities": [{"type": "clientInfo", "locale": self.locale, "country": "US", "platform": "Web"}],
        }

    def _channel(self, conversation_id: str) -> dict[str, Any]:
        return self._group(conversation_id, "channel")

    def _group_chat(self, conversation_id: str) -> dict[str, Any]:
        return self._group(conversation_id, "groupChat")

    def _group(self, conversation_id: str, kind: str) -> dict[str, Any]:
        """A conversation of several people: a channel's thread or a group chat."""
        return {"isGroup": True, "conversationType": kind, "tenantId": self.world.tenant_id, "id": conversation_id}

    def _personal(self, user: TeamsUser) -> dict[str, Any]:
        return self._personal_id(user.personal_conversation_id)

    def _personal_id(self, conversation_id: str) -> dict[str, Any]:
        return {"conversationType": "personal", "tenantId": self.world.tenant_id, "id": conversation_id}

    def _team_info(self, team: Team) -> dict[str, Any]:
        return {"id": team.id, "name": team.name, "aadGroupId": team.aad_group_id}

    def _click_channel_data(self, channel: TeamsChannel | None) -> dict[str, Any]:
        data: dict[str, Any] = {"tenant": {"id": self.world.tenant_id}, "source": {"name": "message"}}
        if channel is not None:
            data = {"channel": {"id": channel.id}, "team": {"id": channel.team_id}, **data}
        return data

    def _add_text(
        self, activity: dict[str, Any], text: str, mention: bool, mentions: Mapping[str, str] | None = None
    ) -> None:
        """The text, after the bot's mention if ``mention``; each ``<at>Name</at>`` typed in ``text`` gets the
        entity Teams gives a mention: of the person ``mentions`` maps the name to (a user's key, id or email, or
        the bot's id: the bot mentioned by another name), else of the user or bot of that name. A tag that names
        nobody gets none, as one pasted as text."""
        activity["textFormat"] = "plain"
        typed = [entity for name in _AT_TAG.findall(text) if (entity := self._mention(name, mentions or {}))]
        activity["entities"] = [*typed, *activity["entities"]]
        if not mention:
            activity["text"] = text
            return
        bot = self.world.bot_name
        tag = f"<at>{bot}</at>"
        activity["text"] = f"{tag} {text}"
        span = f'<span itemtype="http://schema.skype.com/Mention" itemscope="" itemid="0">{html.escape(bot)}</span>'
        activity["attachments"] = [{"contentType": "text/html", "content": f"<p>{span}&nbsp;{html.escape(text)}</p>"}]
        mention_entity = {"type": "mention", "text": tag, "mentioned": self.world.bot_account()}
        activity["entities"] = [mention_entity, *activity["entities"]]

    def _mention(self, name: str, mentions: Mapping[str, str]) -> dict[str, Any] | None:
        ref = mentions.get(name)
        if ref == self.world.bot_id or (ref is None and name == self.world.bot_name):
            return {"type": "mention", "text": f"<at>{name}</at>", "mentioned": self.world.bot_account()}
        try:
            user = self.world.user(ref) if ref is not None else next(u for u in self.world.users if u.name == name)
        except (KeyError, StopIteration):
            return None
        return {"type": "mention", "text": f"<at>{name}</at>", "mentioned": {"id": user.id, "name": user.name}}

"""Request payloads as Slack sends them to an app (shapes from ``samples/chat/slack/``).

References: slash commands https://docs.slack.dev/interactivity/implementing-slash-commands ;
``block_actions`` https://docs.slack.dev/reference/interaction-payloads/block_actions-payload ;
``view_submission`` https://docs.slack.dev/reference/interaction-payloads/view-interactions-payload ;
Events API https://docs.slack.dev/apis/events-api
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

from .state import ChannelState
from .world import SlackUser, SlackWorld


@dataclass(frozen=True)
class PayloadFactory:
    """Builds payloads for one workspace."""

    world: SlackWorld

    def slash_command(
        self,
        *,
        command: str,
        text: str,
        channel: ChannelState,
        user: SlackUser,
        response_url: str,
        trigger_id: str,
    ) -> dict[str, str]:
        """The form fields of a slash command (``enterprise_*`` only on an Enterprise Grid)."""
        w = self.world
        fields = {"token": w.verification_token, "team_id": w.team_id, "team_domain": w.team_domain}
        if w.enterprise_id:
            fields.update(enterprise_id=w.enterprise_id, enterprise_name=w.enterprise_name or "")
        fields.update(
            channel_id=channel.id,
            channel_name="directmessage" if channel.is_im else channel.name,
            user_id=user.id,
            user_name=user.name,
            command=command,
            text=text,
            api_app_id=w.app_id,
            is_enterprise_install="false",
            response_url=response_url,
            trigger_id=trigger_id,
        )
        return fields

    def block_actions(
        self,
        *,
        user: SlackUser,
        channel: ChannelState,
        container: dict[str, Any],
        message: dict[str, Any] | None,
        action: dict[str, Any],
        response_url: str,
        trigger_id: str,
    ) -> dict[str, Any]:
        """A ``block_actions`` payload for a click on an element of ``message``."""
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": self.world.app_id,
            "token": self.world.verification_token,
            "container": container,
            "trigger_id": trigger_id,
            "team": self._team(),
            "enterprise": self._enterprise(),
            "is_enterprise_install": False,
            "channel": {"id": channel.id, "name": channel.name},
        }
        if message is not None:
            payload["message"] = message
        payload.update(state={"values": {}}, response_url=response_url, actions=[action])
        return payload

    def view_submission(
        self, *, user: SlackUser, view: dict[str, Any], values: dict[str, Any], trigger_id: str
    ) -> dict[str, Any]:
        """A ``view_submission`` payload; ``values`` becomes ``view.state.values``."""
        submitted = copy.deepcopy(view)
        submitted["state"] = {"values": values}
        return {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user(user),
            "api_app_id": self.world.app_id,
            "token": self.world.verification_token,
            "trigger_id": trigger_id,
            "view": submitted,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": self._enterprise(),
        }

    def app_mention(
        self, *, user: SlackUser, channel: ChannelState, text: str, ts: str, thread_ts: str | None = None
    ) -> dict[str, Any]:
        """An ``app_mention`` event (to wrap with :meth:`event_callback`)."""
        event: dict[str, Any] = {
            "type": "app_mention",
            "user": user.id,
            "text": text,
            "ts": ts,
            "team": self.world.team_id,
            "channel": channel.id,
            "event_ts": ts,
            "client_msg_id": str(uuid.uuid4()),
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    def direct_message(
        self, *, user: SlackUser, channel: ChannelState, text: str, ts: str, thread_ts: str | None = None
    ) -> dict[str, Any]:
        """A ``message`` event of someone's own chat with the app (``message.im``; to wrap with
        :meth:`event_callback`): a mention's fields, another type."""
        event = self.app_mention(user=user, channel=channel, text=text, ts=ts, thread_ts=thread_ts)
        return {**event, "type": "message", "channel_type": "im"}

    def event_callback(self, event: dict[str, Any], *, event_id: str, event_time: int) -> dict[str, Any]:
        """The Events API envelope around one event."""
        w = self.world
        return {
            "token": w.verification_token,
            "team_id": w.team_id,
            "enterprise_id": w.enterprise_id,
            "api_app_id": w.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": event_time,
            "authorizations": [
                {
                    "enterprise_id": w.enterprise_id,
                    "team_id": w.team_id,
                    "user_id": w.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{event_id}",
        }

    def url_verification(self, challenge: str) -> dict[str, Any]:
        return {"token": self.world.verification_token, "challenge": challenge, "type": "url_verification"}

    def _user(self, user: SlackUser) -> dict[str, Any]:
        return {"id": user.id, "username": user.name, "name": user.name, "team_id": self.world.team_id}

    def _team(self) -> dict[str, Any]:
        return {"id": self.world.team_id, "domain": self.world.team_domain}

    def _enterprise(self) -> dict[str, Any] | None:
        if not self.world.enterprise_id:
            return None
        return {"id": self.world.enterprise_id, "name": self.world.enterprise_name}

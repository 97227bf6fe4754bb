"""What Handoff keeps to reach a Teams conversation again, and how it reads that from an activity.

The SDK's ``ConversationReference`` loses the tenant id (botbuilder-schema maps ``tenant_id`` to the JSON
key ``tenantID`` while Teams sends ``tenantId``), so the tenant is read from ``channelData.tenant.id``
and kept beside the reference, in :attr:`ConversationRecord.tenant_id <bot.records.ConversationRecord>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from botbuilder.core import TurnContext
from botbuilder.core.teams.teams_activity_extensions import teams_get_channel_data
from botbuilder.schema import Activity, ConversationReference

from .ids import split_thread

Kind = Literal["channel", "personal", "groupChat"]


@dataclass(frozen=True)
class StoredReference:
    """The ``reference`` of a Teams :class:`~bot.records.ConversationRecord`.

    Args:
        reference: the serialized ``ConversationReference`` (its conversation id is the channel's or
            chat's id, never a thread's).
        kind: a team channel, a personal (1:1) chat or a group chat.
        team_name: the team's name (channels).
        channel_name: the channel's name (channels; ``General`` for the team's first channel).
        user_id: the person's MRI (personal chats), to find their chat by who they are.
        aad_object_id: the person's AAD object id (personal chats).
        team_group_id: the team's Microsoft 365 group id (``channelData.team.aadGroupId``; channels), which
            names the team in Microsoft Graph.
    """

    reference: dict[str, Any]
    kind: Kind
    team_name: str = ""
    channel_name: str = ""
    user_id: str | None = None
    aad_object_id: str | None = None
    team_group_id: str | None = None

    @property
    def display_name(self) -> str:
        if self.kind == "channel":
            return " / ".join(p for p in (self.team_name, self.channel_name) if p)
        return self.channel_name

    @property
    def service_url(self) -> str | None:
        url = self.reference.get("serviceUrl")
        return url if isinstance(url, str) and url else None

    def conversation_reference(self, conversation_id: str | None = None) -> ConversationReference:
        """The SDK reference, optionally pointed at another conversation id (a thread of the channel)."""
        ref: ConversationReference = ConversationReference().deserialize(self.reference)
        if conversation_id is not None and ref.conversation is not None:
            ref.conversation.id = conversation_id
        return ref

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"conversationReference": self.reference, "kind": self.kind}
        if self.team_name:
            data["teamName"] = self.team_name
        if self.channel_name:
            data["channelName"] = self.channel_name
        if self.user_id:
            data["userId"] = self.user_id
        if self.aad_object_id:
            data["aadObjectId"] = self.aad_object_id
        if self.team_group_id:
            data["teamGroupId"] = self.team_group_id
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredReference | None:
        """The stored reference, or None if ``data`` is not one (a record written by something else)."""
        reference = data.get("conversationReference")
        kind = data.get("kind")
        if not isinstance(reference, dict) or kind not in ("channel", "personal", "groupChat"):
            return None
        return cls(
            reference=reference,
            kind=kind,
            team_name=str(data.get("teamName") or ""),
            channel_name=str(data.get("channelName") or ""),
            user_id=data.get("userId") or None,
            aad_object_id=data.get("aadObjectId") or None,
            team_group_id=data.get("teamGroupId") or None,
        )


def tenant_of(activity: Activity) -> str | None:
    """The tenant id, from ``channelData.tenant.id`` (``conversation.tenantId`` as a fallback)."""
    try:
        tenant = teams_get_channel_data(activity).tenant
    except (AttributeError, TypeError, ValueError):
        tenant = None
    if tenant is not None and getattr(tenant, "id", None):
        return str(tenant.id)
    conversation = activity.conversation
    extra = getattr(conversation, "additional_properties", None) or {}
    value = extra.get("tenantId") or getattr(conversation, "tenant_id", None)
    return str(value) if value else None


def team_of(activity: Activity) -> tuple[str, str] | None:
    """The team's id and name from ``channelData.team``, when the activity comes from a team."""
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    team = data.get("team")
    if not isinstance(team, dict) or not isinstance(team.get("id"), str):
        return None
    return team["id"], str(team.get("name") or "")


def team_group_of(activity: Activity) -> str | None:
    """The team's Microsoft 365 group id from ``channelData.team.aadGroupId`` (Graph's team id)."""
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    team = data.get("team")
    value = team.get("aadGroupId") if isinstance(team, dict) else None
    return value if isinstance(value, str) and value else None


def channel_of(activity: Activity) -> tuple[str, str] | None:
    """The channel's id and name from ``channelData.channel`` (names come only with some events)."""
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    channel = data.get("channel")
    if not isinstance(channel, dict) or not isinstance(channel.get("id"), str):
        return None
    return channel["id"], str(channel.get("name") or "")


def conversation_kind(activity: Activity) -> Kind:
    kind = getattr(activity.conversation, "conversation_type", None)
    if kind in ("channel", "personal", "groupChat"):
        return kind  # type: ignore[no-any-return]
    return "groupChat" if getattr(activity.conversation, "is_group", False) else "personal"


def reference_json(activity: Activity, conversation_id: str | None = None) -> dict[str, Any]:
    """The activity's conversation reference as JSON, pointed at ``conversation_id`` (default: the
    activity's conversation without any ``;messageid=`` thread suffix), with the tenant put back."""
    ref = TurnContext.get_conversation_reference(activity)
    data: dict[str, Any] = ref.serialize()
    conversation = dict(data.get("conversation") or {})
    conversation["id"] = conversation_id or split_thread(str(conversation.get("id", "")))[0]
    tenant = tenant_of(activity)
    if tenant:
        conversation["tenantId"] = tenant
    data["conversation"] = conversation
    data.pop("activityId", None)
    return data

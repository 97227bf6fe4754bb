"""How Handoff names a Slack conversation.

With one workspace (a bot token) a conversation id is the channel id, ``C0123ABCD``. With several
(OAuth installs) it is qualified by the workspace, ``T0123:C0123ABCD``, so that the right
installation's token is used to send to it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlackAddress:
    channel: str
    team: str | None = None

    @classmethod
    def parse(cls, conversation_id: str) -> SlackAddress:
        team, sep, channel = conversation_id.partition(":")
        return cls(channel=channel, team=team or None) if sep else cls(channel=conversation_id)

    def conversation_id(self) -> str:
        return f"{self.team}:{self.channel}" if self.team else self.channel

"""A local Bot Framework connector (Microsoft Teams) for botbuilder's real connector client.

See :class:`BotFrameworkEmulator`.
"""

from .bot_client import BotResponse, TokenProvider
from .emulator import BotFrameworkEmulator
from .errors import refusal
from .state import ConnectorState, Conversation, Message
from .world import TeamsWorld, default_world, load_world

__all__ = [
    "BotFrameworkEmulator",
    "BotResponse",
    "ConnectorState",
    "Conversation",
    "Message",
    "TeamsWorld",
    "TokenProvider",
    "default_world",
    "load_world",
    "refusal",
]

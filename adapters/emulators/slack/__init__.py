"""A local Slack Web API and Slack-side request sender for slack_sdk and slack_bolt.

See :class:`SlackEmulator`.
"""

from .bot_client import SlackBotResponse
from .emulator import SlackEmulator, method_error
from .signing import sign, signed_headers
from .state import EphemeralMessage, OpenedView, SlackMessage, SlackState
from .world import SlackWorld, default_world, load_world

__all__ = [
    "EphemeralMessage",
    "OpenedView",
    "SlackBotResponse",
    "SlackEmulator",
    "SlackMessage",
    "SlackState",
    "SlackWorld",
    "default_world",
    "load_world",
    "method_error",
    "sign",
    "signed_headers",
]

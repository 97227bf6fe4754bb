"""Handoff on Slack: slack_bolt's ``AsyncApp`` mounted on Handoff's aiohttp application.

- :func:`mount_slack` serves ``POST /slack/events`` (events, slash commands, interactivity) and, for
  OAuth installs, ``/slack/install`` and ``/slack/oauth_redirect``; it returns a
  :class:`SlackIntegration` whose ``channel`` is the :class:`SlackChatChannel` for the outbox.
- :func:`render_card` turns the core's neutral card into Block Kit (full or compact).
- :func:`render_manifest` gives the app manifest for a public URL.
"""

from .channel import SlackChatChannel
from .manifest import render_manifest
from .mount import EVENTS_PATH, SlackIntegration, mount_slack
from .renderer import SlackContent, render_card, render_reply, render_text
from .verification import RequestVerifier, Verdict

__all__ = [
    "EVENTS_PATH",
    "RequestVerifier",
    "SlackChatChannel",
    "SlackContent",
    "SlackIntegration",
    "Verdict",
    "mount_slack",
    "render_card",
    "render_manifest",
    "render_reply",
    "render_text",
]

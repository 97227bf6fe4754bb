"""The local web console of ``handoff demo``: the Slack and Teams emulators' channels as a chat client.

It shows what the bot posted (Block Kit and Adaptive Cards, threads, edits, live), lets a person type
commands and click buttons, and delivers them to the bot through the emulators exactly as Slack (signed
requests) and Teams (activities and invokes) would; a side panel shows and pokes the emulated Azure
DevOps and Azure ML::

    app = create_console_app(suite)          # an aiohttp application, routes relative to its root
    mount_console(root_app, suite)           # or: served at /console/ of the demo's server
"""

from adapters.console.app import create_console_app, mount_console
from adapters.console.people import ConsoleUser

__all__ = ["ConsoleUser", "create_console_app", "mount_console"]

"""Building the console's aiohttp application and mounting it on the demo's server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from adapters.console.errors import error_middleware
from adapters.console.guard import same_origin_only
from adapters.console.inputs import MAX_BODY
from adapters.console.live import ChangeFeed, watch_world
from adapters.console.people import people_of
from adapters.console.personal_cards import PersonalCards
from adapters.console.routes import ConsoleRoutes
from adapters.console.security import security_headers
from adapters.console.world_view import world_snapshot
from adapters.emulators.suite import EmulatorSuite

DEFAULT_PREFIX = "/console"


def create_console_app(suite: EmulatorSuite, *, user_switcher: Sequence[str] | None = None) -> web.Application:
    """The console as an aiohttp application whose routes are relative to its root.

    Serve it standalone (``web.AppRunner(app)``) or mount it with ``root.add_subapp("/console", app)``
    (see :func:`mount_console`). While it runs it listens to the suite's Slack and Teams state, so build
    one per suite, and start serving it on the loop the suite runs on.

    Args:
        suite: the running emulators; the console reads their state and acts through their methods.
        user_switcher: the keys of the people the "you are" selector offers, in order, the first being the
            default (e.g. ``["carol", "alice"]``); None offers everyone in the Slack and Teams worlds.

    Raises:
        ValueError: ``user_switcher`` names someone neither world knows.
    """
    people = people_of(suite, user_switcher)
    feed = ChangeFeed()
    cards = PersonalCards(suite.teams, feed.listener("teams"))
    routes = ConsoleRoutes(suite, people, feed, cards)
    app = web.Application(middlewares=[security_headers, same_origin_only, error_middleware], client_max_size=MAX_BODY)
    routes.register(app)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        feed.start(asyncio.get_running_loop())
        listeners = [
            (suite.slack.state.listeners, feed.listener("slack")),
            (suite.teams.state.listeners, feed.listener("teams")),
        ]
        for where, listener in listeners:
            where.append(listener)
        watcher = asyncio.get_running_loop().create_task(watch_world(feed, lambda: world_snapshot(suite)))
        yield
        for where, listener in listeners:
            with contextlib.suppress(ValueError):
                where.remove(listener)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await cards.close()

    async def end_streams(_: web.Application) -> None:
        feed.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(end_streams)
    return app


def mount_console(
    root: web.Application,
    suite: EmulatorSuite,
    *,
    prefix: str = DEFAULT_PREFIX,
    user_switcher: Sequence[str] | None = None,
) -> web.Application:
    """Serve the console at ``prefix + "/"`` of ``root`` (``prefix`` itself redirects there); returns it."""
    prefix = "/" + prefix.strip("/")
    console = create_console_app(suite, user_switcher=user_switcher)

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(prefix + "/")

    root.router.add_get(prefix, redirect)  # before the sub-application, which would answer 404 for it
    root.add_subapp(prefix, console)
    return console

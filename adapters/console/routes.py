"""The console's HTTP interface, relative to its root (``/console/`` in the demo).

========================================================  ================================================
``GET  /``                                                the page
``GET  /static/{file}``                                   its script and style sheet
``GET  /api/state?user=``                                 people, channels of both platforms, world actions
``GET  /api/world``                                       Azure DevOps runs, Azure ML jobs, models, lake
``GET  /api/channels/{platform}/{id}?user=``              one channel as that person sees it
``POST /api/channels/{platform}/{id}/messages``           ``{user, text, thread?}``: type into a channel
``POST /api/slack/actions``                               ``{user, channel, ts, action_id, value?}``
``POST /api/slack/views/{view_id}/submit``                ``{user, values: {block: {action: text}}}``
``POST /api/slack/views/{view_id}/close``                 ``{user}``
``POST /api/teams/actions``                               ``{user, message_id, action: {type, verb, data, id}}``
``POST /api/world/{action}``                              ``{user, ...}``: a world panel button
``GET  /api/events``                                      Server-Sent Events: ``change`` notifications
========================================================  ================================================

Every answer is JSON; bad input is a 400 (404 for something that does not exist) with ``{"error"}``. Only the
console's own page is served and obeyed (:mod:`adapters.console.guard`): a Host other than the address it is
served on, or a POST from another origin, is a 403; a POST that is not ``Content-Type: application/json`` a 415.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Any

from aiohttp import web

from adapters.console import inputs
from adapters.console.composer import send_to_slack, send_to_teams
from adapters.console.errors import BadRequest, NotFound
from adapters.console.interactions import (
    click_slack_button,
    click_teams_action,
    close_slack_view,
    submit_slack_view,
)
from adapters.console.live import ChangeFeed, event_stream
from adapters.console.people import People
from adapters.console.personal_cards import PersonalCards
from adapters.console.slack_view import slack_channel_view, slack_channels
from adapters.console.teams_view import teams_channel_view, teams_channels
from adapters.console.world_actions import ACTIONS, BY_NAME
from adapters.console.world_view import world_snapshot
from adapters.emulators.suite import EmulatorSuite

INDEX = "index"
PLATFORMS = ("slack", "teams")
STATIC = resources.files("adapters.console.static")


class ConsoleRoutes:
    """The handlers, over one suite, its people, the change feed and the Teams personal cards."""

    def __init__(self, suite: EmulatorSuite, people: People, feed: ChangeFeed, cards: PersonalCards) -> None:
        self.suite = suite
        self.people = people
        self.feed = feed
        self.cards = cards

    def register(self, app: web.Application) -> None:
        app.router.add_get("/", self.index, name=INDEX)
        app.router.add_static("/static", str(STATIC), name="static")
        app.router.add_get("/api/state", self.state)
        app.router.add_get("/api/world", self.world)
        app.router.add_get("/api/events", self.events)
        app.router.add_get("/api/channels/{platform}/{channel_id}", self.channel)
        app.router.add_post("/api/channels/{platform}/{channel_id}/messages", self.message)
        app.router.add_post("/api/slack/actions", self.slack_action)
        app.router.add_post("/api/slack/views/{view_id}/submit", self.slack_view_submit)
        app.router.add_post("/api/slack/views/{view_id}/close", self.slack_view_close)
        app.router.add_post("/api/teams/actions", self.teams_action)
        app.router.add_post("/api/world/{action}", self.world_action)

    # the page

    async def index(self, request: web.Request) -> web.Response:
        base = str(request.app.router[INDEX].url_for())
        page = STATIC.joinpath("index.html").read_text(encoding="utf-8").replace("%BASE%", html.escape(base))
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})

    async def events(self, request: web.Request) -> web.StreamResponse:
        return await event_stream(request, self.feed)

    # reading

    async def state(self, request: web.Request) -> web.Response:
        user = inputs.person(self.people, request.query.get("user"))
        return web.json_response(
            {
                "people": [p.to_json() for p in self.people],
                "user": user.key,
                "channels": {
                    "slack": slack_channels(self.suite.slack, user),
                    "teams": teams_channels(self.suite.teams, user),
                },
                "workspaces": {"slack": self.suite.slack.world.team_name, "teams": _team_names(self.suite)},
                "actions": [a.to_json() for a in ACTIONS],
                "version": self.feed.version,
            }
        )

    async def world(self, request: web.Request) -> web.Response:
        return web.json_response(world_snapshot(self.suite))

    async def channel(self, request: web.Request) -> web.Response:
        user = inputs.person(self.people, request.query.get("user"))
        platform, channel_id = _where(request)
        if platform == "slack":
            return web.json_response(slack_channel_view(self.suite.slack, channel_id, user))
        return web.json_response(teams_channel_view(self.suite.teams, channel_id, user, self.cards))

    # acting

    async def message(self, request: web.Request) -> web.Response:
        body = await inputs.json_body(request)
        user = inputs.person(self.people, body.get("user"))
        platform, channel_id = _where(request)
        text = inputs.text(body, "text")
        thread = inputs.optional_text(body, "thread", max_length=200)
        if platform == "slack":
            sent = await send_to_slack(self.suite.slack, channel_id, user, text, thread)
        else:
            sent = await send_to_teams(self.suite.teams, channel_id, user, text, thread)
        return web.json_response(sent.to_json())

    async def slack_action(self, request: web.Request) -> web.Response:
        body = await inputs.json_body(request)
        user = inputs.person(self.people, body.get("user"))
        sent = await click_slack_button(
            self.suite.slack,
            user,
            inputs.text(body, "channel", max_length=200),
            inputs.text(body, "ts", max_length=200),
            inputs.text(body, "action_id", max_length=255),
            inputs.optional_text(body, "value", max_length=2000),
        )
        return web.json_response(sent.to_json())

    async def slack_view_submit(self, request: web.Request) -> web.Response:
        body = await inputs.json_body(request)
        user = inputs.person(self.people, body.get("user"))
        answer = await submit_slack_view(
            self.suite.slack, user, request.match_info["view_id"], inputs.mapping(body, "values")
        )
        self.feed.notify("slack")
        return web.json_response(answer)

    async def slack_view_close(self, request: web.Request) -> web.Response:
        body = await inputs.json_body(request)
        user = inputs.person(self.people, body.get("user"))
        close_slack_view(self.suite.slack, user, request.match_info["view_id"])
        return web.json_response({"ok": True})

    async def teams_action(self, request: web.Request) -> web.Response:
        body = await inputs.json_body(request)
        user = inputs.person(self.people, body.get("user"))
        message_id = inputs.text(body, "message_id", max_length=200)
        answer = await click_teams_action(
            self.suite.teams, self.cards, user, message_id, inputs.mapping(body, "action")
        )
        return web.json_response(answer)

    async def world_action(self, request: web.Request) -> web.Response:
        action = BY_NAME.get(request.match_info["action"])
        if action is None:
            raise NotFound(f"There is no world action {request.match_info['action']!r}.")
        body = await inputs.json_body(request)
        user = inputs.person(self.people, body.get("user"))
        try:
            message = action.perform(self.suite, user, body)
        except (KeyError, ValueError) as error:
            raise BadRequest(str(error.args[0]) if error.args else type(error).__name__) from None
        self.feed.notify("world")
        return web.json_response({"ok": True, "message": message})


def _where(request: web.Request) -> tuple[str, str]:
    platform = request.match_info["platform"]
    if platform not in PLATFORMS:
        raise NotFound(f"There is no platform {platform!r}; the console knows {', '.join(PLATFORMS)}.")
    return platform, request.match_info["channel_id"]


def _team_names(suite: EmulatorSuite) -> dict[str, Any]:
    return {team.id: team.name for team in suite.teams.world.teams}

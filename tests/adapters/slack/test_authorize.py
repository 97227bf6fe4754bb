"""The bot's identity (``auth.test``) is learned when Handoff starts, so that no request waits for it
and a Slack hiccup at the first request does not lose a command."""

from __future__ import annotations

import asyncio

from adapters.emulators.base import Fault
from adapters.emulators.slack import SlackEmulator

from .harness import MODELS, start_harness, stop_harness, timed

AUTH_TEST = "POST /api/auth.test"


async def test_auth_test_is_asked_at_startup_and_never_during_a_request() -> None:
    slack = SlackEmulator()
    await slack.start()
    harness = await start_harness(slack=slack)
    try:
        assert harness.integration.identity is not None
        assert await harness.integration.identity.known_soon(5)  # asked as Handoff started, in the background
        assert len(slack.recorder.matching(AUTH_TEST)) == 1  # before any request came
        slack.faults.add(AUTH_TEST, [Fault("stall", stall_seconds=5)])

        response, took = await timed(slack.send_slash_command("/handoff", "help", channel="ml-models"))
        await slack.mention_bot("status", channel="ml-models")
        await harness.settle()

        assert response.status == 200
        assert took < 1.5
        assert [r.text for r in harness.handler.commands] == ["help", "status"]
        assert len(slack.recorder.matching(AUTH_TEST)) == 1
    finally:
        await stop_harness(harness)


async def test_slack_failing_auth_test_at_startup_loses_no_command() -> None:
    slack = SlackEmulator()
    await slack.start()
    # every startup attempt fails, and the first one asked in the background hangs
    slack.faults.add(AUTH_TEST, ["503", "503", "503", Fault("stall", stall_seconds=2)])
    harness = await start_harness(slack=slack)
    try:
        assert harness.integration.identity is not None and not harness.integration.identity.known

        response, took = await timed(slack.send_slash_command("/retrain", "model-x", channel="ml-models"))
        await harness.settle()

        assert response.status == 200
        assert took < 1.5
        [request] = harness.handler.commands
        assert request.text == "retrain model-x"
        [posted] = harness.messages(MODELS)
        assert posted.text == "ok: retrain model-x"

        # asked again in the background: the bot's mention is then recognised anywhere in a message
        for _ in range(100):
            if harness.integration.identity.known:
                break
            await asyncio.sleep(0.1)
        assert harness.integration.identity.known
        where, bob = slack.state.channel("ml-models"), slack.world.user("bob")
        text = f"status please <@{slack.world.bot_user_id}>"
        message = slack.state.post(where, user=bob.id, text=text)
        await slack.send_event(
            slack.payloads.app_mention(user=bob, channel=where, text=text, ts=message.ts, thread_ts=None)
        )
        await harness.settle()
        assert harness.handler.commands[-1].text == "status please"
    finally:
        await stop_harness(harness)

"""No secret reaches the logs: not the signing secret, not the bot token, not a payload's token."""

from __future__ import annotations

import contextlib
import logging
import os

import pytest

from adapters.slack import mount_slack
from bot.cards import Card
from bot.config import Secret, SlackSettings
from bot.ports import DeliveryFailed

from .harness import MODELS, Harness, RecordingHandler, gate_card, handoff_app


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_flows_log_no_secrets(harness: Harness, caplog: pytest.LogCaptureFixture, level: int) -> None:
    caplog.set_level(level)
    slack = harness.slack
    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    await slack.mention_bot("status", channel="ml-models")
    ts = (await harness.integration.channel.post_card(MODELS, gate_card())).message_id
    await slack.click_button(ts, "reject", user="carol")
    await harness.settle()
    view_id = next(iter(slack.state.views))
    await slack.submit_view(view_id, {"comment": {"comment": "no"}})
    harness.handler.fail = True
    await slack.send_slash_command("/handoff", "status", channel="ml-models", user="bob")
    slack.faults.add("POST /api/chat.postMessage", ["429", "429"])
    await harness.settle()
    with contextlib.suppress(DeliveryFailed):  # the failure is what gets logged
        await harness.integration.channel.post_card(MODELS, Card("x"))

    text = caplog.text
    assert caplog.records
    for secret in (slack.signing_secret, slack.bot_token, slack.world.verification_token):
        assert secret not in text


def test_the_environments_slack_variables_neither_warn_nor_turn_oauth_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SLACK_BOT_TOKEN is where handoff.yaml conventionally points slack.bot_token; Bolt would read it too
    environment = {"SLACK_BOT_TOKEN": "xoxb-env", "SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "client-secret"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO)
    settings = SlackSettings(
        signing_secret=Secret("SLACK_SIGNING_SECRET", "signing"),
        bot_token=Secret("SLACK_BOT_TOKEN", "xoxb-configured"),
        api_base_url="http://127.0.0.1:9/api/",
    )

    integration = mount_slack(handoff_app(), settings, RecordingHandler())

    assert [r.getMessage() for r in caplog.records if r.name.startswith("handoff.slack")] == []
    assert integration.bolt.oauth_flow is None  # one workspace, as configured
    assert integration.channel.client.token == "xoxb-configured"
    assert integration.identity is not None and integration.identity.token == "xoxb-configured"
    assert {name: os.environ.get(name) for name in environment} == environment

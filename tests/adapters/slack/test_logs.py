"""No secret reaches the logs: not the signing secret, not the bot token, not a payload's token."""

from __future__ import annotations

import contextlib
import logging

import pytest

from bot.cards import Card
from bot.ports import DeliveryFailed

from .harness import MODELS, Harness, gate_card


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

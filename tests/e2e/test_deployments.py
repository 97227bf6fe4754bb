"""Deployments through Event Grid: a deployment of several models reaches every channel that follows one."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Loop, blocks_text, eventually, slack_messages


def ops_follows_fraud_deployments(config: dict[str, Any]) -> None:
    """A configuration tweak: the ops channel gets the deployments of the fraud model."""
    config["subscriptions"].append({"channel": "ops", "events": ["model_deployed"], "models": ["fraud"]})


def deployment_cards(loop: Loop, channel: str) -> list[str]:
    return [text for m in slack_messages(loop, channel) if "Deployed to" in (text := blocks_text(m))]


async def test_a_deployment_of_several_models_reaches_the_channel_following_any_of_them(start_loop: Any) -> None:
    loop: Loop = await start_loop(ops_follows_fraud_deployments)
    aml = loop.suite.aml
    fraud = aml.register_model("fraud")
    aml.deploy_model("model-x-staging", "model-x:7")  # fraud is not in it: not for ops
    await aml.drain_events()  # delivered through /hooks/eventgrid, and routed

    aml.deploy_model("model-x-prod", ["model-x:7", f"fraud:{fraud.version}"])  # fraud is not first

    [card] = await eventually(lambda: deployment_cards(loop, "ops"))
    assert "Deployed to model-x-prod" in card
    assert "model-x:7" in card and f"fraud:{fraud.version}" in card  # the card names every model deployed
    # the channel following every deployment got both
    await eventually(lambda: len(deployment_cards(loop, "ml-models")) == 2)

"""Deployments through Event Grid: a deployment updates the card of each model version it deployed, and tells
its thread; a channel following deployments of one model gets that model's versions only."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Loop, blocks_text, eventually, slack_messages


def ops_follows_fraud_deployments(config: dict[str, Any]) -> None:
    """A configuration tweak: the ops channel gets the deployments of the fraud model."""
    config["subscriptions"].append({"channel": "ops", "events": ["model_deployed"], "models": ["fraud"]})


def cards(loop: Loop, channel: str, title: str) -> list[Any]:
    """The top-level messages of ``channel`` whose title starts with ``title`` (each a card that succeeded)."""
    return [m for m in slack_messages(loop, channel) if not m.thread_ts and m.text.startswith(f"Succeeded: {title}")]


def deployed_to(message: Any) -> str:
    """What the card's ``Deployed to`` fact says ("" without one)."""
    text = blocks_text(message)
    _, found, rest = text.partition("*Deployed to*")
    return rest.split('"', 1)[0].replace("\\n", "").strip() if found else ""


async def test_a_deployment_updates_each_versions_card_and_tells_its_thread(start_loop: Any) -> None:
    loop: Loop = await start_loop(ops_follows_fraud_deployments)
    aml = loop.suite.aml
    fraud = aml.register_model("fraud")
    label = f"fraud:{fraud.version}"
    [registered] = await eventually(lambda: cards(loop, "ml-models", f"Model {label} registered"))
    # model-x:7 was registered before Handoff was installed: its card was never posted
    aml.deploy_model("model-x-staging", "model-x:7")
    await aml.drain_events()  # delivered through /hooks/eventgrid, and routed

    [model_x] = await eventually(lambda: cards(loop, "ml-models", "Model model-x:7 deployed"))
    assert deployed_to(model_x) == "model-x-staging (ACI)"
    assert not model_x.replies  # the card it posted says it

    deployment = aml.deploy_model("model-x-prod", ["model-x:7", label])  # fraud is not first
    await aml.drain_events()
    aml.dispatcher.publish(deployment)  # Event Grid delivers it again
    await aml.drain_events()

    def told(message: Any, reply: str) -> bool:
        return [r.text for r in message.replies] == [f"Succeeded: {reply}"]

    # the registration's card, updated in place: where the version runs, and a reply in its thread
    await eventually(lambda: told(registered, f"Model {label} deployed to model-x-prod (AKS)"))
    assert registered.text.startswith(f"Succeeded: Model {label} deployed") and registered.edits
    assert deployed_to(registered) == "model-x-prod (AKS)"
    await eventually(lambda: told(model_x, "Model model-x:7 deployed to model-x-prod (AKS)"))
    assert deployed_to(model_x) == "model-x-staging (ACI), model-x-prod (AKS)"
    # one card per version in the channel, none of the deployment's own
    shown = [m.text for m in slack_messages(loop, "ml-models") if not m.thread_ts]
    assert len(cards(loop, "ml-models", f"Model {label}")) == len(cards(loop, "ml-models", "Model model-x:7")) == 1
    assert not [text for text in shown if "Deployed to" in text]

    # ops follows the fraud model's deployments: its version's card, not model-x's
    [for_ops] = await eventually(lambda: cards(loop, "ops", f"Model {label} deployed"))
    assert deployed_to(for_ops) == "model-x-prod (AKS)"
    assert not cards(loop, "ops", "Model model-x:7")

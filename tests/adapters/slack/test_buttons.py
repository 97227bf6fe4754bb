"""Approve and Reject on a gate card: modals, decisions, the card updated for everyone, refusals."""

from __future__ import annotations

import json
from dataclasses import replace

from bot.cards import Action, Card, Mention, Status
from bot.interactions import ActionRequest, ActionResult, Reply, Visibility

from .harness import CAROL, MODELS, Harness, gate_card, timed


async def post_gate(harness: Harness, card: Card | None = None) -> str:
    posted = await harness.integration.channel.post_card(MODELS, card or gate_card())
    return posted.message_id


def only_view(harness: Harness) -> str:
    [view_id] = [v.id for v in harness.slack.state.views.values() if not v.closed]
    return view_id


async def test_approve_opens_a_modal_with_an_optional_comment_and_updates_the_card(harness: Harness) -> None:
    ts = await post_gate(harness)
    click = await harness.slack.click_button(ts, "approve", user="carol")
    await harness.settle()

    assert (click.status, click.body) == (200, b"")
    assert harness.handler.actions == []  # nothing decided until the modal is submitted
    opened = harness.slack.state.views[only_view(harness)]
    assert opened.user == CAROL
    [comment_input] = [b for b in opened.view["blocks"] if b["type"] == "input"]
    assert comment_input["optional"] is True
    assert comment_input["label"]["text"] == "Comment"  # Slack itself adds "(optional)"
    assert comment_input["element"]["max_length"] == 1000  # as Teams' input allows
    assert opened.view["submit"]["text"] == "Approve"

    submitted = await harness.slack.submit_view(opened.id, {"comment": {"comment": "  ship it  "}})
    await harness.settle()

    assert submitted.status == 200
    assert opened.closed
    [request] = harness.handler.actions
    assert (request.action_id, request.value, request.comment) == ("approve", {"gate": "g-1"}, "ship it")
    assert request.user.email == "carol@contoso.com"
    assert request.message.message_id == ts
    assert request.conversation.conversation_id == MODELS
    card = harness.slack.state.find(MODELS, ts)
    assert card is not None
    assert len(card.edits) == 1
    assert card.text.startswith("Approved: Release app-y 1.4 to prod")
    assert "actions" not in [b["type"] for b in card.blocks or []]  # the buttons are gone for everyone
    assert "Approved by carol@contoso.com: ship it" in json.dumps(card.blocks)


async def test_the_modal_says_what_the_card_is_about_without_the_mentions_that_notify_people(
    harness: Harness,
) -> None:
    card = replace(
        gate_card(),
        title="Promote model-x:8 & ship?",
        mentions=(Mention("Carol", "carol@contoso.com"), Mention("Alice", "alice@contoso.com")),
    )
    ts = await post_gate(harness, card)
    posted = harness.slack.state.find(MODELS, ts)
    assert posted is not None and f"<@{CAROL}>" in posted.text  # the message notifies them
    await harness.slack.click_button(ts, "approve", user="carol")
    await harness.settle()
    opened = harness.slack.state.views[only_view(harness)]
    [about] = [b["text"]["text"] for b in opened.view["blocks"] if b["type"] == "section"]
    assert about == "Waiting: Promote model-x:8 &amp; ship? integrate-app-y #57 passed; model-x:7"


async def test_approve_without_a_comment(harness: Harness) -> None:
    ts = await post_gate(harness)
    await harness.slack.click_button(ts, "approve", user="carol")
    await harness.settle()
    await harness.slack.submit_view(only_view(harness), {})
    await harness.settle()

    [request] = harness.handler.actions
    assert request.comment == ""
    card = harness.slack.state.find(MODELS, ts)
    assert card is not None and card.text.startswith("Approved")


async def test_reject_requires_a_reason(harness: Harness) -> None:
    ts = await post_gate(harness)
    await harness.slack.click_button(ts, "reject", user="carol")
    await harness.settle()
    opened = harness.slack.state.views[only_view(harness)]
    [reason] = [b for b in opened.view["blocks"] if b["type"] == "input"]
    assert reason["optional"] is False
    assert reason["label"]["text"] == "Why reject?"

    blank = await harness.slack.submit_view(opened.id, {"comment": {"comment": "   "}})
    await harness.settle()
    assert blank.json() == {"response_action": "errors", "errors": {"comment": "Please give a reason."}}
    assert not opened.closed
    assert harness.handler.actions == []

    await harness.slack.submit_view(opened.id, {"comment": {"comment": "metrics regressed on segment B"}})
    await harness.settle()
    [request] = harness.handler.actions
    assert (request.action_id, request.comment) == ("reject", "metrics regressed on segment B")
    card = harness.slack.state.find(MODELS, ts)
    assert card is not None
    assert card.text.startswith("Rejected: Release app-y 1.4 to prod")


async def test_a_user_who_may_not_decide_is_refused_privately_and_the_card_is_unchanged(harness: Harness) -> None:
    ts = await post_gate(harness)
    before = harness.slack.state.find(MODELS, ts)
    assert before is not None
    blocks_before = json.loads(json.dumps(before.blocks))

    await harness.slack.click_button(ts, "approve", user="alice")
    await harness.settle()

    # refused before the form opens: nobody fills in a comment only to be refused
    assert harness.slack.state.views == {}
    assert harness.handler.actions == []
    [request] = harness.handler.checked
    assert (request.user.email, request.action_id, request.value) == ("alice@contoso.com", "approve", {"gate": "g-1"})
    after = harness.slack.state.find(MODELS, ts)
    assert after is not None
    assert after.edits == []
    assert after.blocks == blocks_before
    [refusal] = harness.slack.state.ephemeral_for("alice", "ml-models")
    assert refusal.text == "alice@contoso.com may not decide this gate."
    assert harness.slack.state.ephemeral_for("carol") == []


async def test_a_refusal_only_the_decision_can_tell_comes_after_the_form(harness: Harness) -> None:
    harness.handler.decide = lambda r: ActionResult(False, "This gate has expired.")
    ts = await post_gate(harness)
    await harness.slack.click_button(ts, "reject", user="alice")
    await harness.settle()
    await harness.slack.submit_view(only_view(harness), {"comment": {"comment": "broken"}})
    await harness.settle()

    [checked] = harness.handler.checked
    [request] = harness.handler.actions
    assert (checked.comment, request.comment) == ("", "broken")
    [refusal] = harness.slack.state.ephemeral_for("alice", "ml-models")
    assert refusal.text == "This gate has expired."


async def test_a_button_without_a_comment_goes_straight_to_the_core(harness: Harness) -> None:
    harness.handler.decide = lambda r: ActionResult(True, "Retrying", Card("integrate-app-y #58", Status.QUEUED))
    card = Card("integrate-app-y #57", Status.FAILED, actions=(Action("retry", "Retry", {"run": "57"}),))
    ts = await post_gate(harness, card)
    await harness.slack.click_button(ts, "retry", user="bob")
    await harness.settle()

    assert harness.slack.state.views == {}
    [request] = harness.handler.actions
    assert (request.action_id, request.value, request.comment) == ("retry", {"run": "57"}, "")
    updated = harness.slack.state.find(MODELS, ts)
    assert updated is not None and updated.text == "Queued: integrate-app-y #58"


async def test_accepted_without_a_new_card_tells_the_clicker(harness: Harness) -> None:
    harness.handler.decide = lambda r: ActionResult(True, "Already approved by carol", None)
    card = Card("Gate", Status.WAITING, actions=(Action("remind", "Remind", {}),))
    ts = await post_gate(harness, card)
    await harness.slack.click_button(ts, "remind", user="bob")
    await harness.settle()

    updated = harness.slack.state.find(MODELS, ts)
    assert updated is not None and updated.edits == []
    [note] = harness.slack.state.ephemeral_for("bob", "ml-models")
    assert note.text == "Already approved by carol"


async def test_an_error_in_the_core_is_a_private_apology_and_the_card_is_unchanged(harness: Harness) -> None:
    ts = await post_gate(harness)
    harness.handler.fail = True
    await harness.slack.click_button(ts, "reject", user="carol")
    await harness.settle()
    response = await harness.slack.submit_view(only_view(harness), {"comment": {"comment": "no"}})
    await harness.settle()

    assert response.status == 200
    card = harness.slack.state.find(MODELS, ts)
    assert card is not None and card.edits == []
    [apology] = harness.slack.state.ephemeral_for("carol", "ml-models")
    assert apology.text.startswith("Sorry, Handoff hit an internal error while handling your click")


async def test_the_click_is_acknowledged_while_the_core_is_slow(harness: Harness) -> None:
    seen: list[ActionRequest] = []

    def decide(request: ActionRequest) -> ActionResult:
        seen.append(request)
        return ActionResult(True, "ok", None)

    harness.handler.decide = decide
    harness.handler.delay = 10.0
    ts = await post_gate(harness, Card("Gate", Status.WAITING, actions=(Action("remind", "Remind", {}),)))
    response, seconds = await timed(harness.slack.click_button(ts, "remind", user="bob"))
    assert response.status == 200
    assert seconds < 3.0
    await harness.integration.close(timeout=0.1)  # the core is still thinking: stop it


async def test_expired_trigger_is_explained_privately(harness: Harness) -> None:
    ts = await post_gate(harness)
    # every trigger the emulator hands out is already used: views.open answers exchanged_trigger_id
    original = harness.slack.state.new_trigger

    def used_trigger(user: str):  # type: ignore[no-untyped-def]
        trigger = original(user)
        trigger.used = True
        return trigger

    harness.slack.state.new_trigger = used_trigger  # type: ignore[method-assign]
    await harness.slack.click_button(ts, "approve", user="carol")
    await harness.settle()

    assert harness.slack.state.views == {}
    [note] = harness.slack.state.ephemeral_for("carol", "ml-models")
    assert "could not be opened" in note.text


async def test_a_button_on_a_private_answer_replaces_that_answer(harness: Harness) -> None:
    confirm = Card("Retrain model-x?", Status.WAITING, actions=(Action("confirm", "Retrain", {"model": "model-x"}),))
    harness.handler.command_reply = lambda r: Reply("Confirm?", confirm, Visibility.PRIVATE)
    harness.handler.decide = lambda r: ActionResult(True, "Started", Card("model-x retraining", Status.RUNNING))
    await harness.slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    await harness.settle()
    [private] = harness.slack.state.ephemeral_for("alice", "ml-models")
    assert private.blocks is not None and private.blocks[0]["block_id"].startswith("c")

    await harness.slack.click_button(private.ts, "confirm", user="alice")
    await harness.settle()

    [request] = harness.handler.actions
    assert (request.action_id, request.value, request.message.message_id) == (
        "confirm",
        {"model": "model-x"},
        private.ts,
    )
    assert len(private.versions) == 1
    assert private.text == "Running: model-x retraining"
    assert private.blocks is not None and private.blocks[0]["block_id"].startswith("c")  # still compact
    assert harness.messages(MODELS) == []


async def test_a_button_with_an_unknown_comment_mode_asks_for_a_comment_rather_than_deciding_at_once(
    harness: Harness,
) -> None:
    ts = await post_gate(harness)
    value = json.dumps({"a": "approve", "v": {"gate": "g-1"}, "c": "weird"})

    await harness.slack.click_button(ts, "approve", user="carol", value=value)
    await harness.settle()

    assert harness.handler.actions == []  # not approved at once
    opened = harness.slack.state.views[only_view(harness)]
    [comment_input] = [b for b in opened.view["blocks"] if b["type"] == "input"]
    assert comment_input["optional"] is False
    await harness.slack.submit_view(opened.id, {"comment": {"comment": "checked the metrics"}})
    await harness.settle()
    [request] = harness.handler.actions
    assert (request.action_id, request.value, request.comment) == ("approve", {"gate": "g-1"}, "checked the metrics")

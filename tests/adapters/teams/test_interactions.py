"""People in Teams: commands by @mention and in personal chat, and clicks on cards (Action.Execute,
refresh, the Action.Submit fallback), through ``/api/messages`` with the emulator as Teams."""

from __future__ import annotations

import asyncio
import copy
import logging

import jsonschema
import pytest
from botbuilder.schema.teams import TeamsChannelData, TenantInfo

from adapters.emulators.base import Fault, LocalServer
from adapters.teams import mount_teams
from bot.app import create_app
from bot.cards import Card
from bot.clock import FakeClock
from bot.config import Settings
from bot.interactions import ActionResult, Reply, Visibility, bold, link
from bot.ports import PostedMessage
from tests.e2e.conftest import eventually

from .conftest import (
    ALICE,
    ALICE_AAD,
    BOB,
    BOB_AAD,
    CAROL,
    MODELS,
    RELEASES,
    TENANT,
    Harness,
    adaptive_card,
    gate_card,
    no_auth_settings,
    texts,
    verbs,
    with_time_passing,
)


async def test_a_channel_command_reaches_the_core_without_the_mention(harness: Harness) -> None:
    await harness.teams.install_app()

    answer = await harness.teams.send_channel_message("retrain model-x data=lake:7", channel="ML models", user="bob")

    assert answer.status == 201
    [request] = harness.handler.commands
    assert request.text == "retrain model-x data=lake:7"
    assert request.conversation.conversation_id == MODELS
    root = answer.activity["id"]
    assert request.thread == PostedMessage(root, root)
    user = request.user
    assert (user.platform, user.user_id, user.email, user.aad_object_id, user.workspace_id) == (
        "teams",
        BOB,
        "bob@contoso.com",
        BOB_AAD,
        TENANT,
    )
    # the answer goes into the thread of the command
    thread = harness.teams.state.channel("ML models").posts[0]
    assert [r.text for r in thread.replies] == ["ran: retrain model-x data=lake:7"]


async def test_an_answer_echoing_what_was_typed_shows_it_as_written_and_keeps_handoffs_markup(harness: Harness) -> None:
    await harness.teams.install_app()
    run = "https://dev.azure.com/contoso/ml/_build/results?buildId=412"
    harness.handler.reply = lambda r: Reply(
        f"Started {link(run, 'run *412*')} for {bold('model_x')}: `{r.text}`, {r.text}"
    )

    await harness.teams.send_channel_message("retrain fix *all* the_things ~x~", channel="ML models")

    [reply] = harness.teams.state.channel("ML models").posts[0].replies
    assert reply.text == (
        f"Started [run \\*412\\*]({run}) for **model\\_x**: `retrain fix *all* the_things ~x~`, "
        "retrain fix \\*all\\* the\\_things \\~x\\~"
    )


async def test_commands_in_a_burst_are_each_answered_within_the_conversations_rate_limit(harness: Harness) -> None:
    """Teams allows a bot 7 messages a second in a conversation and answers more with 429: the answers to commands
    typed in a burst wait for room (and retry a 429) rather than being lost."""
    await harness.teams.install_app()
    for n in range(10):  # within one second of the (fake) clock, unless an answer waits
        await with_time_passing(harness.clock, harness.teams.send_channel_message(f"status {n}", channel="ML models"))

    posts = harness.teams.state.channel("ML models").posts
    assert [[r.text for r in p.replies if r.by_bot] for p in posts] == [[f"ran: status {n}"] for n in range(10)]


async def test_a_command_in_a_thread_and_a_bare_mention(harness: Harness) -> None:
    await harness.teams.install_app()
    first = await harness.teams.send_channel_message("status", channel="App releases")
    await harness.teams.send_channel_message("", channel="App releases", reply_to=first.activity["id"])

    assert [c.text for c in harness.handler.commands] == ["status", "help"]
    assert harness.handler.commands[1].thread == PostedMessage(first.activity["id"], first.activity["id"])
    replies = harness.teams.state.channel("App releases").posts[0].replies
    assert [r.text for r in replies if r.by_bot] == ["ran: status", "ran: help"]


async def test_a_personal_command_with_slack_style_slashes(harness: Harness) -> None:
    answer = await harness.teams.send_personal_message("/handoff approvals", user="carol")
    await harness.teams.send_personal_message("/retrain model-x", user="carol")

    assert answer.status == 201
    assert [c.text for c in harness.handler.commands] == ["approvals", "retrain model-x"]
    request = harness.handler.commands[0]
    assert request.conversation.conversation_id == "a:1personal-carol"
    assert request.thread is None
    assert request.user.email == "carol@contoso.com"
    chat = harness.teams.state.conversation("a:1personal-carol")
    assert [p.text for p in chat.posts if p.by_bot] == ["ran: approvals", "ran: retrain model-x"]
    # writing to the bot makes the chat reachable, as a personal install does
    record = await harness.record("a:1personal-carol")
    assert record is not None and record.active


async def test_a_reply_with_a_card_for_the_whole_channel_goes_in_the_commands_thread(
    harness: Harness, card_validator: jsonschema.protocols.Validator
) -> None:
    await harness.teams.install_app()
    harness.handler.reply = lambda r: Reply(
        "Subscribed.", Card(title="This channel now gets run events"), Visibility.CHANNEL
    )

    await harness.teams.send_channel_message("subscribe events=run", channel="ML models")

    # the command is a post the whole channel sees, and so is its thread: no post of its own
    [post] = harness.teams.state.channel("ML models").posts
    [reply] = post.replies
    card = adaptive_card(reply.activity)
    card_validator.validate(card)
    assert texts(card)[0] == "This channel now gets run events"


async def test_approve_updates_the_card_for_the_clicker_and_for_everyone(
    harness: Harness, card_validator: jsonschema.protocols.Validator
) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))

    clicked = await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "gate-42"}, user="alice")

    assert clicked.status == 200
    [request] = harness.handler.actions
    assert (request.action_id, request.value, request.comment) == ("approve", {"gate_id": "gate-42"}, "")
    assert request.conversation.conversation_id == RELEASES
    assert request.message == PostedMessage(posted.message_id, posted.message_id)
    assert (request.user.user_id, request.user.email, request.user.aad_object_id) == (
        ALICE,
        "alice@contoso.com",
        ALICE_AAD,
    )
    body = clicked.body
    assert (body["statusCode"], body["type"]) == (200, "application/vnd.microsoft.card.adaptive")
    card_validator.validate(body["value"])
    assert texts(body["value"])[1:3] == ["✅ Approved", "Approved by alice@contoso.com"]
    message = harness.teams.state.message(posted.message_id)
    await eventually(lambda: len(message.versions) == 2)  # (once the click is answered)
    assert texts(adaptive_card(message.activity))[1:3] == ["✅ Approved", "Approved by alice@contoso.com"]
    assert verbs(adaptive_card(message.activity)) == []


async def test_clicks_and_messages_leave_no_msrest_noise_about_fields_teams_always_sends(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    await harness.teams.send_channel_message("status", channel="App releases")

    clicked = await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "gate-42"}, user="alice")

    assert clicked.status == 200 and len(harness.handler.actions) == 1
    assert not [r for r in caplog.records if r.name.startswith("msrest")]
    # a field Teams is not known to send is still told, as is anything else msrest says
    TeamsChannelData(tenant=TenantInfo(id=TENANT), surprise=True)
    logging.getLogger("msrest.serialization").warning("Readonly attribute %s will be ignored in class %s", "x", "y")
    told = [r.getMessage() for r in caplog.records if r.name == "msrest.serialization"]
    assert len(told) == 2 and "surprise is not a known attribute" in told[0]


async def test_reject_carries_the_comment(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    card = adaptive_card(harness.teams.state.message(posted.message_id).activity)
    assert verbs(card) == ["approve", "reject"]

    clicked = await harness.teams.click_action(
        posted.message_id, "reject", {"gate_id": "gate-42", "comment": " AUC dropped 4 points "}, user="bob"
    )

    assert clicked.body["statusCode"] == 200
    [request] = harness.handler.actions
    assert (request.action_id, request.value, request.comment) == (
        "reject",
        {"gate_id": "gate-42"},
        "AUC dropped 4 points",
    )
    message = harness.teams.state.message(posted.message_id)
    await eventually(lambda: len(message.versions) == 2)
    assert texts(adaptive_card(message.activity))[2] == "Rejected by bob@contoso.com: AUC dropped 4 points"


async def test_approve_opens_a_form_with_an_optional_comment_that_reaches_the_decision(
    harness: Harness, card_validator: jsonschema.protocols.Validator
) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    card = adaptive_card(harness.teams.state.message(posted.message_id).activity)
    card_validator.validate(card)
    form = next(a for a in card["actions"] if a["title"] == "Approve")
    assert (form["type"], form["style"]) == ("Action.ShowCard", "positive")
    [comment] = form["card"]["body"]
    assert (comment["type"], comment["id"], comment["isRequired"]) == ("Input.Text", "comment", False)
    [send] = form["card"]["actions"]
    assert (send["type"], send["verb"]) == ("Action.Execute", "approve")

    # Teams sends the form's inputs within the action's data
    await harness.teams.click_action(posted.message_id, "approve", {**send["data"], "comment": " AUC up 2 points "})
    await harness.teams.click_action(posted.message_id, "approve", {**send["data"], "comment": ""}, user="bob")

    assert [(r.action_id, r.value, r.comment) for r in harness.handler.actions] == [
        ("approve", {"gate_id": "gate-42"}, "AUC up 2 points"),
        ("approve", {"gate_id": "gate-42"}, ""),
    ]


async def test_a_refused_click_answers_an_error_and_leaves_the_card(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    before = harness.teams.state.message(posted.message_id).activity
    harness.handler.decide = lambda r: ActionResult(False, "Only release managers may approve app-y.")

    clicked = await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "gate-42"}, user="carol")

    assert clicked.status == 200
    assert clicked.body == {
        "statusCode": 400,
        "type": "application/vnd.microsoft.error",
        "value": {"code": "BadRequest", "message": "Only release managers may approve app-y."},
    }
    message = harness.teams.state.message(posted.message_id)
    assert len(message.versions) == 1 and message.activity == before
    assert not harness.teams.recorder.matching("PUT /v3/conversations/**")


async def test_an_accepted_click_without_a_new_card_answers_a_message(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    harness.handler.decide = lambda r: ActionResult(True, "Recorded; one more approval is needed.")

    clicked = await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "gate-42"})

    assert clicked.body == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.activity.message",
        "value": "Recorded; one more approval is needed.",
    }
    assert len(harness.teams.state.message(posted.message_id).versions) == 1


async def test_a_slow_decision_is_answered_at_once_and_replaces_the_card_when_done(harness: Harness) -> None:
    """Teams sends an invoke again after 5 s and shows an error after about 15 s: a decision still under way after
    the bot's bound is answered as being applied, goes on, and then replaces the card for everyone."""
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    harness.integration.bot.answer_within = 0.2
    harness.handler.deciding_takes = 1.5

    started = asyncio.get_running_loop().time()
    clicked = await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "gate-42"}, user="alice")

    assert asyncio.get_running_loop().time() - started < 1.0
    assert clicked.body == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.activity.message",
        "value": "Applying your approval in Azure DevOps… The card changes once it is done.",
    }
    message = harness.teams.state.message(posted.message_id)
    assert len(message.versions) == 1
    await eventually(lambda: len(message.versions) == 2)
    assert texts(adaptive_card(message.activity))[1:3] == ["✅ Approved", "Approved by alice@contoso.com"]
    assert len(harness.handler.actions) == 1 and message.replies == []


async def test_a_slow_decision_refused_in_the_end_is_told_only_to_the_person_who_clicked(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    harness.integration.bot.answer_within = 0.2
    harness.handler.deciding_takes = 1.0
    refusal = "Azure DevOps refused the approval (policy *prod_gate*): decide there."
    harness.handler.decide = lambda r: ActionResult(False, refusal)

    clicked = await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "gate-42"}, user="carol")

    assert clicked.body["type"] == "application/vnd.microsoft.activity.message"
    chat = await eventually(lambda: harness.teams.state.conversations.get("a:1personal-carol"))
    await eventually(lambda: chat.posts)
    # (what the services said is shown as written)
    assert [m.text for m in chat.posts] == [
        r"Azure DevOps refused the approval \(policy \*prod\_gate\*\): decide there."
    ]
    message = harness.teams.state.message(posted.message_id)
    assert len(message.versions) == 1 and message.replies == []


async def test_a_failing_core_is_an_error_response_not_a_500(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))

    def broken(_: object) -> ActionResult:
        raise RuntimeError("database is down")

    harness.handler.decide = broken
    clicked = await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "gate-42"})

    assert clicked.status == 200
    assert (clicked.body["statusCode"], clicked.body["type"]) == (500, "application/vnd.microsoft.error")


async def test_refresh_shows_buttons_to_approvers_and_the_status_to_others(
    harness: Harness, card_validator: jsonschema.protocols.Validator
) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=(ALICE,)))
    shared = adaptive_card(harness.teams.state.message(posted.message_id).activity)
    refresh = shared["refresh"]["action"]
    assert (refresh["verb"], shared["refresh"]["userIds"], verbs(shared)) == ("refresh", [ALICE], [])

    for_alice = await harness.teams.click_action(
        posted.message_id, "refresh", refresh["data"], user="alice", trigger="automatic"
    )
    for_bob = await harness.teams.click_action(posted.message_id, "refresh", refresh["data"], user="bob")

    assert verbs(for_alice.body["value"]) == ["approve", "reject"]
    assert verbs(for_bob.body["value"]) == []
    for body in (for_alice.body, for_bob.body):
        card_validator.validate(body["value"])
        assert texts(body["value"])[0] == "Release app-y 2.3 with model-x:7 to prod"
        assert body["value"]["refresh"] == shared["refresh"]
    assert harness.handler.actions == []  # a refresh decides nothing


async def test_the_action_submit_fallback_is_handled_like_a_click(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    approve_form = adaptive_card(harness.teams.state.message(posted.message_id).activity)["actions"][0]
    fallback = approve_form["card"]["actions"][0]["fallback"]
    assert fallback == {
        "type": "Action.Submit",
        "title": "Approve",
        "data": {"gate_id": "gate-42", "verb": "approve"},
        "style": "positive",
    }

    answer = await harness.teams.submit_card(posted.message_id, fallback["data"], user="bob")

    assert answer.status == 201
    [request] = harness.handler.actions
    assert (request.action_id, request.value, request.user.user_id) == ("approve", {"gate_id": "gate-42"}, BOB)
    assert texts(adaptive_card(harness.teams.state.message(posted.message_id).activity))[1] == "✅ Approved"
    assert harness.handler.commands == []


async def test_a_refused_submit_is_told_only_to_the_person_who_clicked(harness: Harness) -> None:
    """An Action.Submit click is answered with a message, not an invoke answer: its refusal goes to the person's 1:1
    chat with Handoff (created for it), not into the channel's thread, where everyone would see it."""
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    harness.handler.decide = lambda r: ActionResult(False, "This gate was already decided.")

    await harness.teams.submit_card(posted.message_id, {"verb": "approve", "gate_id": "gate-42"}, user="carol")

    message = harness.teams.state.message(posted.message_id)
    assert len(message.versions) == 1
    assert message.replies == []
    assert [p.text for p in harness.teams.state.channel("App releases").posts if p.by_bot] == [None]  # the card
    chat = harness.teams.state.conversation("a:1personal-carol")
    assert [(m.text, m.by_bot) for m in chat.posts] == [("This gate was already decided.", True)]


async def test_a_slow_submitted_decision_ends_the_turn_and_replaces_the_card_when_done(harness: Harness) -> None:
    """An Action.Submit click waits no longer than an invoke: Teams sends a message whose turn lasts too long
    again. The decision goes on and then replaces the card for everyone."""
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    harness.integration.bot.answer_within = 0.2
    harness.handler.deciding_takes = 1.5

    started = asyncio.get_running_loop().time()
    answer = await harness.teams.submit_card(posted.message_id, {"verb": "approve", "gate_id": "gate-42"}, user="alice")

    assert asyncio.get_running_loop().time() - started < 1.0
    assert answer.status == 201
    message = harness.teams.state.message(posted.message_id)
    assert len(message.versions) == 1
    await eventually(lambda: len(message.versions) == 2)
    assert texts(adaptive_card(message.activity))[1:3] == ["✅ Approved", "Approved by alice@contoso.com"]
    assert len(harness.handler.actions) == 1 and message.replies == []


async def test_a_slow_submitted_decision_refused_in_the_end_is_told_in_the_persons_chat(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    harness.integration.bot.answer_within = 0.2
    harness.handler.deciding_takes = 1.0
    harness.handler.decide = lambda r: ActionResult(False, "Azure DevOps refused the approval: decide there.")

    await harness.teams.submit_card(posted.message_id, {"verb": "approve", "gate_id": "gate-42"}, user="carol")

    chat = await eventually(lambda: harness.teams.state.conversations.get("a:1personal-carol"))
    await eventually(lambda: chat.posts)
    assert [m.text for m in chat.posts] == ["Azure DevOps refused the approval: decide there."]
    message = harness.teams.state.message(posted.message_id)
    assert len(message.versions) == 1 and message.replies == []


async def test_a_refused_submit_that_cannot_reach_the_persons_chat_is_addressed_to_them(harness: Harness) -> None:
    """When Teams will not open the person's 1:1 chat, the refusal is said where they clicked, @mentioning them."""
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    harness.handler.decide = lambda r: ActionResult(False, "This gate was already decided.")
    harness.teams.faults.add("POST /v3/conversations", [Fault("reset")])

    await harness.teams.submit_card(posted.message_id, {"verb": "approve", "gate_id": "gate-42"}, user="carol")

    [reply] = harness.teams.state.message(posted.message_id).replies
    assert reply.text == "<at>Carol Diaz</at> This gate was already decided."
    [mention] = reply.activity["entities"]
    assert (mention["type"], mention["mentioned"]["id"]) == ("mention", CAROL)


async def test_a_click_in_a_personal_chat(harness: Harness) -> None:
    await harness.teams.install_personal_app(user="bob")
    posted = await harness.integration.channel.post_card("a:1personal-bob", gate_card(audience=()))

    clicked = await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "gate-42"}, user="bob")

    assert clicked.body["statusCode"] == 200
    [request] = harness.handler.actions
    assert request.conversation.conversation_id == "a:1personal-bob"
    assert request.message == PostedMessage(posted.message_id, None)
    await eventually(lambda: len(harness.teams.state.message(posted.message_id).versions) == 2)


async def test_an_action_submit_invoke_gets_a_400_not_a_500(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    clicked_activity = (await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "g"})).activity
    odd = {**clicked_activity, "id": "f:odd", "value": {"action": {"type": "Action.Submit", "data": {}}}}

    answer = await harness.teams.post_activity(odd)

    assert answer.status == 400
    assert answer.body["type"] == "application/vnd.microsoft.error"
    assert answer.body["value"]["code"] == "NotSupported"


async def test_a_click_teams_sends_again_is_decided_once_and_both_get_its_answer(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    harness.handler.deciding_takes = 1.0
    click = harness.teams.click_activity(posted.message_id, "approve", {"gate_id": "gate-42"}, user="alice")

    # sent again while the first is being decided, and once more after it was answered
    answers = list(
        await asyncio.gather(harness.teams.post_activity(click), harness.teams.post_activity(copy.deepcopy(click)))
    )
    answers.append(await harness.teams.post_activity(copy.deepcopy(click)))

    assert len(harness.handler.actions) == 1
    assert [a.status for a in answers] == [200, 200, 200]
    assert answers[0].body["type"] == "application/vnd.microsoft.card.adaptive"
    assert answers[1].body == answers[0].body == answers[2].body  # the card as the clicker sees it
    message = harness.teams.state.message(posted.message_id)
    await eventually(lambda: len(message.versions) == 2)
    await asyncio.sleep(0.2)
    assert len(message.versions) == 2  # replaced once


async def test_a_click_sent_again_to_another_replica_is_not_decided_again(harness: Harness, clock: FakeClock) -> None:
    other_app = create_app(Settings(), harness.store)
    mount_teams(other_app, no_auth_settings(), harness.handler, harness.store, clock=clock, events=harness.store)
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    click = harness.teams.click_activity(posted.message_id, "approve", {"gate_id": "gate-42"}, user="alice")

    async with LocalServer(other_app) as replica:
        first = await harness.teams.post_activity(click)
        again = await harness.teams.post_activity(copy.deepcopy(click), f"{replica.url}/api/messages")

    assert len(harness.handler.actions) == 1
    assert first.body["type"] == "application/vnd.microsoft.card.adaptive"
    assert again.status == 200
    assert again.body == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.activity.message",
        "value": "Handoff is already handling this click. The card changes once it is done.",
    }


async def test_a_command_teams_sends_again_runs_once(harness: Harness) -> None:
    answer = await with_time_passing(harness.clock, harness.teams.send_personal_message("retrain model-x"))
    again = await with_time_passing(harness.clock, harness.teams.post_activity(copy.deepcopy(answer.activity)))

    assert (answer.status, again.status) == (201, 201)
    assert [c.text for c in harness.handler.commands] == ["retrain model-x"]
    chat = harness.teams.state.conversations["a:1personal-alice"]
    assert [m.text for m in chat.posts if m.author_id == harness.teams.world.bot_id] == ["ran: retrain model-x"]


async def test_a_submitted_click_teams_sends_again_is_decided_once(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))

    answer = await harness.teams.submit_card(posted.message_id, {"verb": "approve", "gate_id": "gate-42"})
    await harness.teams.post_activity(copy.deepcopy(answer.activity))

    assert len(harness.handler.actions) == 1


async def test_a_slow_member_lookup_does_not_hold_a_click(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    harness.teams.faults.add("GET /v3/conversations/*/members/*", [Fault("stall", stall_seconds=4)])

    started = asyncio.get_running_loop().time()
    clicked = await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "gate-42"}, user="alice")

    assert asyncio.get_running_loop().time() - started < 2.5  # not 4 s: Teams would send it again after 5
    assert clicked.body["type"] == "application/vnd.microsoft.card.adaptive"
    [request] = harness.handler.actions
    # who clicked, as the activity says: no email without the lookup
    assert (request.user.user_id, request.user.aad_object_id, request.user.email) == (ALICE, ALICE_AAD, None)


async def test_a_slow_card_update_does_not_hold_a_clicks_answer(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
    harness.teams.faults.add("PUT /v3/conversations/*/activities/*", [Fault("stall", stall_seconds=4)])

    started = asyncio.get_running_loop().time()
    clicked = await harness.teams.click_action(posted.message_id, "approve", {"gate_id": "gate-42"}, user="alice")

    assert asyncio.get_running_loop().time() - started < 2.5
    assert clicked.body["type"] == "application/vnd.microsoft.card.adaptive"
    message = harness.teams.state.message(posted.message_id)
    await eventually(lambda: len(message.versions) == 2)  # everyone's card, once the update went through
    assert texts(adaptive_card(message.activity))[1] == "✅ Approved"

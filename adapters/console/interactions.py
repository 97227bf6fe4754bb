"""Clicks and forms: Block Kit buttons and modals on Slack, Adaptive Card actions on Teams."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.console.composer import Sent
from adapters.console.errors import BadRequest, NotFound, to_bot
from adapters.console.people import ConsoleUser
from adapters.console.personal_cards import ADAPTIVE_CARD, PersonalCards, invoke_card
from adapters.emulators.botframework.emulator import BotFrameworkEmulator
from adapters.emulators.slack.emulator import SlackEmulator
from adapters.emulators.slack.state import OpenedView

ERROR_TYPE = "application/vnd.microsoft.error"
MESSAGE_TYPE = "application/vnd.microsoft.activity.message"
TEAMS_ACTIONS = ("Action.Execute", "Action.Submit")


async def click_slack_button(
    slack: SlackEmulator, user: ConsoleUser, channel_id: str, message_ts: str, action_id: str, value: str | None
) -> Sent:
    """``user`` clicks the element ``action_id`` of a message (or of an ephemeral one they see)."""
    if user.slack_id is None:
        raise BadRequest(f"{user.name} has no Slack account in the emulated workspace.")
    if channel_id not in slack.state.channels:
        raise NotFound(f"There is no Slack channel {channel_id!r}.")
    ephemeral = slack.state.find_ephemeral(channel_id, message_ts)
    if ephemeral is not None and ephemeral.user != user.slack_id:
        raise NotFound("That message is only visible to someone else.")
    response = await to_bot(
        "Slack", slack.click_button(message_ts, action_id, channel=channel_id, user=user.key, value=value)
    )
    return Sent(response.status, response.text.strip()[:2000] or None)


def opened_view(slack: SlackEmulator, user: ConsoleUser, view_id: str) -> OpenedView:
    view = slack.state.views.get(view_id)
    if view is None or view.user != user.slack_id:
        raise NotFound(f"There is no modal {view_id!r} open for {user.name}.")
    if view.closed:
        raise BadRequest("This modal is already closed.")
    return view


async def submit_slack_view(
    slack: SlackEmulator, user: ConsoleUser, view_id: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """Submit a modal with ``{block_id: {action_id: text}}``; answers whether it closed and its errors."""
    view = opened_view(slack, user, view_id)
    clean: dict[str, dict[str, str]] = {}
    for block, actions in values.items():
        if not isinstance(actions, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) <= 3000 for k, v in actions.items()
        ):
            raise BadRequest("'values' must be {block_id: {action_id: text}}.")
        clean[str(block)] = dict(actions)
    view.errors = {}
    response = await to_bot("Slack", slack.submit_view(view_id, clean))
    return {
        **Sent(response.status, response.text.strip()[:2000] or None).to_json(),
        "closed": view.closed,
        "errors": dict(view.errors),
    }


def close_slack_view(slack: SlackEmulator, user: ConsoleUser, view_id: str) -> None:
    """The person dismisses a modal (Handoff's modals do not ask to be told)."""
    opened_view(slack, user, view_id).closed = True
    slack.state.changed()


async def click_teams_action(
    teams: BotFrameworkEmulator,
    cards: PersonalCards,
    user: ConsoleUser,
    message_id: str,
    action: Mapping[str, Any],
) -> dict[str, Any]:
    """``user`` clicks an ``Action.Execute`` (an invoke) or ``Action.Submit`` (a message) on a card.

    ``action`` is ``{"type", "verb", "data", "id"}`` with the card's inputs already merged into ``data``.
    Answers ``{"ok", "status", "kind": "card"|"message"|"error"|"none", "text"}``.
    """
    if user.teams_id is None:
        raise BadRequest(f"{user.name} has no Teams account in the emulated tenant.")
    try:
        msg = teams.state.message(message_id)
    except KeyError:
        raise NotFound(f"There is no Teams message {message_id!r}.") from None
    kind, data = action.get("type"), action.get("data")
    if kind not in TEAMS_ACTIONS:
        raise BadRequest(f"'type' must be one of {', '.join(TEAMS_ACTIONS)}.")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadRequest("'data' must be an object.")
    if kind == "Action.Submit":
        sent = await to_bot("Teams", teams.submit_card(message_id, data, user=user.key))
        return {"ok": sent.ok, "status": sent.status, "kind": "none", "text": None}
    verb, action_id = action.get("verb"), action.get("id")
    if not isinstance(verb, str) or not verb.strip():
        raise BadRequest("An Action.Execute needs a 'verb'.")
    response = await to_bot(
        "Teams",
        teams.click_action(
            message_id, verb, data, user=user.key, action_id=action_id if isinstance(action_id, str) else None
        ),
    )
    answer = _invoke_answer(response.status, response.body)
    card = invoke_card(response.body)
    if response.ok and card is not None:
        cards.remember(msg, user, card)
    return {"ok": response.ok and answer["kind"] != "error", "status": response.status, **answer}


def _invoke_answer(status: int, body: Any) -> dict[str, Any]:
    """What Teams shows the person after an invoke: the bot's message, its error, or nothing (a new card)."""
    if not isinstance(body, dict):
        if 200 <= status < 300:
            return {"kind": "none", "text": None}
        return {"kind": "error", "text": f"The bot answered {status}."}
    kind, value, code = body.get("type"), body.get("value"), body.get("statusCode")
    if kind == ERROR_TYPE or (code if isinstance(code, int) else status) >= 400:
        message = value.get("message") if isinstance(value, dict) else value
        return {"kind": "error", "text": str(message or "Something went wrong. Please try again.")}
    if kind == MESSAGE_TYPE:
        return {"kind": "message", "text": str(value or "")}
    if kind == ADAPTIVE_CARD:
        return {"kind": "card", "text": None}
    return {"kind": "none", "text": None}

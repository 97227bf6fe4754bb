"""From a verified body to Bolt's request, or a clean refusal.

Bolt parses the body in ``AsyncBoltRequest``'s constructor and trusts its shape afterwards; a JSON
array, a ``payload`` field that is not JSON, or an ``event`` that is a string make it raise. Here the
body is parsed first and its shape checked where Bolt reads it, so that only well-formed requests reach
Bolt. Only the headers Bolt needs are passed on (not, for example, ``X-Slack-Bolt-Lazy-Only``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest

FORWARDED_HEADERS = (
    "content-type",
    "x-slack-request-timestamp",
    "x-slack-signature",
    "x-slack-retry-num",
    "x-slack-retry-reason",
)

# keys whose values Bolt reads as objects (context extraction, matchers) when they are present
_OBJECT_KEYS = (
    "event",
    "user",
    "team",
    "enterprise",
    "channel",
    "container",
    "view",
    "message",
    "previous_message",
    "item",
)
# events whose user Slack names by id, and that Handoff's listeners hand on as one
_EVENTS_BY_A_USER_ID = frozenset({"app_mention", "message", "member_joined_channel", "member_left_channel"})


def to_bolt_request(
    text: str, headers: Mapping[str, str], query: str = "", context: dict[str, Any] | None = None
) -> AsyncBoltRequest | None:
    """A Bolt request for a verified body (with extra ``context`` for the listeners), or None if it is
    not a well-formed Slack request."""
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower() or None
    is_json = content_type == "application/json" or text.startswith("{")
    if not text or (not is_json and not _is_form(text)):
        return None
    if not is_json and "payload" in text and not text.startswith("payload="):
        # Bolt takes any form body containing "payload" for an interactivity payload and reads it as {};
        # "%70" decodes to the same "p", so a command such as `/retrain payload-model` keeps its text
        text = text.replace("payload", "%70ayload")
    forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
    try:
        request = AsyncBoltRequest(body=text, query=query, headers=forwarded, context=context)  # type: ignore[arg-type]
    except Exception:  # JSON that is not JSON, a payload field that is not JSON, too deep, wrong shapes
        return None
    body = request.body
    return request if isinstance(body, dict) and body and _well_formed(body) else None


def _is_form(text: str) -> bool:
    """Every ``&``-separated field is ``name=value`` (what strict form parsing requires)."""
    return all("=" in field for field in text.split("&") if field)


def _well_formed(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    for container in (body, body.get("event")):
        if not isinstance(container, dict):
            continue
        for key in _OBJECT_KEYS:
            value = container.get(key)
            if key in ("user", "channel", "team", "enterprise", "item") and isinstance(value, str):
                continue  # events name these by id
            if value is not None and not isinstance(value, dict):
                return False
    authorizations = body.get("authorizations")
    if authorizations is not None and not (
        isinstance(authorizations, list) and all(isinstance(a, dict) for a in authorizations)
    ):
        return False
    actions = body.get("actions")
    if actions is not None and not (
        isinstance(actions, list) and bool(actions) and all(isinstance(a, dict) for a in actions)
    ):
        return False
    return _fits_its_type(body)


def _fits_its_type(body: dict[str, Any]) -> bool:
    """The fields Bolt's matchers index without checking, for each kind of payload."""
    kind = body.get("type")
    if kind is not None and not isinstance(kind, str):
        return False
    if kind in ("block_actions", "block_suggestion", "interactive_message"):
        actions = body.get("actions") or ([body] if kind == "block_suggestion" else None)
        id_key = "name" if kind == "interactive_message" else "action_id"
        return bool(actions) and all(isinstance(a.get(id_key), str) for a in actions or ())
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not (
            isinstance(view, dict) and isinstance(view.get("callback_id"), str) and isinstance(view.get("type"), str)
        ):
            return False
        # a workflow step's save: Bolt reads its step
        return view["type"] != "workflow_step" or isinstance(body.get("workflow_step"), dict)
    if kind == "workflow_step_edit":
        return isinstance(body.get("callback_id"), str) and isinstance(body.get("workflow_step"), dict)
    if kind in ("shortcut", "message_action", "dialog_submission", "dialog_cancellation"):
        return isinstance(body.get("callback_id"), str)
    if kind == "event_callback":
        event = body.get("event")
        if not (isinstance(event, dict) and isinstance(event.get("type"), str)):
            return False
        return event["type"] not in _EVENTS_BY_A_USER_ID or isinstance(event.get("user", ""), str)
    if "command" in body:
        return isinstance(body.get("command"), str)
    return True

"""Slack Web API failures as the core's :class:`~bot.ports.DeliveryFailed`.

Slack answers most failures with HTTP 200 ``{"ok": false, "error": "<code>"}`` and rate limiting with
HTTP 429 and ``Retry-After``. Rate limits, server errors, timeouts and dropped connections are worth
retrying; a missing channel or an invalid message is not. A message someone deleted (``message_not_found`` on
an update, ``thread_not_found`` on a reply under it) or that can no longer be edited (``cant_update_message``,
``edit_window_closed``) is :class:`~bot.ports.MessageGone`, so that the card is posted afresh; a channel Handoff
cannot post in (not a member of a private channel, or of a public one without ``chat:write.public``; archived) is
:class:`~bot.ports.ConversationUnreachable`; a token Slack refuses (``invalid_auth``, ``token_revoked``…) is
:class:`~bot.ports.CredentialsRefused`, retried for a while (it may be being replaced).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.ports import ConversationUnreachable, CredentialsRefused, DeliveryFailed, MessageGone

RETRYABLE_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "too_many_attachments",
        "cant_update_message",
        "message_not_found",
        "edit_window_closed",
        "thread_not_found",
        "restricted_action",
        "user_not_in_channel",
        "invalid_arguments",
    }
)
MAY_HAVE_TAKEN_STATUSES = frozenset({500, 502, 504})
"""HTTP statuses of a failed call that may have taken effect all the same (see :func:`delivery_failure`)."""
GONE_ERRORS = frozenset({"message_not_found", "thread_not_found", "cant_update_message", "edit_window_closed"})
"""The message addressed (to update, or to reply under) was deleted, or can no longer be edited."""
UNREACHABLE_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
"""Handoff cannot post in the channel."""
CREDENTIAL_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
"""Slack refuses Handoff's token: nothing goes anywhere in the workspace until it is replaced."""


def api_error_code(exc: SlackApiError) -> str:
    """The ``error`` field of a failed call, or ``http_<status>`` when there was none."""
    response: Any = getattr(exc, "response", None)
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    status = getattr(response, "status_code", None)
    return f"http_{status}" if status else "unreadable_response"


def delivery_failure(exc: BaseException, method: str) -> DeliveryFailed:
    """Classify what ``method`` raised. The reason names the method and Slack's error code only."""
    if isinstance(exc, DeliveryFailed):
        return exc
    # a post whose request went out and whose answer was lost may have been posted
    posts = method == "chat.postMessage"
    if isinstance(exc, SlackApiError):
        response: Any = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        code = api_error_code(exc)
        retry_after = _retry_after(getattr(response, "headers", None))
        reason = f"{method}: {code}"
        if status == 429 or code == "ratelimited":
            return DeliveryFailed(reason, retryable=True, retry_after=retry_after or 1.0)
        if status >= 500 or code in RETRYABLE_ERRORS:
            # Slack's own failure while answering (500) or a gateway's that lost or gave up on the answer
            # (502, 504) may come after the message was posted; a 503 says Slack did not take the request
            taken = posts and status in MAY_HAVE_TAKEN_STATUSES
            return DeliveryFailed(reason, retryable=True, retry_after=retry_after, maybe_sent=taken)
        if not isinstance(getattr(response, "data", None), dict):
            # a garbled answer: try again later, looking first for a post it may have been the answer to
            return DeliveryFailed(reason, retryable=True, maybe_sent=posts)
        if code in GONE_ERRORS:
            return MessageGone(reason)
        if code in UNREACHABLE_ERRORS:
            return ConversationUnreachable(reason)
        if code in CREDENTIAL_ERRORS:
            return CredentialsRefused(reason)
        return DeliveryFailed(reason, retryable=False)
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return DeliveryFailed(f"{method}: timed out", retryable=True, maybe_sent=posts)
    if isinstance(exc, aiohttp.ClientConnectorError):  # the connection never opened: nothing was sent
        return DeliveryFailed(f"{method}: connection failed ({type(exc).__name__})", retryable=True)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return DeliveryFailed(f"{method}: connection failed ({type(exc).__name__})", retryable=True, maybe_sent=posts)
    if isinstance(exc, SlackRequestError):
        return DeliveryFailed(f"{method}: invalid request ({type(exc).__name__})", retryable=False)
    return DeliveryFailed(f"{method}: {type(exc).__name__}", retryable=True)


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    try:
        for key, value in headers.items():
            if str(key).lower() == "retry-after":
                raw = value[0] if isinstance(value, list | tuple) else value
                return max(0.0, float(raw))
    except (TypeError, ValueError):
        return None
    return None

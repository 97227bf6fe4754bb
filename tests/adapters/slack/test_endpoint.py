"""POST /slack/events refuses bad input with 400, 401 or 413 before Bolt sees it, never with a 5xx
(reference/style-and-reliability.md B10, B11 items 3 and 4)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from adapters.emulators.base import LocalServer
from adapters.emulators.slack import sign
from adapters.slack.modals import CALLBACK_ID

from .harness import Harness


def signed(
    secret: str, body: bytes, timestamp: int | None = None, content_type: str = "application/json"
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign(secret, ts, body),
    }


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.read()


async def raw_post(url: str, body: bytes, header_lines: list[bytes]) -> int:
    """POST with header bytes exactly as given (non-ASCII, repeated), over a plain socket."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [
        f"POST {parts.path} HTTP/1.1".encode(),
        f"Host: {parts.netloc}".encode(),
        f"Content-Length: {len(body)}".encode(),
        b"Connection: close",
        *header_lines,
    ]
    writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


FUZZ_ROUNDS = int(os.environ.get("HANDOFF_FUZZ_ROUNDS", "300"))
CHALLENGE = json.dumps({"token": "x", "challenge": "abc123", "type": "url_verification"}).encode()


async def test_url_verification_answers_the_challenge(harness: Harness) -> None:
    response = await harness.slack.verify_url("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    assert response.status == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


async def test_sdk_signed_request_is_accepted(harness: Harness) -> None:
    ts = str(int(time.time()))
    signature = SignatureVerifier(harness.slack.signing_secret).generate_signature(timestamp=ts, body=CHALLENGE)
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": str(signature)}
    assert await post(harness.url, CHALLENGE, headers) == (200, b'{"challenge": "abc123"}')


@pytest.mark.parametrize(("offset", "status"), [(-299, 200), (299, 200), (-301, 401), (301, 401), (-3600, 401)])
async def test_timestamp_window(harness: Harness, offset: int, status: int) -> None:
    headers = signed(harness.slack.signing_secret, CHALLENGE, int(time.time()) + offset)
    assert (await post(harness.url, CHALLENGE, headers))[0] == status


@pytest.mark.parametrize(
    "timestamp", ["abc", "1700000000.5", "9" * 400, "-5", "", " ", "1e9", "\u0661\u0667" + "\u0660" * 8, "0x10"]
)
async def test_malformed_timestamps_are_401(harness: Harness, timestamp: str) -> None:
    headers = signed(harness.slack.signing_secret, CHALLENGE)
    headers["X-Slack-Request-Timestamp"] = timestamp
    lines = [f"{k}: {v}".encode() for k, v in headers.items()]
    assert await raw_post(harness.url, CHALLENGE, lines) == 401


async def test_signature_problems_are_401(harness: Harness) -> None:
    secret = harness.slack.signing_secret
    good = signed(secret, CHALLENGE)
    ts = good["X-Slack-Request-Timestamp"]
    cases: list[list[bytes]] = [
        [],  # no headers at all
        [f"X-Slack-Request-Timestamp: {ts}".encode()],
        [f"X-Slack-Signature: {good['X-Slack-Signature']}".encode()],
        [f"X-Slack-Request-Timestamp: {ts}".encode(), b"X-Slack-Signature: v0=" + b"0" * 64],
        [f"X-Slack-Request-Timestamp: {ts}".encode(), "X-Slack-Signature: v0=ÿ".encode("latin-1")],
        [f"X-Slack-Request-Timestamp: {ts}".encode(), "X-Slack-Signature: v0=é".encode()],
        [
            f"X-Slack-Request-Timestamp: {ts}".encode(),
            b"X-Slack-Signature: " + good["X-Slack-Signature"].upper().encode(),
        ],
        [
            f"X-Slack-Request-Timestamp: {ts}".encode(),
            f"X-Slack-Signature: {sign('other-secret', ts, CHALLENGE)}".encode(),
        ],
        [  # repeated headers
            f"X-Slack-Request-Timestamp: {ts}".encode(),
            f"X-Slack-Signature: {good['X-Slack-Signature']}".encode(),
            f"X-Slack-Signature: {good['X-Slack-Signature']}".encode(),
        ],
    ]
    for lines in cases:
        assert await raw_post(harness.url, CHALLENGE, [b"Content-Type: application/json", *lines]) == 401, lines


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"not json at all", "application/json"),
        (b"[]", "application/json"),
        (b"{", "application/json"),
        (b'{"type": "event_callback", "event": "app_mention"}', "application/json"),
        (b'{"type": "block_actions", "actions": []}', "application/json"),
        (b'{"type": "block_actions", "user": ["U1"]}', "application/json"),
        (b"[" * 10_000 + b"]" * 10_000, "application/json"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "application/json"),
        (b"payload=not-json", "application/x-www-form-urlencoded"),
        (b"payload=%5B1%2C2%5D", "application/x-www-form-urlencoded"),
        (b"hello world", "application/x-www-form-urlencoded"),
        (b"", "application/x-www-form-urlencoded"),
        (b"{}", "application/json"),
    ],
    ids=lambda value: value[:24].decode("latin-1") if isinstance(value, bytes) else str(value),
)
async def test_signed_but_unreadable_bodies_are_400(harness: Harness, body: bytes, content_type: str) -> None:
    headers = signed(harness.slack.signing_secret, body, content_type=content_type)
    status, answer = await post(harness.url, body, headers)
    assert status == 400, answer


def form_payload(payload: dict[str, object]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def event_callback(event: dict[str, object]) -> bytes:
    return json.dumps(
        {"type": "event_callback", "event_id": "Ev0SHAPE", "team_id": "T0C0NT050", "event": event}
    ).encode()


USER = {"id": "U0A11CE0001", "team_id": "T0C0NT050"}
MISSHAPEN = {
    # Bolt reads view.type unchecked (a workflow step's save), and then the payload's workflow_step
    "view without a type": form_payload({"type": "view_submission", "user": USER, "view": {"callback_id": "x"}}),
    "view type not a string": form_payload(
        {"type": "view_submission", "user": USER, "view": {"callback_id": CALLBACK_ID, "type": 5}}
    ),
    "workflow step save without its step": form_payload(
        {"type": "view_submission", "user": USER, "view": {"callback_id": "x", "type": "workflow_step"}}
    ),
    "workflow step edit without its step": form_payload({"type": "workflow_step_edit", "callback_id": "x"}),
    "previous message not an object": event_callback(
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel_type": "im",
            "channel": "D1",
            "previous_message": "x",
        }
    ),
    "mention by a user that is not an id": event_callback(
        {"type": "app_mention", "user": {"id": "U0A11CE0001"}, "text": "<@U0HANDOFF> status", "channel": "C1"}
    ),
    "message by a user that is not an id": event_callback(
        {"type": "message", "user": ["U0A11CE0001"], "text": "status", "channel": "D1", "channel_type": "im"}
    ),
    # nothing listens to these: Bolt's own answer would be a 404 {"error": "unhandled request"}
    "unknown payload type": form_payload({"type": "weird", "user": USER}),
    "command that is not a slash command": b"command=%zz&text=status&user_id=U0A11CE0001&channel_id=C1",
    "view of another app": form_payload(
        {"type": "view_submission", "user": USER, "view": {"callback_id": "not-handoffs", "type": "modal"}}
    ),
}


@pytest.mark.parametrize("body", MISSHAPEN.values(), ids=MISSHAPEN.keys())
async def test_signed_payloads_bolt_cannot_read_or_nothing_handles_are_400(
    harness: Harness, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Not Bolt's traceback and a 503 (Slack retries), nor its 404: Handoff's 400, and nothing runs."""
    content_type = "application/json" if body.startswith(b"{") else "application/x-www-form-urlencoded"
    status, answer = await post(
        harness.url, body, signed(harness.slack.signing_secret, body, content_type=content_type)
    )
    await harness.settle()

    assert status == 400, answer
    assert json.loads(answer)["error"] == "invalid_body"
    assert harness.handler.commands == [] and harness.handler.actions == []
    assert harness.slack.recorder.matching("POST /api/users.info") == []
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]
    assert not [r for r in caplog.records if r.name == "handoff.slack.bolt"]  # (Bolt's multi-line advice)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"\xc3\x28", "application/json"), (b"command=\xff", "application/x-www-form-urlencoded")],
    ids=["json", "form"],
)
async def test_a_forged_signature_is_401_whatever_the_bodys_bytes(
    harness: Harness, body: bytes, content_type: str
) -> None:
    """The signature is checked over the raw bytes before they are decoded: a forger learns nothing from a
    body that is not UTF-8 (a 400 would say the body was looked at before the sender was known)."""
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=" + "a" * 64,
    }
    status, answer = await post(harness.url, body, headers)
    assert (status, json.loads(answer)["error"]) == (401, "invalid request")
    assert harness.handler.commands == [] and harness.handler.actions == []


async def test_body_size_cap(harness: Harness) -> None:
    secret = harness.slack.signing_secret
    big = b"x" * (1024 * 1024 + 1)
    assert (await post(harness.url, big, signed(secret, big)))[0] == 413
    fits = b"token=" + b"x" * (1024 * 1024 - 6)
    status, _ = await post(harness.url, fits, signed(secret, fits, content_type="application/x-www-form-urlencoded"))
    assert status < 500 and status != 413


async def test_bolt_only_headers_from_outside_are_not_passed_on(harness: Harness) -> None:
    body = urlencode(
        {
            "command": "/handoff",
            "text": "status",
            "user_id": "U0A11CE0001",
            "channel_id": "C0MLM0DELS1",
            "team_id": "T0C0NT050",
        }
    ).encode()
    headers = signed(harness.slack.signing_secret, body, content_type="application/x-www-form-urlencoded")
    headers["X-Slack-Bolt-Lazy-Only"] = "1"
    status, _ = await post(harness.url, body, headers)
    await harness.settle()
    assert status == 200
    assert [c.text for c in harness.handler.commands] == ["status"]


async def test_get_is_not_allowed(harness: Harness) -> None:
    async with aiohttp.ClientSession() as session, session.get(harness.url) as resp:
        assert resp.status == 405


async def test_random_mutations_never_get_a_server_error(harness: Harness) -> None:
    """A small deterministic fuzz: mutated headers and bodies, signed or not."""
    rng = random.Random(20260101)
    secret = harness.slack.signing_secret
    seeds = [
        CHALLENGE,
        b"payload=" + json.dumps({"type": "block_actions", "actions": [{"action_id": "approve"}]}).encode(),
        b"command=%2Fhandoff&text=status&user_id=U0A11CE0001&channel_id=C0MLM0DELS1&team_id=T0C0NT050",
        json.dumps({"type": "event_callback", "event": {"type": "app_mention", "text": "hi"}}).encode(),
    ]
    statuses: set[int] = set()
    for _ in range(FUZZ_ROUNDS):
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(0, 4)):
            op = rng.random()
            if op < 0.4 and body:
                body[rng.randrange(len(body))] = rng.randrange(256)
            elif op < 0.7:
                body.insert(rng.randrange(len(body) + 1), rng.randrange(256))
            elif body:
                del body[rng.randrange(len(body)) :]
        raw = bytes(body)
        headers = signed(
            secret,
            raw,
            content_type=rng.choice(["application/json", "application/x-www-form-urlencoded", "text/plain"]),
        )
        if rng.random() < 0.3:
            headers["X-Slack-Signature"] = headers["X-Slack-Signature"][: rng.randrange(70)]
        if rng.random() < 0.2:
            headers["X-Slack-Request-Timestamp"] = rng.choice(["", "abc", "1.5", "-1", "9" * 30])
        status, _ = await post(harness.url, raw, headers)
        statuses.add(status)
        assert status < 500, (raw, headers)
    await harness.integration.close(timeout=1.0)  # replies queue behind Slack's 1 message/s per channel
    assert statuses <= {200, 400, 401, 404}


async def test_mounts_on_handoffs_own_application(sqlite_url: str) -> None:
    from adapters.emulators.slack import SlackEmulator
    from adapters.slack import mount_slack
    from adapters.sql import SqlStore
    from adapters.web.limits import BODY_LIMITS
    from bot.app import create_app
    from bot.config import Settings

    from .harness import RecordingHandler, settings_for

    store = await SqlStore.open(sqlite_url)
    try:
        async with SlackEmulator() as slack:
            app = create_app(Settings(), store)
            integration = mount_slack(app, settings_for(slack), RecordingHandler())
            assert app[BODY_LIMITS]["/slack/events"] == 1024 * 1024
            async with LocalServer(app) as server:
                slack.events_url = f"{server.url}/slack/events"
                assert (await slack.verify_url("c")).json() == {"challenge": "c"}
                await slack.send_slash_command("/handoff", "status")
                assert await integration.wait_idle(10)
                assert [m.text for m in slack.state.channel("ml-models").messages] == ["ok: status"]
                big = b"x" * (1024 * 1024 + 10)
                assert (await post(f"{server.url}/slack/events", big, signed(slack.signing_secret, big)))[0] == 413
    finally:
        await store.close()

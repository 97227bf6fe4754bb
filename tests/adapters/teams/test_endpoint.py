"""``/api/messages`` answers garbage with 400, 401, 413 or 415, never a 500 (the stock handler's failures)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.config import TeamsSettings

from .conftest import RELEASES, TENANT, Harness, with_time_passing


async def post(harness: Harness, body: bytes | str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = body.encode() if isinstance(body, str) else body
    async with (
        aiohttp.ClientSession() as session,
        session.post(harness.bot_url, data=data, headers=headers or {}) as response,
    ):
        text = await response.text()
        return response.status, (json.loads(text) if text else None)


def activity(harness: Harness, **changes: Any) -> dict[str, Any]:
    base = {
        "type": "message",
        "id": "1",
        "channelId": "msteams",
        "serviceUrl": harness.teams.service_url,
        "from": {"id": "29:someone"},
        "recipient": {"id": harness.teams.world.bot_id},
        "conversation": {"id": "a:1personal-alice", "conversationType": "personal"},
        "text": "",
    }
    base.update(changes)
    return base


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 415),  # no Content-Type: the stock handler raises KeyError (500)
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
async def test_content_types(harness: Harness, headers: dict[str, str], status: int) -> None:
    code, body = await post(harness, json.dumps(activity(harness)), headers)
    assert code == status
    assert body["error"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"{}",
        b"null",
        b'"message"',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"type": 5}',
        b'{"type": "message"}',
        b'{"type": "message", "serviceUrl": "ftp://x", "conversation": {"id": "c"}}',
    ],
)
async def test_bodies_that_are_not_activities_are_400(harness: Harness, body: bytes) -> None:
    code, answer = await post(harness, body, JSON)
    assert code == 400
    assert answer["error"] == "bad_request"


async def test_fields_of_the_wrong_type_are_400(harness: Harness) -> None:
    bad = activity(harness, timestamp={"not": "a date"}, entities="nope")
    code, _ = await post(harness, json.dumps(bad), JSON)
    assert code in (201, 400)  # msrest may ignore or refuse them; never a 500


@pytest.mark.parametrize(
    "authorization",
    ["Bearer abc", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer", "garbage", "Bearer " + "x" * 5000],
)
async def test_a_header_that_is_not_a_token_is_401_even_with_auth_off(harness: Harness, authorization: str) -> None:
    code, _ = await post(harness, json.dumps(activity(harness)), {**JSON, "Authorization": authorization})
    assert code == 401


async def test_a_valid_activity_without_a_header_is_accepted_with_auth_off(harness: Harness) -> None:
    code, body = await post(harness, json.dumps(activity(harness, text="help")), JSON)
    assert (code, body) == (201, None)


async def test_an_oversized_body_is_413(harness: Harness) -> None:
    big = activity(harness, text="x" * (1024 * 1024 + 10))
    code, _ = await post(harness, json.dumps(big), JSON)
    assert code == 413


@pytest.mark.parametrize("name", ["composeExtension/query", "weird/thing", None])
async def test_an_invoke_nobody_handles_is_a_501_that_says_so(harness: Harness, name: str | None) -> None:
    invoke = activity(harness, type="invoke", name=name, value={})
    code, body = await post(harness, json.dumps(invoke), JSON)
    assert code == 501
    assert body == {
        "statusCode": 501,
        "type": "application/vnd.microsoft.error",
        "value": {"code": "NotImplemented", "message": "Handoff does not handle this kind of request."},
    }


@pytest.mark.parametrize(
    "channel_data",
    [
        {"eventType": "teamRenamed"},
        {"eventType": "teamDeleted", "team": {}},
        {"eventType": "teamArchived", "team": {"name": "Contoso ML"}},
        {"eventType": "teamRestored", "team": {"id": ""}},
        {"eventType": "channelDeleted", "channel": {}, "team": {"id": "19:t@thread.tacv2"}},
        {"eventType": "channelCreated", "team": {"id": "19:t@thread.tacv2"}},
        {"eventType": "channelRenamed", "channel": {"id": RELEASES, "name": "x"}},
        {"eventType": "channelRestored", "channel": {"name": "x"}, "team": {"id": "19:t@thread.tacv2"}},
    ],
    ids=lambda data: f"{data['eventType']}-{'-'.join(sorted(k for k in data if k != 'eventType')) or 'bare'}",
)
async def test_a_team_or_channel_event_that_does_not_name_it_is_400(
    harness: Harness, channel_data: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Not a 503: Teams would send it again for ever."""
    await harness.teams.install_app()
    before = await harness.teams_records()
    update = activity(
        harness,
        type="conversationUpdate",
        conversation={"id": RELEASES, "conversationType": "channel", "isGroup": True},
        channelData={**channel_data, "tenant": {"id": TENANT}},
    )

    code, body = await post(harness, json.dumps(update), JSON)

    assert (code, body["error"]) == (400, "bad_request")
    assert f"{channel_data['eventType']} event needs channelData." in body["message"]
    assert await harness.teams_records() == before
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]


def mutations(sample: dict[str, Any], rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Variants of an activity with one field removed or replaced by a value of another JSON type."""
    paths: list[tuple[str, ...]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                paths.append((*path, key))
                walk(value, (*path, key))

    walk(sample, ())
    odd_values: list[Any] = [None, 0, -1, 3.5, True, "", "x" * 300, [], [{}], {}, {"id": None}, ["a", 1]]
    variants = []
    for _ in range(count):
        variant = copy.deepcopy(sample)
        path = rng.choice(paths)
        parent = variant
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.3:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = rng.choice(odd_values)
        variants.append(variant)
    return variants


SAMPLES = [
    "installationUpdate.add_team.activity.json",
    "installationUpdate.remove_team.activity.json",
    "conversationUpdate.bot_added_to_team.activity.json",
    "message.channel_mention.activity.json",
    "message.action_submit.activity.json",
    "invoke.adaptiveCard_action.activity.json",
]


@pytest.mark.parametrize("name", SAMPLES)
async def test_mutated_activities_never_get_a_5xx_or_a_traceback(
    harness: Harness, shared_dir: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.teams.install_app()
    sample = json.loads((shared_dir / "samples/chat/teams" / name).read_text())
    sample["serviceUrl"] = harness.teams.service_url
    rng = random.Random(name)
    caplog.set_level("WARNING")

    statuses = set()
    for number, variant in enumerate(mutations(sample, rng, 120)):
        if variant.get("id") == sample.get("id"):  # each its own activity, not one Teams sends again
            variant["id"] = f"{sample['id']}-{number}"
        # (a command's answers keep within the conversation's rate limit: the fake clock lets their waits pass)
        code, _ = await with_time_passing(harness.clock, post(harness, json.dumps(variant), JSON))
        statuses.add(code)

    assert all(code < 500 or code == 501 for code in statuses), statuses
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


class StoreDown:
    """Makes the store's reads and writes of conversations fail, as a database that is down would."""

    def __init__(self, harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0

        async def down(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            raise ConnectionError("the database is down")

        for name in ("get_conversation", "save_conversation", "list_conversations"):
            monkeypatch.setattr(harness.store, name, down)


async def test_a_turn_that_fails_is_503_and_teams_sending_it_again_installs(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    with monkeypatch.context() as patch:
        down = StoreDown(harness, patch)
        answer = await harness.teams.install_personal_app(user="alice")

    assert down.calls and answer.status == 503  # not 201: Teams would not send it again
    assert answer.headers.get("Retry-After")
    failures = [r for r in caplog.records if r.name.startswith("handoff") and r.levelname == "ERROR"]
    assert len(failures) == 1 and "installationUpdate" in failures[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]

    again = await harness.teams.post_activity(answer.activity)  # Teams retries; the store is back

    assert again.status == 201
    record = await harness.record("a:1personal-alice")
    assert record is not None and record.active


async def test_a_command_whose_turn_fails_is_503_and_runs_when_sent_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        StoreDown(harness, patch)
        answer = await harness.teams.send_personal_message("status model-x")

    assert answer.status == 503
    assert harness.handler.commands == []

    again = await with_time_passing(harness.clock, harness.teams.post_activity(answer.activity))

    assert again.status == 201
    assert [c.text for c in harness.handler.commands] == ["status model-x"]


SERVED = "99999999-0000-4000-8000-000000000bad"
ONLY_OTHER_TENANT = TeamsSettings(app_id="", allow_unauthenticated=True, tenant_id=SERVED)
"""Handoff serving another organisation than the emulator's (TENANT)."""


@pytest.mark.parametrize("teams_settings", [ONLY_OTHER_TENANT])
async def test_activities_from_a_tenant_handoff_does_not_serve_run_no_turn(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    installed = await harness.teams.install_app()
    personal = await harness.teams.send_personal_message("status")
    again = await harness.teams.send_channel_message("retrain model-x", channel="ML models")

    assert (installed.status, personal.status, again.status) == (201, 201, 201)
    assert await harness.teams_records() == []
    assert harness.handler.commands == []
    assert not harness.teams.recorder.matching("POST /v3/conversations/*/activities*")
    warnings = [r for r in caplog.records if r.name.startswith("handoff") and r.levelname == "WARNING"]
    assert len(warnings) == 1 and TENANT in warnings[0].getMessage()  # once per tenant

    # the configured tenant's own activities run (its id in any case)
    own = copy.deepcopy(personal.activity)
    own["id"] = "own-tenant-message"
    own["channelData"]["tenant"]["id"] = own["conversation"]["tenantId"] = SERVED.upper()
    assert (await with_time_passing(harness.clock, harness.teams.post_activity(own))).status == 201
    assert [c.text for c in harness.handler.commands] == ["status"]


@pytest.mark.parametrize("teams_settings", [ONLY_OTHER_TENANT])
async def test_a_click_from_a_tenant_handoff_does_not_serve_decides_nothing(harness: Harness) -> None:
    gate = harness.teams.state.post(RELEASES, {"type": "message", "text": "a release gate"}, by_bot=True)

    clicked = await harness.teams.click_action(gate.id, "approve", {"gate_id": "gate-42"})

    assert clicked.status == 200
    assert (clicked.body["statusCode"], clicked.body["type"]) == (403, "application/vnd.microsoft.error")
    assert harness.handler.actions == []

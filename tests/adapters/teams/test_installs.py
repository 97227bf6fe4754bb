"""Installs, removals, deletions and renames keep the stored Teams conversations current."""

from __future__ import annotations

from typing import Any

from adapters.emulators.base import Fault
from adapters.teams.references import StoredReference

from .conftest import ALICE, GENERAL, MODELS, RELEASES, TEAM, TENANT, Harness


def team_event(harness: Harness, event_type: str, **channel_data: Any) -> dict[str, Any]:
    """A ``conversationUpdate`` Teams sends for a team or channel change."""
    teams = harness.teams
    return {
        "type": "conversationUpdate",
        "id": f"f:{event_type}",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "channelId": "msteams",
        "serviceUrl": teams.service_url,
        "from": {"id": ALICE, "aadObjectId": "a11ce000-0000-4000-8000-0000000a11ce"},
        "conversation": {"isGroup": True, "conversationType": "channel", "tenantId": TENANT, "id": TEAM},
        "recipient": teams.world.bot_account(),
        "channelData": {"eventType": event_type, "tenant": {"id": TENANT}, **channel_data},
    }


async def test_a_team_install_stores_every_channel_with_the_tenant(harness: Harness) -> None:
    answer = await harness.teams.install_app()

    assert answer.status == 201
    records = {r.address.conversation_id: r for r in await harness.teams_records()}
    assert set(records) == {GENERAL, RELEASES, MODELS}
    assert {r.name for r in records.values()} == {
        "Contoso ML / General",
        "Contoso ML / App releases",
        "Contoso ML / ML models",
    }
    for channel_id, record in records.items():
        assert (record.tenant_id, record.team_id, record.active) == (TENANT, TEAM, True)
        stored = StoredReference.from_json(record.reference)
        assert stored is not None and stored.kind == "channel"
        assert stored.service_url == harness.teams.service_url
        conversation = stored.reference["conversation"]
        assert (conversation["id"], conversation["tenantId"]) == (channel_id, TENANT)
    # the channel list came from the connector (GET /v3/teams/{id}/conversations)
    assert harness.teams.recorder.matching(f"GET /v3/teams/{TEAM}/conversations")


async def test_the_bot_added_to_a_team_is_an_install_too_and_upserts(harness: Harness) -> None:
    await harness.teams.add_bot_to_team()
    await harness.teams.install_app()  # Teams sends both; the second one changes nothing

    records = await harness.teams_records()
    assert sorted(r.address.conversation_id for r in records) == sorted([GENERAL, RELEASES, MODELS])


async def test_uninstall_deactivates_the_teams_channels(harness: Harness) -> None:
    await harness.teams.install_app()
    answer = await harness.teams.uninstall_app()

    assert answer.status == 201
    assert [r.active for r in await harness.teams_records()] == [False, False, False]
    assert await harness.integration.registry.get(RELEASES) is None
    removed = await harness.integration.registry.find(RELEASES)  # told apart from a channel never seen
    assert removed is not None and not removed[0].active
    assert await harness.integration.registry.find("19:neverSeen0000@thread.tacv2") is None


async def test_a_personal_install_and_removal(harness: Harness) -> None:
    await harness.teams.install_personal_app(user="alice")
    record = await harness.record("a:1personal-alice")

    assert record is not None and record.active and record.tenant_id == TENANT
    stored = StoredReference.from_json(record.reference)
    assert stored is not None
    assert (stored.kind, stored.user_id, record.name) == ("personal", ALICE, "Alice Martin")

    await harness.teams.install_personal_app(user="alice", action="remove")
    record = await harness.record("a:1personal-alice")
    assert record is not None and not record.active


async def test_channel_created_renamed_deleted_and_restored(harness: Harness) -> None:
    await harness.teams.install_app()
    new = "19:driftAlerts000000@thread.tacv2"
    team = {"id": TEAM, "name": "Contoso ML"}

    await harness.teams.post_activity(
        team_event(harness, "channelCreated", channel={"id": new, "name": "Drift"}, team=team)
    )
    created = await harness.record(new)
    assert created is not None and created.active and created.name == "Contoso ML / Drift"

    await harness.teams.post_activity(
        team_event(harness, "channelRenamed", channel={"id": new, "name": "Drift alerts"}, team=team)
    )
    renamed = await harness.record(new)
    assert renamed is not None and renamed.name == "Contoso ML / Drift alerts"

    await harness.teams.post_activity(team_event(harness, "channelDeleted", channel={"id": new}, team=team))
    deleted = await harness.record(new)
    assert deleted is not None and not deleted.active

    await harness.teams.post_activity(
        team_event(harness, "channelRestored", channel={"id": new, "name": "Drift alerts"}, team=team)
    )
    restored = await harness.record(new)
    assert restored is not None and restored.active and restored.name == "Contoso ML / Drift alerts"


async def test_team_renamed_deleted_and_restored(harness: Harness) -> None:
    await harness.teams.install_app()

    await harness.teams.post_activity(team_event(harness, "teamRenamed", team={"id": TEAM, "name": "ML Platform"}))
    assert sorted(r.name for r in await harness.teams_records()) == [
        "ML Platform / App releases",
        "ML Platform / General",
        "ML Platform / ML models",
    ]

    await harness.teams.post_activity(team_event(harness, "teamDeleted", team={"id": TEAM}))
    assert not [r for r in await harness.teams_records() if r.active]

    # a rename of a deleted team keeps it inactive
    await harness.teams.post_activity(team_event(harness, "teamRenamed", team={"id": TEAM, "name": "Old"}))
    assert not [r for r in await harness.teams_records() if r.active]

    await harness.teams.post_activity(team_event(harness, "teamRestored", team={"id": TEAM}))
    assert len([r for r in await harness.teams_records() if r.active]) == 3


async def test_the_bot_removed_from_a_team_deactivates_it(harness: Harness) -> None:
    await harness.teams.install_app()
    event = team_event(harness, "teamMemberRemoved", team={"id": TEAM, "name": "Contoso ML"})
    event["membersRemoved"] = [{"id": harness.teams.world.bot_id}]

    await harness.teams.post_activity(event)

    assert not [r for r in await harness.teams_records() if r.active]


async def test_subscribe_in_a_channel_binds_it_like_a_configured_channel(harness: Harness) -> None:
    # no install event was seen (Handoff was installed before its store was created)
    answer = await harness.teams.send_channel_message("/handoff subscribe events=run", channel="ML models")

    assert answer.status == 201
    assert [c.text for c in harness.handler.commands] == ["subscribe events=run"]
    assert harness.handler.commands[0].conversation.conversation_id == MODELS
    record = await harness.record(MODELS)
    assert record is not None and record.active
    assert (record.name, record.team_id, record.tenant_id) == ("ML models", TEAM, TENANT)
    # and the channel is now reachable: a card starts a thread there
    from bot.cards import Card

    posted = await harness.integration.channel.post_card(MODELS, Card(title="model-x:8 registered"))
    threads = harness.teams.state.channel("ML models").posts
    assert threads[-1].id == posted.message_id


async def test_people_joining_a_team_are_not_looked_up(harness: Harness) -> None:
    await harness.teams.install_app()
    harness.teams.recorder.clear()
    harness.teams.faults.add("GET /v3/conversations/*/members/*", [Fault("500")] * 10)
    event = team_event(harness, "teamMemberAdded", team={"id": TEAM, "name": "Contoso ML"})
    event["membersAdded"] = [{"id": f"29:newPerson{i}"} for i in range(3)]

    answer = await harness.teams.post_activity(event)

    assert answer.status == 201
    assert not harness.teams.recorder.matching("GET /v3/conversations/*/members/*")


async def test_the_bot_added_with_people_installs_without_looking_them_up(harness: Harness) -> None:
    harness.teams.faults.add("GET /v3/conversations/*/members/*", [Fault("500")] * 10)
    event = team_event(harness, "teamMemberAdded", team={"id": TEAM, "name": "Contoso ML"})
    event["membersAdded"] = [{"id": "29:newPerson"}, {"id": harness.teams.world.bot_id}]

    answer = await harness.teams.post_activity(event)

    assert answer.status == 201
    assert not harness.teams.recorder.matching("GET /v3/conversations/*/members/*")
    assert sorted(r.address.conversation_id for r in await harness.teams_records(active_only=True)) == sorted(
        [GENERAL, RELEASES, MODELS]
    )

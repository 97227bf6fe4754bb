"""A Teams post whose answer was lost is found in Microsoft Graph, not posted twice (``teams.graph``).

The outbox sends through the real Teams channel to the connector emulator, which drops the connection
after taking the post (``reset_after``); the next attempt looks for the post in the emulator's Graph view.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import jsonschema
import pytest

from adapters.emulators.base import Fault, LocalServer
from adapters.emulators.botframework import BotFrameworkEmulator
from adapters.sql import SqlStore
from adapters.teams import TeamsIntegration, mount_teams
from adapters.teams.graph import GraphMessages, GraphTokens
from bot.app import create_app
from bot.cards import Card, Status
from bot.clock import FakeClock
from bot.config import Settings, TeamsGraphSettings, TeamsSettings
from bot.outbox import OutboxWorker
from bot.ports import DeliveryFailed
from bot.records import ConversationAddress, NewDelivery
from tests.lost_answers import LOST_ANSWER_IDS, LOST_ANSWERS

from .conftest import BOT_APP_ID, RELEASES, TENANT, RecordingHandler, adaptive_card, texts, with_time_passing

RUN = "azure-devops:contoso:mlops:run:412"
WHERE = ConversationAddress("teams", RELEASES)
CHANNEL_MESSAGES = "GET /graph/v1.0/teams/*/channels/*/messages"


@dataclass
class Setup:
    teams: BotFrameworkEmulator
    integration: TeamsIntegration
    store: SqlStore
    clock: FakeClock
    outbox: OutboxWorker

    async def card(self, rank: int, title: str = "Release app-y 2.3") -> None:
        payload = {"op": "card", "rank": rank, "card": Card(title=title, status=Status.RUNNING).to_json()}
        await self.store.enqueue([NewDelivery(WHERE, RUN, payload)], self.clock.now())

    async def reply(self, title: str) -> None:
        payload = {"op": "reply", "card": Card(title=title, status=Status.FAILED).to_json()}
        await self.store.enqueue([NewDelivery(WHERE, RUN, payload)], self.clock.now())

    async def drain(self) -> None:
        async def until_done() -> None:
            while (await self.store.count_deliveries())["pending"]:
                await self.outbox.run_once()
                await self.clock.sleep(1)

        await with_time_passing(self.clock, until_done(), step=5)

    def posts(self) -> list[str]:
        return [p.id for p in self.teams.state.channel("App releases").posts]


def graph_settings(teams: BotFrameworkEmulator, find_lost_posts: bool = True) -> TeamsSettings:
    graph = TeamsGraphSettings(find_lost_posts=find_lost_posts, api_url=teams.graph_url, login_url=teams.login_url)
    return TeamsSettings(app_id="", allow_unauthenticated=True, graph=graph)


@pytest.fixture
def find_lost_posts() -> bool:
    return True


@pytest.fixture
async def setup(sqlite_url: str, clock: FakeClock, find_lost_posts: bool) -> AsyncIterator[Setup]:
    store = await SqlStore.open(sqlite_url)
    try:
        async with BotFrameworkEmulator(clock=clock) as teams:
            app = create_app(Settings(), store)
            settings = graph_settings(teams, find_lost_posts)
            integration = mount_teams(app, settings, RecordingHandler(), store, clock=clock)
            async with LocalServer(app) as server:
                teams.bot_endpoint = f"{server.url}/api/messages"
                await teams.install_app()
                outbox = OutboxWorker(store, {"teams": integration.channel}, clock, worker_id="w1")
                yield Setup(teams, integration, store, clock, outbox)
    finally:
        await store.close()


@pytest.mark.parametrize("lost", LOST_ANSWERS, ids=LOST_ANSWER_IDS)
async def test_a_card_whose_post_answer_was_lost_is_found_and_then_updated_in_place(setup: Setup, lost: Fault) -> None:
    setup.teams.faults.add("POST /v3/conversations", [lost])
    await setup.card(1)
    await setup.drain()

    (post,) = setup.posts()  # Teams took the first attempt; the second found it instead of posting again
    assert len(setup.teams.recorder.matching("POST /v3/conversations")) == 1
    assert len(setup.teams.recorder.matching(CHANNEL_MESSAGES)) == 1
    shown = await setup.store.get_card(RUN, WHERE)
    assert shown is not None and (shown.message_id, shown.thread_id) == (post, post)

    await setup.card(2, title="Release app-y 2.3: tests passed")
    await setup.drain()

    assert setup.posts() == [post]
    message = setup.teams.state.message(post)
    # the post as sent, the found post refreshed with what was queued then, and the update
    assert len(message.versions) == 3
    assert texts(adaptive_card(message.activity))[0] == "Release app-y 2.3: tests passed"
    assert (await setup.store.count_deliveries())["dead"] == 0


@pytest.mark.parametrize("status", ["500", "502", "504"])
async def test_a_post_teams_failed_before_taking_it_is_looked_for_then_posted_once(setup: Setup, status: str) -> None:
    setup.teams.faults.add("POST /v3/conversations", [Fault(status)])  # type: ignore[arg-type]
    await setup.card(1)
    await setup.drain()

    assert len(setup.posts()) == 1
    assert [r.status for r in setup.teams.recorder.matching("POST /v3/conversations")] == [int(status), 201]
    assert len(setup.teams.recorder.matching(CHANNEL_MESSAGES)) == 1  # looked for first, found nothing
    assert (await setup.store.count_deliveries())["dead"] == 0


async def test_the_marker_rides_in_a_valid_adaptive_card(
    setup: Setup, card_validator: jsonschema.protocols.Validator
) -> None:
    await setup.card(1)
    await setup.drain()

    (post,) = setup.posts()
    card = adaptive_card(setup.teams.state.message(post).activity)
    card_validator.validate(card)
    assert card["body"][0]["id"].startswith("handoff-")


async def test_a_channel_stored_without_its_teams_group_id_gets_it_from_the_teams_details(setup: Setup) -> None:
    # a channel Handoff stored before it kept the team's group id
    record = await setup.store.get_conversation(WHERE)
    assert record is not None and record.reference.pop("teamGroupId")
    await setup.store.save_conversation(record)
    setup.teams.faults.add("POST /v3/conversations", [Fault("reset_after")])

    await setup.card(1)
    await setup.drain()

    assert len(setup.posts()) == 1
    (details,) = setup.teams.recorder.matching("GET /v3/teams/*")
    assert details.status == 200
    group = setup.teams.world.teams[0].aad_group_id
    (lookup,) = setup.teams.recorder.matching(CHANNEL_MESSAGES)
    assert f"/teams/{group}/" in lookup.path


async def test_a_reply_whose_answer_was_lost_is_found_in_its_thread(setup: Setup) -> None:
    await setup.card(1)
    await setup.drain()
    (root,) = setup.posts()
    setup.teams.faults.add("POST /v3/conversations/*/activities/*", [Fault("reset_after")])

    await setup.reply("Integration tests failed")
    await setup.drain()

    replies = setup.teams.state.message(root).replies
    assert [texts(adaptive_card(r.activity))[0] for r in replies] == ["Integration tests failed"]
    (lookup,) = setup.teams.recorder.matching(f"{CHANNEL_MESSAGES}/*/replies")
    assert lookup.status == 200


async def test_a_card_posted_afresh_under_a_reply_whose_answer_was_lost_is_found(setup: Setup) -> None:
    """The card was deleted in Teams, so a reply posts it afresh as its thread; that post's answer is lost: the
    next attempt finds it by its marker instead of posting the card a second time."""
    await setup.card(1)
    await setup.drain()
    (first,) = setup.posts()
    setup.teams.state.delete(RELEASES, first)
    setup.teams.faults.add("POST /v3/conversations", [Fault("reset_after")])

    await setup.reply("Integration tests failed")
    await setup.drain()

    [card] = [p for p in setup.teams.state.channel("App releases").posts if not p.deleted]
    assert texts(adaptive_card(card.activity))[0] == "Release app-y 2.3"
    assert [texts(adaptive_card(r.activity))[0] for r in card.replies] == ["Integration tests failed"]
    shown = await setup.store.get_card(RUN, WHERE)
    assert shown is not None and shown.message_id == card.id
    assert (await setup.store.count_deliveries())["dead"] == 0


async def test_a_post_that_never_reached_teams_is_posted_after_the_lookup(setup: Setup) -> None:
    setup.teams.faults.add("POST /v3/conversations", [Fault("reset")])  # dropped before Teams saw it

    await setup.card(1)
    await setup.drain()

    assert len(setup.posts()) == 1
    assert [r.status for r in setup.teams.recorder.matching(CHANNEL_MESSAGES)] == [200]


async def test_without_consent_the_post_is_sent_again_with_a_warning(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.teams.set_graph_consent(team="Contoso ML", granted=False)
    setup.teams.faults.add("POST /v3/conversations", [Fault("reset_after")])

    with caplog.at_level(logging.WARNING, "handoff.outbox"):
        await setup.card(1)
        await setup.drain()

    assert len(setup.posts()) == 2  # nothing is lost; Teams shows the card twice, as without Graph
    assert "cannot look for an earlier post (Graph answered 403: Forbidden)" in caplog.text
    assert (await setup.store.count_deliveries())["dead"] == 0


async def test_graph_trouble_postpones_the_post_rather_than_risk_a_second_one(setup: Setup) -> None:
    setup.teams.faults.add("POST /v3/conversations", [Fault("reset_after")])
    setup.teams.faults.add(CHANNEL_MESSAGES, ["503", "503"])

    await setup.card(1)
    await setup.drain()

    assert len(setup.posts()) == 1
    assert [r.status for r in setup.teams.recorder.matching(CHANNEL_MESSAGES)] == [503, 503, 200]


@pytest.mark.parametrize("find_lost_posts", [False])
async def test_without_graph_a_lost_answer_means_a_second_post(setup: Setup) -> None:
    setup.teams.faults.add("POST /v3/conversations", [Fault("reset_after")])

    await setup.card(1)
    await setup.drain()

    assert len(setup.posts()) == 2
    assert setup.teams.recorder.matching(CHANNEL_MESSAGES) == []


async def test_graph_tokens_are_the_bots_own_for_the_conversations_tenant(clock: FakeClock) -> None:
    secret = "bot-secret-for-graph"
    async with BotFrameworkEmulator(clock=clock, graph_credentials={BOT_APP_ID: secret}) as teams:
        group = teams.world.teams[0].aad_group_id
        settings = TeamsGraphSettings(find_lost_posts=True, api_url=teams.graph_url, login_url=teams.login_url)
        graph = GraphMessages(settings, GraphTokens(BOT_APP_ID, secret, teams.login_url))
        wrong = GraphMessages(settings, GraphTokens(BOT_APP_ID, "not-the-secret", teams.login_url))
        try:
            found = await graph.find_in_channel(TENANT, group, RELEASES, "handoff-nothing", clock.now(), None)
            assert found is None
            with pytest.raises(DeliveryFailed) as refused:
                await wrong.find_in_channel(TENANT, group, RELEASES, "handoff-nothing", clock.now(), None)
        finally:
            await graph.close()
            await wrong.close()

    (token_request,) = [
        r for r in teams.recorder.matching(f"POST /login/{TENANT}/oauth2/v2.0/token") if r.status == 200
    ]
    assert f"client_id={BOT_APP_ID}" in token_request.body.decode()
    (lookup,) = teams.recorder.matching(CHANNEL_MESSAGES)
    assert lookup.status == 200 and lookup.headers["Authorization"].startswith("Bearer ")
    assert not refused.value.retryable
    assert secret not in repr(graph.tokens)


async def test_an_entra_id_out_of_reach_postpones_the_lookup(clock: FakeClock, unused_tcp_port: int) -> None:
    tokens = GraphTokens(BOT_APP_ID, "bot-secret", f"http://127.0.0.1:{unused_tcp_port}")
    try:
        with pytest.raises(DeliveryFailed) as failed:
            await tokens.token(TENANT)
    finally:
        await tokens.close()

    assert failed.value.retryable  # look again later rather than post a second time
    assert "bot-secret" not in failed.value.reason

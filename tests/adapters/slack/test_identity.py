"""users.info → ChatUser with email, cached briefly; Slack failures leave the user known by id."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.slack import SlackEmulator
from adapters.slack.identity import UserDirectory
from bot.clock import FakeClock


async def test_users_are_resolved_and_cached_briefly(clock: FakeClock) -> None:
    async with SlackEmulator(clock=clock) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        users = UserDirectory(ttl=300, clock=clock)

        first = await users.user(client, "U0CA201003", "T0C0NT050")
        again = await users.user(client, "U0CA201003", "T0C0NT050")
        assert first == again
        assert (first.platform, first.email, first.name, first.workspace_id) == (
            "slack",
            "carol@contoso.com",
            "Carol Diaz",
            "T0C0NT050",
        )
        assert first.identities == {"slack:U0CA201003", "carol@contoso.com"}
        assert len(slack.recorder.matching("/api/users.info")) == 1

        await clock.advance(301)
        await users.user(client, "U0CA201003", "T0C0NT050")
        assert len(slack.recorder.matching("/api/users.info")) == 2

        users.forget("T0C0NT050")
        await users.user(client, "U0CA201003", "T0C0NT050")
        assert len(slack.recorder.matching("/api/users.info")) == 3


async def test_unknown_user_or_slack_trouble_gives_the_id_alone(clock: FakeClock) -> None:
    async with SlackEmulator(clock=clock) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        users = UserDirectory(clock=clock)
        unknown = await users.user(client, "U0NOBODY99", "T0C0NT050", name="ghost")
        assert (unknown.user_id, unknown.email, unknown.name) == ("U0NOBODY99", None, "ghost")

        slack.faults.add("/api/users.info", ["malformed_json"])
        troubled = await users.user(client, "U0A11CE0001", "T0C0NT050")
        assert troubled.email is None
        found = await users.user(client, "U0A11CE0001", "T0C0NT050")  # not cached while Slack was down
        assert found.email == "alice@contoso.com"


async def test_cache_is_bounded(clock: FakeClock) -> None:
    async with SlackEmulator(clock=clock) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        users = UserDirectory(max_entries=2, clock=clock)
        for user in ("U0A11CE0001", "U0B0B000002", "U0CA201003", "U0A11CE0001"):
            await users.user(client, user, "T0C0NT050")
        assert len(slack.recorder.matching("/api/users.info")) == 4

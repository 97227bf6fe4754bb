"""The console in headless Chromium (Debian's, through Playwright): cards render with their buttons, a
command runs to a finished job card, Approve changes the gate on both platforms, updates arrive live.

A small stand-in bot answers the emulators the way Handoff does for these flows (ephemeral confirmation,
a job card updated in place, gates updated on a click), talking back through slack_sdk and botbuilder's
connector client. Screenshots go to ``test-artifacts/console/``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.console import create_console_app
from adapters.emulators.base import LocalServer
from adapters.emulators.suite import EmulatorSuite
from adapters.teams.renderer import render_card
from bot.cards import Card, Fact, Link, Status
from tests.browser import open_page, playwright_api
from tests.conftest import REPO_ROOT

from .samples import ADAPTIVE, SLACK_MODELS, SLACK_RELEASES, TEAMS_RELEASES, adaptive, slack_gate, slack_job, teams_gate

ARTIFACTS = REPO_ROOT / "test-artifacts" / "console"
TIMEOUT = 10_000  # ms
pytestmark = pytest.mark.browser


class StandInBot:
    """Answers the emulators as Handoff would for a retrain command and two gates."""

    def __init__(self, suite: EmulatorSuite) -> None:
        self.suite = suite
        self.slack = AsyncWebClient(token=suite.slack.bot_token, base_url=suite.slack.api_url)
        self.clicks: list[dict[str, Any]] = []
        self.invokes: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.app = web.Application()
        self.app.router.add_post("/slack/events", self.slack_events)
        self.app.router.add_post("/api/messages", self.teams_messages)

    async def slack_events(self, request: web.Request) -> web.Response:
        form = {k: v[0] for k, v in parse_qs(await request.text()).items()}
        if form.get("command") == "/retrain":
            return web.json_response(
                {
                    "text": f"Retrain {form['text']}?",
                    "blocks": [
                        {"type": "section", "text": {"type": "mrkdwn", "text": f"Retrain *{form['text']}* now?"}},
                        {
                            "type": "actions",
                            "elements": [
                                {
                                    "type": "button",
                                    "action_id": "confirm",
                                    "style": "primary",
                                    "value": form["text"],
                                    "text": {"type": "plain_text", "text": "Retrain"},
                                },
                                {
                                    "type": "button",
                                    "action_id": "cancel",
                                    "text": {"type": "plain_text", "text": "Cancel"},
                                },
                            ],
                        },
                    ],
                }
            )
        payload = json.loads(form.get("payload", "{}"))
        if payload.get("type") == "block_actions":
            self.clicks.append(payload)
            action = payload["actions"][0]["action_id"]
            channel = payload["channel"]["id"]
            if action == "confirm":
                self._later(self._run_job(channel, payload["response_url"]))
            elif action == "approve":
                await self.slack.chat_update(
                    channel=channel,
                    ts=payload["container"]["message_ts"],
                    text="Approved",
                    blocks=slack_gate("Approved", buttons=False),
                )
        return web.Response(status=200)

    async def teams_messages(self, request: web.Request) -> web.Response:
        activity = await request.json()
        if activity.get("type") != "invoke":
            return web.Response(status=200)
        self.invokes.append(activity)
        card = teams_gate("Approved", buttons=False)
        service = self.suite.teams.service_url
        async with ConnectorClient(MicrosoftAppCredentials.empty(), base_url=service) as connector:
            await connector.conversations.update_activity(
                activity["conversation"]["id"],
                activity["replyToId"],
                Activity(type="message", id=activity["replyToId"], attachments=[adaptive(card)]),
            )
        return web.json_response({"statusCode": 200, "type": ADAPTIVE, "value": card})

    async def _run_job(self, channel: str, response_url: str) -> None:
        await AsyncWebhookClient(response_url).send(delete_original=True)  # the confirmation goes away
        posted = await self.slack.chat_postMessage(channel=channel, text="Retrain model-x", blocks=slack_job("Queued"))
        for status in ("Running", "Completed"):
            await asyncio.sleep(0.4)
            await self.slack.chat_update(channel=channel, ts=posted["ts"], text=status, blocks=slack_job(status))

    def _later(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def served(suite: EmulatorSuite) -> AsyncIterator[tuple[str, StandInBot]]:
    """The console and the stand-in bot on 127.0.0.1, the emulators pointed at the bot."""
    bot = StandInBot(suite)
    async with LocalServer(bot.app) as bot_server, LocalServer(create_console_app(suite)) as console:
        suite.slack.events_url = f"{bot_server.url}/slack/events"
        suite.teams.bot_endpoint = f"{bot_server.url}/api/messages"
        yield console.url, bot
        await bot.close()


@pytest.fixture
async def page(served: tuple[str, StandInBot]) -> AsyncIterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with open_page(TIMEOUT) as opened:
        yield opened


async def post_teams(suite: EmulatorSuite, card: dict[str, Any]) -> str:
    async with ConnectorClient(MicrosoftAppCredentials.empty(), base_url=suite.teams.service_url) as connector:
        sent = await connector.conversations.send_to_conversation(
            TEAMS_RELEASES,
            Activity(type="message", from_property={"id": suite.teams.world.bot_id}, attachments=[adaptive(card)]),
        )
    return str(sent.id)


async def test_retrain_confirm_job_done_then_approve_on_both_platforms(
    page: Any, served: tuple[str, StandInBot], suite: EmulatorSuite, slack: AsyncWebClient
) -> None:
    url, bot = served
    expect = playwright_api.expect
    gate = await slack.chat_postMessage(channel=SLACK_RELEASES, text="Release app-y", blocks=slack_gate())
    await post_teams(suite, teams_gate())

    await page.goto(f"{url}/#user=alice&c=slack:{SLACK_MODELS}")
    await page.evaluate("window.__loadedOnce = true")
    await expect(page.locator("#live")).to_have_text("● live")

    # /retrain model-x: the bot's confirmation is shown only to alice; confirming runs the job to done
    await page.fill(".composer-input", "/retrain model-x")
    await page.press(".composer-input", "Enter")
    confirmation = page.locator(".slack-msg.ephemeral")
    await expect(confirmation).to_contain_text("Only visible to you")
    await expect(confirmation.locator(".bk-button.primary")).to_have_text("Retrain")
    await page.screenshot(path=str(ARTIFACTS / "1-slack-confirm.png"))
    await confirmation.locator(".bk-button.primary").click()
    job = page.locator(".slack-msg", has_text="Retrain model-x")
    await expect(job.locator(".bk-header")).to_have_text("Retrain model-x")
    await expect(job).to_contain_text("Completed")
    await expect(page.locator(".slack-msg.ephemeral")).to_have_count(0)
    assert [c["actions"][0]["action_id"] for c in bot.clicks] == ["confirm"]
    await page.screenshot(path=str(ARTIFACTS / "2-slack-job-done.png"))

    # the gate on Slack, as carol: Approve reaches the bot, and the card changes in place
    await page.select_option("#user", "carol")
    await page.click(f'.side-item[data-channel="{SLACK_RELEASES}"]')
    card = page.locator(f'.slack-msg[data-ts="{gate["ts"]}"]')
    await expect(card.locator(".bk-header")).to_have_text("Release app-y 2.4.0 to production")
    await expect(card.locator(".bk-button.primary")).to_have_text("Approve")
    await expect(card.locator(".bk-button.danger")).to_have_text("Reject")
    await page.screenshot(path=str(ARTIFACTS / "3-slack-gate.png"))
    await card.locator(".bk-button.primary").click()
    await expect(card).to_contain_text("Approved")
    await expect(card.locator(".bk-button")).to_have_count(0)
    await expect(card.locator(".edited")).to_have_text("(edited)")
    click = bot.clicks[-1]
    assert click["actions"][0]["action_id"] == "approve" and click["user"]["username"] == "carol"

    # the gate on Teams: Reject needs a comment first; Approve is an invoke, and the card changes
    await page.click('.side-item[data-name="App releases"]')
    post = page.locator(".post").first
    await expect(post.locator(".ac-text.weight-bolder")).to_have_text("Release app-y 2.4.0 to production")
    await post.locator(".ac-button.destructive").click()
    await post.locator(".ac-subcard .ac-button", has_text="Reject").click()
    await expect(post.locator(".field-error")).to_have_text("A comment is required.")
    assert bot.invokes == []
    await page.screenshot(path=str(ARTIFACTS / "4-teams-gate.png"))
    await post.locator(".ac-button.positive").click()
    await expect(post).to_contain_text("Approved")
    await expect(post.locator(".ac-button.positive")).to_have_count(0)
    await expect(post.locator(".edited")).to_have_text("Edited")
    (invoke,) = bot.invokes
    assert invoke["value"]["action"]["verb"] == "approve" and invoke["from"]["name"] == "Carol Diaz"

    # a message the bot posts while the page is open appears without a reload
    await slack.chat_postMessage(channel=SLACK_MODELS, text="model-x:8 registered :white_check_mark:")
    await page.click(f'.side-item[data-channel="{SLACK_MODELS}"]')
    await expect(page.locator(".slack-msg").last).to_contain_text("model-x:8 registered ✅")
    await post_teams(suite, teams_gate("Rejected", buttons=False))
    await expect(page.locator('.side-item[data-name="App releases"] .side-badge')).to_have_text("1")
    assert await page.evaluate("window.__loadedOnce") is True
    await page.screenshot(path=str(ARTIFACTS / "5-live-update.png"))


async def test_choosing_someone_while_a_refresh_is_on_its_way_keeps_them_chosen(
    page: Any, served: tuple[str, StandInBot], slack: AsyncWebClient
) -> None:
    url, _ = served
    expect = playwright_api.expect
    await page.goto(f"{url}/#user=alice&c=slack:{SLACK_MODELS}")
    await expect(page.locator("#live")).to_have_text("● live")
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(route: Any) -> None:  # alice's refresh is slow to come back
        held.set()
        await release.wait()
        await route.continue_()

    await page.route("**/api/state?user=alice", hold)
    await slack.chat_postMessage(channel=SLACK_MODELS, text="something new")  # the page refreshes, as alice
    async with asyncio.timeout(TIMEOUT / 1000):
        await held.wait()
    # meanwhile, someone chooses carol; then alice's answer arrives, and the page asks again, for carol
    async with page.expect_response(lambda answer: "api/state?user=carol" in answer.url, timeout=TIMEOUT):
        await page.select_option("#user", "carol")
        release.set()
    await expect(page.locator("#user")).to_have_value("carol")
    assert "user=carol" in await page.evaluate("location.hash")


async def test_card_text_cannot_inject_markup(
    page: Any, served: tuple[str, StandInBot], suite: EmulatorSuite, slack: AsyncWebClient
) -> None:
    url, _ = served
    hostile = (
        '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> *bold* <javascript:alert(1)|click>'
    )
    await slack.chat_postMessage(channel=SLACK_MODELS, text=hostile)
    card = teams_gate()
    card["body"][0]["text"] = hostile
    card["actions"].append({"type": "Action.OpenUrl", "title": "evil", "url": "javascript:alert(1)"})
    await post_teams(suite, card)
    await page.goto(f"{url}/#user=alice&c=slack:{SLACK_MODELS}")
    message = page.locator(".slack-msg").last
    await playwright_api.expect(message.locator("b")).to_have_text("bold")
    assert await message.locator("img, script, a[href^='javascript']").count() == 0
    await page.click('.side-item[data-name="App releases"]')
    await playwright_api.expect(page.locator(".ac-card").first).to_contain_text("<img src=x onerror=")
    assert await page.locator(".channel img, .channel script, .channel a[href^='javascript']").count() == 0
    assert await page.evaluate("window.__pwned") is None


async def test_a_teams_card_shows_escaped_text_as_teams_does(
    page: Any, served: tuple[str, StandInBot], suite: EmulatorSuite
) -> None:
    url, _ = served
    card = Card(
        title="Release fix *all* the_things",
        status=Status.REJECTED,
        summary="See [click](https://evil.example)\n1. not a list\n- nor this",
        facts=(Fact("Requested by", "_Bob_ **Lee**"),),
        links=(Link("Run #412", "https://dev.azure.com/contoso/ml/_build/results?buildId=412"),),
    )
    await post_teams(suite, render_card(card))
    await page.goto(f"{url}/#user=alice&c=teams:{TEAMS_RELEASES}")
    shown = page.locator(".ac-card").last
    await playwright_api.expect(shown).to_contain_text("Release fix *all* the_things")
    await playwright_api.expect(shown).to_contain_text("See [click](https://evil.example)")
    await playwright_api.expect(shown).to_contain_text("1. not a list")
    await playwright_api.expect(shown).to_contain_text("- nor this")
    await playwright_api.expect(shown).to_contain_text("_Bob_ **Lee**")
    assert "\\" not in await shown.inner_text()
    assert await shown.locator(".ac-items i, .ac-items b, .ac-items a").count() == 0  # no emphasis, no link
    await playwright_api.expect(shown.locator(".ac-button.url")).to_contain_text(["Run #412"])


async def test_overview_screenshot(
    page: Any, served: tuple[str, StandInBot], suite: EmulatorSuite, slack: AsyncWebClient
) -> None:
    url, _ = served
    job = await slack.chat_postMessage(channel=SLACK_MODELS, text="Retrain model-x", blocks=slack_job("Running"))
    await slack.chat_postMessage(
        channel=SLACK_MODELS, thread_ts=job["ts"], text=":hourglass_flowing_sand: Queued on *cpu-cluster*"
    )
    await slack.chat_postMessage(
        channel=SLACK_MODELS, thread_ts=job["ts"], text=":arrows_counterclockwise: Running step `train`"
    )
    await asyncio.sleep(1.1)  # Slack allows bursts of 3 posts per channel, then about 1 a second
    await slack.chat_postMessage(channel=SLACK_MODELS, text="Gate", blocks=slack_gate())
    suite.ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    suite.aml.land_blob("raw/customers/2025-12/batch-0001.csv", data=b"a,b\n1,2\n", content_type="text/csv")
    await page.goto(f"{url}/#user=carol&c=slack:{SLACK_MODELS}")
    await playwright_api.expect(page.locator(".bk-button.primary")).to_have_text("Approve")
    await playwright_api.expect(page.locator(".w-run")).to_have_count(1)
    await page.screenshot(path=str(ARTIFACTS / "overview-slack.png"))
    await post_teams(suite, teams_gate())
    await page.click('.side-item[data-name="App releases"]')
    await playwright_api.expect(page.locator(".ac-button.positive")).to_have_text("Approve")
    await page.screenshot(path=str(ARTIFACTS / "overview-teams.png"))

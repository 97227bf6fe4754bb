"""`subscribe <Azure DevOps URL>` from chat: the URL becomes project and pipeline filters, the project's
service hooks are made to reach Handoff, and the channel gets that pipeline's cards and no others."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from adapters.azure_devops.connect import connect_azure_devops
from adapters.azure_devops.hook_plan import marker_of
from bot.records import ConversationAddress
from tests.adapters.connect.conftest import Wired, eventually


def replies(wired: Wired, channel: str, user: str) -> list[str]:
    """What Handoff answered people here: its `Subscribed…` messages in the channel, and private replies."""
    slack = wired.suite.slack
    said = [m.text for m in wired.slack_messages(channel) if m.text.startswith("Subscribed")]
    return said + [m.text for m in slack.state.ephemeral_for(slack.world.user(user).id)]


async def subscribe(wired: Wired, text: str, channel: str = "ops", user: str = "bob") -> str:
    before = Counter(replies(wired, channel, user))
    response = await wired.suite.slack.send_slash_command("/handoff", f"subscribe {text}", channel=channel, user=user)
    assert response.status == 200
    return "\n".join(await eventually(lambda: list((Counter(replies(wired, channel, user)) - before).elements())))


async def stored(wired: Wired) -> list[Any]:
    ops = wired.suite.slack.state.channel("ops").id
    return await wired.server.store.list_subscriptions(ConversationAddress("slack", ops))


async def test_a_pipeline_url_subscribes_the_channel_to_that_pipeline_and_sets_up_the_hooks(wired: Wired) -> None:
    ado = wired.suite.ado
    url = f"{ado.org_url}/mlops/_build?definitionId=2"  # integrate-app-y
    said = await subscribe(wired, url)
    assert "Subscribed this channel" in said and "pipelines=integrate-app-y" in said and "projects=mlops" in said
    (subscription,) = await stored(wired)
    assert subscription.filters["projects"] == ["mlops"] and subscription.filters["pipelines"] == ["integrate-app-y"]
    hooks = [s for s in ado.webhooks.subscriptions.values() if marker_of(s.url)]
    assert {t for s in hooks for t in s.event_types} >= {
        "ms.vss-pipelines.run-state-changed-event",
        "ms.vss-pipelinechecks-events.approval-pending",
    }

    ado.script_next_run("train-model-x", fail_stage="Train")
    other = ado.start_run("train-model-x")
    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    for finished in (other, run):
        await eventually(lambda f=finished: ado.run(f.id).state == "completed")
    await eventually(lambda: any("integrate-app-y" in json.dumps(m.blocks) for m in wired.slack_messages("ops")))
    await ado.drain()
    assert not any("train-model-x" in json.dumps(m.blocks) for m in wired.slack_messages("ops"))

    # the same subscribe again creates no hook; `handoff connect` later keeps what chat needed
    count = len(ado.webhooks.subscriptions)
    await subscribe(wired, f"<{ado.org_url}/mlops/_build/results?buildId={run.id}&view=results>")
    assert len(ado.webhooks.subscriptions) == count
    assert [s.filters["pipelines"] for s in await stored(wired)] == [["integrate-app-y"], ["integrate-app-y"]]


async def test_a_dry_run_of_a_pipeline_url_names_the_pipeline_and_sets_up_nothing(wired: Wired) -> None:
    ado = wired.suite.ado
    hooks = dict(ado.webhooks.subscriptions)
    said = await subscribe(wired, f"{ado.org_url}/mlops/_build?definitionId=2 dry-run")
    assert "Dry run, nothing subscribed" in said
    assert "pipelines=integrate-app-y" in said and "projects=mlops" in said
    assert await stored(wired) == [] and ado.webhooks.subscriptions == hooks


async def test_a_project_url_with_filters_keeps_the_filters(wired: Wired) -> None:
    said = await subscribe(wired, f"{wired.suite.ado.org_url}/mlops events=stage outcomes=failed")
    assert "projects=mlops" in said and "events=stage" in said
    (subscription,) = await stored(wired)
    assert subscription.filters["events"] == ["stage"] and "pipelines" not in subscription.filters
    stage_hooks = [
        s
        for s in wired.suite.ado.webhooks.subscriptions.values()
        if "ms.vss-pipelines.stage-state-changed-event" in s.event_types
    ]
    assert len(stage_hooks) == 1
    # a later connect counts the chat subscription: nothing it needs is removed
    report = await connect_azure_devops(wired.settings, chat_filters=[subscription.filters])
    assert report.ok and not report.changes


async def test_urls_that_name_nothing_here_are_refused_and_nothing_is_stored(wired: Wired) -> None:
    ado = wired.suite.ado
    assert "not an Azure DevOps URL" in await subscribe(wired, "https://example.com/contoso/mlops")
    assert "in fabrikam" in await subscribe(wired, "https://dev.azure.com/fabrikam/mlops")
    assert "has no pipeline 99" in await subscribe(wired, f"{ado.org_url}/mlops/_build?definitionId=99")
    assert "Classic release" in await subscribe(wired, f"{ado.org_url}/mlops/_release?definitionId=1")
    assert await stored(wired) == []
    assert ado.webhooks.subscriptions == {}


async def test_plain_filters_work_as_before(wired: Wired) -> None:
    said = await subscribe(wired, "events=run pipelines=release-*")
    assert "events=run" in said and "pipelines=release-*" in said
    (subscription,) = await stored(wired)
    assert subscription.filters == {"events": ["run"], "pipelines": ["release-*"]}
    assert wired.suite.ado.webhooks.subscriptions == {}


async def test_filter_values_that_cannot_match_are_refused_and_nothing_is_stored(wired: Wired) -> None:
    # stored as typed, `events=runs` would never match anything, and the channel would wait in vain
    said = await subscribe(wired, "events=runs,approval outcomes=failed")
    assert said.startswith("Nothing was subscribed: `events`: `runs` is not one of run, stage, approval,")
    assert said.endswith("; did you mean `run`? `help subscribe` shows the filters.")
    said = await subscribe(wired, "outcomes=failure")
    assert (
        "`outcomes`: `failure` is not one of succeeded, failed, canceled, pending, any; did you mean `failed`?" in said
    )
    assert await stored(wired) == []
    assert "Subscribed this channel" in await subscribe(wired, "events=run,approval outcomes=failed")
    assert len(await stored(wired)) == 1


async def test_me_needs_the_email_of_whoever_subscribes(wired: Wired) -> None:
    # Slack does not say who bob is (users.info fails): his email is unknown, so `me` cannot stand for him
    wired.suite.slack.faults.add("/api/users.info", ["500"] * 10)
    answer = await subscribe(wired, "events=run actors_include=me", user="bob")
    assert answer.startswith("Nothing was subscribed: `actors_include=me` needs your email.")
    assert await stored(wired) == []

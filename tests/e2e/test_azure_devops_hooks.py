"""What ``POST /hooks/azure-devops`` makes of deliveries shaped as Azure DevOps documents them: a project named only
by its id, a URL with a trailing slash, a post-deployment approval, an approval whose run is unknown, a
build.complete of ``resourceVersion`` 1.0, a classic release's deployment, the stages of a long run. Emulators →
Handoff → Slack and the store."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from adapters.demo import BOT_IDENTITY
from adapters.emulators.azure_devops import AzureDevOpsEmulator
from adapters.emulators.fake_server import FakeHTTPServer
from adapters.web.health import METRICS
from bot.events import DomainEvent
from bot.living import render
from bot.records import DeliveryState
from bot.stored_events import event_from_json
from tests.e2e.conftest import Loop, blocks_text, card_text, eventually, slack_messages, teams_posts

PENDING = "ms.vss-pipelinechecks-events.approval-pending"
DOCUMENTED_PROJECT_ID = "be9b3917-87e6-42a4-a549-2bc06a7a878f"  # the documented samples' project container
OTHER_PROJECT_ID = "0d6ad1a4-3b0c-4b51-9f32-0a51ad1a4c4e"  # a project Handoff is not configured with


def sample(shared_dir: Path, name: str) -> Any:
    return json.loads((shared_dir / "samples" / "ado" / f"{name}.json").read_text(encoding="utf-8"))


def following_project(channel: str, events: list[str]) -> Any:
    """A configuration tweak: ``channel`` follows ``events`` of project mlops (by name, as people write it)."""

    def tweak(config: dict[str, Any]) -> None:
        config["subscriptions"].append({"channel": channel, "events": events, "projects": ["mlops"]})

    return tweak


def releases_of_mlops(config: dict[str, Any]) -> None:
    """A configuration tweak: app-releases follows the releases' runs and approvals of project mlops only."""
    for subscription in config["subscriptions"]:
        if subscription["channel"] == "app-releases":
            subscription["projects"] = ["mlops"]


async def deliver(loop: Loop, payload: Any, path: str = "/hooks/azure-devops") -> dict[str, Any]:
    """POST ``payload`` to Handoff as Azure DevOps does, with the service hook's basic auth; its answer."""
    status, answer = await post_hook(loop, json.dumps(payload).encode(), path)
    assert status == 200, answer
    return answer


async def post_hook(loop: Loop, body: bytes, path: str = "/hooks/azure-devops") -> tuple[int, dict[str, Any]]:
    """POST ``body`` to Handoff as Azure DevOps does; the answer's status and body."""
    handoff = loop.server.handoff
    assert handoff is not None and handoff.settings.azure_devops is not None
    basic = handoff.settings.azure_devops.service_hooks.basic
    assert basic is not None
    token = base64.b64encode(f"{basic.username}:{basic.password.reveal()}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{loop.server.url}{path}", data=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json(content_type=None)


def without_hooks_of(ado: AzureDevOpsEmulator, event_type: str) -> None:
    """Azure DevOps' own deliveries of ``event_type`` stop (the test delivers its own)."""
    for subscription in ado.webhooks.subscriptions.values():
        subscription.event_types = subscription.event_types - {event_type}


async def stored_events(loop: Loop) -> dict[str, DomainEvent]:
    """The events the store holds, by their ids."""
    found = {}
    for record in await loop.server.store.recent_events(50):
        assert isinstance(record.payload, dict)
        event = event_from_json(record.payload)
        assert event is not None
        found[event.event_id] = event
    return found


def run_hook_by_project_id(shared_dir: Path, ado: AzureDevOpsEmulator, project_id: str, run_id: int) -> Any:
    """The documented run-state-changed (its links name the project by id), from ``ado``'s organization."""
    hook = sample(shared_dir, "ms.vss-pipelines.run-state-changed-event")
    text = json.dumps(hook).replace("https://codedev.ms/org/", f"{ado.org_url}/")
    text = text.replace("863d0a5b-3c91-4bf3-8ad7-7f33736b7f4c", project_id)  # the sample's project, in its links
    hook = json.loads(text)
    hook["id"] = f"run-hook-{project_id}-{run_id}"
    hook["resourceContainers"]["account"]["baseUrl"] = f"{ado.org_url}/"
    hook["resourceContainers"]["project"]["id"] = project_id
    hook["resource"]["run"]["id"] = run_id
    hook["resource"]["run"]["name"] = f"20261130.{run_id}"
    return hook


async def test_an_approval_naming_its_project_by_id_reaches_the_channel_following_the_project(
    start_loop: Any, shared_dir: Path
) -> None:
    """The documented approval-pending names its project only by id: the channel that follows the project by name
    gets the gate, with buttons (no "nobody sees this gate" warning in ops)."""
    loop = await start_loop(tweak=releases_of_mlops)
    ado = loop.suite.ado
    without_hooks_of(ado, PENDING)
    run = ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    [approval] = await ado.wait_until(lambda: ado.approvals_for(run.id), timeout=20)
    hook = sample(shared_dir, PENDING)
    hook["resource"]["approval"]["id"] = approval.id
    hook["resourceContainers"]["project"]["id"] = ado.world.project_id
    hook["resourceContainers"]["account"]["baseUrl"] = f"{ado.org_url}/"

    assert await deliver(loop, hook) == {"accepted": 1, "duplicates": 0, "ignored": 0}

    gate_card = await eventually(
        lambda: next(
            (m for m in slack_messages(loop, "app-releases") if '"action_id": "approve"' in blocks_text(m)), None
        )
    )
    assert "Release release-app-y to " in gate_card.text and run.name in blocks_text(gate_card)
    assert not any("No conversation sees the gate" in m.text for m in slack_messages(loop, "ops"))
    gate = await loop.server.store.get_gate(f"azure-devops:contoso:pipeline-approval:{approval.id}")
    assert gate is not None
    stored = await loop.server.store.get_card_state(f"azure-devops:contoso:pipeline-approval:{approval.id}")
    assert stored is not None and stored.state["project"] == "mlops" and stored.state["run_id"] == str(run.id)
    assert (await stored_events(loop))[hook["id"]].project == "mlops"
    # the approval was read by the project's name, and the project's id was looked up once
    assert ado.recorder.matching(f"GET /contoso/mlops/_apis/pipelines/approvals/{approval.id}")


def approval_pending_without_its_run(ado: AzureDevOpsEmulator, approval_id: str) -> dict[str, Any]:
    """An approval-pending shaped as Azure DevOps documents it: its run, pipeline and stage null, its project named
    only by id (Handoff asks for the approval to learn its run)."""
    return {
        "id": f"pending-{approval_id}",
        "eventType": PENDING,
        "publisherId": "pipelines",
        "resource": {
            "approval": {"id": approval_id, "steps": [], "status": "pending", "createdOn": "2026-11-30T10:00:00Z"},
            "projectId": ado.world.project_id,
            "pipeline": None,
            "stage": None,
            "run": None,
            "resource": None,
            "id": 0,
            "url": None,
            "stageName": None,
            "attemptId": 0,
        },
        "resourceVersion": "5.1-preview.1",
        "resourceContainers": {
            "account": {"id": "f844ec47-a9db-4511-8281-8b63f4eaf94e", "baseUrl": f"{ado.org_url}/"},
            "project": {"id": ado.world.project_id},
        },
        "createdDate": "2026-11-30T10:00:00Z",
    }


async def test_a_redelivered_approval_is_answered_without_asking_azure_devops_again(start_loop: Any) -> None:
    """Azure DevOps delivers a hook again when its answer was late: the approval stored already is a duplicate at
    once, with a 200 even while Azure DevOps fails, and its approval and run are not read again (its rate limit)."""
    loop = await start_loop()
    ado = loop.suite.ado
    without_hooks_of(ado, PENDING)
    run = ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    [approval] = await ado.wait_until(lambda: ado.approvals_for(run.id), timeout=20)
    hook = approval_pending_without_its_run(ado, approval.id)
    approval_read = f"GET /contoso/mlops/_apis/pipelines/approvals/{approval.id}"

    assert await deliver(loop, hook) == {"accepted": 1, "duplicates": 0, "ignored": 0}
    assert len(ado.recorder.matching(approval_read)) == 1
    stored = await loop.server.store.get_card_state(f"azure-devops:contoso:pipeline-approval:{approval.id}")
    assert stored is not None and stored.state["run_id"] == str(run.id)  # (its run, as the approval's GET told it)
    runs_read = len(ado.recorder.matching("GET /contoso/**/_apis/build/builds/*"))

    ado.faults.add("* /contoso/**", ["500"] * 100)  # Azure DevOps fails from now on
    assert await deliver(loop, hook) == {"accepted": 0, "duplicates": 1, "ignored": 0}
    assert await deliver(loop, hook) == {"accepted": 0, "duplicates": 1, "ignored": 0}

    assert len(ado.recorder.matching(approval_read)) == 1
    assert len(ado.recorder.matching("GET /contoso/**/_apis/build/builds/*")) == runs_read


async def test_runs_naming_their_project_by_id_go_where_the_project_is_followed(
    start_loop: Any, shared_dir: Path
) -> None:
    """A run whose links name the project by id goes to the channel following the project by name, on the card its
    other events (naming it by name) update; another project's id stays as it is, and is followed by nobody. The
    configured project's id is looked up once."""
    loop = await start_loop(tweak=following_project("ops", ["run"]))
    ado = loop.suite.ado
    project_id = ado.world.project_id
    looked_up = len(ado.recorder.matching("GET /contoso/mlops/_apis/pipelines"))

    await deliver(loop, run_hook_by_project_id(shared_dir, ado, project_id, 501))
    await deliver(loop, run_hook_by_project_id(shared_dir, ado, OTHER_PROJECT_ID, 502))
    await deliver(loop, run_hook_by_project_id(shared_dir, ado, project_id, 503))

    await eventually(lambda: len(slack_messages(loop, "ops")) >= 2)
    await asyncio.sleep(1.0)  # let anything else sent land
    shown = [blocks_text(m) for m in slack_messages(loop, "ops")]
    assert len(shown) == 2 and "20261130.501" in shown[0] and "20261130.503" in shown[1], shown
    assert not any("20261130.502" in text for text in shown)
    store = loop.server.store
    for run_id in (501, 503):
        stored = await store.get_card_state(f"azure-devops:contoso:mlops:run:{run_id}")
        assert stored is not None and render(stored.state).title.endswith(f"20261130.{run_id}")
    assert await store.get_card_state(f"azure-devops:contoso:{OTHER_PROJECT_ID}:run:502") is not None
    projects = {event_id: event.project for event_id, event in (await stored_events(loop)).items()}
    assert projects[f"run-hook-{project_id}-501"] == projects[f"run-hook-{project_id}-503"] == "mlops"
    assert projects[f"run-hook-{OTHER_PROJECT_ID}-502"] == OTHER_PROJECT_ID
    assert len(ado.recorder.matching("GET /contoso/mlops/_apis/pipelines")) == looked_up + 1


async def test_a_project_whose_id_is_not_found_is_asked_about_once_a_minute_at_most(
    start_loop: Any, shared_dir: Path
) -> None:
    """A configured project Azure DevOps does not know: the projects it does know are still named, and the hooks
    naming an unknown id do not ask about it again each."""

    def tweak(config: dict[str, Any]) -> None:
        config["azure_devops"]["projects"] = ["mlops", "retired"]
        following_project("ops", ["run"])(config)

    loop = await start_loop(tweak=tweak)
    ado = loop.suite.ado

    for run_id, project_id in ((601, OTHER_PROJECT_ID), (602, OTHER_PROJECT_ID), (603, ado.world.project_id)):
        assert (await deliver(loop, run_hook_by_project_id(shared_dir, ado, project_id, run_id)))["accepted"] == 1

    assert len(ado.recorder.matching("GET /contoso/retired/_apis/pipelines")) == 1
    assert len(ado.recorder.matching("GET /contoso/mlops/_apis/pipelines")) == 1
    card = await eventually(lambda: next(iter(slack_messages(loop, "ops")), None))
    assert "20261130.603" in blocks_text(card)
    projects = {event_id: event.project for event_id, event in (await stored_events(loop)).items()}
    assert projects[f"run-hook-{OTHER_PROJECT_ID}-601"] == projects[f"run-hook-{OTHER_PROJECT_ID}-602"]
    assert projects[f"run-hook-{OTHER_PROJECT_ID}-602"] == OTHER_PROJECT_ID
    assert projects[f"run-hook-{ado.world.project_id}-603"] == "mlops"


async def test_hooks_to_the_url_with_a_trailing_slash_are_taken_as_without(loop: Loop) -> None:
    """Azure DevOps set up with ``…/hooks/azure-devops/`` delivers (a 404 would put its subscription on probation);
    Event Grid's handshake and deliveries to ``…/hooks/eventgrid/`` work too."""
    ado = loop.suite.ado
    for subscription_id, subscription in list(ado.webhooks.subscriptions.items()):
        ado.remove_webhook(subscription_id)
        ado.add_webhook(f"{subscription.url}/", subscription.event_types, basic=subscription.basic)
    handoff = loop.server.handoff
    assert handoff is not None and handoff.settings.eventgrid is not None
    secret = handoff.settings.eventgrid.delivery_secret.reveal()
    aml = loop.suite.aml
    slashed = await aml.add_event_subscription(
        f"{loop.server.url}/hooks/eventgrid/", schema="CloudEventSchemaV1_0", secret_query=("code", secret)
    )

    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if run.name in blocks_text(m)), None)
    )
    await eventually(lambda: "Succeeded" in card.text, timeout=30)
    await ado.drain()
    assert ado.deliveries and all(d.result == "succeeded" for d in ado.deliveries)
    assert all(s.status == "enabled" for s in ado.webhooks.subscriptions.values())
    stored = await loop.server.store.get_card_state(f"azure-devops:contoso:mlops:run:{run.id}")
    assert stored is not None

    aml.register_model("model-x")
    await aml.drain_events()
    assert slashed.attempts and all(a.status == 200 for a in slashed.attempts)
    # counted as the routes they alias
    answered = {route for route, _ in loop.server.app[METRICS].answers.requests}
    assert {"/hooks/azure-devops", "/hooks/eventgrid"} <= answered
    assert not {"/hooks/azure-devops/", "/hooks/eventgrid/"} & answered


async def test_a_post_deployment_approval_asks_for_a_sign_off(start_loop: Any) -> None:
    loop = await start_loop(tweak=following_project("ops", ["approval"]))
    ado = loop.suite.ado
    approval = ado.add_release_approval(  # (assigned to Handoff, which may then decide it from chat)
        BOT_IDENTITY, release_name="Release-3", environment_name="Staging", approval_type="postDeploy"
    )
    card = await eventually(
        lambda: next((m for m in slack_messages(loop, "ops") if '"action_id": "approve"' in blocks_text(m)), None)
    )
    assert card.blocks[0]["text"]["text"] == "Sign off app-y-classic.CD Release-3 in Staging"
    assert "*Approval*\\nPost-deployment" in blocks_text(card)
    stored = await loop.server.store.get_card_state(f"azure-devops:contoso:release-approval:{approval.id}")
    assert stored is not None and stored.state["approval_type"] == "postDeploy"
    assert render(stored.state).title == "Sign off app-y-classic.CD Release-3 in Staging"
    # a pre-deployment approval still asks to release
    ado.add_release_approval(BOT_IDENTITY, release_name="Release-4", environment_name="Staging")
    await eventually(
        lambda: any(
            m.blocks[0]["text"]["text"] == "Release app-y-classic.CD Release-4 to Staging"
            for m in slack_messages(loop, "ops")
        )
    )


async def test_an_approval_whose_run_is_unknown_is_titled_by_its_environment(start_loop: Any, shared_dir: Path) -> None:
    """The documented approval-pending, whose approval Azure DevOps does not know (the GET of it fails): the gate
    is named by the environment its message links to."""
    loop = await start_loop(tweak=lambda c: c["subscriptions"].append({"channel": "ops", "events": ["approval"]}))
    hook = sample(shared_dir, PENDING)

    await deliver(loop, hook)

    card = await eventually(
        lambda: next((m for m in slack_messages(loop, "ops") if '"action_id": "approve"' in blocks_text(m)), None)
    )
    assert card.blocks[0]["text"]["text"] == "Approval in env1"
    stored = await loop.server.store.get_card_state(
        f"azure-devops:contoso:pipeline-approval:{hook['resource']['approval']['id']}"
    )
    assert stored is not None and render(stored.state).title == "Approval in env1"


async def test_a_build_complete_of_version_1_links_its_build(start_loop: Any) -> None:
    """build.complete of ``resourceVersion`` 1.0 has no web link: its card links the build's page all the same (and
    its project, which its Build API URL names by id, is followed by name)."""
    loop = await start_loop(tweak=following_project("ops", ["run"]))
    ado = loop.suite.ado
    for subscription_id, subscription in list(ado.webhooks.subscriptions.items()):
        ado.remove_webhook(subscription_id)
        ado.add_webhook(subscription.url, ["build.complete"], basic=subscription.basic, resource_version="1.0")
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
    link = f"{ado.org_url}/{ado.world.project_id}/_build/results?buildId={run.id}"
    card = await eventually(lambda: next((m for m in slack_messages(loop, "ops") if run.name in blocks_text(m)), None))
    assert f"<{link}|Open run>" in blocks_text(card)
    stored = await loop.server.store.get_card_state(f"azure-devops:contoso:mlops:run:{run.id}")
    assert stored is not None and [x.url for x in render(stored.state).links][:1] == [link]


async def test_a_classic_release_deployment_names_its_project(start_loop: Any, shared_dir: Path) -> None:
    loop = await start_loop(tweak=lambda c: c["subscriptions"].append({"channel": "ops", "events": ["release"]}))
    hook = sample(shared_dir, "ms.vss-release.deployment-completed-event")

    await deliver(loop, hook)

    card = await eventually(lambda: next((m for m in slack_messages(loop, "ops") if "Dev" in m.text), None))
    assert card.blocks[-1]["elements"][0]["text"] == "Azure DevOps · fabfiber/Fabrikam"


STAGE_STATE = "ms.vss-pipelines.stage-state-changed-event"


async def all_sent(loop: Loop) -> None:
    """Wait until the outbox has sent everything queued (coalesced updates included)."""

    async def nothing_pending() -> bool:
        return not (await loop.server.store.count_deliveries([DeliveryState.PENDING])).get("pending")

    for _ in range(200):
        if await nothing_pending():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"deliveries still pending: {await loop.server.store.count_deliveries()}")


async def test_a_failed_stages_hook_before_the_runs_first_tells_each_thread_the_failure_once(
    store_url: str, start_loop: Any, fake_http_server: FakeHTTPServer
) -> None:
    """Azure DevOps sends run and stage hooks from separate subscriptions, so a fast-failing run's failed stage may
    come first, while app-releases (runs, no stages) shows the card nowhere yet. Each conversation's card, shown
    from the run's next hook, gets the failure in its thread once, naming the stage and linking the logs; the
    failed stage's hook delivered again adds nothing."""
    loop = await start_loop(tweak=lambda config: config["store"].update(url=store_url))
    ado = loop.suite.ado
    # Azure DevOps' notifications are held (answered by another receiver), to be delivered in the test's order
    hooked = frozenset().union(*(s.event_types for s in ado.webhooks.subscriptions.values()))
    for subscription_id in list(ado.webhooks.subscriptions):
        ado.remove_webhook(subscription_id)
    fake_http_server.respond("POST /held", 200, {})
    held = ado.add_webhook(f"{fake_http_server.url}/held", hooked)
    ado.script_next_run("integrate-app-y", fail_stage="IntegrationTests")
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await eventually(lambda: ado.run(run.id).state == "completed")
    hooks = [d.payload for d in await ado.drain() if d.subscription_id == held.id]
    [failed_stage] = [
        h for h in hooks if h["eventType"] == STAGE_STATE and h["resource"]["stage"].get("result") == "failed"
    ]
    for hook in [failed_stage, *(h for h in hooks if h is not failed_stage)]:
        await deliver(loop, hook)
    await all_sent(loop)

    def told() -> tuple[list[Any], list[Any]]:
        [slack_card] = [m for m in slack_messages(loop, "app-releases") if run.name in m.text]
        [teams_card] = [p for p in teams_posts(loop, "App releases") if run.name in card_text(p)]
        return slack_card.replies, teams_card.replies

    slack_replies, teams_replies = told()
    logs = f"{ado.org_url}/mlops/_build/results?buildId={run.id}&view=logs"
    [failure] = slack_replies
    assert f"integrate-app-y {run.name} failed in stage Integration tests" in failure.text
    assert logs in blocks_text(failure).replace("&amp;", "&") and not failure.reply_broadcast
    [teams_failure] = teams_replies
    assert "failed in stage Integration tests" in card_text(teams_failure) and logs in card_text(teams_failure)
    assert "Failed at stage Integration tests" in card_text(teams_posts(loop, "App releases")[-1])

    # the failed stage's hook again, once the cards are shown: nothing more in the threads
    assert await deliver(loop, failed_stage) == {"accepted": 0, "duplicates": 1, "ignored": 0}
    await deliver(loop, {**failed_stage, "id": f"{failed_stage['id']}-resent"})
    await all_sent(loop)
    assert [len(replies) for replies in told()] == [1, 1]


def region(place: int) -> str:
    """A stage display name of about 120 characters, as matrix and region stages have."""
    return (
        f"Deploy region {place:02d} (westeurope-prod-cluster-{place:02d}) · canary 10% → 50% → 100% with smoke tests "
        "and rollback guard"
    )


def with_regions_pipeline(world: dict[str, Any]) -> None:
    """A world tweak: pipeline integrate-regions, 45 region stages; its runs stay in the first one (for the test to
    tell the rest)."""
    stages = [
        {"name": f"Region{i:02d}", "displayName": region(i), "duration": 3600 if i == 0 else 0.3} for i in range(45)
    ]
    world["azure_devops"]["pipelines"].append(
        {"id": 90, "name": "integrate-regions", "folder": "\\app", "repository": "app-y", "stages": stages}
    )


async def test_a_long_runs_slack_card_shows_the_stage_running_and_the_stage_that_failed(start_loop: Any) -> None:
    """45 stages of about 120 characters, side by side: stage 35 still running, 43 failed. Slack's card lists every
    stage, over as many sections as it takes, each within Slack's 3,000 characters, none cut."""
    loop = await start_loop(world=with_regions_pipeline)
    ado = loop.suite.ado
    run = ado.start_run("integrate-regions", requested_by="bob@contoso.com")
    card = await eventually(lambda: next((m for m in slack_messages(loop, "app-releases") if run.name in m.text), None))
    # Azure DevOps tells of each stage through the hook Handoff set up (POST /hooks/azure-devops)
    began = datetime.now(UTC)
    for place, stage in enumerate(run.stages):
        state, result = {35: ("inProgress", None), 43: ("completed", "failed")}.get(place, ("completed", "succeeded"))
        at = began + timedelta(seconds=place)
        told = replace(stage, state=state, result=result, start_time=at, finish_time=None if result is None else at)
        ado.publish(ado.events.stage_state_changed(run, told, at))

    def listed() -> list[str]:
        sections = [b["text"]["text"] for b in card.blocks or [] if b["type"] == "section" and "text" in b]
        return [line for text in sections if "Deploy region" in text for line in text.split("\n")]

    lines = await eventually(lambda: ":x: Deploy region 43" in "\n".join(listed()) and listed(), timeout=30)
    look = {35: ":arrows_counterclockwise:", 43: ":x:"}
    assert [line.split(" (")[0] for line in lines] == [
        f"{look.get(i, ':white_check_mark:')} Deploy region {i:02d}" for i in range(45)
    ]
    assert not any("more stage" in line or "_(truncated)_" in line for line in lines)
    assert all(d.result == "succeeded" for d in await ado.drain())


async def test_a_job_hook_is_ignored_whatever_its_body_and_a_hook_id_no_text_holds_is_refused(
    loop: Loop, shared_dir: Path
) -> None:
    """A subscription to job events sending no resource details is answered 200 (a 400 would put it on probation
    for events Handoff throws away); a run's hook whose id is a number past 64 bits is refused, not stored under
    an id another hook would share."""
    job = sample(shared_dir, "ms.vss-pipelines.job-state-changed-event")
    bodies = [{k: v for k, v in job.items() if k != "resource"}, job | {"resource": None, "createdDate": "x"}]
    for body in bodies:
        assert await post_hook(loop, json.dumps(body).encode()) == (200, {"accepted": 0, "duplicates": 0, "ignored": 1})

    run = sample(shared_dir, "ms.vss-pipelines.run-state-changed-event")
    for digits in ("9" * 24, "9" * 23 + "8", "9" * 100_000):
        body = json.dumps(run | {"id": "ID"}).replace('"ID"', digits).encode()
        status, answer = await post_hook(loop, body)
        assert (status, answer["message"]) == (400, "id: expected a string, or a number within 64 bits")
    assert await loop.server.store.recent_events(50) == []

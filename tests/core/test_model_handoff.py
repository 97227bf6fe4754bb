"""The model handoff on a real store: a new model version is checked against its consuming app, the
app's integration is started once, and the promotion gate holds Approve until the evidence allows it
or someone allowed to override gives a reason.

Azure ML and Azure DevOps are small in-memory fakes that record what they were asked; the store is
SQLite and PostgreSQL, so gates, cards and command runs are what a deployment would keep.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import bot
from adapters.sql import SqlStore
from bot.app import Handoff, build_handoff
from bot.cards import Card, Link, Mention, Status
from bot.clock import FakeClock
from bot.config import parse_settings
from bot.events import ModelRegistered, Person, PipelineRef, RunStateChanged
from bot.interactions import ChatUser, CommandRequest
from bot.living import render
from bot.ports import ModelVersion, RunStatus, ServiceRefused, ServiceUnavailable, StartedRun
from bot.promotions import promotion_gate_id
from bot.records import CommandRunState, ConversationAddress, GateState
from tests.core.fake_pipelines import FakePipelines
from tests.core.test_gates import GATE as AZURE_DEVOPS_GATE
from tests.core.test_gates import pending
from tests.core.test_ingest import broadcasts_to, delivered

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
TOPIC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
MODELS = ConversationAddress("slack", "C0MLMODELS")
RELEASES = ConversationAddress("slack", "C0APPRELEASES")
GATE = promotion_gate_id("model-x", "8")
MODEL_CARD = f"azure-ml:{TOPIC}:model:model-x:8".lower()
APP_CARD = "handoff:model:model-x:8:app:app-y"

V7 = {
    "inputs": [{"name": "age", "type": "long"}, {"name": "income", "type": "double"}],
    "outputs": [{"name": "prediction", "type": "double"}],
}
BREAKING = {**V7, "inputs": [{"name": "age", "type": "string"}, {"name": "income", "type": "double"}]}
ADDITIVE = {**V7, "inputs": [*V7["inputs"], {"name": "region", "type": "string", "required": False}]}


def settings(**app: Any) -> dict[str, Any]:
    return {
        "channels": {
            "ml-models": {"slack": MODELS.conversation_id},
            "app-releases": {"slack": RELEASES.conversation_id},
        },
        "subscriptions": [{"channel": "ml-models", "events": ["model_registered"]}],
        "models": {
            "model-x": {
                "consumers": ["app-y"],
                "channels": ["ml-models"],
                "promotion_gate": {
                    "release": {"project": "mlops", "pipeline": "release-app-y", "parameters": {"ring": "prod"}},
                    "policy": "model-promotion",
                },
            }
        },
        "apps": {
            "app-y": {
                "integration": {"project": "mlops", "pipeline": "integrate-app-y", "branch": "refs/heads/main"},
                "channels": ["app-releases"],
                **app,
            }
        },
        "roles": {
            "release-managers": {"members": ["carol@contoso.com"]},
            "data-scientists": {"members": ["alice@contoso.com"]},
        },
        "gates": {
            "default": {"approver_roles": ["release-managers"], "override_roles": ["release-managers"]},
            "model-promotion": {"approver_roles": ["release-managers"], "override_roles": ["release-managers"]},
        },
    }


@dataclass
class FakeML:
    """Azure ML's model registry as the core sees it."""

    versions: dict[str, ModelVersion] = field(default_factory=dict)
    tagged: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def register(self, version: str, signature: dict[str, Any] | None, **tags: str) -> None:
        self.versions[version] = ModelVersion("model-x", version, dict(tags), signature)

    async def model_version(self, name: str, version: str | None = None) -> ModelVersion:
        found = self.versions.get(version or max(self.versions, key=int))
        if found is None:
            raise ServiceRefused(f"Azure ML has no version {version} of model {name}.")
        return found

    async def model_versions(self, name: str) -> list[ModelVersion]:
        return [replace(v, signature=None) for _, v in sorted(self.versions.items(), key=lambda kv: int(kv[0]))]

    async def latest_model_version(self, name: str) -> str:
        if not self.versions:
            raise ServiceRefused(f"Azure ML has no model {name}.")
        return max(self.versions, key=int)

    async def has_model_version(self, name: str, version: str) -> bool:
        return version in self.versions

    async def tag_model(self, name: str, version: str, tags: dict[str, str]) -> None:
        self.tagged.append((name, version, tags))
        if version in self.versions:
            tagged = self.versions[version]
            self.versions[version] = replace(tagged, tags={**tagged.tags, **tags})

    async def submit_job(self, job_file: str, params: dict[str, str], name: str) -> StartedRun:
        raise NotImplementedError

    async def job_status(self, name: str) -> RunStatus:
        raise NotImplementedError

    async def cancel_job(self, name: str) -> None:
        raise NotImplementedError

    async def close(self) -> None: ...


@dataclass
class World:
    core: Handoff
    ml: FakeML
    pipelines: FakePipelines
    clock: FakeClock

    async def until(self, condition: Callable[[], Any], what: str) -> None:
        """Let the background work run (advancing the fake clock past its polls) until ``condition``."""
        for _ in range(300):
            if await _maybe_await(condition()):
                return
            await self.clock.advance(1)
            await asyncio.sleep(0.01)
        raise AssertionError(f"never happened: {what}")

    async def card(self, key: str) -> Card:
        state = await self.core.store.get_card_state(key)
        assert state is not None, f"no card {key}"
        return render(state.state)

    async def card_text(self, key: str) -> str:
        return json.dumps((await self.card(key)).to_json())

    async def gate_details(self) -> dict[str, Any]:
        gate = await self.core.store.get_gate(GATE)
        assert gate is not None
        return gate.details

    async def integration(self) -> dict[str, Any]:
        return dict((await self.gate_details())["apps"]["app-y"]["integration"])


async def _maybe_await(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


def registered(version: str = "8", event_id: str = "evt-8") -> ModelRegistered:
    return ModelRegistered(
        source="azure-ml",
        event_id=event_id,
        occurred_at=T0,
        scope=TOPIC,
        model_name="model-x",
        model_version=version,
        web_url=f"https://ml.azure.com/model/model-x:{version}",
    )


NAMES = {"carol": "Carol Diaz", "bob": "Bob Chen", "dave": "Dave Li"}


def user(name: str) -> ChatUser:
    """Someone in Slack, named as chat names them; their decisions are kept by their email."""
    return ChatUser(
        platform="slack", user_id=f"U{name.upper()}", name=NAMES.get(name, name), email=f"{name}@contoso.com"
    )


async def make_world(
    store_url: str, tmp_path: Path, tweak: Callable[[dict[str, Any]], None] | None = None, **app: Any
) -> AsyncIterator[World]:
    store = await SqlStore.open(store_url)
    ml, pipelines, clock = FakeML(), FakePipelines(), FakeClock(T0)
    ml.register("6", V7, stage="production")
    ml.register("7", V7)
    config = settings(**app)
    if tweak is not None:
        tweak(config)
    core = build_handoff(
        parse_settings(config, {"ADO_PAT": "pat", "HOOK_PASSWORD": "hooks"}),
        store,
        clock,
        pipelines=pipelines,
        ml=ml,
        poll_interval=1,
        base_dir=tmp_path,
    )
    try:
        yield World(core, ml, pipelines, clock)
    finally:
        await core.close()
        await store.close()


@pytest.fixture
async def world(store_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async for made in make_world(store_url, tmp_path):
        yield made


async def decide(world: World, who: str, decision: str, comment: str = "") -> Any:
    return await world.core.gatekeeper.decide(user(who), GATE, decision, comment, MODELS)


async def test_a_breaking_version_blocks_approve_until_overridden_with_a_reason(world: World) -> None:
    world.ml.register("8", BREAKING)
    assert await world.core.ingest.accept(registered())
    await world.until(lambda: world.pipelines.of("integrate-app-y"), "the integration started")

    # the integration got the new version, once
    assert world.pipelines.of("integrate-app-y") == [{"modelName": "model-x", "modelVersion": "8"}]
    # both teams' cards show the verdict, each difference named
    await world.until(lambda: world.core.store.get_card_state(APP_CARD), "the app card")
    model_card = await world.card_text(MODEL_CARD)
    assert "app-y (runs v6)" in model_card and "Breaking: input `age`: long \\u2192 string" in model_card
    app_card = await world.card(APP_CARD)
    assert app_card.title == "New model model-x:8 for app-y: breaking"
    assert ("Change", "input `age`: long → string") in [(f.label, f.value) for f in app_card.facts]
    app_state = await world.core.store.get_card_state(APP_CARD)
    assert app_state is not None and app_state.state["conversations"] == [["slack", RELEASES.conversation_id]]
    # the gate shows the verdict, and Approve is not offered
    gate_card = await world.card(GATE)
    assert [a.action_id for a in gate_card.actions] == ["override", "reject"]
    assert "Approve is blocked: app-y: breaking change (input `age`: long → string)" in gate_card.summary

    refused = await decide(world, "carol", "approve", "looks fine")
    assert not refused.accepted and refused.message.startswith("Approve is blocked: app-y: breaking change")
    assert "release-managers may override it with a reason" in refused.message
    assert not (await decide(world, "alice", "override", "I trained it")).accepted  # not in an override role
    no_reason = await decide(world, "carol", "override", " ")
    assert not no_reason.accepted and "needs a reason" in no_reason.message
    gate = await world.core.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.PENDING
    assert world.pipelines.of("release-app-y") == []

    overridden = await decide(world, "carol", "override", "app-y sends age as text since 2.3")
    assert overridden.accepted
    gate = await world.core.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.APPROVED
    assert world.pipelines.of("release-app-y") == [{"ring": "prod", "modelName": "model-x", "modelVersion": "8"}]
    assert world.ml.tagged == [
        (
            "model-x",
            "8",
            {
                "approved": "true",
                "approved_by": "carol@contoso.com",
                "override_reason": "app-y sends age as text since 2.3",
            },
        )
    ]
    audit = [e for e in await world.core.store.list_audit() if e.action == "override" and e.outcome == "applied"]
    assert [(e.actor, e.comment) for e in audit] == [("carol@contoso.com", "app-y sends age as text since 2.3")]
    final = await world.card(GATE)
    assert final.actions == ()
    # people are named as chat names them, though their decisions, the audit and Azure ML keep their email
    shown = [(f.label, f.value) for f in final.facts]
    assert ("Overridden by", "Carol Diaz: app-y sends age as text since 2.3") in shown
    assert ("Decided by", "Carol Diaz") in shown


async def test_a_compatible_version_waits_for_its_integration_then_is_released_once(world: World) -> None:
    world.ml.register("8", ADDITIVE)
    await world.core.ingest.accept(registered())
    await world.until(lambda: world.pipelines.of("integrate-app-y"), "the integration started")
    await world.until(lambda: _integration_state(world, "queued", "running"), "the integration recorded")
    waiting = await decide(world, "carol", "approve")
    assert not waiting.accepted and "app-y: integration not finished" in waiting.message

    world.pipelines.finish("101", "succeeded")
    await world.until(lambda: _integration_state(world, "completed"), "the integration finished")
    assert (await world.gate_details())["blockers"] == []

    async def offers_approve() -> bool:  # the card follows the gate through ingest, a moment later
        return [a.action_id for a in (await world.card(GATE)).actions] == ["approve", "reject"]

    await world.until(offers_approve, "the gate card offers Approve")
    card = await world.card(GATE)
    assert ("app-y integration", "integrate-app-y 20261128.1: passed") in [(f.label, f.value) for f in card.facts]
    model_card = await world.card_text(MODEL_CARD)
    assert "Additive: input `region`: added (optional)" in model_card

    results = await asyncio.gather(*(decide(world, "carol", "approve", "green") for _ in range(10)))
    assert sum(r.accepted for r in results) == 1
    assert world.pipelines.of("release-app-y") == [{"ring": "prod", "modelName": "model-x", "modelVersion": "8"}]
    assert [t[:2] for t in world.ml.tagged] == [("model-x", "8")]
    gate = await world.core.store.get_gate(GATE)
    assert gate is not None and gate.details["release_run"]["run_id"] == "102" and gate.details["applied"] is True


async def _integration_passed(world: World) -> None:
    """Version 8 (like version 7) registered, and app-y's integration of it passed."""
    world.ml.register("8", V7)
    await world.core.ingest.accept(registered())
    await world.until(lambda: world.pipelines.of("integrate-app-y"), "the integration started")
    world.pipelines.finish("101", "succeeded")
    await world.until(lambda: _integration_state(world, "completed"), "the integration finished")
    await world.until(lambda: _told_all_of_run(world, "101"), "the cards told the outcome")


async def _told_all_of_run(world: World, run_id: str) -> bool:
    """Handoff has told all of how the integration run it started ended. The gate's evidence changes first,
    then the cards follow, each in its own transaction, and the run is marked ended last."""
    runs = await world.core.store.list_command_runs("app-y")
    return any(run.backend_run_id == run_id and run.state.ended for run in runs)


async def _integration_state(world: World, *states: str) -> bool:
    gate = await world.core.store.get_gate(GATE)
    return gate is not None and gate.details["apps"]["app-y"]["integration"]["state"] in states


async def test_a_failed_integration_blocks_approve_and_is_reported_on_both_cards(world: World) -> None:
    await _failed_then(world)
    refused = await decide(world, "carol", "approve")
    assert not refused.accepted
    assert "app-y: integration integrate-app-y 20261128.1: failed at Integration tests" in refused.message
    assert (await world.gate_details())["apps"]["app-y"]["verdict"] == "compatible"
    app_card = await world.card(APP_CARD)
    assert app_card.status.value == "failed"
    model_state = await world.core.store.get_card_state(MODEL_CARD)
    assert model_state is not None
    assert "app-y integration: integrate-app-y 20261128.1: failed at Integration tests" in json.dumps(
        [f"{f.label}: {f.value}" for f in render(model_state.state).facts]
    )


def models_channel_follows_integration_runs(config: dict[str, Any]) -> None:
    """Azure DevOps connected, and #ml-models following the integration runs too (#app-releases does not)."""
    config["azure_devops"] = {
        "organization_url": "https://dev.azure.com/Contoso",
        "projects": ["mlops"],
        "pat": "${ADO_PAT}",
        "service_hooks": {"basic": {"username": "hooks", "password": "${HOOK_PASSWORD}"}},
    }
    config["subscriptions"].append({"channel": "ml-models", "events": ["run"], "pipelines": ["integrate-*"]})


@pytest.fixture
async def runs_world(store_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async for made in make_world(store_url, tmp_path, models_channel_follows_integration_runs):
        yield made


async def test_a_failed_integration_is_told_once_where_the_runs_own_card_tells_it(runs_world: World) -> None:
    world = runs_world
    world.ml.register("8", V7)
    await world.core.ingest.accept(registered())
    await world.until(lambda: _integration_state(world, "queued", "running"), "the integration started")
    run = PipelineRef(
        organization="contoso",
        project="mlops",
        pipeline_id="2",
        pipeline_name="integrate-app-y",
        run_id="101",
        run_name="20261128.1",
    )
    # Azure DevOps' event shows the run's card in #ml-models
    started = RunStateChanged(
        source="azure-devops", event_id="run-101-on", occurred_at=T0, scope="contoso", run=run, state="inProgress"
    )
    assert await world.core.ingest.accept(started)
    await delivered(world.core.store)  # type: ignore[arg-type]  # the cards are posted before the run fails
    world.pipelines.finish("101", "failed", "Integration tests")

    async def told() -> bool:
        state = await world.core.store.get_card_state(APP_CARD)
        run_card = await world.core.store.get_card_state(run.run_key)
        return (
            state is not None
            and state.state["check"]["integration"]["state"] == "completed"
            and run_card is not None
            and run_card.state["state"] == "completed"
        )

    await world.until(told, "the cards told of the failure")
    deliveries = await delivered(world.core.store)  # type: ignore[arg-type]
    failed = "integrate-app-y 20261128.1: failed at Integration tests"
    # #ml-models shows the run's card, which tells the failure itself (Handoff polls the run it started): the
    # model card, which shows it too, tells no one again, in its thread or in the channel
    assert broadcasts_to(deliveries, MODELS) == [("integrate-app-y 20261128.1 failed in stage Integration tests", True)]
    model_card = await world.card(MODEL_CARD)
    assert ("app-y integration", failed) in [(f.label, f.value) for f in model_card.facts]
    # #app-releases shows no card of the run: the handoff card's reply shows in the channel too, as before
    assert broadcasts_to(deliveries, RELEASES) == [(f"Integration {failed}", True)]


async def test_a_version_without_a_signature_is_unknown_never_compatible(world: World) -> None:
    world.ml.register("8", None)
    await world.core.ingest.accept(registered())
    await world.until(lambda: world.core.store.get_card_state(APP_CARD), "the app card")
    details = await world.gate_details()
    assert details["apps"]["app-y"]["verdict"] == "unknown"
    assert details["apps"]["app-y"]["differences"] == ["model-x:8 has no signature"]
    assert (await world.card(APP_CARD)).title == "New model model-x:8 for app-y: unknown"


async def test_a_redelivered_registration_starts_one_integration_and_opens_one_gate(world: World) -> None:
    world.ml.register("8", V7)
    await asyncio.gather(world.core.ingest.accept(registered()), world.core.ingest.accept(registered()))
    await world.core.ingest.accept(registered())
    # the same registration announced again under another id (another replica, or a crash before recording)
    await world.core.model_handoff.hand_off(registered(event_id="evt-8-again"))  # type: ignore[union-attr]
    await world.until(lambda: world.pipelines.of("integrate-app-y"), "the integration started")
    for _ in range(5):
        await world.clock.advance(1)
        await asyncio.sleep(0.01)
    assert len(world.pipelines.of("integrate-app-y")) == 1
    assert [g.gate_id for g in await world.core.store.list_gates()] == [GATE]


async def test_an_integration_that_cannot_start_blocks_the_gate(world: World) -> None:
    world.ml.register("8", V7)
    world.pipelines.refuse_next.append(ServiceRefused("pipeline integrate-app-y is disabled"))
    await world.core.ingest.accept(registered())
    await world.until(lambda: _integration_state(world, "error"), "the failure recorded")
    assert (await world.gate_details())["blockers"] == [
        "app-y: integration could not start: pipeline integrate-app-y is disabled"
    ]


async def test_an_integration_whose_start_went_unanswered_is_not_said_to_have_failed_to_start(world: World) -> None:
    world.ml.register("8", V7)
    lost = ServiceUnavailable("Azure DevOps did not answer (connection reset)", may_have_acted=True)
    world.pipelines.refuse_next.append(lost)
    await world.core.ingest.accept(registered())
    await world.until(lambda: _integration_state(world, "error"), "the outcome recorded")
    assert (await world.gate_details())["blockers"] == [
        "app-y: integration not known whether it started (Azure DevOps did not answer (connection reset)): "
        "see integrate-app-y's runs in Azure DevOps"
    ]


async def test_azure_devops_run_events_finish_an_integration_the_gate_waits_for(world: World) -> None:
    world.ml.register("8", V7)
    assert world.core.model_handoff is not None
    world.core.model_handoff.poll_interval = 10_000  # only Azure DevOps' event can finish it here
    await world.core.ingest.accept(registered())
    await world.until(lambda: _integration_state(world, "queued"), "the integration started")
    run = PipelineRef(
        organization="contoso", project="mlops", pipeline_id="2", pipeline_name="integrate-app-y", run_id="101"
    )
    done = RunStateChanged(
        source="azure-devops",
        event_id="run-101-done",
        occurred_at=T0,
        scope="contoso",
        run=run,
        state="completed",
        result="succeeded",
    )
    await world.core.ingest.accept(done)
    await world.until(lambda: _integration_state(world, "completed"), "the integration finished")
    assert (await world.gate_details())["blockers"] == []


async def test_an_integration_older_than_the_poll_limit_is_no_longer_polled_and_its_gate_waits(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.ml.register("8", V7)
    handoff = world.core.model_handoff
    assert handoff is not None
    handoff.poll_interval = 10_000  # the run's own watch polls rarely
    await world.core.ingest.accept(registered())
    await world.until(lambda: _integration_state(world, "queued"), "the integration started")
    world.pipelines.deleted.add("101")  # the run was deleted in Azure DevOps: every poll is refused
    await world.clock.advance(handoff.poll_limit.total_seconds() - 3600)
    world.pipelines.status_asked.clear()
    await handoff.sweep()
    assert world.pipelines.status_asked == ["101"]  # within the limit: asked once a sweep

    await world.clock.advance(3 * 24 * 3600)  # days later
    world.pipelines.status_asked.clear()
    with caplog.at_level(logging.WARNING, logger="handoff.model_handoff"):
        await handoff.sweep()
        await handoff.sweep()
    assert world.pipelines.status_asked == []
    # the gate waits, showing the integration as last recorded; the log says so once
    gate = await world.core.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.PENDING
    assert (await world.integration())["state"] == "queued"
    [logged] = [r.getMessage() for r in caplog.records if "no longer polled" in r.getMessage()]
    assert logged.startswith("integration 101 of app-y for gate ") and logged.endswith("showing it queued")


async def test_a_release_that_azure_devops_could_not_start_is_started_once_by_the_sweep(world: World) -> None:
    await _integration_passed(world)
    world.pipelines.refuse_next.append(ServiceUnavailable("503"))
    result = await decide(world, "carol", "approve")
    assert result.accepted and "Handoff will start the release when it does" in result.message
    assert world.pipelines.of("release-app-y") == []
    # the click let go of its claim when Azure DevOps did not answer: the next sweeps, on any replica, start it once
    await asyncio.gather(world.core.gatekeeper.sweep(), world.core.gatekeeper.sweep())
    await world.core.gatekeeper.sweep()
    assert len(world.pipelines.of("release-app-y")) == 1
    assert len(world.ml.tagged) == 1


LOST = "The connection to Azure DevOps dropped before it answered"
NOT_KNOWN = (
    "Azure DevOps did not say whether it started release-app-y: Handoff looks for the run there, and starts the "
    "release only if it did not."
)


async def test_a_release_whose_start_answer_was_lost_is_found_by_the_sweep_and_never_started_twice(
    world: World,
) -> None:
    """Azure DevOps queued the release, and the answer was lost: the sweep finds that run and takes it as the
    release (its cards, `runs`, the tag), and never starts a second one."""
    await _integration_passed(world)
    world.pipelines.lose_answers.append(ServiceUnavailable(LOST, may_have_acted=True))
    result = await decide(world, "carol", "approve", "green")
    assert result.accepted and result.message == f"Approved. {NOT_KNOWN}"
    assert len(world.pipelines.of("release-app-y")) == 1 and world.ml.tagged == []
    assert await _gate_note(world, NOT_KNOWN)
    [release] = [r for r in await world.core.store.list_command_runs() if r.command.startswith("release")]
    assert (release.state.value, release.backend_run_id, release.details["start_unknown"]) == ("requested", None, True)
    chat = world.core.chat
    listed = (await chat.on_command(CommandRequest(user("bob"), RELEASES, "runs app-y"))).text
    assert "not known whether it started, look at the runs of the pipeline release-app-y" in listed

    await asyncio.gather(world.core.gatekeeper.sweep(), world.core.gatekeeper.sweep())
    await world.core.gatekeeper.sweep()
    assert world.pipelines.of("release-app-y") == [{"ring": "prod", "modelName": "model-x", "modelVersion": "8"}]
    assert [t[:2] for t in world.ml.tagged] == [("model-x", "8")]
    release = await world.core.store.get_command_run(release.id or 0)  # type: ignore[assignment]
    assert release is not None and (release.state.value, release.backend_run_id) == ("started", "102")
    assert not {"start_unknown", "error", "tried_at"} & set(release.details)
    details = await world.gate_details()
    assert (details["applied"], details["release_run"]["run_id"], details["release_run"]["name"]) == (
        True,
        "102",
        "20261128.2",
    )
    assert await _gate_note(world, f"Started release-app-y 20261128.2 with model-x:8 (run {release.id}).")
    listed = (await chat.on_command(CommandRequest(user("bob"), RELEASES, "runs app-y"))).text
    assert "by Carol Diaz, started, Azure DevOps run [release-app-y 20261128.2]" in listed
    await world.clock.advance(10 * 60)
    await world.core.gatekeeper.sweep()
    assert len(world.pipelines.of("release-app-y")) == 1


async def test_a_release_whose_lost_start_azure_devops_did_not_take_is_started_once_after_looking_for_it(
    world: World,
) -> None:
    """The answer to the release's start was lost and Azure DevOps did not queue it: the sweep starts it only
    once it has looked for it for a while, and never while Azure DevOps cannot be asked."""
    await _integration_passed(world)
    world.pipelines.refuse_next.append(ServiceUnavailable("Azure DevOps did not answer in time", may_have_acted=True))
    result = await decide(world, "carol", "approve", "green")
    assert result.accepted and result.message == f"Approved. {NOT_KNOWN}"
    keeper = world.core.gatekeeper
    await keeper.sweep()  # not there yet: it may still show up
    assert world.pipelines.of("release-app-y") == [] and len(world.pipelines.listed) == 1
    await world.clock.advance(keeper.release_looked_for.total_seconds())
    world.pipelines.listings_fail.append(ServiceUnavailable("Azure DevOps is unreachable"))
    await keeper.sweep()  # Azure DevOps cannot be asked: it waits
    assert world.pipelines.of("release-app-y") == [] and world.ml.tagged == []
    assert await _gate_note(world, NOT_KNOWN)
    await keeper.sweep()
    await keeper.sweep()
    assert world.pipelines.of("release-app-y") == [{"ring": "prod", "modelName": "model-x", "modelVersion": "8"}]
    assert [t[:2] for t in world.ml.tagged] == [("model-x", "8")]
    assert (await world.gate_details())["release_run"]["run_id"] == "102"


async def test_a_release_canceled_while_its_start_is_on_its_way_is_canceled_there_once_its_answer_is_lost(
    world: World,
) -> None:
    """carol cancels the release while Azure DevOps is still taking its start, whose answer is then lost: Handoff
    looks for the run that start queued, cancels it, and never starts the release again; the click that approved it
    and the gate's card say carol canceled it."""
    await _integration_passed(world)
    answers: list[str] = []

    async def cancel_meanwhile() -> None:
        [release] = [r for r in await world.core.store.list_command_runs() if r.command.startswith("release")]
        asked = CommandRequest(user("carol"), RELEASES, f"cancel {release.id}")
        answers.append((await world.core.chat.on_command(asked)).text)

    world.pipelines.while_starting = cancel_meanwhile
    world.pipelines.lose_answers.append(ServiceUnavailable(LOST, may_have_acted=True))
    result = await decide(world, "carol", "approve", "green")
    [release] = [r for r in await world.core.store.list_command_runs() if r.command.startswith("release")]
    assert answers == [
        f"Canceled run {release.id} (`release app-y model=model-x:8`). Handoff will not start release-app-y for it. "
        "Azure DevOps may have started it, though its answer was lost: Handoff looks for that run and cancels it if "
        "it finds it."
    ]
    canceled = f"Release canceled by Carol Diaz: Azure DevOps had started release-app-y 20261128.2 (run {release.id}), "
    canceled += "and Handoff canceled it."
    assert result.accepted and result.message == f"Approved. {canceled}"
    assert world.pipelines.canceled == ["102"] and len(world.pipelines.of("release-app-y")) == 1
    assert (release.state.value, release.backend_run_id) == ("canceled", "102")
    assert not {"start_unknown", "cancel_pending"} & set(release.details)
    assert await _gate_note(world, canceled)
    await world.clock.advance(10 * 60)
    await world.core.gatekeeper.sweep()
    assert len(world.pipelines.of("release-app-y")) == 1 and world.ml.tagged == []
    assert await _gate_note(world, canceled)


async def test_a_release_azure_devops_refuses_to_start_leaves_the_gate_waiting(world: World) -> None:
    await _integration_passed(world)
    world.pipelines.refuse_next.append(ServiceRefused("Pipeline release-app-y is disabled."))
    result = await decide(world, "carol", "approve", "green")
    why = "Azure DevOps refused to start release-app-y: Pipeline release-app-y is disabled."
    assert not result.accepted and result.message == f"Your approval was not applied: {why}"
    # nothing was released or tagged: the gate waits again, without carol's approval
    assert world.pipelines.of("release-app-y") == [] and world.ml.tagged == []
    gate = await world.core.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.PENDING
    assert await world.core.store.gate_decisions(GATE) == []
    card = await world.card(GATE)
    assert [a.action_id for a in card.actions] == ["approve", "reject"]
    assert card.summary.startswith(f"The approval by Carol Diaz was not applied: {why}")
    assert "Decided by" not in [f.label for f in card.facts]
    await world.clock.advance(11 * 60)
    await world.core.gatekeeper.sweep()  # a refused approval is never sent again
    assert world.pipelines.of("release-app-y") == []
    assert [(e.action, e.outcome) for e in await world.core.store.list_audit() if "approve" in e.action] == [
        ("approve", "refused by Azure DevOps: Pipeline release-app-y is disabled.")
    ]

    again = await decide(world, "carol", "approve", "enabled it")
    assert again.accepted
    await world.core.gatekeeper.sweep()
    assert world.pipelines.of("release-app-y") == [{"ring": "prod", "modelName": "model-x", "modelVersion": "8"}]
    assert len(world.ml.tagged) == 1
    assert (await world.card(GATE)).title == "Promotion of model-x:8"


async def test_a_rejected_promotion_starts_nothing(world: World) -> None:
    world.ml.register("8", BREAKING)
    await world.core.ingest.accept(registered())
    await world.until(lambda: world.core.store.get_gate(GATE), "the gate")
    result = await decide(world, "carol", "reject", "age must stay numeric")
    assert result.accepted
    assert world.pipelines.of("release-app-y") == [] and world.ml.tagged == []


@pytest.fixture
async def pinned_world(store_url: str, tmp_path: Path) -> AsyncIterator[World]:
    contract = {
        "type": "object",
        "properties": {"age": {"type": "integer"}, "income": {"type": "number"}},
        "required": ["age", "income"],
    }
    (tmp_path / "app-y.contract.json").write_text(json.dumps(contract))
    async for made in make_world(store_url, tmp_path, pinned_version="6", contract_file="app-y.contract.json"):
        yield made


async def test_a_pinned_version_and_a_contract_file_are_both_checked(pinned_world: World) -> None:
    world = pinned_world
    world.ml.register("7", {**V7, "inputs": [*V7["inputs"], {"name": "tenure", "type": "long"}]})
    world.ml.register("8", {**V7, "inputs": [*V7["inputs"], {"name": "tenure", "type": "long"}]})
    await world.core.ingest.accept(registered())
    await world.until(lambda: world.core.store.get_card_state(APP_CARD), "the app card")
    check = (await world.gate_details())["apps"]["app-y"]
    assert (check["baseline"], check["baseline_source"]) == ("6", "pinned")
    assert check["contract"] == "app-y's contract (app-y.contract.json)"
    assert check["verdict"] == "breaking"
    # the contract declares no outputs: the version declaring its own is no change to app-y
    assert check["differences"] == ["input `tenure`: added (required)"]


async def test_diff_and_status_commands(world: World) -> None:
    world.ml.register("8", BREAKING)
    chat = world.core.chat

    async def ask(text: str) -> str:
        return (await chat.on_command(CommandRequest(user("bob"), RELEASES, text))).text

    assert await ask("diff model-x:7 model-x:8") == "model-x:7 → model-x:8: **breaking**\n• input `age`: long → string"
    assert await ask("diff model-x:6 7") == "model-x:6 → model-x:7: **compatible**\n• the signatures are the same"
    assert await ask("diff model-x:7 model-x:9") == "Azure ML has no version 9 of model model-x."
    status = await ask("status model-x")
    assert status.splitlines() == [
        "The latest version of model-x is 8.",
        "• app-y runs v6 (latest approved); model-x:8 is breaking: input `age`: long → string",
    ]
    assert "model-x: app-y" in await ask("status")
    assert "There is no model called `model-z`" in await ask("status model-z")


async def test_an_override_of_an_azure_devops_gate_is_refused_and_nothing_reaches_azure_devops(world: World) -> None:
    # no Override button is drawn there, and nothing of Handoff's blocks such a gate: Approve's rules apply
    await world.core.ingest.accept(pending(requester="erin"))
    result = await world.core.gatekeeper.decide(user("carol"), AZURE_DEVOPS_GATE, "override", "hotfix", RELEASES)
    assert not result.accepted
    assert result.message == "Nothing blocks this gate: Approve it instead."
    assert world.pipelines.decided == []


# --- a newer version supersedes the older ones waiting for promotion ----------------------------------------


def gate_of(version: str) -> str:
    return promotion_gate_id("model-x", version)


async def hand_off_in_turn(world: World, *versions: str) -> None:
    """Register each version in turn (each like version 7), each handed off before the next is registered."""
    for version in versions:
        world.ml.register(version, V7)
        assert await world.core.ingest.accept(registered(version, event_id=f"evt-{version}"))
        await world.until(lambda v=version: integration_run(world, v), f"model-x:{version} handed off")


def integration_run(world: World, version: str) -> str | None:
    """The id of the integration run Handoff started for ``version``; None before it started one."""
    started = world.pipelines.started
    runs = [
        i for i, (_, name, _, p) in enumerate(started) if name == "integrate-app-y" and p["modelVersion"] == version
    ]
    return str(101 + runs[0]) if runs else None  # (FakePipelines numbers runs from 101, in the order started)


async def state_of(world: World, version: str) -> GateState:
    gate = await world.core.store.get_gate(gate_of(version))
    assert gate is not None, f"no gate for model-x:{version}"
    return gate.state


async def decide_on(world: World, version: str, who: str, decision: str, comment: str = "") -> Any:
    return await world.core.gatekeeper.decide(user(who), gate_of(version), decision, comment, MODELS)


async def test_a_newer_version_supersedes_the_waiting_promotions_of_older_ones_so_none_rolls_back(
    world: World,
) -> None:
    await hand_off_in_turn(world, "8", "9", "10", "11", "12")

    # each older version's gate was superseded by the next as it arrived; model-x:12 waits
    assert [await state_of(world, v) for v in ("8", "9", "10", "11", "12")] == [GateState.SUPERSEDED] * 4 + [
        GateState.PENDING
    ]
    for older, newer in (("8", "9"), ("9", "10"), ("10", "11"), ("11", "12")):
        card = await world.card(gate_of(older))
        assert card.title == f"Promotion of model-x:{older}: superseded by model-x:{newer}"
        assert card.actions == ()  # no buttons left
        assert f"model-x:{newer} is newer and has its own promotion gate" in card.summary
        assert Link(f"model-x:{newer} in Azure ML", f"https://ml.azure.com/model/model-x:{newer}") in card.links
    assert [a.action_id for a in (await world.card(gate_of("12"))).actions] == ["override", "reject"]
    # each thread is told once; the audit log records each, once
    replies = broadcasts_to(await delivered(world.core.store), MODELS)  # type: ignore[arg-type]
    assert sorted(t for t, _ in replies if t.startswith("Superseded")) == [
        "Superseded by model-x:10",
        "Superseded by model-x:11",
        "Superseded by model-x:12",
        "Superseded by model-x:9",
    ]
    audit = [(e.actor, e.target, e.outcome) for e in await world.core.store.list_audit() if e.action == "supersede"]
    assert sorted(audit) == sorted(
        ("Handoff", f"gate {gate_of(older)} (Promote model-x:{older})", f"superseded by model-x:{newer}")
        for older, newer in (("8", "9"), ("9", "10"), ("10", "11"), ("11", "12"))
    )
    # approvals lists model-x:12 alone
    listed = (await world.core.chat.on_command(CommandRequest(user("carol"), MODELS, "approvals"))).text
    assert "Promote model-x:12" in listed and listed.count("Promote model-x:") == 1

    # a click on model-x:9's card is answered: the gate to decide is model-x:12's
    early = await decide_on(world, "9", "carol", "approve")
    assert not early.accepted and early.message == (
        "Thanks, but model-x:9 was superseded by model-x:10 and later versions: model-x:12 is the latest, with its "
        "own promotion gate; decide on that one. Nothing is released or tagged for model-x:9."
    )

    # model-x:12's integration passes and carol approves it: the release gets model-x:12
    world.pipelines.finish(integration_run(world, "12") or "", "succeeded")
    await world.until(lambda: _no_blockers(world, "12"), "model-x:12's integration passed")
    assert (await decide_on(world, "12", "carol", "approve")).accepted
    # a click on model-x:8's card afterwards is answered politely, and nothing rolls production back
    late = await decide_on(world, "8", "carol", "approve", "ship it")
    assert not late.accepted
    assert late.message == (
        "Thanks, but model-x:8 was superseded by model-x:9 and later versions: model-x:12 is the latest, with its "
        "own promotion gate; it was approved. Nothing is released or tagged for model-x:8."
    )
    assert late.card is not None and late.card.actions == ()
    assert world.pipelines.of("release-app-y") == [{"ring": "prod", "modelName": "model-x", "modelVersion": "12"}]
    assert [t[:2] for t in world.ml.tagged] == [("model-x", "12")]
    assert await state_of(world, "8") is GateState.SUPERSEDED
    clicks = [(e.target, e.outcome) for e in await world.core.store.list_audit() if e.action == "approve"]
    assert clicks[-1] == (f"gate {gate_of('8')} (Promote model-x:8)", "refused: superseded by model-x:9")


@pytest.mark.parametrize("may_have_acted", [False, True], ids=["turned-away", "answer-lost"])
async def test_a_release_retried_after_a_newer_versions_release_is_never_started(
    world: World, may_have_acted: bool
) -> None:
    """model-x:8 was approved while Azure DevOps did not answer, and model-x:9 approved and released since: the
    sweep's retry of model-x:8's release would roll model-x:9 back, so it does not start it, and its run (in
    `runs`) ends as not started, whether or not its first start's answer was lost."""
    await _integration_passed(world)  # model-x:8
    world.pipelines.refuse_next.append(
        ServiceUnavailable("Azure DevOps is not answering", may_have_acted=may_have_acted)
    )
    assert (await decide(world, "carol", "approve", "green")).accepted
    assert world.pipelines.of("release-app-y") == []  # to be started when Azure DevOps answers
    await hand_off_in_turn(world, "9")
    world.pipelines.finish(integration_run(world, "9") or "", "succeeded")
    await world.until(lambda: _no_blockers(world, "9"), "model-x:9's integration passed")
    assert (await decide_on(world, "9", "carol", "approve")).accepted

    await world.clock.advance(11 * 60)  # the claim on applying model-x:8's approval lapsed: the sweep retries it
    await world.core.gatekeeper.sweep()
    await world.core.gatekeeper.sweep()
    assert world.pipelines.of("release-app-y") == [{"ring": "prod", "modelName": "model-x", "modelVersion": "9"}]
    assert [t[:2] for t in world.ml.tagged] == [("model-x", "9")]
    assert await state_of(world, "8") is GateState.SUPERSEDED
    card = await world.card(gate_of("8"))
    assert card.title == "Promotion of model-x:8: superseded by model-x:9" and card.actions == ()
    outcomes = [e.outcome for e in await world.core.store.list_audit() if e.target.startswith(f"gate {gate_of('8')}")]
    assert "refused: model-x:9 released since" in outcomes and "superseded by model-x:9" in outcomes
    runs = await world.core.store.list_command_runs()
    [release_8] = [r for r in runs if r.command.startswith("release") and r.details.get("version") == "8"]
    assert release_8.state is CommandRunState.FAILED and release_8.backend_run_id is None
    assert (
        release_8.details["error"]
        == "model-x:9, a newer version, was released since, so release-app-y was not started."
    )
    assert "start_unknown" not in release_8.details


async def _no_blockers(world: World, version: str) -> bool:
    gate = await world.core.store.get_gate(gate_of(version))
    return gate is not None and gate.details["blockers"] == []


async def test_versions_are_compared_as_numbers_and_a_late_older_one_never_supersedes_a_newer(world: World) -> None:
    await hand_off_in_turn(world, "9", "10")
    assert [await state_of(world, v) for v in ("9", "10")] == [GateState.SUPERSEDED, GateState.PENDING]
    # model-x:8's registration arrives late, and model-x:10's again: model-x:10 still waits, model-x:8 is
    # superseded by it at once
    await hand_off_in_turn(world, "8")
    await world.core.model_handoff.hand_off(registered("10", event_id="evt-10-again"))  # type: ignore[union-attr]
    assert [await state_of(world, v) for v in ("8", "9", "10")] == [
        GateState.SUPERSEDED,
        GateState.SUPERSEDED,
        GateState.PENDING,
    ]
    late = await world.card(gate_of("8"))
    assert late.title == "Promotion of model-x:8: superseded by model-x:10" and late.actions == ()
    assert [a.action_id for a in (await world.card(gate_of("10"))).actions] == ["override", "reject"]
    audit = [e.target for e in await world.core.store.list_audit() if e.action == "supersede"]
    assert sorted(audit) == [f"gate {gate_of('8')} (Promote model-x:8)", f"gate {gate_of('9')} (Promote model-x:9)"]


async def test_an_approved_promotion_is_not_superseded_and_a_later_older_one_may_not_roll_it_back(
    world: World,
) -> None:
    await _integration_passed(world)  # model-x:8
    assert (await decide(world, "carol", "approve", "green")).accepted
    await hand_off_in_turn(world, "9")
    # model-x:8 was approved and released: it stays so, and model-x:9 waits for its own decision
    assert [await state_of(world, v) for v in ("8", "9")] == [GateState.APPROVED, GateState.PENDING]
    assert (await world.card(GATE)).title == "Promotion of model-x:8"
    # model-x:7's registration comes only now: approving it would release an older version than model-x:8
    await hand_off_in_turn(world, "7")
    assert await state_of(world, "7") is GateState.SUPERSEDED
    superseded = await world.core.store.get_gate(gate_of("7"))
    assert superseded is not None and superseded.details["superseded_by"]["version"] == "9"
    assert world.pipelines.of("release-app-y") == [{"ring": "prod", "modelName": "model-x", "modelVersion": "8"}]
    assert [e.target for e in await world.core.store.list_audit() if e.action == "supersede"] == [
        f"gate {gate_of('7')} (Promote model-x:7)"
    ]


async def test_a_click_racing_a_newer_version_either_releases_the_older_one_or_finds_it_superseded_once(
    world: World,
) -> None:
    await _integration_passed(world)  # model-x:8, ready to approve
    gatekeeper = world.core.gatekeeper

    async def newer_version_opens() -> None:
        """model-x:9's gate opens, and several replicas supersede what it puts out of date at once."""
        newer = await gatekeeper.open_promotion_gate(
            model="model-x",
            version="9",
            release={"project": "mlops", "pipeline": "release-app-y", "parameters": {"ring": "prod"}},
            policy="model-promotion",
            evidence={"apps": {}, "blockers": []},
        )
        assert newer is not None
        await asyncio.gather(*(gatekeeper.supersede_older_promotions(newer) for _ in range(5)))

    clicks = await asyncio.gather(*(decide(world, "carol", "approve") for _ in range(5)), newer_version_opens())
    approved = [r for r in clicks[:5] if r is not None and r.accepted]
    released = world.pipelines.of("release-app-y")
    superseded = [e for e in await world.core.store.list_audit() if e.action == "supersede"]
    # exactly one of the two happened, once
    if await state_of(world, "8") is GateState.APPROVED:
        assert (len(approved), superseded) == (1, [])
        assert released == [{"ring": "prod", "modelName": "model-x", "modelVersion": "8"}]
    else:
        assert await state_of(world, "8") is GateState.SUPERSEDED
        assert (approved, len(superseded), released, world.ml.tagged) == ([], 1, [], [])
    assert await state_of(world, "9") is GateState.PENDING


async def test_approving_an_older_version_while_a_newer_one_waits_is_refused(world: World) -> None:
    """Gates opened before Handoff superseded them (or before its pass reached them): the click finds the
    newer one waiting, supersedes the older gate and says so."""
    await _integration_passed(world)  # model-x:8, ready to approve
    await world.core.gatekeeper.open_promotion_gate(
        model="model-x",
        version="9",
        release={"project": "mlops", "pipeline": "release-app-y", "parameters": {"ring": "prod"}},
        policy="model-promotion",
        evidence={"apps": {}, "blockers": [], "model_url": "https://ml.azure.com/model/model-x:9"},
    )
    assert await state_of(world, "8") is GateState.PENDING
    refused = await decide(world, "carol", "approve", "green")
    assert not refused.accepted
    assert refused.message == (
        "Thanks, but model-x:8 was superseded by model-x:9, a newer version with its own promotion gate: decide "
        "on that one. Nothing is released or tagged for model-x:8."
    )
    assert await state_of(world, "8") is GateState.SUPERSEDED
    assert world.pipelines.of("release-app-y") == [] and world.ml.tagged == []
    card = await world.card(GATE)
    assert card.title == "Promotion of model-x:8: superseded by model-x:9" and card.actions == ()
    assert [(e.actor, e.action, e.outcome) for e in await world.core.store.list_audit() if e.action != "command"][
        -2:
    ] == [
        ("Handoff", "supersede", "superseded by model-x:9"),
        ("carol@contoso.com", "approve", "refused: superseded by model-x:9"),
    ]


# --- reminders: each waiting gate by its own gate policy -------------------------------------------------------


async def reminders(world: World) -> list[tuple[str, str]]:
    """Take every due delivery off the outbox; the (gate, conversation) of each reminder among them."""
    found = []
    later = world.clock.now() + timedelta(days=30)
    while claimed := await world.core.store.claim_deliveries("test", later, timedelta(seconds=1), 1000):
        for delivery in claimed:
            title = str((delivery.payload.get("card") or {}).get("title", ""))
            if delivery.payload.get("op") == "reply" and title.startswith("Still waiting for approval"):
                found.append((delivery.grouping_key, delivery.conversation.conversation_id))
            await world.core.store.complete_delivery(delivery.id, "test")
    return sorted(found)


async def remind_at(world: World, after: timedelta) -> list[tuple[str, str]]:
    """The reminders the housekeeping sends at ``after`` past T0."""
    await world.clock.advance((T0 + after - world.clock.now()).total_seconds())
    await world.core.gatekeeper.remind()
    return await reminders(world)


def approvals_in_app_releases(config: dict[str, Any]) -> None:
    config["subscriptions"].append({"channel": "app-releases", "events": ["approval"]})


async def open_both_gates(world: World) -> None:
    """model-x:8's promotion gate (shown in #ml-models) and an Azure DevOps approval (in #app-releases), opened
    within seconds of T0."""
    await _integration_passed(world)  # (its integration finished: nothing changes the gate meanwhile)
    await world.core.ingest.accept(pending(requester="erin"))
    assert await reminders(world) == []  # the gates' own cards


async def test_each_waiting_gate_is_reminded_at_its_own_policys_interval(store_url: str, tmp_path: Path) -> None:
    def tweak(config: dict[str, Any]) -> None:
        approvals_in_app_releases(config)
        config["gates"]["default"]["remind_every"] = "4h"
        config["gates"]["model-promotion"]["remind_every"] = "1h"

    async for world in make_world(store_url, tmp_path, tweak):
        await open_both_gates(world)
        # the promotion gate shows in #ml-models and, as an approval, in #app-releases
        promotion = [(GATE, RELEASES.conversation_id), (GATE, MODELS.conversation_id)]
        approval = [(AZURE_DEVOPS_GATE, RELEASES.conversation_id)]
        assert await remind_at(world, timedelta(minutes=59)) == []
        assert await remind_at(world, timedelta(minutes=61)) == promotion
        assert await remind_at(world, timedelta(minutes=120)) == []  # an hour after its last reminder, not before
        assert await remind_at(world, timedelta(minutes=122)) == promotion
        assert await remind_at(world, timedelta(minutes=239)) == promotion
        assert await remind_at(world, timedelta(minutes=241)) == approval


async def test_a_policy_without_remind_every_reminds_of_nothing_and_no_default_policy_is_needed(
    store_url: str, tmp_path: Path
) -> None:
    def tweak(config: dict[str, Any]) -> None:
        approvals_in_app_releases(config)
        del config["gates"]["default"]  # Azure DevOps approvals then follow the built-in policy: every 4 h
        config["gates"]["model-promotion"]["remind_every"] = None

    async for world in make_world(store_url, tmp_path, tweak):
        await open_both_gates(world)
        assert await remind_at(world, timedelta(hours=3, minutes=59)) == []
        assert await remind_at(world, timedelta(hours=4, minutes=1)) == [(AZURE_DEVOPS_GATE, RELEASES.conversation_id)]
        assert await remind_at(world, timedelta(hours=30)) == [(AZURE_DEVOPS_GATE, RELEASES.conversation_id)]


async def test_an_override_of_a_promotion_nothing_blocks_is_refused_and_approve_offered(world: World) -> None:
    await _integration_passed(world)
    assert (await world.gate_details())["blockers"] == []

    refused = await decide(world, "carol", "override", "ship it")
    assert not refused.accepted
    assert refused.message == "Nothing blocks this gate: Approve it instead."
    assert refused.card is not None and [a.action_id for a in refused.card.actions] == ["approve", "reject"]
    gate = await world.core.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.PENDING
    assert await world.core.store.gate_decisions(GATE) == []
    assert world.pipelines.of("release-app-y") == [] and world.ml.tagged == []
    [audit] = [e for e in await world.core.store.list_audit() if e.action == "override"]
    assert (audit.actor, audit.outcome, audit.comment) == ("carol@contoso.com", "refused: nothing blocks it", "ship it")

    approved = await decide(world, "carol", "approve", "ship it")
    assert approved.accepted
    assert world.ml.tagged == [("model-x", "8", {"approved": "true", "approved_by": "carol@contoso.com"})]
    shown = [f.label for f in (await world.card(GATE)).facts]
    assert "Overridden by" not in shown and "Decided by" in shown


async def test_a_promotion_gate_card_and_its_reminders_name_and_call_on_who_may_decide(
    store_url: str, tmp_path: Path
) -> None:
    def tweak(config: dict[str, Any]) -> None:
        config["roles"]["release-managers"]["members"] = ["carol@contoso.com", "dave@contoso.com"]
        config["gates"]["model-promotion"].update(min_approvers=2, expire_after="48h", remind_every="1h")

    async for world in make_world(store_url, tmp_path, tweak):
        await _integration_passed(world)
        card = await world.card(GATE)
        shown = [(f.label, f.value) for f in card.facts]
        assert ("Approvers", "carol@contoso.com, dave@contoso.com") in shown
        assert ("Approvals needed", "2") in shown
        assert ("Expires", "2026-11-30 09:00 UTC") in shown  # 48 h after it opened at T0
        assert [m.email for m in card.mentions] == ["carol@contoso.com", "dave@contoso.com"]

        assert (await decide(world, "carol", "approve", "green")).accepted  # 1 of 2
        await reminders(world)
        assert [m.email for m in (await world.card(GATE)).mentions] == ["dave@contoso.com"]
        await world.clock.advance(timedelta(hours=2).total_seconds())
        await world.core.gatekeeper.remind()
        called = []
        while claimed := await world.core.store.claim_deliveries("t", world.clock.now(), timedelta(seconds=1), 99):
            for delivery in claimed:
                if str(delivery.payload["card"]["title"]).startswith("Still waiting for approval"):
                    called.append([m["email"] for m in delivery.payload["card"]["mentions"]])
                await world.core.store.complete_delivery(delivery.id, "t")
        assert called == [["dave@contoso.com"]]  # in #ml-models, where the gate shows

        await world.clock.advance(timedelta(hours=47).total_seconds())  # nobody else decides: it expires
        await world.core.gatekeeper.sweep()
        expired = await world.card(GATE)
        assert expired.status is Status.EXPIRED
        assert ("Note", "Nothing was released or tagged (open until 2026-11-30 09:00 UTC).") in [
            (f.label, f.value) for f in expired.facts
        ]
        assert world.pipelines.of("release-app-y") == [] and world.ml.tagged == []


async def test_approvers_known_by_chat_id_are_called_on_by_it_counted_and_never_shown_raw(
    store_url: str, tmp_path: Path
) -> None:
    """release-managers: carol by email, erin by her Slack id and frank by his AAD object id. The gate calls
    on erin and frank by those ids and counts them among its approvers; once erin (whose decision is kept by
    her email) approved, neither the card nor its reminder calls on her again."""
    frank = "aad:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

    def tweak(config: dict[str, Any]) -> None:
        config["roles"]["release-managers"]["members"] = ["slack:UERIN", "carol@contoso.com", frank]
        config["gates"]["model-promotion"].update(min_approvers=2, remind_every="1h")

    async for world in make_world(store_url, tmp_path, tweak):
        await _integration_passed(world)
        card = await world.card(GATE)
        assert ("Approvers", "carol@contoso.com and 2 more approvers") in [(f.label, f.value) for f in card.facts]
        assert card.mentions == (
            Mention("carol@contoso.com", "carol@contoso.com"),
            Mention("", user_id=frank),
            Mention("", user_id="slack:UERIN"),
        )

        # someone outside the role is told who may decide: people, not the role's id
        refused = await decide(world, "bob", "approve")
        assert refused.message == (
            "You are not an approver of this gate. It can be decided by carol@contoso.com and 2 more approvers."
        )
        assert (await decide(world, "erin", "approve", "green")).accepted  # 1 of 2
        await reminders(world)
        waiting = await world.card(GATE)
        # erin is named now that her decision told her name
        assert ("Approvers", "carol@contoso.com, erin and 1 more approver") in [
            (f.label, f.value) for f in waiting.facts
        ]
        assert waiting.mentions == (Mention("carol@contoso.com", "carol@contoso.com"), Mention("", user_id=frank))
        await world.clock.advance(timedelta(hours=2).total_seconds())
        await world.core.gatekeeper.remind()
        sent = []
        while claimed := await world.core.store.claim_deliveries("t", world.clock.now(), timedelta(seconds=1), 99):
            sent += [d.payload["card"] for d in claimed]
            for delivery in claimed:
                await world.core.store.complete_delivery(delivery.id, "t")
        [reminding] = [c for c in sent if str(c["title"]).startswith("Still waiting for approval")]
        assert [m.get("user_id") or m["email"] for m in reminding["mentions"]] == ["carol@contoso.com", frank]
        # a conversation with mentions turned off names nobody by a raw id either
        quiet = Card.from_json(reminding).naming_only()
        for shown in (json.dumps(waiting.naming_only().to_json()), json.dumps(quiet.to_json())):
            assert "slack:" not in shown and "aad:" not in shown and "UERIN" not in shown
        assert quiet.summary.endswith("\n\nFor: carol@contoso.com")  # (the Approvers fact counts the others)


@pytest.fixture
async def contract_world(store_url: str, tmp_path: Path) -> AsyncIterator[World]:
    """app-y declares in a contract file what it sends, and says nothing of what it reads back."""
    (tmp_path / "app-y.contract.yaml").write_text(
        "inputs:\n  - {name: age, type: long}\n  - {name: income, type: double}\n"
    )
    async for made in make_world(store_url, tmp_path, contract_file="app-y.contract.yaml"):
        yield made


async def test_a_contract_silent_about_outputs_leaves_an_unchanged_version_compatible(contract_world: World) -> None:
    world = contract_world
    world.ml.register("8", V7)  # as v6, which app-y runs: outputs declared, as always
    await world.core.ingest.accept(registered())
    await world.until(lambda: world.core.store.get_card_state(APP_CARD), "the app card")
    await world.until(lambda: world.core.store.get_card_state(GATE), "the gate card")  # (stored apart from it)
    check = (await world.gate_details())["apps"]["app-y"]
    assert (check["verdict"], check["differences"]) == ("compatible", [])
    assert check["contract"] == "app-y's contract (app-y.contract.yaml)"
    assert (await world.card(APP_CARD)).title == "New model model-x:8 for app-y: compatible"
    model_card = await world.card(MODEL_CARD)
    assert ("app-y (runs v6)", "Compatible") in [(f.label, f.value) for f in model_card.facts]
    assert "Additive" not in await world.card_text(GATE)
    # no verdict is told in #ml-models' thread
    assert broadcasts_to(await delivered(world.core.store), MODELS) == []  # type: ignore[arg-type]


async def test_status_names_the_latest_version_once_it_is_approved(world: World) -> None:
    world.ml.register("8", BREAKING)
    await world.core.ingest.accept(registered())
    await world.until(lambda: world.core.store.get_gate(GATE), "the gate")
    assert (await decide(world, "carol", "override", "app-y sends age as text since 2.3")).accepted
    status = await world.core.chat.on_command(CommandRequest(user("bob"), RELEASES, "status model-x"))
    assert status.text.splitlines() == [
        "The latest version of model-x is 8.",
        "• app-y runs v8 (latest approved): it runs the latest.",
    ]


async def _failed_then(world: World) -> None:
    """Version 8 registered; the integration Handoff started for it failed, blocking its gate."""
    world.ml.register("8", V7)
    await world.core.ingest.accept(registered())
    await world.until(lambda: world.pipelines.of("integrate-app-y"), "the integration started")
    world.pipelines.finish("101", "failed", "Integration tests")
    await world.until(lambda: _integration_state(world, "completed"), "the integration failed")
    await world.until(lambda: _told_all_of_run(world, "101"), "the cards told the failure")
    assert (await world.gate_details())["blockers"] == [
        "app-y: integration integrate-app-y 20261128.1: failed at Integration tests"
    ]


async def _offers_approve(world: World) -> bool:
    return [a.action_id for a in (await world.card(GATE)).actions] == ["approve", "reject"]


async def test_a_passing_rerun_of_the_integration_for_the_version_unblocks_its_gate(world: World) -> None:
    await _failed_then(world)
    rerun = await world.core.chat.on_command(
        CommandRequest(user("bob"), RELEASES, "integrate app-y model=model-x:8 branch=fix/age-dtype")
    )
    assert rerun.text.startswith("Starting")
    await world.until(lambda: len(world.pipelines.of("integrate-app-y")) == 2, "the re-run started")
    world.pipelines.finish("102", "succeeded")
    await world.until(lambda: _offers_approve(world), "the gate card offers Approve")
    assert (await world.gate_details())["blockers"] == []
    passed = "integrate-app-y 20261128.2: passed"
    assert ("app-y integration", passed) in [(f.label, f.value) for f in (await world.card(GATE)).facts]
    app_card = await world.card(APP_CARD)
    assert app_card.status.value == "succeeded"
    assert ("Integration", passed) in [(f.label, f.value) for f in app_card.facts]
    assert ("app-y integration", passed) in [(f.label, f.value) for f in (await world.card(MODEL_CARD)).facts]
    assert (await decide(world, "carol", "approve", "green on the fix")).accepted
    assert world.pipelines.of("release-app-y") == [{"ring": "prod", "modelName": "model-x", "modelVersion": "8"}]


def _run_event(run: PipelineRef, state: str, **more: Any) -> RunStateChanged:
    return RunStateChanged(
        source="azure-devops",
        event_id=f"{run.run_id}-{state}",
        occurred_at=T0,
        scope="contoso",
        run=run,
        state=state,
        **more,
    )


async def test_azure_devops_finishing_a_rerun_handoff_started_for_the_version_unblocks_its_gate(world: World) -> None:
    """Azure DevOps' hook does not say which version a run tests: the run's card, shown when Handoff started
    it, does."""
    await _failed_then(world)
    run = PipelineRef(
        organization="contoso", project="mlops", pipeline_id="2", pipeline_name="integrate-app-y", run_id="150"
    )
    assert await world.core.ingest.accept(_run_event(run, "inProgress", for_model="model-x:8"))
    # a run no one said is for a model version changes nothing
    assert await world.core.ingest.accept(_run_event(replace(run, run_id="151"), "completed", result="succeeded"))
    for _ in range(5):
        await world.clock.advance(1)
        await asyncio.sleep(0.01)
    assert (await world.integration())["run_id"] == "101"
    assert await world.core.ingest.accept(_run_event(run, "completed", result="succeeded"))
    await world.until(lambda: _offers_approve(world), "the gate card offers Approve")
    assert (await world.integration())["run_id"] == "150"


async def test_a_promotion_gates_reminder_names_its_approvers_the_approvals_needed_and_when_it_expires(
    store_url: str, tmp_path: Path
) -> None:
    def tweak(config: dict[str, Any]) -> None:
        config["roles"]["release-managers"]["members"] = ["carol@contoso.com", "dave@contoso.com"]
        config["gates"]["model-promotion"].update(min_approvers=2, expire_after="48h", remind_every="1h")

    async for world in make_world(store_url, tmp_path, tweak):
        await _integration_passed(world)
        assert (await decide(world, "carol", "approve", "green")).accepted  # 1 of 2
        await reminders(world)
        await world.clock.advance(timedelta(hours=2).total_seconds())
        await world.core.gatekeeper.remind()
        sent = []
        while claimed := await world.core.store.claim_deliveries("t", world.clock.now(), timedelta(seconds=1), 99):
            for delivery in claimed:
                sent.append(delivery.payload["card"])
                await world.core.store.complete_delivery(delivery.id, "t")
        [card] = sent  # in #ml-models, where the gate shows
        assert card["title"] == "Still waiting for approval: Promote model-x:8?"
        assert [(f["label"], f["value"]) for f in card["facts"]] == [
            ("Approvers", "Carol Diaz, dave@contoso.com"),  # named where the gate knows her name
            ("Approvals needed", "2"),
            ("Expires", "2026-11-30 09:00 UTC"),
            ("Approved so far", "1 of 2: Carol Diaz"),
        ]
        assert [m["email"] for m in card["mentions"]] == ["dave@contoso.com"]
        assert card["actions"] == []


# --- the release a promotion's approval starts is a run Handoff started -----------------------------------------


async def test_the_release_an_approval_starts_is_a_run_that_runs_status_and_cancel_reach_and_its_note_links(
    world: World,
) -> None:
    await _integration_passed(world)
    approved = await decide(world, "carol", "approve", "green")
    assert approved.accepted
    release_url = "https://dev.azure.com/contoso/mlops/_build/results?buildId=102"
    [release] = [r for r in await world.core.store.list_command_runs() if r.command.startswith("release")]
    assert approved.message == (
        f"Approved. Started [release-app-y 20261128.2]({release_url}) with model-x:8 (run {release.id})."
    )
    assert (release.command, release.backend_run_id, release.state.value) == (
        "release app-y model=model-x:8",
        "102",
        "started",
    )
    # the gate's card names the run; its thread links it
    await world.until(
        lambda: _gate_note(world, f"Started release-app-y 20261128.2 with model-x:8 (run {release.id})."), "the note"
    )
    told = []
    later = world.clock.now() + timedelta(days=1)
    while claimed := await world.core.store.claim_deliveries("t", later, timedelta(seconds=1), 99):
        for delivery in claimed:
            card = delivery.payload["card"]
            if delivery.payload.get("op") == "reply" and card["title"].startswith("Started"):
                told.append((delivery.grouping_key, card["title"], card["summary"], card["links"]))
            await world.core.store.complete_delivery(delivery.id, "t")
    assert told == [  # in #ml-models, where the gate shows
        (
            GATE,
            "Started release-app-y 20261128.2 with model-x:8",
            f"Run {release.id}: `status {release.id}` shows how it stands, `runs` lists it.",
            [{"label": "release-app-y 20261128.2", "url": release_url}],
        )
    ]

    chat = world.core.chat

    async def ask(who: str, text: str) -> str:
        return (await chat.on_command(CommandRequest(user(who), RELEASES, text))).text

    line = f"• {release.id}: `release app-y model=model-x:8` by Carol Diaz, started, Azure DevOps run "
    line += f"[release-app-y 20261128.2]({release_url})"
    for target in ("model-x", "app-y"):
        assert line in await ask("bob", f"runs {target}"), target
    assert await ask("bob", f"status {release.id}") == (
        f"Run {release.id} (Azure DevOps run release-app-y 20261128.2): "
        "`release app-y model=model-x:8` by Carol Diaz, started."
    )
    # the sweep follows it to its end
    world.pipelines.finish("102", "succeeded")
    await world.core.gatekeeper.sweep()
    assert "by Carol Diaz, succeeded, Azure DevOps run [release-app-y" in await ask("bob", "runs app-y")


async def test_only_who_may_decide_the_promotion_may_cancel_the_release_it_started(world: World) -> None:
    await _integration_passed(world)
    assert (await decide(world, "carol", "approve", "green")).accepted
    [release] = [r for r in await world.core.store.list_command_runs() if r.command.startswith("release")]
    chat = world.core.chat

    async def ask(who: str, text: str) -> str:
        return (await chat.on_command(CommandRequest(user(who), RELEASES, text))).text

    refused = await ask("bob", f"cancel {release.id}")
    assert refused == (
        f"Sorry, you can't cancel run {release.id} (`release app-y model=model-x:8`, Azure DevOps run "
        "release-app-y 20261128.2). Only Carol Diaz, whose approval started it, or people in release-managers "
        "may cancel it."
    )
    assert (await world.core.store.get_command_run(release.id or 0)).state.value == "started"  # type: ignore[union-attr]
    assert (await ask("carol", f"cancel {release.id}")).startswith(f"Canceling run {release.id}")
    canceled = await world.core.store.get_command_run(release.id or 0)
    assert canceled is not None and canceled.state.value == "canceled"


async def _gate_note(world: World, note: str) -> bool:
    return ("Note", note) in [(f.label, f.value) for f in (await world.card(GATE)).facts]


def _integration_replies(deliveries: list[Any], conversation: ConversationAddress) -> list[dict[str, Any]]:
    """The thread replies posted to ``conversation`` about app-y's integration run, as their cards."""
    return [
        d.payload["card"]
        for d in deliveries
        if d.conversation == conversation
        and d.payload["op"] == "reply"
        and "integrate-app-y" in d.payload["card"]["title"]
    ]


async def _integration_failed(world: World, event: ModelRegistered, *, cards_posted_first: bool = False) -> list[Any]:
    """``event`` registered version 8, whose integration failed; every delivery once the cards told it
    (``cards_posted_first``: the cards were posted before the run failed, so their replies call on people)."""
    world.ml.register("8", V7)
    await world.core.ingest.accept(event)
    await world.until(lambda: world.pipelines.of("integrate-app-y"), "the integration started")
    if cards_posted_first:
        await world.until(lambda: _integration_state(world, "queued", "running"), "the integration ran")
        await delivered(world.core.store)  # type: ignore[arg-type]
    world.pipelines.finish("101", "failed", "Integration tests")

    async def told() -> bool:
        state = await world.core.store.get_card_state(APP_CARD)
        return state is not None and state.state["check"]["integration"]["state"] == "completed"

    await world.until(told, "the app card told of the failure")
    await world.until(lambda: _integration_state(world, "completed"), "the gate recorded it")
    return await delivered(world.core.store)  # type: ignore[arg-type]


async def test_a_failed_integration_calls_on_who_registered_the_version(runs_world: World) -> None:
    world = runs_world
    alice = Person(name="Alice Ng", email="alice@contoso.com")
    deliveries = await _integration_failed(world, replace(registered(), actor=alice), cards_posted_first=True)
    called = [{"name": "Alice Ng", "email": "alice@contoso.com"}]
    # #app-releases shows no card of the run: the app card's reply calls on her, and so does the card itself
    [reply] = _integration_replies(deliveries, RELEASES)
    assert reply["title"] == "Integration integrate-app-y 20261128.1: failed at Integration tests"
    assert reply["mentions"] == called and reply["summary"] == "Alice Ng registered model-x:8: look at the run."
    assert (await world.card(APP_CARD)).mentions == (Mention("Alice Ng", "alice@contoso.com"),)
    # #ml-models shows the run's card, which tells the failure there: Handoff started the run for her
    [run_reply] = _integration_replies(deliveries, MODELS)
    assert run_reply["title"] == "integrate-app-y 20261128.1 failed in stage Integration tests"
    assert run_reply["mentions"] == called


async def test_a_failed_integration_of_a_version_nobody_is_known_to_have_registered_says_so(world: World) -> None:
    deliveries = await _integration_failed(world, registered())  # Azure ML's events name nobody
    nobody = "Nobody was called on: the registration of model-x:8 does not say who registered it."
    [app_reply] = _integration_replies(deliveries, RELEASES)
    [model_reply] = _integration_replies(deliveries, MODELS)
    for reply in (app_reply, model_reply):
        assert not reply.get("mentions") and reply["summary"] == nobody
    assert (await world.card(APP_CARD)).mentions == ()


@pytest.fixture
async def owned_world(store_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async for made in make_world(store_url, tmp_path, owners=["dana@contoso.com", "slack:U0ERIN"]):
        yield made


async def test_a_failed_integration_calls_on_the_apps_owners_when_nobody_is_known_to_have_registered(
    owned_world: World,
) -> None:
    # Azure ML's events name nobody
    deliveries = await _integration_failed(owned_world, registered(), cards_posted_first=True)
    # the owner known by a Slack id is called on by it, and counted in the text rather than named by a raw id
    said = "dana@contoso.com and 1 more owner own app-y: look at the run."
    [app_reply] = _integration_replies(deliveries, RELEASES)
    [model_reply] = _integration_replies(deliveries, MODELS)
    for reply in (app_reply, model_reply):
        assert reply["mentions"] == [
            {"name": "dana@contoso.com", "email": "dana@contoso.com"},
            {"name": "", "email": "", "user_id": "slack:U0ERIN"},
        ]
        assert reply["summary"] == said
    assert (await owned_world.card(APP_CARD)).mentions == (
        Mention("dana@contoso.com", "dana@contoso.com"),
        Mention("", user_id="slack:U0ERIN"),
    )


@pytest.mark.parametrize(
    ("owners", "said"),
    [
        (["aad:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"], "The owner of app-y is called on: look at the run."),
        (["slack:U0ERIN", "teams:29:1dana"], "The 2 owners of app-y are called on: look at the run."),
    ],
)
async def test_owners_known_by_chat_id_only_are_called_on_by_it_and_never_shown_raw(
    store_url: str, tmp_path: Path, owners: list[str], said: str
) -> None:
    async for world in make_world(store_url, tmp_path, owners=owners):
        deliveries = await _integration_failed(world, registered(), cards_posted_first=True)
        [reply] = _integration_replies(deliveries, RELEASES)
        assert reply["summary"] == said
        assert [m["user_id"] for m in reply["mentions"]] == owners
        # a conversation with mentions turned off names nobody by a raw id either
        quiet = Card.from_json(reply).naming_only()
        assert quiet.summary == said and quiet.mentions == ()


async def test_a_failed_integration_calls_on_the_registrant_and_the_apps_owners_each_once(owned_world: World) -> None:
    alice = Person(name="Alice Ng", email="alice@contoso.com")
    deliveries = await _integration_failed(owned_world, replace(registered(), actor=alice), cards_posted_first=True)
    [reply] = _integration_replies(deliveries, RELEASES)
    assert reply["mentions"] == [
        {"name": "Alice Ng", "email": "alice@contoso.com"},
        {"name": "dana@contoso.com", "email": "dana@contoso.com"},
        {"name": "", "email": "", "user_id": "slack:U0ERIN"},
    ]
    assert reply["summary"] == (
        "Alice Ng registered model-x:8, and dana@contoso.com and 1 more owner own app-y: look at the run."
    )
    assert (await owned_world.card(APP_CARD)).mentions == (
        Mention("Alice Ng", "alice@contoso.com"),
        Mention("dana@contoso.com", "dana@contoso.com"),
        Mention("", user_id="slack:U0ERIN"),
    )


async def test_closing_handoff_stores_what_its_caller_left_with_the_ingest_and_leaves_nothing_running(
    world: World,
) -> None:
    """Background work cancelled at shutdown may leave an event with the ingest: closing Handoff stores it, and
    then nothing of Handoff runs on to read or write a store that is being closed."""
    started = RunStateChanged(
        source="azure-devops",
        event_id="run-7-started",
        occurred_at=T0,
        scope="contoso",
        run=PipelineRef(organization="contoso", project="web", pipeline_id="9", pipeline_name="web-ci", run_id="7"),
        state="inProgress",
    )
    accepting = asyncio.create_task(world.core.ingest.accept(started))
    await asyncio.sleep(0)  # handed to the ingest's writer (no observer reads the store for it)
    accepting.cancel()
    await asyncio.gather(accepting, return_exceptions=True)

    await world.core.close()

    assert _core_tasks() == []
    assert await world.core.store.has_event(started.dedupe_key)


def _core_tasks() -> list[asyncio.Task[Any]]:
    """The tasks still running code of Handoff's core (the store's own are closed with the store)."""
    core = str(Path(bot.__file__).parent)
    return [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and (code := getattr(task.get_coro(), "cr_code", None)) is not None
        and code.co_filename.startswith(core)
    ]

"""A failed run's hooks say neither who asked for the run nor the stage it failed in: Handoff reads them from
the Build API (the emulator, through the real SDK) once per run, not once per failure hook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.devops.connection import Connection
from msrest.authentication import BasicAuthentication

from adapters.azure_devops.gateway import AzureDevOpsGateway
from adapters.azure_devops.pipelines import AzureDevOpsPipelines
from adapters.emulators.azure_devops import AzureDevOpsEmulator
from adapters.emulators.azure_devops.events import RUN_STATE_CHANGED, STAGE_STATE_CHANGED
from bot.clock import FakeClock
from bot.events import Person, RunStateChanged, StageStateChanged
from bot.living import merge
from bot.ports import RunStatus
from tests.adapters.ingest.conftest import ENVIRON, HOOK_USER, Ingest, IngestFactory
from tests.adapters.ingest.test_rerun_hooks import RUN_ID, first_attempt, run_hook, samples, stage_hook

BUILD = "GET /contoso/mlops/_apis/build/builds/{}"
TIMELINE = "GET /contoso/mlops/_apis/build/builds/{}/Timeline*"


@pytest.fixture
async def pipelines(ado: AzureDevOpsEmulator) -> AsyncIterator[AzureDevOpsPipelines]:
    """Handoff's Azure DevOps service on the emulator, as the hook route reads runs through it."""
    connection = Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat("handoff-bot@contoso.com")))
    service = AzureDevOpsPipelines(connection, AzureDevOpsGateway())
    yield service
    await service.close()


@pytest.fixture
async def hooked(
    ado: AzureDevOpsEmulator, pipelines: AzureDevOpsPipelines, make_ingest: IngestFactory
) -> AsyncIterator[Ingest]:
    """Handoff's hook route, subscribed to the emulator's run and stage hooks, reading runs from it."""
    async with make_ingest(run_details=pipelines.run_status) as ingest:
        url = f"{ingest.url}/hooks/azure-devops"
        ado.add_webhook(url, [RUN_STATE_CHANGED, STAGE_STATE_CHANGED], basic=(HOOK_USER, ENVIRON["HOOK_PASSWORD"]))
        yield ingest


async def run_to_its_end(ado: AzureDevOpsEmulator, clock: FakeClock, run_id: int) -> None:
    while ado.run(run_id).state != "completed":
        await ado.settled()
        await clock.advance(1)
    await ado.drain()


def failed(payload: Any) -> bool:
    resource = payload["resource"]
    return (resource.get("stage") or resource["run"]).get("result") == "failed"


async def test_a_failed_run_is_read_once_for_all_its_failure_hooks(
    ado: AzureDevOpsEmulator, clock: FakeClock, hooked: Ingest
) -> None:
    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await run_to_its_end(ado, clock, run.id)
    failures = [d.payload for d in ado.deliveries if failed(d.payload)]
    assert [p["eventType"] for p in failures] == [STAGE_STATE_CHANGED, RUN_STATE_CHANGED]
    for payload in failures * 2:  # Azure DevOps delivers each twice more (as it does when an answer is late)
        assert (await hooked.hook(payload)).status == 200

    assert len(ado.recorder.matching(BUILD.format(run.id))) == 1
    assert len(ado.recorder.matching(TIMELINE.format(run.id))) == 1
    ends = [e for e in hooked.sink.events if isinstance(e, RunStateChanged) and e.outcome == "failed"]
    assert len(ends) == 3
    assert {(e.failing_stage, e.actor.email if e.actor else None) for e in ends} == {
        ("Integration tests", "bob@contoso.com")
    }
    state: dict[str, Any] | None = None
    for event in hooked.sink.events:
        state = merge(state, event).state
    assert state is not None
    assert (state["failed_stage"], state["requested_by_email"]) == ("Integration tests", "bob@contoso.com")


async def test_a_run_is_read_again_only_when_its_end_comes_after_the_answer_kept(
    make_ingest: IngestFactory, shared_dir: Path
) -> None:
    """A stage fails while the run goes on (the Build API names no failing stage yet), the run ends, then a
    retried stage ends it again, failing elsewhere: the run is read at each end, and for nothing else."""
    bob = Person(name="Bob", email="bob@contoso.com", id="b0b")
    build = RunStatus(str(RUN_ID), "running", requested_by=bob)
    asked: list[str] = []

    async def run_details(project: str, run_id: str) -> RunStatus:
        asked.append(build.state)
        return build

    def ended(failing: str, minute: int) -> RunStatus:
        at = datetime(2026, 11, 28, 9, minute, tzinfo=UTC)
        return replace(build, state="completed", result="failed", failing_step=failing, finished_at=at)

    shown = samples(shared_dir)
    async with make_ingest(run_details=run_details) as ingest:
        for hook in first_attempt(shown)[:3]:  # the run starts, Build succeeds, IntegrationTests fails
            assert (await ingest.hook(hook)).status == 200
        build = ended("IntegrationTests", 10)
        end = run_hook(shown, 4, 10, "completed", "failed")
        assert (await ingest.hook(end)).status == 200
        assert (await ingest.hook(end)).status == 200  # redelivered
        build = replace(build, state="running", result=None, failing_step=None, finished_at=None)
        for hook in (
            run_hook(shown, 5, 20, "inProgress"),
            stage_hook(shown, 6, 21, "Deploy", "inProgress"),
            stage_hook(shown, 7, 25, "Deploy", "completed", "failed"),
        ):
            assert (await ingest.hook(hook)).status == 200
        build = ended("Deploy", 26)
        assert (await ingest.hook(run_hook(shown, 8, 26, "completed", "failed"))).status == 200

    assert asked == ["running", "completed", "completed"]
    failures = [e for e in ingest.sink.events if isinstance(e, RunStateChanged | StageStateChanged)]
    failures = [e for e in failures if e.outcome == "failed"]
    assert [(e.kind, e.actor) for e in failures] == [(kind, bob) for kind in ("stage", "run", "run", "stage", "run")]
    ends = [e for e in failures if isinstance(e, RunStateChanged)]
    assert [e.failing_stage for e in ends] == ["IntegrationTests", "IntegrationTests", "Deploy"]

"""The model version a run started outside Handoff releases or integrates: Azure DevOps' hooks do not carry a
run's parameters, so Handoff reads them from the Build API (the emulator), for the pipelines its configuration
starts with a model version, and names that version on the run's card and its approval's gate card."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.emulators.base import Fault
from tests.e2e.conftest import Loop, blocks_text, card_text, eventually, slack_messages, teams_posts

BUILD_ROUTE = "GET /contoso/mlops/_apis/build/builds/{}"
GATE_TITLE = "Release release-app-y to production"


def cards_of(loop: Loop, run_name: str) -> tuple[list[Any], list[Any]]:
    """The gate cards and the run cards in #app-releases that name the run ``run_name``."""
    named = [m for m in slack_messages(loop, "app-releases") if run_name in blocks_text(m)]
    return [m for m in named if GATE_TITLE in blocks_text(m)], [m for m in named if GATE_TITLE not in blocks_text(m)]


async def test_a_release_started_outside_handoff_names_its_model_version_on_its_gate_and_run_cards(
    loop: Loop,
) -> None:
    ado = loop.suite.ado
    # bob starts the release in Azure DevOps himself (the demo's console: start-release version 9)
    release = ado.start_run(
        "release-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": "9"}
    )
    await ado.wait_for_approval(release.id, timeout=30)
    [gate] = await eventually(lambda: cards_of(loop, release.name)[0])
    assert "model-x:9" in blocks_text(gate)
    [run_card] = cards_of(loop, release.name)[1]
    assert "model-x:9" in blocks_text(run_card)
    await eventually(lambda: [p for p in teams_posts(loop, "App releases") if GATE_TITLE in card_text(p)])
    [teams_gate] = [p for p in teams_posts(loop, "App releases") if GATE_TITLE in card_text(p)]
    assert "model-x:9" in card_text(teams_gate)
    # the run's parameters were read once, for all of its events and its approval
    assert len(ado.recorder.matching(BUILD_ROUTE.format(release.id))) == 1


async def test_only_runs_of_pipelines_started_with_a_model_version_are_read(loop: Loop) -> None:
    """A pipeline no app or promotion gate starts with a model version (train-model-x retrains through Azure
    ML here) is not asked about; app-y's integration pipeline is, and its card names the version and, though it
    succeeded, who asked for it (read with the version)."""
    ado = loop.suite.ado
    training = ado.start_run("train-model-x", requested_by="alice@contoso.com")
    integration = ado.start_run(
        "integrate-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": "9"}
    )
    await ado.wait_for_run(training.id, timeout=30)
    await ado.wait_for_run(integration.id, timeout=30)
    await ado.drain(timeout=30)
    [card] = await eventually(lambda: cards_of(loop, integration.name)[1])
    await eventually(lambda: "Succeeded" in blocks_text(card))
    assert "model-x:9" in blocks_text(card)
    assert "Requested by" in blocks_text(card) and "Bob Chen" in blocks_text(card)
    assert len(ado.recorder.matching(BUILD_ROUTE.format(integration.id))) == 1
    assert ado.recorder.matching(BUILD_ROUTE.format(training.id)) == []


async def test_a_run_azure_devops_is_slow_to_describe_shows_at_once_and_names_its_model_version_later(
    loop: Loop,
) -> None:
    """The Build API answers after the run's first event stopped waiting: that event goes on without the
    version, as before; a later event of the run finds the answer and the card names it."""
    ado = loop.suite.ado
    ado.faults.add("GET /contoso/mlops/_apis/build/builds/*", [Fault("stall", stall_seconds=3.0)])
    ado.script_next_run("integrate-app-y", durations={"Build": 4.0})
    integration = ado.start_run(
        "integrate-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": "9"}
    )
    [card] = await eventually(lambda: cards_of(loop, integration.name)[1], timeout=10)
    assert "model-x:9" not in blocks_text(card)
    await ado.wait_for_run(integration.id, timeout=30)
    await ado.drain(timeout=30)
    await eventually(lambda: "Succeeded" in blocks_text(card))
    await asyncio.sleep(0)
    assert "model-x:9" in blocks_text(card)
    assert len(ado.recorder.matching(BUILD_ROUTE.format(integration.id))) == 1

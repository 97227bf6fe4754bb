"""A retried stage ("Rerun failed stages") through POST /hooks/azure-devops, in the documented payload shapes:
hooks number no attempts, so the card tells them apart by when Azure DevOps created each event."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from bot.cards import Status
from bot.living import merge, render
from tests.adapters.ingest.conftest import Ingest, load_sample

RUN_ID = 57
# the organization as real deliveries name it (the docs' samples carry no baseUrl)
ACCOUNT = {"id": "a1", "baseUrl": "https://dev.azure.com/contoso/"}


def _stamped(payload: Any, number: int, minute: int) -> Any:
    payload["id"] = f"00000000-0000-0000-0000-{number:012d}"
    payload["createdDate"] = f"2026-11-28T09:{minute:02d}:00.000Z"
    payload["resourceContainers"]["account"] = ACCOUNT
    return payload


def run_hook(samples: dict[str, Any], number: int, minute: int, state: str, result: str | None = None) -> Any:
    payload = _stamped(copy.deepcopy(samples["run"]), number, minute)
    run = payload["resource"]["run"]
    run.update(id=RUN_ID, name="20261128.1", state=state, result=result, createdDate="2026-11-28T09:00:00.000Z")
    run["finishedDate"] = payload["createdDate"] if state == "completed" else None
    run["pipeline"]["name"] = payload["resource"]["pipeline"]["name"] = "integrate-app-y"
    return payload


def stage_hook(
    samples: dict[str, Any], number: int, minute: int, name: str, state: str, result: str | None = None
) -> Any:
    payload = _stamped(copy.deepcopy(samples["stage"]), number, minute)
    payload["resource"]["stage"].update(name=name, displayName=name, state=state, result=result)
    payload["resource"]["run"].update(id=RUN_ID, name="20261128.1", state="inProgress", result=None)
    payload["resource"]["run"]["pipeline"]["name"] = payload["resource"]["pipeline"]["name"] = "integrate-app-y"
    return payload


async def card_after(ingest: Ingest, *payloads: Any) -> tuple[dict[str, Any], list[str]]:
    """The run's card state once every hook was delivered in turn, and the thread replies it asked for."""
    for payload in payloads:
        assert (await ingest.hook(payload)).status == 200
    state: dict[str, Any] | None = None
    replies: list[str] = []
    for event in ingest.sink.events:
        merged = merge(state, event)
        state = merged.state
        replies += [reply.title for reply in merged.replies]
    assert state is not None
    return state, replies


def samples(shared_dir: Path) -> dict[str, Any]:
    return {
        "run": load_sample(shared_dir, "ado", "ms.vss-pipelines.run-state-changed-event.json"),
        "stage": load_sample(shared_dir, "ado", "ms.vss-pipelines.stage-state-changed-event.json"),
    }


def first_attempt(shown: dict[str, Any]) -> list[Any]:
    return [
        run_hook(shown, 1, 0, "inProgress"),
        stage_hook(shown, 2, 5, "Build", "completed", "succeeded"),
        stage_hook(shown, 3, 9, "IntegrationTests", "completed", "failed"),
        run_hook(shown, 4, 10, "completed", "failed"),
    ]


async def test_a_rerun_of_a_failed_stage_ends_the_card_with_its_new_result(ingest: Ingest, shared_dir: Path) -> None:
    shown = samples(shared_dir)
    rerun = [run_hook(shown, 5, 20, "inProgress"), stage_hook(shown, 6, 21, "IntegrationTests", "inProgress")]
    state, _ = await card_after(ingest, *first_attempt(shown), *rerun)
    card = render(state)
    assert card.status is Status.RUNNING
    assert [(s.name, s.status) for s in card.steps] == [
        ("Build", Status.SUCCEEDED),
        ("IntegrationTests", Status.RUNNING),
    ]
    ended = [
        stage_hook(shown, 7, 25, "IntegrationTests", "completed", "succeeded"),
        run_hook(shown, 8, 26, "completed", "succeeded"),
    ]
    state, replies = await card_after(ingest, *ended)
    card = render(state)
    assert (card.status, card.summary) == (Status.SUCCEEDED, "")
    assert [(s.name, s.status) for s in card.steps] == [
        ("Build", Status.SUCCEEDED),
        ("IntegrationTests", Status.SUCCEEDED),
    ]
    assert replies == ["integrate-app-y 20261128.1 failed in stage IntegrationTests"]  # the first attempt's


async def test_a_rerun_that_fails_again_is_told_once_more(ingest: Ingest, shared_dir: Path) -> None:
    shown = samples(shared_dir)
    failed_again = [
        run_hook(shown, 5, 20, "inProgress"),
        stage_hook(shown, 6, 21, "IntegrationTests", "inProgress"),
        stage_hook(shown, 7, 25, "IntegrationTests", "completed", "failed"),
        run_hook(shown, 8, 26, "completed", "failed"),
    ]
    redelivered = failed_again[2]
    state, replies = await card_after(ingest, *first_attempt(shown), *failed_again, redelivered)
    assert render(state).summary == "Failed at stage IntegrationTests"
    assert replies == ["integrate-app-y 20261128.1 failed in stage IntegrationTests"] * 2

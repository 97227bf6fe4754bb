"""The world panel: what the emulated Azure DevOps and Azure ML hold, and the buttons that change it."""

from __future__ import annotations

import logging

import pytest

from adapters.emulators.suite import EmulatorSuite

from .conftest import ConsoleClient


async def test_the_world_lists_pipelines_jobs_models_and_the_lake(console: ConsoleClient) -> None:
    world = await console.get("api/world")
    pipelines = {p["name"]: p for p in world["devops"]["pipelines"]}
    assert pipelines["integrate-app-y"]["stages"] == ["Build", "Integration tests"]
    assert pipelines["integrate-app-y"]["runs"] == []
    (model,) = world["ml"]["models"]
    assert model["name"] == "model-x" and [v["version"] for v in model["versions"]] == ["7", "6"]
    assert world["ml"]["lake"]["account"] == "stmlopslake"


async def test_land_data_emits_blob_created_under_the_lake_path(console: ConsoleClient, suite: EmulatorSuite) -> None:
    answer = await console.post("api/world/land-data", {"user": "alice"})
    assert answer["ok"] is True and "raw/customers/" in answer["message"]
    (event,) = suite.aml.published
    assert event.event_type == "Microsoft.Storage.BlobCreated"
    assert event.subject.startswith("/blobServices/default/containers/lake/blobs/raw/customers/")
    world = await console.get("api/world")
    (path,) = world["ml"]["lake"]["recent"]
    assert path.startswith("raw/customers/") and path.endswith("batch-0001.csv")

    await console.post("api/world/land-data", {"path": "raw/customers/manual.csv"})
    assert "raw/customers/manual.csv" in (await console.get("api/world"))["ml"]["lake"]["recent"]
    await console.post("api/world/land-data", {"path": "../etc/passwd"}, status=400)


async def test_register_a_model_version(console: ConsoleClient, suite: EmulatorSuite) -> None:
    answer = await console.post("api/world/register-model", {"user": "alice"})
    assert answer["message"] == "Registered model-x:8 in the Azure ML registry."
    latest = suite.aml.state.latest_model("model-x")
    assert latest is not None and latest.version == "8" and latest.tags["registered_by"] == "alice"


async def test_fail_and_start_integration_runs(console: ConsoleClient, suite: EmulatorSuite) -> None:
    await console.post("api/world/fail-next-integration", {"user": "bob"})
    world = await console.get("api/world")
    assert {p["name"]: p for p in world["devops"]["pipelines"]}["integrate-app-y"]["scripted"] == 1
    answer = await console.post("api/world/start-integration", {"user": "bob"})
    assert "Started integrate-app-y" in answer["message"]
    (run,) = suite.ado.runs
    assert run.requested_by.unique_name == "bob@contoso.com"
    assert run.template_parameters["modelVersion"] == "7"
    assert run.stage("Integration tests").planned_result == "failed"  # type: ignore[union-attr]
    world = await console.get("api/world")
    (shown,) = {p["name"]: p for p in world["devops"]["pipelines"]}["integrate-app-y"]["runs"]
    assert shown["id"] == run.id and [s["name"] for s in shown["stages"]] == ["Build", "Integration tests"]


async def test_unknown_or_bad_world_actions_are_refused(console: ConsoleClient) -> None:
    assert "no world action" in (await console.post("api/world/explode", {}, status=404))["error"]
    assert (
        "no stage" in (await console.post("api/world/fail-next-integration", {"stage": "Deploy"}, status=400))["error"]
    )
    await console.post("api/world/register-model", {"model": 7}, status=400)


async def test_the_other_buttons_do_what_they_say(console: ConsoleClient, suite: EmulatorSuite) -> None:
    for name in ("detect-drift", "fail-next-training", "push-app", "start-release"):
        assert (await console.post(f"api/world/{name}", {"user": "carol"}))["ok"] is True
    assert [e.event_type for e in suite.aml.published] == ["Microsoft.MachineLearningServices.DatasetDriftDetected"]
    assert {r.pipeline.name for r in suite.ado.runs} == {"integrate-app-y", "release-app-y"}


async def test_deeply_nested_json_is_a_bad_request_not_a_failure(
    console: ConsoleClient, suite: EmulatorSuite, caplog: pytest.LogCaptureFixture
) -> None:
    body = '{"a":' + "[" * 60_000 + "}"  # under the 64 KB cap
    headers = {"Content-Type": "application/json"}
    async with console.session.post(f"{console.url}/api/world/detect-drift", data=body, headers=headers) as response:
        assert response.status == 400
        answer = await response.json()
    assert answer == {"error": "The request body is not valid JSON."}
    assert suite.aml.published == []  # the drift monitor did not fire
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

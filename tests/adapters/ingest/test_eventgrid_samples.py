"""Every documented Event Grid sample, in both schemas, POSTed to the running route and checked."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.events import DataArrived, DataDriftDetected, ModelDeployed, ModelRegistered, TrainingRunFinished
from bot.living import merge, render
from tests.adapters.ingest.conftest import Ingest, load_sample

DOC_WORKSPACE = (
    "/subscriptions/{subscription-id}/resourceGroups/{resource-group-name}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspace-name}"
)
SDK_WORKSPACE = (
    "/subscriptions/a5fe3bc5-98f0-4c84-affc-a589f54d9b23/resourceGroups/jenns"
    "/providers/Microsoft.MachineLearningServices/workspaces/jenns-canary"
)
# where Azure ML studio shows what an event is about: its links keep the workspace's id readable
DOC_STUDIO = (
    "https://ml.azure.com/{page}?wsid=/subscriptions/%7Bsubscription-id%7D/resourceGroups/%7Bresource-group-name%7D"
    "/providers/Microsoft.MachineLearningServices/workspaces/%7Bworkspace-name%7D"
)
DOC_ID = "831e1650-001e-001b-66ab-eeb76e069631"
DOC_TIME = datetime(2017, 6, 26, 18, 41, 0, 958410, tzinfo=UTC)
SCHEMAS = ["eventgrid", "cloudevents"]
STORAGE = "/subscriptions/{subscription-id}/resourceGroups/Storage/providers/Microsoft.Storage/storageAccounts"


async def deliver(ingest: Ingest, shared_dir: Path, name: str, **kwargs: Any) -> Any:
    reply = await ingest.eventgrid(load_sample(shared_dir, "eventgrid", name), **kwargs)
    assert reply.status == 200, reply.text
    return reply.json()


def content_type(schema: str) -> str:
    return "application/cloudevents+json; charset=utf-8" if schema == "cloudevents" else "application/json"


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_model_registered_doc_sample(ingest: Ingest, shared_dir: Path, schema: str) -> None:
    name = f"ml-model-registered.{schema}.json"
    assert await deliver(ingest, shared_dir, name, content_type=content_type(schema)) == {
        "accepted": 1,
        "duplicates": 0,
        "ignored": 0,
    }
    [event] = ingest.sink.events
    assert event == ModelRegistered(
        source="azure-ml",
        event_id=DOC_ID,
        occurred_at=DOC_TIME,
        scope=DOC_WORKSPACE,
        text="Model sklearn_regression_model version 20 registered",
        model_name="sklearn_regression_model",  # PascalCase "ModelName" in the docs
        model_version="20",  # a number in the docs
        model_tags={"area": "diabetes", "type": "regression"},
        model_properties={"type": "test"},
        web_url=DOC_STUDIO.format(page="model/sklearn_regression_model:20/details"),
    )
    assert event.grouping_key == f"azure-ml:{DOC_WORKSPACE.lower()}:model:sklearn_regression_model:20"
    assert (event.model, event.tags) == ("sklearn_regression_model", {"area": "diabetes", "type": "regression"})


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_model_deployed_doc_sample(ingest: Ingest, shared_dir: Path, schema: str) -> None:
    await deliver(ingest, shared_dir, f"ml-model-deployed.{schema}.json")
    [event] = ingest.sink.events
    assert event == ModelDeployed(
        source="azure-ml",
        event_id=DOC_ID,
        occurred_at=DOC_TIME,
        scope=DOC_WORKSPACE,
        text="Deployed sklearn_regression_model:1, sklearn_regression_model:2 to my-sklearn-service",
        service_name="my-sklearn-service",
        compute_type="ACI",
        model_ids=("sklearn_regression_model:1", "sklearn_regression_model:2"),
        service_tags={"area": "diabetes", "type": "regression"},
        web_url=DOC_STUDIO.format(page="endpoints/realtime/my-sklearn-service/detail"),
    )
    assert (event.model, event.outcome) == ("sklearn_regression_model", "succeeded")


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_run_completed_doc_sample(ingest: Ingest, shared_dir: Path, schema: str) -> None:
    await deliver(ingest, shared_dir, f"ml-run-completed.{schema}.json")
    [event] = ingest.sink.events
    run_id = "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5"
    assert event == TrainingRunFinished(
        source="azure-ml",
        event_id=DOC_ID,
        occurred_at=DOC_TIME,
        scope=DOC_WORKSPACE,
        text=f"Run {run_id} of automl-local-regression: Completed",
        run_id=run_id,
        experiment_name="automl-local-regression",
        run_type="",  # null in the sample
        status="Completed",
        run_tags={},
        web_url=DOC_STUDIO.format(page=f"runs/{run_id}"),
    )
    assert event.outcome == "succeeded"
    assert event.grouping_key == f"azure-ml:{DOC_WORKSPACE.lower()}:job:{run_id.lower()}"


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_run_status_changed_doc_sample(ingest: Ingest, shared_dir: Path, schema: str) -> None:
    await deliver(ingest, shared_dir, f"ml-run-status-changed.{schema}.json")
    [event] = ingest.sink.events
    assert isinstance(event, TrainingRunFinished)
    assert (event.run_id, event.status, event.outcome) == (
        "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5",
        "Failed",  # "failed" in the docs
        "failed",
    )
    assert (event.event_id, event.scope, event.occurred_at) == (DOC_ID, DOC_WORKSPACE, DOC_TIME)


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_dataset_drift_doc_sample(ingest: Ingest, shared_dir: Path, schema: str) -> None:
    await deliver(ingest, shared_dir, f"ml-dataset-drift-detected.{schema}.json")
    [event] = ingest.sink.events
    assert event == DataDriftDetected(
        source="azure-ml",
        event_id=DOC_ID,
        occurred_at=DOC_TIME,
        scope=DOC_WORKSPACE,
        text="Data drift 0.84 detected by myDriftMonitor",
        monitor_id="01d29aa4-e6a4-470a-9ef3-66660d21f8ef",
        monitor_name="myDriftMonitor",
        run_id="01d29aa4-e6a4-470a-9ef3-66660d21f8ef_1571590300380",
        drift_coefficient=0.83503490684792081,
        base_dataset_id="3c56d136-0f64-4657-a0e8-5162089a88a3",
        target_dataset_id="d7e74d2e-c972-4266-b5fb-6c9c182d2a74",
        window_start=datetime(2019, 7, 4, tzinfo=UTC),
        window_end=datetime(2019, 7, 5, tzinfo=UTC),
        web_url=DOC_STUDIO.format(page="runs/01d29aa4-e6a4-470a-9ef3-66660d21f8ef_1571590300380"),
    )
    assert event.outcome == "failed"
    facts = [(f.label, f.value) for f in render(merge(None, event).state).facts]
    assert facts == [("Drift coefficient", "0.835"), ("Data compared", "2019-07-04 to 2019-07-05 UTC")]


async def test_a_drift_event_whose_period_is_not_a_time_is_kept_without_it(ingest: Ingest, shared_dir: Path) -> None:
    [sample] = load_sample(shared_dir, "eventgrid", "ml-dataset-drift-detected.eventgrid.json")
    sample["data"]["StartTime"] = "last tuesday"
    reply = await ingest.eventgrid([sample])
    assert (reply.status, reply.json()["accepted"]) == (200, 1)
    [event] = ingest.sink.events
    assert isinstance(event, DataDriftDetected)
    assert (event.window_start, event.window_end) == (None, datetime(2019, 7, 5, tzinfo=UTC))
    assert [f.label for f in render(merge(None, event).state).facts] == ["Drift coefficient"]


async def test_sdk_camelcase_batch(ingest: Ingest, shared_dir: Path) -> None:
    """The .NET SDK's five events in one array: camelCase keys, string versions, a stray ``RunTags``."""
    assert await deliver(ingest, shared_dir, "ml-events.sdk-tests-camelcase.eventgrid.json") == {
        "accepted": 5,
        "duplicates": 0,
        "ignored": 0,
    }
    registered, deployed, completed, changed, drift = ingest.sink.events
    assert registered == ModelRegistered(
        source="azure-ml",
        event_id="3b73ee51-bbf4-480d-9112-cfc23b41bfdb",
        occurred_at=datetime(2019, 10, 17, 22, 23, 57, 535005, tzinfo=UTC),
        scope=SDK_WORKSPACE,
        text="Model sklearn_regression_model version 3 registered",
        model_name="sklearn_regression_model",
        model_version="3",
        model_tags={"area": "diabetes", "type": "regression"},
        model_properties={"area": "test"},
        web_url=f"https://ml.azure.com/model/sklearn_regression_model:3/details?wsid={SDK_WORKSPACE}",
    )
    assert deployed == ModelDeployed(
        source="azure-ml",
        event_id="40d0b167-be44-477b-9d23-a2befba7cde0",
        occurred_at=datetime(2019, 10, 23, 18, 20, 8, 882447, tzinfo=UTC),
        scope=SDK_WORKSPACE,
        text="Deployed my_first_model:1, my_second_model:1 to aciservice1",
        service_name="aciservice1",
        compute_type="ACI",
        model_ids=("my_first_model:1", "my_second_model:1"),
        service_tags={"mytag": "test tag"},
        web_url=f"https://ml.azure.com/endpoints/realtime/aciservice1/detail?wsid={SDK_WORKSPACE}",
    )
    tags = {"experiment_status": "ModelSelection", "experiment_status_descr": "Beginning model selection."}
    assert isinstance(completed, TrainingRunFinished) and isinstance(changed, TrainingRunFinished)
    assert (completed.run_id, completed.run_type, completed.status, completed.run_tags) == (
        "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc",
        "automl",
        "Completed",
        tags,  # read from "RunTags"
    )
    assert (changed.event_id, changed.status, changed.outcome, changed.run_tags) == (
        "aa8cd7df-fe28-5d5d-9b40-3342dbc2a887",
        "Running",
        None,
        tags,
    )
    assert isinstance(drift, DataDriftDetected)
    assert (drift.monitor_name, drift.target_dataset_id, drift.scope) == (
        "copetersDriftMonitor3",
        "",  # the sample's key is misspelt
        "/subscriptions/60582a10-b9fd-49f1-a546-c4194134bba8/resourceGroups/copetersRG"
        "/providers/Microsoft.MachineLearningServices/workspaces/driftDemoWS",
    )


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_blob_created(ingest: Ingest, shared_dir: Path, schema: str) -> None:
    await deliver(ingest, shared_dir, f"storage-blob-created.{schema}.json")
    [event] = ingest.sink.events
    assert event == DataArrived(
        source="storage",
        event_id=DOC_ID,
        occurred_at=DOC_TIME,
        scope=f"{STORAGE}/my-storage-account",
        text="New file test-container/new-file.txt (524288 bytes)",
        storage_account="my-storage-account",
        container="test-container",  # the subject's; the sample's URL says "testcontainer"
        path="new-file.txt",
        size=524288,
        url="https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt",
        sequencer="00000000000004420000000000028963",  # Storage's order of the file's writes
        # the portal's page of the container: the file's own URL opens only with a key or a token
        web_url="https://portal.azure.com/#view/Microsoft_Azure_Storage/ContainerMenuBlade/~/overview"
        "/storageAccountId/%2Fsubscriptions%2F%7Bsubscription-id%7D%2FresourceGroups%2FStorage%2Fproviders"
        "%2FMicrosoft.Storage%2FstorageAccounts%2Fmy-storage-account/path/test-container",
    )
    assert event.grouping_key == "storage:my-storage-account:test-container:new-file.txt"
    card = render(merge(None, event).state)
    assert [(link.label, link.url) for link in card.links] == [("Open", event.web_url)]


async def test_single_cloud_event_object(ingest: Ingest, shared_dir: Path) -> None:
    await deliver(
        ingest, shared_dir, "storage-blob-created.cloudevents-single.json", content_type="application/cloudevents+json"
    )
    [event] = ingest.sink.events
    assert isinstance(event, DataArrived)
    assert (event.event_id, event.storage_account, event.container, event.path, event.size) == (
        "9aeb0fdf-c01e-0131-0922-9eb54906e209",
        "{storage-account}",
        "{storage-container}",
        "{new-file}",  # the subject has no leading slash here
        30699,
    )
    assert event.occurred_at == datetime(2019, 11, 18, 15, 13, 39, 458925, tzinfo=UTC)


async def test_dead_letter_record_single_object(ingest: Ingest, shared_dir: Path) -> None:
    """A dead-lettered event, replayed: one Event Grid object with extra top-level fields."""
    await deliver(ingest, shared_dir, "storage-blob-created.deadletter.eventgrid.json")
    [event] = ingest.sink.events
    assert isinstance(event, DataArrived)
    assert (event.event_id, event.storage_account, event.container, event.path, event.size) == (
        "93902694-901e-008f-6f95-7153a806873c",
        "myegteststgfoo",
        "deadletter",
        "myBlobFile.txt",
        0,
    )


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_adls_create_file_is_ignored(ingest: Ingest, shared_dir: Path, schema: str) -> None:
    """``CreateFile`` announces an empty file; only ``FlushWithClose`` commits it."""
    assert await deliver(ingest, shared_dir, f"storage-blob-created-adlsgen2.{schema}.json") == {
        "accepted": 0,
        "duplicates": 0,
        "ignored": 1,
    }
    assert ingest.sink.events == []


async def test_validation_sample(ingest: Ingest, shared_dir: Path) -> None:
    reply = await ingest.eventgrid(
        load_sample(shared_dir, "eventgrid", "subscription-validation.eventgrid.json"),
        **{"aeg-event-type": "SubscriptionValidation"},
    )
    assert reply.status == 200
    assert reply.json() == load_sample(shared_dir, "eventgrid", "subscription-validation.response.json")
    assert ingest.sink.events == []


def test_every_sample_is_covered(shared_dir: Path) -> None:
    covered = {
        *(
            f"ml-{kind}.{schema}.json"
            for schema in SCHEMAS
            for kind in (
                "model-registered",
                "model-deployed",
                "run-completed",
                "run-status-changed",
                "dataset-drift-detected",
            )
        ),
        "ml-events.sdk-tests-camelcase.eventgrid.json",
        *(f"storage-blob-created.{schema}.json" for schema in SCHEMAS),
        *(f"storage-blob-created-adlsgen2.{schema}.json" for schema in SCHEMAS),
        "storage-blob-created.cloudevents-single.json",
        "storage-blob-created.deadletter.eventgrid.json",
        "subscription-validation.eventgrid.json",
        "subscription-validation.response.json",
    }
    assert {p.name for p in (shared_dir / "samples" / "eventgrid").glob("*.json")} == covered

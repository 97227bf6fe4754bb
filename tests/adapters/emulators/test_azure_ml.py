"""The Azure ML emulator driven by the real azure-ai-ml MLClient over HTTP: jobs, models, code, signatures."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from adapters.azure_ml.client_factory import (
    EMULATOR_HOST,
    EMULATOR_STORAGE_SUFFIX,
    AzureMLConnection,
    RewriteTransport,
    build_ml_client,
)
from adapters.azure_ml.signatures import model_signature, read_mlmodel
from adapters.emulators.azure_ml import (
    MODEL_REGISTERED,
    RUN_COMPLETED,
    RUN_STATUS_CHANGED,
    AzureMLEmulator,
    load_default_world,
)
from adapters.emulators.base import LocalServer
from bot.clock import FakeClock

WS_PATH = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-mlops/providers/"
    "Microsoft.MachineLearningServices/workspaces/ws-mlops"
)
TRAIN_SECONDS = 5  # default world: train-model-x is queued after 1 s, runs after 1 s more, for 3 s
pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]
FEATURES = [
    {"name": "age", "type": "long"},
    {"name": "income", "type": "double"},
    {"name": "segment", "type": "string"},
]


@pytest.fixture
def ml_client(aml: AzureMLEmulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    # MLClient writes AZUREML_CURRENT_CLOUD; monkeypatch puts the variable back as it was.
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    return build_ml_client(aml.connection(), polling_interval=0.01)


def load(path: Path, overrides: list[dict[str, Any]] | None = None) -> Any:
    from azure.ai.ml import load_job

    return load_job(path, params_override=overrides or [])


async def submit(ml_client: Any, path: Path, overrides: list[dict[str, Any]] | None = None) -> Any:
    return await asyncio.to_thread(lambda: ml_client.jobs.create_or_update(load(path, overrides)))


async def test_command_job_runs_to_completion_and_registers_the_next_model_version(
    aml: AzureMLEmulator, ml_client: Any, clock: FakeClock, tmp_path: Path
) -> None:
    path = aml.write_job_yaml("train-model-x", tmp_path)
    created = await submit(ml_client, path, [{"inputs.learning_rate": 0.05}, {"tags.requested_by": "alice"}])
    assert created.status == "NotStarted"
    assert created.studio_url.startswith(f"{aml.base_url}/studio/runs/{created.name}")

    await clock.advance(1.5)
    assert (await asyncio.to_thread(ml_client.jobs.get, created.name)).status == "Queued"
    await clock.advance(TRAIN_SECONDS)
    job = await asyncio.to_thread(ml_client.jobs.get, created.name)
    latest = await asyncio.to_thread(ml_client.models.get, "model-x", label="latest")

    assert job.status == "Completed"
    assert job.tags == {"model": "model-x", "requested_by": "alice"}
    assert (latest.name, latest.version, latest.job_name) == ("model-x", "8", created.name)
    assert aml.state.jobs[created.name].registered_model == ("model-x", "8")
    assert [s for s, _ in aml.state.jobs[created.name].history] == [
        "NotStarted",
        "Queued",
        "Running",
        "Completed",
    ]
    assert [e.event_type for e in aml.published] == [MODEL_REGISTERED, RUN_COMPLETED]
    put = aml.recorder.matching(f"PUT {WS_PATH}/jobs/*")[0].json()["properties"]
    assert put["inputs"]["learning_rate"] == {"value": "0.05", "jobInputType": "literal"}
    assert put["inputs"]["training_data"]["uri"].endswith("/data/lake-data/versions/7")


async def test_pipeline_job_runs_to_completion_and_registers_a_model(
    aml: AzureMLEmulator, ml_client: Any, clock: FakeClock, tmp_path: Path
) -> None:
    path = aml.write_job_yaml("retrain-model-x-pipeline", tmp_path)
    created = await submit(ml_client, path, [{"inputs.training_data.path": "azureml:lake-data:6"}])
    await clock.advance(10)
    job = await asyncio.to_thread(ml_client.jobs.get, created.name)
    latest = await asyncio.to_thread(ml_client.models.get, "model-x", label="latest")

    assert type(job).__name__ == "PipelineJob"
    assert job.status == "Completed"
    assert (latest.version, latest.job_name) == ("8", created.name)
    put = aml.recorder.matching(f"PUT {WS_PATH}/jobs/*")[0]
    assert put.headers.get("x-azureml-token")  # the AML-audience token the SDK decoded and checked
    assert put.json()["properties"]["inputs"]["training_data"]["uri"].endswith("/data/lake-data/versions/6")
    assert aml.recorder.matching(f"GET {WS_PATH}")[0].status == 200


async def test_scripted_failure_emits_run_status_changed_and_registers_nothing(
    aml: AzureMLEmulator, ml_client: Any, clock: FakeClock, tmp_path: Path
) -> None:
    aml.script_next_job(fail=True, duration=1)
    created = await submit(ml_client, aml.write_job_yaml("train-model-x", tmp_path))
    await clock.advance(3)
    job = await asyncio.to_thread(ml_client.jobs.get, created.name)
    latest = await asyncio.to_thread(ml_client.models.get, "model-x", label="latest")

    assert job.status == "Failed"
    assert latest.version == "7"
    assert [e.event_type for e in aml.published] == [RUN_STATUS_CHANGED]
    assert aml.published[0].data["runStatus"] == "Failed"


async def test_a_job_tag_can_say_which_model_it_registers(
    aml: AzureMLEmulator, ml_client: Any, clock: FakeClock, tmp_path: Path
) -> None:
    overrides = [
        {"display_name": "ad-hoc"},
        {"experiment_name": "exploration"},
        {"tags.registers_model": "model-z"},
    ]
    created = await submit(ml_client, aml.write_job_yaml("train-model-x", tmp_path), overrides)
    await clock.advance(3)  # not the train-model-x spec: the world's default_job timing applies
    model = await asyncio.to_thread(ml_client.models.get, "model-z", label="latest")

    assert aml.state.jobs[created.name].status == "Completed"
    assert (model.version, model.job_name, model.tags["registers_model"]) == ("1", created.name, "model-z")


async def test_cancel_answers_202_with_an_https_location_then_200(
    aml: AzureMLEmulator, ml_client: Any, clock: FakeClock, tmp_path: Path
) -> None:
    aml.script_next_job(duration=1000)
    created = await submit(ml_client, aml.write_job_yaml("train-model-x", tmp_path))
    await clock.advance(3)
    await asyncio.to_thread(lambda: ml_client.jobs.begin_cancel(created.name).result())
    job = await asyncio.to_thread(ml_client.jobs.get, created.name)

    assert job.status == "Canceled"
    cancel = aml.recorder.matching(f"POST {WS_PATH}/jobs/{created.name}/cancel")[0]
    assert cancel.status == 202
    polled = aml.recorder.matching("GET /subscriptions/*/providers/*/locations/*/mfeOperationResults/*")
    assert [r.status for r in polled] == [200]
    assert [s for s, _ in aml.state.jobs[created.name].history][-2:] == ["CancelRequested", "Canceled"]
    assert aml.published == []  # a canceled run raises neither RunCompleted nor RunStatusChanged


async def test_local_code_is_uploaded_through_the_emulator_blob_endpoint_once(
    aml: AzureMLEmulator, ml_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('training model-x')\n")
    spec = aml.job_yaml("train-model-x")
    spec.update(code="./src", environment="azureml:sklearn-env@latest")
    spec["inputs"]["training_data"]["path"] = "azureml:lake-data@latest"
    path = tmp_path / "job.yml"
    path.write_text(yaml.safe_dump(spec))

    first = await submit(ml_client, path)
    second = await submit(ml_client, path)

    assert first.code == second.code and "/codes/" in first.code
    assert len(aml.recorder.matching(f"POST {WS_PATH}/codes/*/versions/1/startPendingUpload")) == 1
    blob_calls = [(r.method, r.query.get("comp"), r.status) for r in aml.recorder.matching("* /blob/**")]
    assert blob_calls == [("HEAD", None, 404), ("PUT", None, 201), ("PUT", "metadata", 200)]
    stored = {key: blob for key, blob in aml.state.blobs.items() if key[2] == "src/train.py"}
    assert [b.data for b in stored.values()] == [b"print('training model-x')\n"]
    assert next(iter(stored.values())).metadata["upload_status"] == "completed"
    code_put = aml.recorder.matching(f"PUT {WS_PATH}/codes/*/versions/1")
    assert len(code_put) == 1
    assert code_put[0].json()["properties"]["codeUri"].startswith(f"https://stmlopsws.blob.{EMULATOR_STORAGE_SUFFIX}/")
    # @latest references cost lookups: newest environment version, the data container, its latest version
    assert aml.recorder.matching(f"GET {WS_PATH}/environments/sklearn-env/versions")[0].query["$top"] == "1"
    assert aml.recorder.matching(f"GET {WS_PATH}/data/lake-data/versions/7")
    assert first.environment == "sklearn-env:3"


async def test_unknown_asset_is_rejected_with_a_user_error(
    aml: AzureMLEmulator, ml_client: Any, tmp_path: Path
) -> None:
    from azure.core.exceptions import HttpResponseError

    path = aml.write_job_yaml("train-model-x", tmp_path)
    with pytest.raises(HttpResponseError) as raised:
        await submit(ml_client, path, [{"inputs.training_data.path": "azureml:lake-data:99"}])
    assert raised.value.status_code == 400
    assert "The workspace has no data asset lake-data version 99." in str(raised.value)
    assert aml.state.jobs == {}


async def test_jobs_list_and_missing_job(aml: AzureMLEmulator, ml_client: Any, tmp_path: Path) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    path = aml.write_job_yaml("train-model-x", tmp_path)
    names = {(await submit(ml_client, path)).name for _ in range(2)}
    listed = await asyncio.to_thread(lambda: [j.name for j in ml_client.jobs.list()])
    assert set(listed) == names
    with pytest.raises(ResourceNotFoundError):
        await asyncio.to_thread(ml_client.jobs.get, "no-such-job")


async def test_models_list_get_and_create_or_update(aml: AzureMLEmulator, ml_client: Any) -> None:
    from azure.ai.ml.entities import Model

    versions = await asyncio.to_thread(lambda: sorted(int(m.version) for m in ml_client.models.list(name="model-x")))
    containers = await asyncio.to_thread(lambda: [(m.name, m.latest_version) for m in ml_client.models.list()])
    six = await asyncio.to_thread(ml_client.models.get, "model-x", version="6")
    model = Model(
        name="model-x",
        path="azureml://jobs/some-job/outputs/artifacts/paths/model/",
        type="mlflow_model",
        tags={"stage": "candidate"},
    )
    created = await asyncio.to_thread(ml_client.models.create_or_update, model)

    assert versions == [6, 7]
    assert containers == [("model-x", "7")]
    assert (six.type, six.tags["stage"], six.flavors["python_function"]["loader_module"]) == (
        "mlflow_model",
        "production",
        "mlflow.sklearn",
    )
    assert created.version == "8"
    assert "datastores/workspaceartifactstore/paths/ExperimentRun/dcid.some-job/model" in created.path
    assert [(e.event_type, e.data["modelVersion"], e.data["modelTags"]) for e in aml.published] == [
        (MODEL_REGISTERED, "8", {"stage": "candidate"})
    ]
    signature = model_signature(await asyncio.to_thread(read_mlmodel, ml_client, "model-x", 8))
    assert signature is not None and signature["inputs"] == FEATURES  # copied from version 7


async def test_workspace_get(aml: AzureMLEmulator, ml_client: Any) -> None:
    workspace = await asyncio.to_thread(ml_client.workspaces.get)
    assert (workspace.name, workspace.location) == ("ws-mlops", "westeurope")


async def test_read_mlmodel_returns_the_signature_of_a_version(aml: AzureMLEmulator, ml_client: Any) -> None:
    mlmodel = await asyncio.to_thread(read_mlmodel, ml_client, "model-x", "7")
    by_settings = await asyncio.to_thread(read_mlmodel, aml.connection(), "model-x", 6)

    assert yaml.safe_load(yaml.safe_dump(mlmodel))["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    assert isinstance(mlmodel["signature"]["inputs"], str)  # JSON inside YAML, as MLflow writes it
    assert model_signature(mlmodel) == {
        "inputs": FEATURES,
        "outputs": [{"name": "prediction", "type": "double"}],
        "params": None,
    }
    assert model_signature(by_settings) == model_signature(mlmodel)
    blob_get = aml.recorder.matching("GET /blob/**")[0]
    assert blob_get.path.endswith("/MLmodel") and blob_get.headers["Authorization"].startswith("Bearer ")


async def test_a_job_registers_the_scripted_signature(
    aml: AzureMLEmulator, ml_client: Any, clock: FakeClock, tmp_path: Path
) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    new_inputs = [*FEATURES[:2], {"name": "region", "type": "string"}]
    aml.script_next_model_signature(new_inputs, [{"name": "prediction", "type": "double"}])
    created = await submit(ml_client, aml.write_job_yaml("train-model-x", tmp_path))
    await clock.advance(TRAIN_SECONDS)
    eight = model_signature(await asyncio.to_thread(read_mlmodel, ml_client, "model-x", 8))
    seven = model_signature(await asyncio.to_thread(read_mlmodel, ml_client, "model-x", 7))

    assert aml.state.jobs[created.name].status == "Completed"
    assert eight is not None and eight["inputs"] == new_inputs
    assert seven is not None and seven["inputs"] == FEATURES
    with pytest.raises(ResourceNotFoundError):
        await asyncio.to_thread(read_mlmodel, ml_client, "model-x", 99)


async def test_register_model_from_python_copies_or_takes_a_signature(aml: AzureMLEmulator, ml_client: Any) -> None:
    copied = aml.register_model("model-x", tags={"origin": "test"})
    given = aml.register_model("model-x", signature={"inputs": FEATURES[:1], "outputs": []})
    latest = await asyncio.to_thread(ml_client.models.get, "model-x", label="latest")

    assert (copied.version, given.version, latest.version) == ("8", "9", "9")
    assert copied.signature is not None and copied.signature.inputs == FEATURES
    mlmodel = await asyncio.to_thread(read_mlmodel, ml_client, "model-x", 9)
    assert model_signature(mlmodel) == {"inputs": FEATURES[:1], "outputs": [], "params": None}


async def test_mounted_under_a_prefix_with_the_real_clock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    world = load_default_world()
    world["azure_ml"]["job_specs"]["train-model-x"]["simulation"] = {
        "queued_after": 0.01,
        "running_after": 0.01,
        "duration": 0.02,
    }
    emulator = AzureMLEmulator(world)
    parent = web.Application()
    parent.add_subapp("/aml", emulator.create_app())
    async with LocalServer(parent) as server:
        emulator.base_url = f"{server.url}/aml"
        monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
        ml_client = build_ml_client(emulator.connection(), polling_interval=0.01)
        created = await submit(ml_client, emulator.write_job_yaml("train-model-x", tmp_path))
        await emulator.wait_for_job(created.name)
        job = await asyncio.to_thread(ml_client.jobs.get, created.name)
        mlmodel = await asyncio.to_thread(read_mlmodel, ml_client, "model-x", 8)

        assert job.status == "Completed"
        assert model_signature(mlmodel) is not None
        assert emulator.recorder.matching("GET /aml/blob/stmlopsws/**")
        assert created.studio_url.startswith(f"{server.url}/aml/studio/runs/")
        async with aiohttp.ClientSession() as session, session.get(created.studio_url) as resp:
            assert resp.status == 200 and "Completed" in await resp.text()
    assert emulator._session is None  # the parent's cleanup closed the emulator


def test_rewrite_transport_maps_the_fake_hosts_and_refuses_others() -> None:
    from azure.core.exceptions import ServiceRequestError
    from azure.core.rest import HttpRequest

    transport = RewriteTransport("http://127.0.0.1:9/aml")
    assert (
        transport.rewrite(f"https://{EMULATOR_HOST}/subscriptions/x?a=1")
        == "http://127.0.0.1:9/aml/subscriptions/x?a=1"
    )
    assert (
        transport.rewrite(f"https://acct.blob.{EMULATOR_STORAGE_SUFFIX}/c/p/MLmodel")
        == "http://127.0.0.1:9/aml/blob/acct/c/p/MLmodel"
    )
    assert transport.rewrite("https://management.azure.com/x") is None
    with pytest.raises(ServiceRequestError):
        transport.send(HttpRequest("GET", "https://management.azure.com/subscriptions"))


def test_default_world_matches_the_client_factory() -> None:
    section = load_default_world()["azure_ml"]
    assert section["storage_suffix"] == EMULATOR_STORAGE_SUFFIX
    conn = AzureMLConnection(section["subscription_id"], section["resource_group"], section["workspace"])
    assert not conn.uses_emulator
    assert "s3cret" not in repr(AzureMLConnection("s", "r", "w", client_secret="s3cret-value"))


async def test_the_config_section_builds_a_client_for_the_emulator(
    aml: AzureMLEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import AzureMLSettings

    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    settings = AzureMLSettings(
        subscription_id="00000000-0000-0000-0000-000000000001",
        resource_group="rg-mlops",
        workspace="ws-mlops",
        endpoint=aml.base_url,
        credential={"kind": "emulator"},
    )
    assert AzureMLConnection.from_settings(settings).uses_emulator
    mlmodel = await asyncio.to_thread(read_mlmodel, settings, "model-x", 7)
    assert model_signature(mlmodel) is not None


async def test_a_put_of_an_existing_job_name_updates_its_tags_and_starts_nothing(
    aml: AzureMLEmulator, ml_client: Any, tmp_path: Path
) -> None:
    # Jobs - Create Or Update: "For update case, the Tags in the definition passed in will replace Tags
    # in the existing job" (200 OK; 201 Created only for a new job).
    path = aml.write_job_yaml("train-model-x", tmp_path)
    created = await submit(ml_client, path, [{"name": "same-name"}, {"tags.requested_by": "alice"}])
    again = await submit(ml_client, path, [{"name": "same-name"}, {"tags.requested_by": "bob"}])

    assert (created.name, again.name) == ("same-name", "same-name")
    assert [r.status for r in aml.recorder.matching(f"PUT {WS_PATH}/jobs/same-name")] == [201, 200]
    assert list(aml.state.jobs) == ["same-name"]
    assert again.tags == {"model": "model-x", "requested_by": "bob"}
    assert [s for s, _ in aml.state.jobs["same-name"].history] == ["NotStarted"]

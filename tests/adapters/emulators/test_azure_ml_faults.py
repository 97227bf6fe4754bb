"""Faults scripted on the Azure ML emulator reach the real azure-core pipeline as the real service's would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.azure_ml.client_factory import build_ml_client
from adapters.azure_ml.signatures import model_signature, read_mlmodel
from adapters.emulators.azure_ml import AzureMLEmulator
from adapters.emulators.base import Fault

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

MODEL_VERSION = "GET /subscriptions/**/models/model-x/versions/7"
JOBS = "GET /subscriptions/**/workspaces/ws-mlops/jobs"


@pytest.fixture
def clients(aml: AzureMLEmulator, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """A client with azure-core's default retry policy, and one that never retries."""
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    settings = aml.connection()
    return build_ml_client(settings), build_ml_client(settings, retry_total=0)


def statuses(aml: AzureMLEmulator, route: str) -> list[int | None]:
    return [r.status for r in aml.recorder.matching(route)]


async def test_429_with_retry_after_is_retried_or_surfaces_as_http_response_error(
    aml: AzureMLEmulator, clients: tuple[Any, Any]
) -> None:
    from azure.core.exceptions import HttpResponseError

    retrying, strict = clients
    aml.faults.add(MODEL_VERSION, [Fault("429", retry_after=0.05)])
    model = await asyncio.to_thread(retrying.models.get, "model-x", version="7")
    assert model.version == "7"
    assert statuses(aml, MODEL_VERSION) == [429, 200]

    aml.faults.add(MODEL_VERSION, [Fault("429", retry_after=7)])
    with pytest.raises(HttpResponseError) as raised:
        await asyncio.to_thread(strict.models.get, "model-x", version="7")
    assert raised.value.status_code == 429
    assert raised.value.response is not None and raised.value.response.headers["Retry-After"] == "7"


async def test_503_is_retried_or_surfaces_as_http_response_error(
    aml: AzureMLEmulator, clients: tuple[Any, Any]
) -> None:
    from azure.core.exceptions import HttpResponseError

    retrying, strict = clients
    aml.faults.add(JOBS, [Fault("503", retry_after=0.01), Fault("503", retry_after=0.02)])
    assert await asyncio.to_thread(lambda: list(retrying.jobs.list())) == []
    assert statuses(aml, JOBS) == [503, 503, 200]

    aml.faults.add(JOBS, ["503"])
    with pytest.raises(HttpResponseError) as raised:
        await asyncio.to_thread(lambda: list(strict.jobs.list()))
    assert raised.value.status_code == 503


async def test_reset_connection_is_retried_or_raises_service_response_error(
    aml: AzureMLEmulator, clients: tuple[Any, Any]
) -> None:
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    retrying, strict = clients
    aml.faults.add(MODEL_VERSION, ["reset"])
    assert (await asyncio.to_thread(retrying.models.get, "model-x", version="7")).version == "7"
    assert len(aml.recorder.matching(MODEL_VERSION)) == 2

    aml.faults.add(MODEL_VERSION, ["reset"])
    with pytest.raises((ServiceResponseError, ServiceRequestError)):
        await asyncio.to_thread(strict.models.get, "model-x", version="7")


async def test_malformed_json_fails_deserialization(aml: AzureMLEmulator, clients: tuple[Any, Any]) -> None:
    from azure.core.exceptions import DecodeError

    retrying, _ = clients
    aml.faults.add(MODEL_VERSION, ["malformed_json"])
    with pytest.raises(DecodeError):
        await asyncio.to_thread(retrying.models.get, "model-x", version="7")
    assert statuses(aml, MODEL_VERSION) == [200]  # a 200 is not retried, however broken its body


async def test_faults_on_the_blob_route_reach_read_mlmodel(aml: AzureMLEmulator, clients: tuple[Any, Any]) -> None:
    from azure.core.exceptions import HttpResponseError

    retrying, strict = clients
    aml.faults.add("GET /blob/**/MLmodel", [Fault("503", retry_after=0.01)])
    assert model_signature(await asyncio.to_thread(read_mlmodel, retrying, "model-x", 7)) is not None
    assert statuses(aml, "GET /blob/**") == [503, 200]

    aml.faults.add("GET /blob/**/MLmodel", ["500"])  # the client's retry_total=0 holds for storage too
    with pytest.raises(HttpResponseError) as raised:
        await asyncio.to_thread(read_mlmodel, strict, "model-x", 7)
    assert raised.value.status_code == 500


async def test_faults_scripted_over_http_through_the_control_route(
    aml: AzureMLEmulator, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    from azure.ai.ml import load_job
    from azure.core.exceptions import HttpResponseError

    _, strict = clients
    path = aml.write_job_yaml("train-model-x", tmp_path)
    script = {"route": "PUT /subscriptions/**/jobs/*", "faults": [{"kind": "500"}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{aml.base_url}/_emulator/faults", json=script) as resp:
            assert resp.status == 200
        with pytest.raises(HttpResponseError) as raised:
            await asyncio.to_thread(lambda: strict.jobs.create_or_update(load_job(path)))
        async with session.get(f"{aml.base_url}/_emulator/requests") as resp:
            recorded = await resp.json()
    assert raised.value.status_code == 500
    assert (recorded[-1]["method"], recorded[-1]["status"]) == ("PUT", 500)
    assert aml.state.jobs == {}
    assert aml.faults.pending() == {}

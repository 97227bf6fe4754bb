"""``AzureMLService`` (the core's ``MLService``) against the Azure ML emulator, through the real MLClient."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.azure_ml.service import AzureMLService
from adapters.emulators.azure_ml import AzureMLEmulator
from bot.clock import FakeClock

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


@pytest.fixture
def service(aml: AzureMLEmulator, monkeypatch: pytest.MonkeyPatch) -> AzureMLService:
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    return AzureMLService(aml.connection(), polling_interval=0.01)


async def test_submitting_the_same_job_name_twice_starts_one_job(
    aml: AzureMLEmulator, service: AzureMLService, tmp_path: Path
) -> None:
    job_file = str(aml.write_job_yaml("train-model-x", tmp_path))
    first = await service.submit_job(job_file, {"tags.requested_by": "alice"}, "handoff-model-x-1-20261128120000")
    again = await service.submit_job(job_file, {"tags.requested_by": "bob"}, "handoff-model-x-1-20261128120000")

    assert again == first
    assert first.run_id == "handoff-model-x-1-20261128120000"
    assert first.url is not None and "handoff-model-x-1-20261128120000" in first.url
    assert list(aml.state.jobs) == ["handoff-model-x-1-20261128120000"]
    assert len(aml.recorder.matching("PUT /subscriptions/**/jobs/*")) == 1
    assert aml.state.jobs[first.run_id].tags["requested_by"] == "alice"  # the job is left as it was


async def test_a_new_name_is_a_new_job(aml: AzureMLEmulator, service: AzureMLService, tmp_path: Path) -> None:
    job_file = str(aml.write_job_yaml("train-model-x", tmp_path))
    one, two = await asyncio.gather(
        service.submit_job(job_file, {}, "handoff-model-x-1-20261128120000"),
        service.submit_job(job_file, {}, "handoff-model-x-2-20261128120100"),
    )
    names = {"handoff-model-x-1-20261128120000", "handoff-model-x-2-20261128120100"}
    assert {one.run_id, two.run_id} == set(aml.state.jobs) == names


async def test_job_status_follows_the_job_to_its_end(
    aml: AzureMLEmulator, service: AzureMLService, clock: FakeClock, tmp_path: Path
) -> None:
    job_file = str(aml.write_job_yaml("train-model-x", tmp_path))
    started = await service.submit_job(job_file, {}, "handoff-model-x-3-20261128120000")
    assert started.state == "queued"
    await clock.advance(2.5)
    running = await service.job_status(started.run_id)
    assert (running.state, running.result) == ("running", None)
    await clock.advance(5)
    done = await service.job_status(started.run_id)
    assert (done.state, done.result, done.url) == ("completed", "succeeded", started.url)


async def test_a_canceled_job_ends_canceled(
    aml: AzureMLEmulator, service: AzureMLService, clock: FakeClock, tmp_path: Path
) -> None:
    job_file = str(aml.write_job_yaml("train-model-x", tmp_path))
    started = await service.submit_job(job_file, {}, "handoff-model-x-4-20261128120000")
    await clock.advance(2.5)
    await service.cancel_job(started.run_id)
    status = await service.job_status(started.run_id)
    assert (status.state, status.result) == ("completed", "canceled")
    assert [r.status for r in aml.recorder.matching(f"POST /subscriptions/**/jobs/{started.run_id}/cancel")] == [202]

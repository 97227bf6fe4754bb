"""``AzureMLService`` (the core's ``MLService``) against the Azure ML emulator, through the real MLClient."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from adapters.azure_ml.service import AzureMLService
from adapters.emulators.azure_ml import AzureMLEmulator
from adapters.emulators.base import Fault
from bot.clock import FakeClock
from bot.ports import ServiceRefused, ServiceUnavailable, StartedRun

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


async def test_a_job_the_workspace_cannot_run_is_refused_in_one_sentence(
    aml: AzureMLEmulator, service: AzureMLService, tmp_path: Path
) -> None:
    job_file = str(aml.write_job_yaml("train-model-x", tmp_path))
    with pytest.raises(ServiceRefused) as refused:
        await service.submit_job(job_file, {"compute": "cpu-small"}, "handoff-model-x-5-20261128120000")
    # what Azure ML said, once: not azure-core's "(UserError) …", "Code: …", "Message: …" around it
    assert str(refused.value) == "Azure ML refused the job: The workspace has no compute cpu-small."
    assert [r.status for r in aml.recorder.matching("PUT /subscriptions/**/jobs/*")] == [400]
    assert aml.state.jobs == {}


JOBS = "PUT /subscriptions/**/jobs/*"


@pytest.fixture
def untried(aml: AzureMLEmulator, monkeypatch: pytest.MonkeyPatch) -> AzureMLService:
    """The service with every call tried once (azure-core tries a failed call four times by default)."""
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    return AzureMLService(aml.connection(), retry_total=0)


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("reset_after", "The connection to Azure ML dropped before it answered"),  # Azure ML created the job
        ("500", "Azure ML failed (500)"),  # a gateway's 5xx: the service may have created it
        ("502", "Azure ML failed (502)"),
    ],
)
async def test_a_submission_whose_answer_is_lost_may_have_started_the_job_and_submitting_again_finds_it(
    aml: AzureMLEmulator, untried: AzureMLService, tmp_path: Path, fault: str, said: str
) -> None:
    job_file = str(aml.write_job_yaml("train-model-x", tmp_path))
    aml.faults.add(JOBS, [Fault(fault)])  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailable) as lost:
        await untried.submit_job(job_file, {}, "handoff-model-x-7-20261128120000")
    assert str(lost.value) == said
    assert lost.value.may_have_acted

    again = await untried.submit_job(job_file, {}, "handoff-model-x-7-20261128120000")
    assert again.run_id == "handoff-model-x-7-20261128120000"
    assert list(aml.state.jobs) == ["handoff-model-x-7-20261128120000"]
    # found by its name where Azure ML had created it, else created now: one job either way
    assert len(aml.recorder.matching(JOBS)) == (1 if fault == "reset_after" else 2)


@pytest.mark.parametrize("route", ["GET /subscriptions/**/jobs/*", JOBS])
async def test_a_submission_azure_ml_never_took_did_not_start_the_job(
    aml: AzureMLEmulator, untried: AzureMLService, tmp_path: Path, route: str
) -> None:
    """A connection dropped before the job was sent (the look for a job of that name), or a 429 that turned the
    job away: Azure ML did not act on it."""
    job_file = str(aml.write_job_yaml("train-model-x", tmp_path))
    aml.faults.add(route, [Fault("reset" if route.startswith("GET") else "429", retry_after=0)])
    with pytest.raises(ServiceUnavailable) as failed:
        await untried.submit_job(job_file, {}, "handoff-model-x-8-20261128120000")
    assert not failed.value.may_have_acted
    assert aml.state.jobs == {}


MODEL_7 = "GET /subscriptions/**/models/model-x/versions/7"


@pytest.mark.parametrize(
    ("fault", "seconds", "said"),
    [
        ("429", 45.0, "Azure ML is throttling Handoff's requests; try again in 45 s"),
        ("429", 900.0, "Azure ML is throttling Handoff's requests; try again in 15 min"),
        ("503", 5400.0, "Azure ML failed (503); try again in 1 h 30 min"),
    ],
)
async def test_a_call_azure_ml_asks_to_wait_long_for_fails_at_once_saying_when_and_is_not_tried_again(
    aml: AzureMLEmulator, service: AzureMLService, fault: str, seconds: float, said: str
) -> None:
    aml.faults.add(MODEL_7, [Fault(fault, retry_after=seconds)])  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailable) as throttled:
        await service.has_model_version("model-x", "7")
    assert str(throttled.value) == said
    assert len(aml.recorder.matching(MODEL_7)) == 1
    assert await service.has_model_version("model-x", "7")  # the next call is sent as usual


@pytest.mark.parametrize("fault", ["429", "503"])
async def test_a_submission_azure_ml_asks_to_wait_long_for_is_not_sent_again(
    aml: AzureMLEmulator, service: AzureMLService, tmp_path: Path, fault: str
) -> None:
    """A 429 turned the job away; a 503 after the job was sent may come from a gateway that passed it on."""
    job_file = str(aml.write_job_yaml("train-model-x", tmp_path))
    aml.faults.add(JOBS, [Fault(fault, retry_after=600)])  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailable) as throttled:
        await service.submit_job(job_file, {}, "handoff-model-x-9-20261128120000")
    assert str(throttled.value).endswith("; try again in 10 min")
    assert throttled.value.may_have_acted is (fault == "503")
    assert [r.status for r in aml.recorder.matching(JOBS)] == [int(fault)] and aml.state.jobs == {}


async def test_a_data_asset_replaces_the_path_of_the_jobs_data_input_and_keeps_its_type(
    aml: AzureMLEmulator, service: AzureMLService, tmp_path: Path
) -> None:
    job_file = str(aml.write_job_yaml("train-model-x", tmp_path))
    await service.submit_job(
        job_file, {"inputs.training_data.path": "azureml:lake-data:6"}, "handoff-model-x-9-20261128120000"
    )
    [put] = aml.recorder.matching(JOBS)
    training_data = put.json()["properties"]["inputs"]["training_data"]
    assert training_data["jobInputType"] == "uri_folder"
    assert training_data["uri"].endswith("/data/lake-data/versions/6")


async def test_a_job_file_whose_overrides_the_sdk_cannot_apply_is_refused_and_nothing_is_sent(
    aml: AzureMLEmulator, service: AzureMLService, tmp_path: Path
) -> None:
    job_file = str(aml.write_job_yaml("train-model-x", tmp_path))
    with pytest.raises(ServiceRefused) as refused:  # learning_rate is a literal: it has no path
        await service.submit_job(job_file, {"inputs.learning_rate.path": "x"}, "handoff-model-x-10-20261128120000")
    assert str(refused.value).startswith(f"The job file {job_file} cannot be submitted: ")
    assert aml.recorder.matching(JOBS) == [] and aml.state.jobs == {}


async def test_a_missing_relative_job_file_is_refused_naming_where_it_was_looked_for(
    aml: AzureMLEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    service = AzureMLService(aml.connection(), base_dir=tmp_path / "config")
    with pytest.raises(ServiceRefused) as refused:
        await service.submit_job("jobs/train.yml", {}, "handoff-model-x-6-20261128120000")
    looked = tmp_path / "config" / "jobs" / "train.yml"
    assert str(refused.value) == f"The job file jobs/train.yml does not exist (looked for it at {looked})."
    assert aml.state.jobs == {}


async def test_a_model_version_is_there_or_not(aml: AzureMLEmulator, service: AzureMLService) -> None:
    assert sorted(aml.state.models["model-x"]) == ["6", "7"]
    assert await service.has_model_version("model-x", "7")
    assert not await service.has_model_version("model-x", "99")
    assert not await service.has_model_version("model-z", "1")  # no such model at all


async def test_the_latest_model_version_is_one_registry_read_without_the_signature(
    aml: AzureMLEmulator, service: AzureMLService
) -> None:
    assert sorted(aml.state.models["model-x"]) == ["6", "7"]
    aml.recorder.clear()
    assert await service.latest_model_version("model-x") == "7"
    asked = aml.recorder.matching("/subscriptions/**")
    assert len(asked) == 1 and asked == aml.recorder.matching("GET /subscriptions/**/models/model-x/versions")
    assert aml.recorder.matching("/blob/**") == []  # the MLmodel file (its signature) is not read


async def test_the_latest_version_of_a_model_the_registry_does_not_have_is_refused(
    aml: AzureMLEmulator, service: AzureMLService
) -> None:
    with pytest.raises(ServiceRefused) as refused:
        await service.latest_model_version("model-z")
    assert str(refused.value) == "Azure ML has no model model-z."


@pytest.mark.parametrize("version", [None, "1"])
async def test_a_model_the_registry_does_not_have_is_refused_with_or_without_a_version(
    aml: AzureMLEmulator, service: AzureMLService, version: str | None
) -> None:
    with pytest.raises(ServiceRefused) as refused:
        await service.model_version("model-z", version)
    assert str(refused.value) == "Azure ML has no model model-z."


async def test_a_version_the_registry_does_not_have_is_refused_naming_the_latest(
    aml: AzureMLEmulator, service: AzureMLService
) -> None:
    assert sorted(aml.state.models["model-x"]) == ["6", "7"]
    with pytest.raises(ServiceRefused) as refused:
        await service.model_version("model-x", "99")
    assert str(refused.value) == "Azure ML has no version 99 of model model-x; its latest is 7."


async def test_a_missing_version_is_refused_without_the_latest_when_azure_ml_does_not_say_which_that_is(
    aml: AzureMLEmulator, service: AzureMLService
) -> None:
    aml.faults.add("GET /subscriptions/**/models/model-x/versions", [Fault("503", retry_after=0)] * 10)
    with pytest.raises(ServiceRefused) as refused:
        await service.model_version("model-x", "99")
    assert str(refused.value) == "Azure ML has no version 99 of model model-x."


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


OPERATION = "GET /subscriptions/**/mfeOperationResults/*"


@pytest.fixture
async def canceling(clock: FakeClock) -> AsyncIterator[AzureMLEmulator]:
    """The emulator, its jobs taking a minute of its clock to be canceled, its cancel asking to look again in 1 s."""
    async with AzureMLEmulator(clock=clock, cancel_delay=60, lro_retry_after=1) as emulator:
        yield emulator


async def _running(
    service: AzureMLService, emulator: AzureMLEmulator, clock: FakeClock, folder: Path, name: str
) -> StartedRun:
    """A training job ``name`` submitted through ``service`` and running."""
    job_file = str(emulator.write_job_yaml("train-model-x", folder))
    started = await service.submit_job(job_file, {}, name)
    await clock.advance(2.5)
    return started


async def test_a_cancel_azure_ml_asks_to_look_at_much_later_is_left_to_azure_ml_at_once(
    canceling: AzureMLEmulator, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hour's Retry-After on the cancel's operation would hold one of the service's threads for the hour."""
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    service = AzureMLService(canceling.connection())
    try:
        started = await _running(service, canceling, clock, tmp_path, "handoff-model-x-6-20261128120000")
        canceling.lro_retry_after = 3600

        began = time.monotonic()
        await asyncio.wait_for(service.cancel_job(started.run_id), 30)
        assert time.monotonic() - began < 10  # (an hour without the cap)

        assert [
            r.status for r in canceling.recorder.matching(f"POST /subscriptions/**/jobs/{started.run_id}/cancel")
        ] == [202]
        assert [r.status for r in canceling.recorder.matching(OPERATION)] == [202]  # looked once, not again
        assert canceling.state.jobs[started.run_id].status == "CancelRequested"  # asked: Azure ML is at it
        status = await service.job_status(started.run_id)
        assert (status.state, status.result) == ("canceling", None)
        await clock.advance(60)
        status = await service.job_status(started.run_id)
        assert (status.state, status.result) == ("completed", "canceled")
    finally:
        await service.close()


async def test_a_cancel_azure_ml_asks_to_look_at_again_soon_is_waited_for_until_it_is_done(
    canceling: AzureMLEmulator, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    service = AzureMLService(canceling.connection())
    try:
        started = await _running(service, canceling, clock, tmp_path, "handoff-model-x-7-20261128120000")

        cancel = asyncio.ensure_future(service.cancel_job(started.run_id))
        await canceling.recorder.wait_for(OPERATION, timeout=30)  # Azure ML is at it: 202, look again in 1 s
        await asyncio.sleep(0.2)
        assert not cancel.done()
        await clock.advance(60)  # the job is canceled
        await asyncio.wait_for(cancel, 30)

        assert [r.status for r in canceling.recorder.matching(OPERATION)] == [202, 200]
        assert canceling.state.jobs[started.run_id].status == "Canceled"
    finally:
        await service.close()


VERSIONS = "GET /subscriptions/**/models/*/versions"


async def test_a_stalled_workspace_holds_up_its_own_calls_only(aml: AzureMLEmulator) -> None:
    """Python's default pool also serves the event loop's DNS lookups (the chat platforms' hosts): Azure ML
    calls waiting on a stalled workspace must not take its threads, however many there are."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(2))  # a small machine's default pool
    service = AzureMLService(aml.connection(), workers=2)
    try:
        await service.model_versions("model-x")  # the client is built
        aml.faults.add(VERSIONS, [Fault("stall", stall_seconds=2)] * 4)
        calls = [asyncio.ensure_future(service.model_versions("model-x")) for _ in range(4)]
        await aml.recorder.wait_for(VERSIONS, count=3)  # the first call, then two stalled ones
        await asyncio.sleep(0.2)

        assert await loop.getaddrinfo("localhost", 443)  # answered while the workspace stalls
        assert not any(call.done() for call in calls)
        assert len(aml.recorder.matching(VERSIONS)) == 3  # the other two wait their turn
        answers = await asyncio.gather(*calls)
        assert [[v.version for v in versions] for versions in answers] == [["6", "7"]] * 4
    finally:
        await service.close()


async def test_a_workspace_that_stops_answering_is_unavailable_after_the_read_timeout(aml: AzureMLEmulator) -> None:
    service = AzureMLService(aml.connection(), read_timeout=0.2, retry_total=1, retry_backoff_factor=0)
    try:
        await service.model_versions("model-x")
        aml.faults.add(VERSIONS, [Fault("stall", stall_seconds=30)] * 2)
        with pytest.raises(ServiceUnavailable, match="unreachable"):
            await asyncio.wait_for(service.model_versions("model-x"), 20)
        assert len(aml.recorder.matching(VERSIONS)) == 3  # one call, tried twice
    finally:
        await service.close()

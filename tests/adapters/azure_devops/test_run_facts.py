"""What a run's hooks leave out, read from the Build API once per run."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from adapters.azure_devops.run_facts import RunCompletion, RunFacts
from bot.events import Person
from bot.ports import RunStatus, ServiceRefused, ServiceUnavailable

BOB = Person(name="Bob", email="bob@contoso.com")


async def test_a_run_is_asked_about_once_and_a_slow_answer_serves_its_later_events() -> None:
    asked: list[str] = []
    answer = asyncio.Event()

    async def run_details(project: str, run_id: str) -> RunStatus:
        asked.append(run_id)
        await answer.wait()
        return RunStatus(run_id, "running", requested_by=BOB, branch="refs/heads/main")

    facts = RunFacts(run_details)
    assert await facts.of("mlops", "42", timeout=0.05) is None  # out of time: the event goes on without
    assert facts.known("mlops", "42") is None
    answer.set()
    await asyncio.sleep(0)
    assert (known := facts.known("MLOps", "42")) is not None and known.requested_by == BOB  # without asking
    status = await facts.of("MLOps", "42", timeout=0.05)
    assert status is not None and (status.requested_by, status.branch) == (BOB, "refs/heads/main")
    assert asked == ["42"]


async def test_a_run_azure_devops_did_not_answer_about_is_asked_again_only_after_a_pause() -> None:
    asked: list[str] = []

    async def run_details(project: str, run_id: str) -> RunStatus:
        asked.append(run_id)
        raise ServiceUnavailable("Azure DevOps is unreachable")

    facts = RunFacts(run_details, retry_after=0.2)
    assert await facts.of("mlops", "42", timeout=1) is None
    assert await facts.of("mlops", "42", timeout=1) is None
    assert asked == ["42"]
    await asyncio.sleep(0.25)
    assert await facts.of("mlops", "42", timeout=1) is None
    assert asked == ["42", "42"]


async def test_events_telling_a_runs_end_share_one_request_after_the_answer_from_before_it() -> None:
    asked: list[str] = []
    answer, reached = asyncio.Event(), asyncio.Event()
    ended_at = datetime(2026, 11, 28, 9, 10, tzinfo=UTC)
    build = RunStatus("42", "running", requested_by=BOB)

    async def run_details(project: str, run_id: str) -> RunStatus:
        told = build  # how the run stands as the request reaches Azure DevOps
        asked.append(told.state)
        reached.set()
        await answer.wait()
        return told

    facts = RunFacts(run_details)
    stage_failed = asyncio.create_task(facts.of("mlops", "42", timeout=1))  # while the run goes on
    await reached.wait()
    build = replace(build, state="completed", result="failed", failing_step="Integration tests", finished_at=ended_at)
    end = RunCompletion(ended_at)
    # the run's end, delivered three times over while the first request is still going
    run_ended = [asyncio.create_task(facts.of("MLOps", "42", timeout=1, completion=end)) for _ in range(3)]
    await asyncio.sleep(0)
    answer.set()
    first = await stage_failed
    assert first is not None and first.requested_by == BOB
    for status in await asyncio.gather(*run_ended):
        assert status is not None and end.told_by(status) and status.failing_step == "Integration tests"
    assert asked == ["running", "completed"]
    # a retried stage ends the run again, later: the answer kept was about the earlier end
    assert not RunCompletion(ended_at + timedelta(minutes=15)).told_by(build)
    assert await facts.of("mlops", "42", timeout=1, completion=end) is not None
    assert asked == ["running", "completed"]


async def test_while_azure_devops_cannot_be_reached_no_other_run_is_asked_about_until_the_pause_is_over() -> None:
    asked: list[str] = []
    reachable = False

    async def run_details(project: str, run_id: str) -> RunStatus:
        asked.append(run_id)
        if not reachable:
            raise ServiceUnavailable("Azure DevOps is unreachable")
        return RunStatus(run_id, "running", requested_by=BOB)

    facts = RunFacts(run_details, retry_after=0.2)
    assert await facts.of("mlops", "42", timeout=1) is None
    # a storm of other runs' failures is not held up by one request each to an organization that is down
    assert [await facts.of("mlops", str(run), timeout=1) for run in range(43, 46)] == [None] * 3
    assert asked == ["42"]
    await asyncio.sleep(0.25)
    reachable = True
    status = await facts.of("mlops", "43", timeout=1)
    assert status is not None and status.requested_by == BOB
    assert await facts.of("mlops", "44", timeout=1) is not None  # answered again: every run is asked again
    assert asked == ["42", "43", "44"]


async def test_once_a_caller_ran_out_of_time_other_runs_are_not_waited_for_until_azure_devops_answers() -> None:
    asked: list[str] = []
    answer = asyncio.Event()

    async def run_details(project: str, run_id: str) -> RunStatus:
        asked.append(run_id)
        if run_id == "42":
            await answer.wait()
        return RunStatus(run_id, "running", requested_by=BOB)

    facts = RunFacts(run_details, retry_after=30)
    assert await facts.of("mlops", "42", timeout=0.05) is None  # Azure DevOps is slow
    assert await facts.of("mlops", "43", timeout=5) is None  # not waited for: it would be as slow
    assert asked == ["42"]
    answer.set()  # the slow answer comes in: Azure DevOps answers again
    await asyncio.sleep(0)
    assert await facts.of("mlops", "43", timeout=5) is not None
    assert asked == ["42", "43"]


async def test_a_run_azure_devops_does_not_know_leaves_the_other_runs_asked_about() -> None:
    asked: list[str] = []

    async def run_details(project: str, run_id: str) -> RunStatus:
        asked.append(run_id)
        if run_id == "42":
            raise ServiceRefused("run 42 was not found", not_found=True)
        return RunStatus(run_id, "running", requested_by=BOB)

    facts = RunFacts(run_details, retry_after=30)
    assert await facts.of("mlops", "42", timeout=1) is None
    assert await facts.of("mlops", "43", timeout=1) is not None
    assert asked == ["42", "43"]

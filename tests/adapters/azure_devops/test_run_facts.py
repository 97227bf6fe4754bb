"""What a run's hooks leave out, read from the Build API once per run."""

from __future__ import annotations

import asyncio

from adapters.azure_devops.run_facts import RunFacts
from bot.events import Person
from bot.ports import RunStatus, ServiceUnavailable

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
    answer.set()
    await asyncio.sleep(0)
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

"""How Azure DevOps' refusals of a decision reach the core: which say the approval was decided already, and which
are no refusal at all (throttling, its own failures)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from azure.devops.connection import Connection
from msrest.authentication import BasicAuthentication

from adapters.azure_devops.pipelines import AzureDevOpsPipelines
from adapters.emulators.azure_devops import AzureDevOpsEmulator
from adapters.emulators.azure_devops.errors import internal_error
from adapters.emulators.azure_devops.model import Approval
from adapters.emulators.base import Fault
from bot.clock import FakeClock
from bot.ports import ServiceRefused, ServiceUnavailable
from tests.adapters.conftest import production_approval


async def test_a_classic_release_approval_decided_already_is_refused_as_decided_already(
    ado: AzureDevOpsEmulator,
) -> None:
    """Azure DevOps answers 400 InvalidRequestException ``VS402860: The approval has already been approved.``"""
    as_carol = BasicAuthentication("", ado.pat("carol@contoso.com"))  # the approver of release approval 7
    pipelines = AzureDevOpsPipelines(Connection(base_url=ado.org_url, creds=as_carol))
    try:
        await pipelines.decide_release_approval("mlops", "7", True, "ok")
        with pytest.raises(ServiceRefused) as refused:
            await pipelines.decide_release_approval("mlops", "7", False, "too late")
    finally:
        await pipelines.close()
    assert refused.value.already_decided and not (refused.value.forbidden or refused.value.not_found)
    assert refused.value.reason.startswith("VS402860: ")


APPROVALS = "PATCH /contoso/mlops/_apis/pipelines/approvals"
TROUBLE = "Azure DevOps is having trouble on its side (503); try again"


@pytest.fixture
async def as_carol(ado: AzureDevOpsEmulator) -> AsyncIterator[AzureDevOpsPipelines]:
    """Handoff's Azure DevOps service, with carol's credentials (an approver of production's approval)."""
    pipelines = AzureDevOpsPipelines(
        Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat("carol@contoso.com")))
    )
    yield pipelines
    await pipelines.close()


async def waiting_approval(ado: AzureDevOpsEmulator, clock: FakeClock) -> Approval:
    """Production's approval of a release of app-y bob asked for."""
    run = ado.start_run(
        "release-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    for _ in range(2):  # Build (2 s), Deploy to staging (3 s)
        await ado.settled()
        await clock.advance(3)
    return await ado.wait_for_approval(run.id)


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (  # TF400733, with no Retry-After worth telling
            Fault("429", retry_after=0),
            "Azure DevOps is throttling Handoff's requests (429); try again in a few minutes",
        ),
        (Fault("503", retry_after=0, body=internal_error().body()), f"{TROUBLE} shortly"),
        (Fault("500", body=internal_error().body()), "Azure DevOps failed (500)"),
        (Fault("503", retry_after=0), f"{TROUBLE} shortly"),  # a body that is no Azure DevOps error
    ],
)
async def test_throttling_and_azure_devops_own_failures_are_no_refusal_of_a_decision(
    ado: AzureDevOpsEmulator, clock: FakeClock, as_carol: AzureDevOpsPipelines, fault: Fault, said: str
) -> None:
    """Azure DevOps answers the decision in its JSON error shape, as it does a refusal: the status (429, 5xx) says
    it may be sent again; Azure DevOps did not take it."""
    approval = await waiting_approval(ado, clock)
    ado.faults.add(APPROVALS, [fault])
    with pytest.raises(ServiceUnavailable) as unavailable:
        await as_carol.decide_approval("mlops", approval.id, True, "ship it")
    assert str(unavailable.value) == said and not unavailable.value.may_have_acted
    [patch] = ado.recorder.matching(APPROVALS)
    assert patch.status == int(fault.kind)  # sent once: the SDK does not retry a PATCH
    assert approval.status == "pending"
    await as_carol.decide_approval("mlops", approval.id, True, "ship it")  # sent again, it is taken
    assert approval.status == "approved"


async def test_a_throttled_question_is_no_refusal_either(
    ado: AzureDevOpsEmulator, clock: FakeClock, as_carol: AzureDevOpsPipelines
) -> None:
    approval = await waiting_approval(ado, clock)
    ado.faults.add("GET /contoso/mlops/_apis/pipelines/approvals", [Fault("429", retry_after=0)] * 4)
    with pytest.raises(ServiceUnavailable, match="throttling"):  # (the SDK retries a GET's 429 three times)
        await as_carol.approval_statuses("mlops", [approval.id])


@pytest.mark.parametrize("ado_world", [production_approval(requesterCannotBeApprover=True)], ids=["requester barred"])
async def test_refusals_stay_refusals(
    ado: AzureDevOpsEmulator, clock: FakeClock, as_carol: AzureDevOpsPipelines
) -> None:
    """403 (not an approver, or the requester barred), 404 (no such approval), 409 (completed already): asking
    again changes nothing."""
    approval = await waiting_approval(ado, clock)
    for who in ("alice@contoso.com", "bob@contoso.com"):  # not an approver; the requester, barred
        pipelines = AzureDevOpsPipelines(Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat(who))))
        try:
            with pytest.raises(ServiceRefused) as forbidden:
                await pipelines.decide_approval("mlops", approval.id, True, "not mine")
        finally:
            await pipelines.close()
        assert forbidden.value.forbidden
    with pytest.raises(ServiceRefused) as missing:
        await as_carol.decide_approval("mlops", "00000000-0000-0000-0000-000000000000", True, "gone")
    assert missing.value.not_found
    await as_carol.decide_approval("mlops", approval.id, False, "no")
    with pytest.raises(ServiceRefused) as decided:
        await as_carol.decide_approval("mlops", approval.id, True, "too late")
    assert decided.value.already_decided
    assert [p.status for p in ado.recorder.matching(APPROVALS)] == [403, 403, 404, 200, 409]

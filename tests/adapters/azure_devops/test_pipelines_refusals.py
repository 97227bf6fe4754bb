"""How Azure DevOps' refusals of a decision reach the core: which say the approval was decided already."""

from __future__ import annotations

import pytest
from azure.devops.connection import Connection
from msrest.authentication import BasicAuthentication

from adapters.azure_devops.pipelines import AzureDevOpsPipelines
from adapters.emulators.azure_devops import AzureDevOpsEmulator
from bot.ports import ServiceRefused


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

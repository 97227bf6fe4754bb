"""`subscribe <url>`: the Azure DevOps URL forms people paste (bot/azure_devops_urls.py, pure)."""

from __future__ import annotations

import pytest

from bot.azure_devops_urls import (
    AzureDevOpsUrl,
    NotAnAzureDevOpsUrl,
    looks_like_url,
    organization_of,
    parse_azure_devops_url,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://dev.azure.com/contoso/mlops", AzureDevOpsUrl("contoso", "mlops")),
        ("https://dev.azure.com/contoso/mlops/", AzureDevOpsUrl("contoso", "mlops")),
        ("dev.azure.com/contoso/mlops/_git/app-y", AzureDevOpsUrl("contoso", "mlops")),
        ("https://dev.azure.com/contoso/My%20Project/_boards", AzureDevOpsUrl("contoso", "My Project")),
        ("https://dev.azure.com/contoso/mlops/_build?definitionId=12", AzureDevOpsUrl("contoso", "mlops", 12)),
        (
            "https://dev.azure.com/contoso/mlops/_build?definitionId=12&_a=summary",
            AzureDevOpsUrl("contoso", "mlops", 12),
        ),
        (
            "https://dev.azure.com/contoso/mlops/_build/definition?definitionId=3",
            AzureDevOpsUrl("contoso", "mlops", 3),
        ),
        (
            "https://dev.azure.com/contoso/mlops/_build/results?buildId=345&view=results",
            AzureDevOpsUrl("contoso", "mlops", None, 345),
        ),
        ("https://contoso.visualstudio.com/mlops/_build?definitionId=7", AzureDevOpsUrl("contoso", "mlops", 7)),
        (
            "https://contoso.visualstudio.com/DefaultCollection/mlops/_build?definitionId=7",
            AzureDevOpsUrl("contoso", "mlops", 7),
        ),
        ("https://contoso.visualstudio.com/mlops", AzureDevOpsUrl("contoso", "mlops")),
        ("<https://dev.azure.com/contoso/mlops/_build?definitionId=12>", AzureDevOpsUrl("contoso", "mlops", 12)),
        (
            "<https://dev.azure.com/contoso/mlops/_build?definitionId=12&amp;_a=summary|the pipeline>",
            AzureDevOpsUrl("contoso", "mlops", 12),
        ),
        (
            "https://dev.azure.com/contoso/mlops/_release?definitionId=4&view=mine",
            AzureDevOpsUrl("contoso", "mlops", 4, None, release=True),
        ),
        (
            "https://dev.azure.com/contoso/mlops/_releaseProgress?releaseId=9",
            AzureDevOpsUrl("contoso", "mlops", None, 9, release=True),
        ),
    ],
)
def test_the_forms_the_azure_pipelines_app_accepts(text: str, expected: AzureDevOpsUrl) -> None:
    assert looks_like_url(text)
    assert parse_azure_devops_url(text) == expected


def test_a_server_or_emulator_url_is_accepted_when_it_is_the_configured_organization() -> None:
    base = "http://127.0.0.1:4567/ado/contoso"
    parsed = parse_azure_devops_url(f"{base}/mlops/_build?definitionId=2", [base])
    assert parsed == AzureDevOpsUrl("contoso", "mlops", 2)
    assert parse_azure_devops_url("HTTP://127.0.0.1:4567/ADO/Contoso/mlops", [base]).project == "mlops"
    with pytest.raises(NotAnAzureDevOpsUrl):
        parse_azure_devops_url("http://127.0.0.1:9999/ado/contoso/mlops", [base])  # another port
    with pytest.raises(NotAnAzureDevOpsUrl, match="not an Azure DevOps URL"):
        parse_azure_devops_url(f"{base}/mlops")  # unknown without the configured base


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("https://example.com/contoso/mlops", "not an Azure DevOps URL"),
        ("https://dev.azure.com/contoso", "names no project"),
        ("https://dev.azure.com/contoso/_settings/users", "names no project"),
        ("ftp://dev.azure.com/contoso/mlops", "is not a URL"),
        ("https://a.b.visualstudio.com/mlops", "not an Azure DevOps URL"),
    ],
)
def test_what_is_not_a_project_or_pipeline_url_says_why(text: str, message: str) -> None:
    with pytest.raises(NotAnAzureDevOpsUrl, match=message):
        parse_azure_devops_url(text)


def test_names_and_filters_are_not_urls() -> None:
    assert not looks_like_url("integrate-app-y")
    assert not looks_like_url("events=run")


def test_the_organization_of_an_organization_url() -> None:
    assert organization_of("https://dev.azure.com/contoso") == "contoso"
    assert organization_of("https://dev.azure.com/contoso/") == "contoso"
    assert organization_of("https://contoso.visualstudio.com") == "contoso"
    assert organization_of("https://ado.corp.example/tfs/Fabrikam") == "Fabrikam"
    assert organization_of("http://127.0.0.1:4567/ado/contoso") == "contoso"

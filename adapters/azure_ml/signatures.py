"""Reading a registered MLflow model's ``MLmodel`` file (and its signature) without downloading the model.

shared/reference/azure-ml.md §3.4 option B: ``models.get`` gives the model's ``azureml://`` path, the
datastore gives the storage account and container, and only ``<prefix>/MLmodel`` is fetched, with
azure-core's pipeline and the client's own credential (scope ``https://storage.azure.com/.default``) and
transport. So the same code reads Azure blob storage in the cloud and the emulator's storage through the
:class:`~adapters.azure_ml.client_factory.RewriteTransport`. (``models.download`` would fetch the whole
folder, with account keys, through a transport we cannot inject.)

The identity needs "Storage Blob Data Reader" on identity-based datastores.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import yaml
from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest

from adapters.azure_ml.client_factory import AzureMLConnection, build_ml_client, client_context, timeout_kwargs
from adapters.azure_ml.throttle import RetryAfterCap

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.pipeline.transport import HttpTransport

    from bot.config import AzureMLSettings

STORAGE_SCOPE = "https://storage.azure.com/.default"
STORAGE_API_VERSION = "2023-11-03"

_DATASTORE_PATH = re.compile(r"datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$", re.IGNORECASE)
_JOB_OUTPUT = re.compile(
    r"^(?:azureml://jobs/(?P<job>[^/]+)/outputs/artifacts/paths/|runs:/(?P<run>[^/]+)/)(?P<path>.*)$"
)


def model_artifact_location(model_path: str) -> tuple[str, str]:
    """``(datastore, prefix)`` of a model's ``azureml://`` path (long or short form, or a job output)."""
    match = _JOB_OUTPUT.match(model_path)
    if match:
        return "workspaceartifactstore", f"ExperimentRun/dcid.{match['job'] or match['run']}/{match['path']}"
    match = _DATASTORE_PATH.search(model_path)
    if match is None:
        raise ValueError(f"not a datastore path: {model_path!r}")
    return match["ds"], match["path"]


def mlmodel_url(ml_client: MLClient, name: str, version: str | int) -> str:
    """The https URL of the ``MLmodel`` file of model ``name`` version ``version``."""
    model = ml_client.models.get(name, version=str(version))
    datastore, prefix = model_artifact_location(str(model.path))
    ds: Any = ml_client.datastores.get(datastore)
    container = getattr(ds, "container_name", None) or getattr(ds, "filesystem", None)
    if not container or not getattr(ds, "account_name", None):
        raise ValueError(f"datastore {datastore!r} is not blob or ADLS Gen2 storage")
    blob = "/".join(p for p in (prefix.strip("/"), "MLmodel") if p)
    return f"{ds.protocol or 'https'}://{ds.account_name}.blob.{ds.endpoint}/{container}/{quote(blob)}"


def fetch_text(
    url: str,
    credential: TokenCredential,
    transport: HttpTransport[Any, Any] | None = None,
    retry: dict[str, Any] | None = None,
) -> str:
    """GET a blob's text with a bearer token for Azure Storage, through ``transport`` if given.

    ``retry`` holds azure-core ``RetryPolicy`` settings (``retry_total``...).
    """
    policies: list[Any] = [
        HeadersPolicy({"x-ms-version": STORAGE_API_VERSION}),
        UserAgentPolicy("handoff-bot"),
        RetryPolicy(**(retry or {})),
        RetryAfterCap(),  # a long Retry-After fails the read rather than holding the thread
        BearerTokenCredentialPolicy(credential, STORAGE_SCOPE),
    ]
    owned = transport is None
    if transport is None:
        transport = RequestsTransport(**timeout_kwargs())
    client: PipelineClient[Any, Any] = PipelineClient(base_url=url, policies=policies, transport=transport)
    try:
        response = client.send_request(HttpRequest("GET", url))
        if response.status_code == 404:
            raise ResourceNotFoundError(f"no blob at {url}", response=response)
        response.raise_for_status()
        return str(response.text())
    finally:
        if owned:  # ours to close; a shared transport stays open for the MLClient
            client.close()


def read_mlmodel(
    ml_client_or_settings: MLClient | AzureMLConnection | AzureMLSettings,
    name: str,
    version: str | int,
    *,
    credential: TokenCredential | None = None,
    transport: HttpTransport[Any, Any] | None = None,
) -> dict[str, Any]:
    """The parsed ``MLmodel`` of a registered model version (synchronous: call it in a worker thread).

    ``signature.inputs``/``outputs`` stay JSON strings as in the file; :func:`model_signature` decodes them.

    Args:
        ml_client_or_settings: a client from :func:`build_ml_client` (or any ``MLClient``), or an
            ``AzureMLConnection`` / the config's ``azure_ml`` section to build one.
        name: the model name.
        version: the model version.
        credential: overrides the client's credential for the storage read.
        transport: overrides the client's transport for the storage read.

    Raises:
        azure.core.exceptions.ResourceNotFoundError: no such model version, or it has no ``MLmodel``.
    """
    from azure.ai.ml import MLClient

    if isinstance(ml_client_or_settings, MLClient):
        ml_client = ml_client_or_settings
    else:
        ml_client = build_ml_client(ml_client_or_settings)
    context = client_context(ml_client)
    url = mlmodel_url(ml_client, name, version)
    text = fetch_text(url, credential or context.credential, transport or context.transport, context.retry_kwargs)
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError(f"{url} is not an MLmodel file")
    return doc


def model_signature(mlmodel: dict[str, Any]) -> dict[str, Any] | None:
    """The MLflow signature of a parsed ``MLmodel``: ``{"inputs": [...], "outputs": [...], "params": ...}``
    with the JSON strings decoded, or None when the model has no signature."""
    signature = mlmodel.get("signature")
    if not signature:
        return None
    return {
        key: json.loads(value) if isinstance(value, str) else value
        for key, value in signature.items()
        if key in ("inputs", "outputs", "params")
    }

"""ARM resource ids and the JSON bodies of the emulated Machine Learning Services resources.

The shapes are the minimal-plus-useful bodies of shared/reference/azure-ml.md §4.3, which the real
azure-ai-ml 1.35 client accepts.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web

from adapters.emulators.azure_ml.state import AssetVersion, JobRecord, ModelVersionRecord
from adapters.emulators.azure_ml.world import AzureMLWorld, DatastoreSeed

PROVIDER = "Microsoft.MachineLearningServices"
ASSET_TYPES = {
    "environments": "environments",
    "data": "data",
    "codes": "codes",
    "components": "components",
    "models": "models",
}
_DATASTORE_URI = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+/)?"
    r"datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$",
    re.IGNORECASE,
)
_JOB_OUTPUT_URI = re.compile(
    r"^(?:azureml://jobs/(?P<job>[^/]+)/outputs/artifacts/paths/|runs:/(?P<run>[^/]+)/)(?P<path>.*)$"
)


def datastore_path(uri: str) -> tuple[str, str] | None:
    """``(datastore, path)`` of an ``azureml://`` datastore URI or a job output URI (artifact store)."""
    match = _DATASTORE_URI.match(uri)
    if match:
        return match["ds"], match["path"]
    match = _JOB_OUTPUT_URI.match(uri)
    if match:
        return "workspaceartifactstore", f"ExperimentRun/dcid.{match['job'] or match['run']}/{match['path']}"
    return None


def iso(moment: datetime) -> str:
    """ARM's ISO-8601 form of a timestamp."""
    return moment.isoformat().replace("+00:00", "Z")


def system_data(created_at: datetime, modified_at: datetime | None = None) -> dict[str, Any]:
    return {
        "createdAt": iso(created_at),
        "createdBy": "Handoff Emulator",
        "createdByType": "User",
        "lastModifiedAt": iso(modified_at or created_at),
        "lastModifiedBy": "Handoff Emulator",
        "lastModifiedByType": "User",
    }


def arm_error(status: int, code: str, message: str) -> web.Response:
    """An ARM error response (``{"error": {"code", "message"}}``), as azure-core's ARM error format reads."""
    return web.json_response({"error": {"code": code, "message": message, "details": []}}, status=status)


class ArmScope:
    """Resource ids inside the emulated workspace."""

    def __init__(self, world: AzureMLWorld) -> None:
        self.world = world
        self.workspace_id = (
            f"/subscriptions/{world.subscription_id}/resourceGroups/{world.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{world.workspace}"
        )

    def job_id(self, name: str) -> str:
        return f"{self.workspace_id}/jobs/{name}"

    def container_id(self, kind: str, name: str) -> str:
        return f"{self.workspace_id}/{kind}/{name}"

    def version_id(self, kind: str, name: str, version: str) -> str:
        return f"{self.workspace_id}/{kind}/{name}/versions/{version}"

    def datastore_id(self, name: str) -> str:
        return f"{self.workspace_id}/datastores/{name}"

    def compute_id(self, name: str) -> str:
        return f"{self.workspace_id}/computes/{name}"

    def datastore_uri(self, datastore: str, path: str) -> str:
        """The long ``azureml://`` URI of a path in a datastore (what ``modelUri`` holds)."""
        w = self.world
        return (
            f"azureml://subscriptions/{w.subscription_id}/resourcegroups/{w.resource_group}"
            f"/workspaces/{w.workspace}/datastores/{datastore}/paths/{path}"
        )


def job_body(scope: ArmScope, job: JobRecord, studio_url: str) -> dict[str, Any]:
    """A job as ``GET .../jobs/{name}`` returns it: what was submitted, plus status and services."""
    props = dict(job.properties)
    props["status"] = job.status
    props["experimentName"] = job.experiment_name
    services = dict(props.get("services") or {})
    services["Studio"] = {"jobServiceType": "Studio", "endpoint": studio_url, "status": None}
    props["services"] = services
    if job.job_type == "Command" and not props.get("outputs"):
        props["outputs"] = {
            "default": {
                "jobOutputType": "uri_folder",
                "mode": "ReadWriteMount",
                "uri": f"azureml://datastores/workspaceartifactstore/ExperimentRun/dcid.{job.name}",
            }
        }
    return {
        "id": scope.job_id(job.name),
        "name": job.name,
        "type": f"{PROVIDER}/workspaces/jobs",
        "properties": props,
        "systemData": system_data(job.created_at, job.end_time or job.start_time),
    }


def model_version_body(scope: ArmScope, model: ModelVersionRecord) -> dict[str, Any]:
    """A model version as ``GET .../models/{name}/versions/{version}`` returns it."""
    props: dict[str, Any] = {
        "description": model.description or None,
        "tags": dict(model.tags),
        "properties": dict(model.properties),
        "isArchived": model.archived,
        "isAnonymous": False,
        "flavors": model.flavors,
        "modelType": model.model_type,
        "modelUri": model.path,
        "jobName": model.job_name,
        "stage": model.stage,
        "provisioningState": "Succeeded",
    }
    return {
        "id": scope.version_id("models", model.name, model.version),
        "name": model.version,
        "type": f"{PROVIDER}/workspaces/models/versions",
        "properties": props,
        "systemData": system_data(model.created_at),
    }


def container_body(
    scope: ArmScope, kind: str, name: str, latest: str | None, next_version: str | None, created_at: datetime
) -> dict[str, Any]:
    """An asset container (``.../models/{name}``, ``.../data/{name}``...) with its latest version."""
    return {
        "id": scope.container_id(kind, name),
        "name": name,
        "type": f"{PROVIDER}/workspaces/{kind}",
        "properties": {
            "description": None,
            "tags": {},
            "properties": {},
            "isArchived": False,
            "latestVersion": latest,
            "nextVersion": next_version,
            "provisioningState": "Succeeded",
        },
        "systemData": system_data(created_at),
    }


def asset_version_body(scope: ArmScope, asset: AssetVersion) -> dict[str, Any]:
    """A version of an environment, data asset, code snapshot or component."""
    props = {"isArchived": False, "isAnonymous": False, "provisioningState": "Succeeded", **asset.properties}
    return {
        "id": scope.version_id(asset.kind, asset.name, asset.version),
        "name": asset.version,
        "type": f"{PROVIDER}/workspaces/{asset.kind}/versions",
        "properties": props,
        "systemData": system_data(asset.created_at),
    }


def datastore_body(scope: ArmScope, ds: DatastoreSeed, storage_suffix: str) -> dict[str, Any]:
    """An identity-based datastore (no stored credentials)."""
    props: dict[str, Any] = {
        "datastoreType": ds.type,
        "accountName": ds.account,
        "endpoint": storage_suffix,
        "protocol": "https",
        "credentials": {"credentialsType": "None"},
        "isDefault": ds.name == "workspaceblobstore",
        "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity",
        "tags": {},
        "properties": {},
    }
    if ds.type == "AzureDataLakeGen2":
        props["filesystem"] = ds.container
    else:
        props["containerName"] = ds.container
    return {
        "id": scope.datastore_id(ds.name),
        "name": ds.name,
        "type": f"{PROVIDER}/workspaces/datastores",
        "properties": props,
    }


def workspace_body(scope: ArmScope, workspace_guid: str, public_base: str) -> dict[str, Any]:
    """The workspace resource."""
    w = scope.world
    storage = f"/subscriptions/{w.subscription_id}/resourceGroups/{w.resource_group}/providers/Microsoft.Storage"
    return {
        "id": scope.workspace_id,
        "name": w.workspace,
        "type": f"{PROVIDER}/workspaces",
        "location": w.location,
        "kind": "Default",
        "identity": {"type": "SystemAssigned"},
        "sku": {"name": "Basic", "tier": "Basic"},
        "tags": {},
        "properties": {
            "friendlyName": w.workspace,
            "workspaceId": workspace_guid,
            "discoveryUrl": f"{public_base}/discovery/workspaces/{workspace_guid}",
            "storageAccount": f"{storage}/storageAccounts/{_workspace_account(w)}",
            "provisioningState": "Succeeded",
            "publicNetworkAccess": "Enabled",
            "hbiWorkspace": False,
        },
    }


def _workspace_account(world: AzureMLWorld) -> str:
    ds = world.datastores.get("workspaceblobstore")
    return ds.account if ds else "stworkspace"

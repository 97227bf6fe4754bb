"""The ARM routes of the emulated workspace that azure-ai-ml 1.35 calls (shared/reference/azure-ml.md §4.2).

``api-version`` is ignored. Paths are relative to the application root, so the app works standalone and
mounted under a prefix. Absolute URLs handed out (``Location``, ``nextLink``) use the public base of the
request: the fake https host when the client's transport forwarded it, else the emulator's ``base_url``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from adapters.emulators.azure_ml.resources import (
    PROVIDER,
    arm_error,
    asset_version_body,
    container_body,
    datastore_body,
    job_body,
    model_version_body,
    workspace_body,
)
from adapters.emulators.azure_ml.state import AssetVersion, JobRecord

if TYPE_CHECKING:
    from adapters.emulators.azure_ml.emulator import AzureMLEmulator

WS = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + PROVIDER + "/workspaces/{ws}"
OPERATION_RESULT = "/subscriptions/{sub}/providers/" + PROVIDER + "/locations/{location}/mfeOperationResults/{op}"
ASSET_KINDS = ("environments", "data", "codes", "components")
PAGE_SIZE = 100

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ArmRoutes:
    """Handlers for the workspace's jobs, models, assets, datastores and computes."""

    def __init__(self, emulator: AzureMLEmulator) -> None:
        self.emulator = emulator
        self.state = emulator.state
        self.scope = emulator.scope

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        ws = self._in_workspace
        r.add_get(WS, ws(self.get_workspace))
        r.add_put(WS + "/jobs/{name}", ws(self.put_job))
        r.add_get(WS + "/jobs/{name}", ws(self.get_job))
        r.add_get(WS + "/jobs", ws(self.list_jobs))
        r.add_post(WS + "/jobs/{name}/cancel", ws(self.cancel_job))
        r.add_get(OPERATION_RESULT, self.operation_result)
        r.add_get(WS + "/datastores", ws(self.list_datastores))
        r.add_get(WS + "/datastores/{name}", ws(self.get_datastore))
        r.add_get(WS + "/computes/{name}", ws(self.get_compute))
        r.add_get(WS + "/models", ws(self.list_model_containers))
        r.add_get(WS + "/models/{name}", ws(self.get_model_container))
        r.add_get(WS + "/models/{name}/versions", ws(self.list_model_versions))
        r.add_get(WS + "/models/{name}/versions/{version}", ws(self.get_model_version))
        r.add_put(WS + "/models/{name}/versions/{version}", ws(self.put_model_version))
        r.add_post(WS + "/{kind}/{name}/versions/{version}/startPendingUpload", ws(self.start_pending_upload))
        r.add_get(WS + "/{kind}", ws(self.list_containers))
        r.add_get(WS + "/{kind}/{name}", ws(self.get_container))
        r.add_get(WS + "/{kind}/{name}/versions", ws(self.list_versions))
        r.add_get(WS + "/{kind}/{name}/versions/{version}", ws(self.get_version))
        r.add_put(WS + "/{kind}/{name}/versions/{version}", ws(self.put_version))
        r.add_get("/discovery/workspaces/{guid}", self.discovery)

    def _in_workspace(self, handler: Handler) -> Handler:
        """Answer 404 (as ARM does) for a subscription, resource group or workspace that isn't the world's."""
        world = self.emulator.world

        async def checked(request: web.Request) -> web.StreamResponse:
            m = request.match_info
            wanted = (world.subscription_id, world.resource_group, world.workspace)
            if tuple(x.lower() for x in (m["sub"], m["rg"], m["ws"])) != tuple(x.lower() for x in wanted):
                return arm_error(
                    404,
                    "ResourceNotFound",
                    f"The Resource '{PROVIDER}/workspaces/{m['ws']}' under resource group '{m['rg']}' was not found.",
                )
            return await handler(request)

        return checked

    # -- helpers ----------------------------------------------------------------------------------

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        skip = int(request.query.get("$skipToken", "0") or 0)
        top = int(request.query.get("$top", "0") or 0)
        if top:
            items = items[:top]
        page = items[skip : skip + PAGE_SIZE]
        body: dict[str, Any] = {"value": page}
        if skip + PAGE_SIZE < len(items):
            query = {k: v for k, v in request.query.items() if k != "$skipToken"}
            query["$skipToken"] = str(skip + PAGE_SIZE)
            body["nextLink"] = f"{self.emulator.public_url(request)}?{urlencode(query)}"
        return web.json_response(body)

    async def _json(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    # -- workspace --------------------------------------------------------------------------------

    async def get_workspace(self, request: web.Request) -> web.Response:
        em = self.emulator
        return web.json_response(workspace_body(self.scope, em.workspace_guid, em.public_base(request)))

    async def discovery(self, request: web.Request) -> web.Response:
        base = self.emulator.public_base(request)
        keys = (
            "api",
            "catalog",
            "experimentation",
            "gallery",
            "history",
            "hyperdrive",
            "labeling",
            "modelmanagement",
        )
        return web.json_response({key: base for key in keys})

    # -- jobs ---------------------------------------------------------------------------------------

    async def put_job(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        props = (body or {}).get("properties")
        if not isinstance(props, dict) or not props.get("jobType"):
            return arm_error(400, "UserError", "The request body must contain properties.jobType.")
        name = request.match_info["name"]
        existing = self.state.jobs.get(name)
        if existing is not None:
            for key in ("tags", "description", "displayName"):
                if key in props:
                    existing.properties[key] = props[key]
            return web.json_response(self._job(existing), status=200)
        missing = self.emulator.missing_references(props)
        if missing:
            lacks = " and no ".join(_described(reference) for reference in missing)
            return arm_error(400, "UserError", f"The workspace has no {lacks}.")
        job = self.emulator.submit_job(name, props)
        return web.json_response(self._job(job), status=201)

    def _job(self, job: JobRecord) -> dict[str, Any]:
        return job_body(self.scope, job, self.emulator.studio_url(job.name))

    async def get_job(self, request: web.Request) -> web.Response:
        job = self.state.jobs.get(request.match_info["name"])
        if job is None:
            return arm_error(404, "UserError", f"Job {request.match_info['name']} was not found.")
        return web.json_response(self._job(job))

    async def list_jobs(self, request: web.Request) -> web.Response:
        if request.query.get("parentJobName"):
            return web.json_response({"value": []})
        jobs = sorted(self.state.jobs.values(), key=lambda j: j.created_at, reverse=True)
        job_type = request.query.get("jobType")
        if job_type:
            jobs = [j for j in jobs if j.job_type.lower() == job_type.lower()]
        return self._page(request, [self._job(j) for j in jobs])

    async def cancel_job(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        job = self.state.jobs.get(name)
        if job is None:
            return arm_error(404, "UserError", f"Job {name} was not found.")
        self.emulator.cancel_job(name)
        w = self.emulator.world
        op = f"jc:{self.emulator.workspace_guid}:{name}"
        path = (
            f"/subscriptions/{w.subscription_id}/providers/{PROVIDER}/locations/{w.location}/mfeOperationResults/{op}"
        )
        location = f"{self.emulator.public_base(request)}{path}?api-version=2023-04-01-preview"
        headers = {"Location": location, "Retry-After": str(self.emulator.lro_retry_after)}
        return web.Response(status=202, headers=headers)

    async def operation_result(self, request: web.Request) -> web.Response:
        _, _, name = request.match_info["op"].rpartition(":")
        job = self.state.jobs.get(name)
        if job is None:
            return arm_error(404, "NotFound", "The operation was not found.")
        if not job.is_terminal:
            return web.Response(
                status=202,
                # (on the host the client asked for: a token is not sent to the loopback's plain http)
                headers={
                    "Location": f"{self.emulator.public_url(request)}?{request.query_string}",
                    "Retry-After": str(self.emulator.lro_retry_after),
                },
            )
        return web.Response(status=200)

    # -- datastores and computes ---------------------------------------------------------------------

    async def list_datastores(self, request: web.Request) -> web.Response:
        suffix = self.emulator.world.storage_suffix
        stores = [datastore_body(self.scope, ds, suffix) for ds in self.emulator.world.datastores.values()]
        return self._page(request, stores)

    async def get_datastore(self, request: web.Request) -> web.Response:
        ds = self.emulator.world.datastores.get(request.match_info["name"])
        if ds is None:
            return arm_error(404, "UserError", f"Datastore {request.match_info['name']} was not found.")
        return web.json_response(datastore_body(self.scope, ds, self.emulator.world.storage_suffix))

    async def get_compute(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.emulator.world.computes:
            return arm_error(404, "UserError", f"Compute {name} was not found.")
        body = {
            "id": self.scope.compute_id(name),
            "name": name,
            "type": f"{PROVIDER}/workspaces/computes",
            "location": self.emulator.world.location,
            "properties": {
                "computeType": "AmlCompute",
                "provisioningState": "Succeeded",
                "computeLocation": self.emulator.world.location,
                "properties": {
                    "vmSize": "STANDARD_DS3_V2",
                    "vmPriority": "Dedicated",
                    "scaleSettings": {
                        "minNodeCount": 0,
                        "maxNodeCount": 4,
                        "nodeIdleTimeBeforeScaleDown": "PT120S",
                    },
                },
            },
        }
        return web.json_response(body)

    # -- models --------------------------------------------------------------------------------------

    async def list_model_containers(self, request: web.Request) -> web.Response:
        containers = []
        for name in sorted(self.state.models):
            latest = self.state.latest_model(name)
            if latest is not None:
                containers.append(
                    container_body(
                        self.scope,
                        "models",
                        name,
                        latest.version,
                        self.state.next_model_version(name),
                        latest.created_at,
                    )
                )
        return self._page(request, containers)

    async def get_model_container(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        latest = self.state.latest_model(name)
        if latest is None:
            return arm_error(404, "UserError", f"Model container {name} was not found.")
        next_version = self.state.next_model_version(name)
        return web.json_response(
            container_body(self.scope, "models", name, latest.version, next_version, latest.created_at)
        )

    async def list_model_versions(self, request: web.Request) -> web.Response:
        view = request.query.get("listViewType", "ActiveOnly")
        versions = self.state.model_versions(request.match_info["name"], include_archived=view != "ActiveOnly")
        if view == "ArchivedOnly":
            versions = [m for m in versions if m.archived]
        if request.query.get("version"):
            versions = [m for m in versions if m.version == request.query["version"]]
        return self._page(request, [model_version_body(self.scope, m) for m in versions])

    async def get_model_version(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info["version"]
        model = self.state.models.get(name, {}).get(version)
        if model is None:
            return arm_error(404, "UserError", f"Model container {name} version {version} was not found.")
        return web.json_response(model_version_body(self.scope, model))

    async def put_model_version(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        props = (body or {}).get("properties")
        if not isinstance(props, dict):
            return arm_error(400, "UserError", "The request body must contain properties.")
        name, version = request.match_info["name"], request.match_info["version"]
        created = version not in self.state.models.get(name, {})
        model = self.emulator.upsert_model_version(name, version, props)
        return web.json_response(model_version_body(self.scope, model), status=201 if created else 200)

    # -- environments, data, codes, components ------------------------------------------------------

    def _kind(self, request: web.Request) -> str | None:
        kind = request.match_info["kind"]
        return kind if kind in ASSET_KINDS else None

    def _unknown(self, request: web.Request) -> web.Response:
        return arm_error(404, "NoRegisteredProviderFound", f"No route for {request.method} {request.path}.")

    async def list_containers(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        if kind is None:
            return self._unknown(request)
        containers = []
        for name in sorted(self.state.assets.get(kind, {})):
            versions = self.state.asset_versions(kind, name)
            if versions:
                containers.append(
                    container_body(self.scope, kind, name, versions[0].version, None, versions[0].created_at)
                )
        return self._page(request, containers)

    async def get_container(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        if kind is None:
            return self._unknown(request)
        name = request.match_info["name"]
        versions = self.state.asset_versions(kind, name)
        if not versions:
            return arm_error(404, "UserError", f"{kind} container {name} was not found.")
        numbers = [int(v.version) for v in versions if v.version.isdigit()]
        next_version = str(max(numbers, default=0) + 1)
        return web.json_response(
            container_body(self.scope, kind, name, versions[0].version, next_version, versions[0].created_at)
        )

    async def list_versions(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        if kind is None:
            return self._unknown(request)
        content_hash = request.query.get("hash")
        if kind == "codes" and content_hash:
            found = [
                a
                for versions in self.state.assets.get("codes", {}).values()
                for a in versions.values()
                if (a.properties.get("properties") or {}).get("hash_sha256") == content_hash
            ]
        else:
            found = self.state.asset_versions(kind, request.match_info["name"])
        return self._page(request, [asset_version_body(self.scope, a) for a in found])

    async def get_version(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        if kind is None:
            return self._unknown(request)
        m = request.match_info
        asset = self.state.get_asset(kind, m["name"], m["version"])
        if asset is None:
            return arm_error(404, "UserError", f"{kind} {m['name']}:{m['version']} was not found.")
        return web.json_response(asset_version_body(self.scope, asset))

    async def put_version(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        if kind is None:
            return self._unknown(request)
        body = await self._json(request)
        props = (body or {}).get("properties")
        if not isinstance(props, dict):
            return arm_error(400, "UserError", "The request body must contain properties.")
        m = request.match_info
        created = self.state.get_asset(kind, m["name"], m["version"]) is None
        asset = self.state.put_asset(AssetVersion(kind, m["name"], m["version"], props, self.emulator.clock.now()))
        return web.json_response(asset_version_body(self.scope, asset), status=201 if created else 200)

    async def start_pending_upload(self, request: web.Request) -> web.Response:
        m = request.match_info
        if m["kind"] not in (*ASSET_KINDS, "models"):
            return self._unknown(request)
        store = self.emulator.world.datastores.get("workspaceblobstore")
        account = store.account if store else "stworkspace"
        container = f"{m['kind']}-{uuid.uuid4().hex[:12]}"
        # the SDK's own storage client uploads to sasUri without our transport: it must be loopback http;
        # blobUri (what codeUri records) is on the emulator's storage host, as on Azure.
        container_url = f"{self.emulator.base_url}/blob/{account}/{container}"
        blob_uri = f"https://{account}.blob.{self.emulator.world.storage_suffix}/{container}"
        storage_id = (
            f"/subscriptions/{self.emulator.world.subscription_id}/resourceGroups/"
            f"{self.emulator.world.resource_group}/providers/Microsoft.Storage/storageAccounts/{account}"
        )
        sas = urlencode({"sv": "2025-01-05", "sr": "c", "sp": "rcwl", "se": "2099-01-01T00:00:00Z", "sig": "emulator"})
        body = {
            "blobReferenceForConsumption": {
                "blobUri": blob_uri,
                "storageAccountArmId": storage_id,
                "credential": {"credentialType": "SAS", "sasUri": f"{container_url}?{sas}"},
            },
            "pendingUploadId": str(uuid.uuid4()),
            "pendingUploadType": "TemporaryBlobReference",
        }
        return web.json_response(body)


_KINDS = {
    "computes": "compute",
    "data": "data asset",
    "environments": "environment",
    "components": "component",
    "codes": "code asset",
    "models": "model",
}


def _described(reference: str) -> str:
    """``computes/cpu-small`` as people say it (``compute cpu-small``); ``data/lake:7`` as ``data asset lake
    version 7``."""
    kind, _, name = reference.partition("/")
    name, _, version = name.partition(":")
    return f"{_KINDS.get(kind, kind)} {name}" + (f" version {version}" if version else "")

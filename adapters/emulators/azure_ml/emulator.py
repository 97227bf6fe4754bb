"""``AzureMLEmulator``: one Azure ML workspace, its blob storage and data lake, and Event Grid, in memory.

Point the real ``MLClient`` at it with ``adapters.azure_ml.build_ml_client(emulator.connection())``.
"""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import yaml
from aiohttp import web

from adapters.emulators.azure_ml.arm_eventgrid import ArmEventSubscriptions
from adapters.emulators.azure_ml.blob_routes import BlobService
from adapters.emulators.azure_ml.eventgrid import (
    SCHEMAS,
    EventGridDispatcher,
    EventSubscription,
    Schema,
)
from adapters.emulators.azure_ml.events import EmittedEvent, EventFactory
from adapters.emulators.azure_ml.jobs import JobService
from adapters.emulators.azure_ml.registry import ModelRegistry
from adapters.emulators.azure_ml.resources import ArmScope, arm_error
from adapters.emulators.azure_ml.routes import ArmRoutes
from adapters.emulators.azure_ml.seed import seed_workspace
from adapters.emulators.azure_ml.state import DriftRunRecord, JobRecord, ModelVersionRecord, WorkspaceState
from adapters.emulators.azure_ml.studio import StudioPages
from adapters.emulators.azure_ml.world import AzureMLWorld, Signature, load_default_world
from adapters.emulators.base import (
    FaultScript,
    LocalServer,
    Recorder,
    add_control_routes,
    recording_middleware,
)
from bot.clock import Clock, SystemClock

if TYPE_CHECKING:
    from adapters.azure_ml.client_factory import AzureMLConnection

_UNSET: Any = object()


class AzureMLEmulator:
    """An in-memory Azure ML workspace served over HTTP to the real azure-ai-ml SDK.

    It owns the state, a :class:`Recorder`, a :class:`FaultScript`, a :class:`Clock` on which jobs run and
    Event Grid retries wait, and one ``aiohttp.ClientSession`` for Event Grid deliveries.

    Args:
        world: a world dict (the whole file or its ``azure_ml`` section); the shipped default if None.
        clock: the clock for simulated durations; the real clock if None.
        base_url: the loopback URL the app is served at (mount prefix included); :meth:`start` sets it.
        cancel_delay: seconds between ``CancelRequested`` and ``Canceled``.
        lro_retry_after: the ``Retry-After`` (whole seconds, as the SDK parses it) on long-running-operation
            answers (job cancel); 0 lets the client use its own ``polling_interval``.

    Use standalone in tests::

        async with AzureMLEmulator(clock=clock) as aml:
            ml_client = build_ml_client(aml.connection())
    """

    def __init__(
        self,
        world: dict[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        base_url: str = "",
        cancel_delay: float = 0.0,
        lro_retry_after: int = 1,
    ) -> None:
        self.world = AzureMLWorld.from_dict(world if world is not None else load_default_world())
        self.clock: Clock = clock or SystemClock()
        self.base_url = base_url.rstrip("/")
        self.lro_retry_after = lro_retry_after
        self.recorder = Recorder()
        self.faults = FaultScript()
        self.state = WorkspaceState()
        self.scope = ArmScope(self.world)
        self.workspace_guid = str(uuid.uuid4())
        self.blobs = BlobService(self.state, self.clock)
        self.registry = ModelRegistry(self.world, self.scope, self.state, self.blobs)
        self.events = EventFactory(self.world, self.scope.workspace_id)
        self.dispatcher = EventGridDispatcher(
            self.clock, self.world.delivery, self._client_session, self._validation_url
        )
        self.jobs = JobService(
            self.world, self.state, self.clock, self.registry, self.events, self._publish, cancel_delay
        )
        self.deployments: dict[str, list[str]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._server: LocalServer | None = None
        seed_workspace(self.world, self.state, self.registry, self.clock.now())

    # -- serving ------------------------------------------------------------------------------------

    def create_app(self) -> web.Application:
        """The aiohttp application; its routes are relative to its root (it can be mounted under a prefix)."""
        app = web.Application(
            middlewares=[recording_middleware(self.recorder, self.faults)], client_max_size=256 * 1024**2
        )
        add_control_routes(app, self.recorder, self.faults)
        ArmRoutes(self).add_routes(app)
        ArmEventSubscriptions.of(self).add_routes(app)
        self.blobs.add_routes(app)
        StudioPages(self).add_routes(app)
        app.router.add_get("/eventgrid/validate", self._manual_validation)
        app.router.add_route("*", "/{tail:.*}", self._no_route)

        async def on_cleanup(_: web.Application) -> None:
            await self.close()

        app.on_cleanup.append(on_cleanup)
        return app

    async def start(self) -> AzureMLEmulator:
        """Serve standalone on 127.0.0.1 (a free port) and set :attr:`base_url`."""
        self._server = LocalServer(self.create_app())
        await self._server.start()
        self.base_url = self._server.url
        return self

    async def stop(self) -> None:
        """Stop serving, the simulated jobs and the deliveries; close the client session."""
        await self.close()
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def close(self) -> None:
        """Stop the simulated jobs and deliveries and close the client session (the app keeps serving)."""
        await self.jobs.close()
        await self.dispatcher.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AzureMLEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def connection(self) -> AzureMLConnection:
        """An ``AzureMLConnection`` that points ``build_ml_client`` / ``read_mlmodel`` at this emulator."""
        from adapters.azure_ml.client_factory import AzureMLConnection

        w = self.world
        return AzureMLConnection(
            w.subscription_id,
            w.resource_group,
            w.workspace,
            emulator_url=self.base_url,
            credential_kind="emulator",
        )

    @property
    def _mount_prefix(self) -> str:
        return urlsplit(self.base_url).path.rstrip("/")

    def public_base(self, request: web.Request) -> str:
        """The base URL as the client addressed it: the forwarded fake https host, else :attr:`base_url`."""
        host = request.headers.get("X-Forwarded-Host")
        if host:
            return f"{request.headers.get('X-Forwarded-Proto', 'https')}://{host}"
        return self.base_url or f"{request.scheme}://{request.host}"

    def public_url(self, request: web.Request) -> str:
        """The request's URL (without query) on :meth:`public_base`."""
        path = request.path
        prefix = self._mount_prefix
        if prefix and path.startswith(prefix):
            path = path[len(prefix) :]
        return self.public_base(request) + path

    def studio_url(self, job_name: str) -> str:
        return f"{self.base_url}/studio/runs/{job_name}?wsid={self.scope.workspace_id}"

    def _validation_url(self, sub: EventSubscription) -> str:
        query = urlencode({"id": sub.id, "token": sub.validation_token, "apiVersion": "2018-05-01-preview"})
        return f"{self.base_url}/eventgrid/validate?{query}"

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _no_route(self, request: web.Request) -> web.Response:
        return arm_error(404, "NoRegisteredProviderFound", f"No route for {request.method} {request.path}.")

    async def _manual_validation(self, request: web.Request) -> web.Response:
        sub = self.dispatcher.complete_manual_validation(request.query.get("id", ""), request.query.get("token", ""))
        if sub is None:
            return web.Response(status=404, text="unknown validation request")
        return web.Response(text="Webhook successfully validated as a part of the subscription validation.")

    # -- jobs ---------------------------------------------------------------------------------------

    def job_yaml(self, spec_name: str) -> dict[str, Any]:
        """The azure-ai-ml job YAML (a dict) of a job spec in the world."""
        return copy.deepcopy(self.world.job_specs[spec_name].job)

    def write_job_yaml(self, spec_name: str, directory: Path) -> Path:
        """Write :meth:`job_yaml` to ``directory/<spec_name>.yml`` for ``load_job``; return the path."""
        path = Path(directory) / f"{spec_name}.yml"
        path.write_text(yaml.safe_dump(self.job_yaml(spec_name), sort_keys=False), encoding="utf-8")
        return path

    def script_next_job(
        self,
        *,
        fail: bool = False,
        outcome: str | None = None,
        queued_after: float | None = None,
        running_after: float | None = None,
        duration: float | None = None,
        registers_model: str | None = _UNSET,
        signature: Signature | None = None,
    ) -> None:
        """Override how the next submitted job runs (whatever its spec says); calls queue up."""
        override: dict[str, Any] = {
            k: v
            for k, v in {
                "queued_after": queued_after,
                "running_after": running_after,
                "duration": duration,
                "signature": signature,
                "outcome": "Failed" if fail else outcome,
            }.items()
            if v is not None
        }
        if registers_model is not _UNSET:
            override["registers_model"] = registers_model
        self.jobs.script_next(override)

    def script_next_model_signature(
        self,
        inputs: list[dict[str, Any]] | None,
        outputs: list[dict[str, Any]] | None = None,
        params: list[dict[str, Any]] | None = None,
    ) -> None:
        """The next registered model version gets this signature (``inputs=None``: no signature)."""
        self.registry.script_next_signature(Signature(inputs, outputs or [], params) if inputs is not None else None)

    def missing_references(self, properties: dict[str, Any]) -> list[str]:
        """Workspace assets and computes a job body (REST ``properties``) names that don't exist."""
        return self.jobs.missing_references(properties)

    def submit_job(self, name: str, properties: dict[str, Any]) -> JobRecord:
        """Create a job from its REST ``properties`` (as the SDK's PUT does) and start simulating it."""
        return self.jobs.submit(name, properties)

    def cancel_job(self, name: str) -> bool:
        """Cancel a job; False if it is unknown or already ended."""
        return self.jobs.cancel(name)

    @property
    def cancel_delay(self) -> float:
        """Seconds between a job's ``CancelRequested`` and ``Canceled`` (on the emulator's clock); settable."""
        return self.jobs.simulator.cancel_delay

    @cancel_delay.setter
    def cancel_delay(self, seconds: float) -> None:
        self.jobs.simulator.cancel_delay = seconds

    async def wait_for_job(self, name: str, *statuses: str, timeout: float = 5.0) -> JobRecord:
        """Wait (real time) until job ``name`` has one of ``statuses`` (default: any terminal status).

        With a FakeClock the test must advance the clock meanwhile.
        """
        return await self.jobs.wait_for(name, *statuses, timeout=timeout)

    # -- models, deployments, drift, data -----------------------------------------------------------

    def register_model(
        self,
        name: str,
        signature: Signature | dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        *,
        version: str | None = None,
        properties: dict[str, str] | None = None,
        description: str = "",
        job_name: str | None = None,
    ) -> ModelVersionRecord:
        """Register the next version of ``name`` (signature: given, scripted, or the previous version's)."""
        sig = Signature.from_dict(signature) if isinstance(signature, dict) else signature
        model = self.registry.register(
            name,
            version,
            self.clock.now(),
            signature=sig,
            tags=tags,
            properties=properties,
            description=description,
            job_name=job_name,
        )
        self._publish(self.events.model_registered(model, model.created_at))
        return model

    def upsert_model_version(self, name: str, version: str, properties: dict[str, Any]) -> ModelVersionRecord:
        """A model version PUT by the SDK: a new version is registered (and announced), an old one updated."""
        existing = self.state.models.get(name, {}).get(version)
        if existing is not None:
            existing.tags = dict(properties.get("tags") or existing.tags)
            existing.description = properties.get("description") or existing.description
            existing.stage = properties.get("stage", existing.stage)
            existing.archived = bool(properties.get("isArchived", existing.archived))
            return existing
        flavors = properties.get("flavors")
        model = self.registry.register(
            name,
            version,
            self.clock.now(),
            path=properties.get("modelUri"),
            tags=properties.get("tags"),
            properties=properties.get("properties"),
            description=properties.get("description") or "",
            job_name=properties.get("jobName"),
            model_type=properties.get("modelType") or "custom_model",
            stage=properties.get("stage"),
            flavors=flavors if flavors else None,
        )
        self._publish(self.events.model_registered(model, model.created_at))
        return model

    def deploy_model(
        self,
        endpoint: str,
        models: str | list[str],
        *,
        compute_type: str | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
    ) -> EmittedEvent:
        """Say model version(s) (``"model-x:7"``) went to ``endpoint``: emits ModelDeployed."""
        model_ids = [models] if isinstance(models, str) else list(models)
        for model_id in model_ids:
            name, _, version = model_id.partition(":")
            if version not in self.state.models.get(name, {}):
                raise KeyError(f"model {model_id} is not registered")
        self.deployments[endpoint] = model_ids
        kind = compute_type or self.world.endpoints.get(endpoint, "Managed")
        event = self.events.model_deployed(endpoint, kind, model_ids, tags or {}, properties or {}, self.clock.now())
        self._publish(event)
        return event

    def detect_drift(
        self,
        monitor: str | None = None,
        coefficient: float = 0.83,
        *,
        base_dataset: str | None = None,
        target_dataset: str | None = None,
    ) -> EmittedEvent:
        """A data drift monitor found drift: its run is kept (studio shows it) and DatasetDriftDetected emitted."""
        name = monitor or next(iter(self.world.drift_monitors), "drift-monitor")
        config = self.world.drift_monitors.get(name, {})
        base = base_dataset or str(config.get("base_dataset", "baseline"))
        target = target_dataset or str(config.get("target_dataset", "target"))
        now = self.clock.now()
        start = now - timedelta(days=1)
        event = self.events.dataset_drift_detected(
            name, _dataset_guid(base), _dataset_guid(target), coefficient, start, now, now
        )
        run_id = event.subject.rpartition("/")[2]  # datadrift/{monitor id}/run/{run id}, whatever the data's casing
        self.state.drift_runs[run_id] = DriftRunRecord(run_id, name, coefficient, base, target, start, now)
        self._publish(event)
        return event

    def land_blob(
        self,
        path: str,
        size: int | None = None,
        *,
        data: bytes | None = None,
        content_type: str = "application/octet-stream",
        api: str = "FlushWithClose",
        with_create_file: bool = False,
        filesystem: str | None = None,
    ) -> EmittedEvent:
        """Data arrives in the lake: the file is stored and BlobCreated is emitted (ADLS Gen2 FlushWithClose).

        ``with_create_file`` first emits the 0-byte ``CreateFile`` event an ADLS Gen2 write also raises.
        """
        lake = self.world.lake
        if lake is None:
            raise ValueError("azure_ml.lake is not configured in the world")
        content = data if data is not None else bytes(min(size or 0, 1 << 20))
        length = len(data) if data is not None else (size or 0)
        fs = filesystem or lake.filesystem
        record = self.blobs.put((lake.account, fs, path), content, content_type)
        now = self.clock.now()
        if with_create_file:
            self._publish(
                self.events.blob_created(
                    path,
                    0,
                    api="CreateFile",
                    content_type=content_type,
                    etag=record.etag,
                    at=now,
                    filesystem=fs,
                )
            )
        event = self.events.blob_created(
            path, length, api=api, content_type=content_type, etag=record.etag, at=now, filesystem=fs
        )
        self._publish(event)
        return event

    # -- Event Grid ---------------------------------------------------------------------------------

    async def add_event_subscription(
        self,
        url: str,
        schema: Schema = "EventGridSchema",
        event_types: list[str] | tuple[str, ...] | None = None,
        secret_query: tuple[str, str] | None = None,
        secret_header: tuple[str, str] | None = None,
        max_events_per_batch: int = 1,
        subject_begins_with: str | None = None,
        *,
        subject_ends_with: str | None = None,
        topic: str | None = None,
        retry_schedule: list[float] | tuple[float, ...] | None = None,
        name: str | None = None,
    ) -> EventSubscription:
        """Create an Event Grid subscription to a webhook, after its validation handshake.

        Raises:
            SubscriptionValidationError: the endpoint did not complete the handshake.

        Args:
            url: the webhook endpoint.
            schema: ``"EventGridSchema"`` (handshake: SubscriptionValidationEvent) or
                ``"CloudEventSchemaV1_0"`` (handshake: OPTIONS with ``WebHook-Request-Origin``).
            event_types: the event types delivered (all if None).
            secret_query: ``(name, value)`` appended to the URL's query string on every request.
            secret_header: ``(name, value)`` sent as a header on every delivery.
            max_events_per_batch: 1 (default) to 5000.
            subject_begins_with: subject prefix filter, e.g. ``"models/model-x"``.
            subject_ends_with: subject suffix filter, e.g. ``".csv"``.
            topic: only events from this topic (:attr:`workspace_topic` or :attr:`storage_topic`).
            retry_schedule: seconds before each retry (the world's ``delivery.retry_schedule`` if None).
            name: the subscription name (``aeg-subscription-name``, upper-cased on the wire).
        """
        if schema not in SCHEMAS:
            raise ValueError(f"schema must be one of {SCHEMAS}")
        if not 1 <= max_events_per_batch <= 5000:
            raise ValueError("max_events_per_batch must be between 1 and 5000")
        sub = EventSubscription(
            name=name or f"handoff-{len(self.dispatcher.subscriptions) + 1}",
            url=url,
            schema=schema,
            event_types=tuple(event_types) if event_types is not None else None,
            secret_query=secret_query,
            secret_header=secret_header,
            max_events_per_batch=max_events_per_batch,
            subject_begins_with=subject_begins_with,
            subject_ends_with=subject_ends_with,
            topic=topic,
            retry_schedule=tuple(retry_schedule) if retry_schedule is not None else self.world.delivery.retry_schedule,
        )
        return await self.dispatcher.subscribe(sub)

    @property
    def workspace_topic(self) -> str:
        """The Event Grid topic (ARM id) of the workspace's events."""
        return self.events.workspace_topic

    @property
    def storage_topic(self) -> str:
        """The Event Grid topic (ARM id) of the lake's storage account."""
        return self.events.storage_topic

    @property
    def published(self) -> list[EmittedEvent]:
        """Every event emitted so far, delivered or not."""
        return self.dispatcher.published

    async def drain_events(self, timeout: float = 5.0) -> None:
        """Wait (real time) until every queued delivery succeeded or was dead-lettered."""
        await self.dispatcher.drain(timeout)

    def _publish(self, event: EmittedEvent) -> None:
        self.dispatcher.publish(event)


def _dataset_guid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"azureml-dataset:{name}"))

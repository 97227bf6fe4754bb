"""The Event Grid events the emulator emits, and their two wire schemas.

Event types and data fields: shared/reference/azure-ml.md §1 (Azure ML: ModelRegistered, ModelDeployed,
RunCompleted, RunStatusChanged, DatasetDriftDetected; Storage: BlobCreated). Data keys follow the Event
Grid spec (camelCase) or, with ``casing="doc"``, the Learn doc samples (PascalCase for the model, deploy and
drift events).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.emulators.azure_ml.state import JobRecord, ModelVersionRecord, experiment_id
from adapters.emulators.azure_ml.world import AzureMLWorld, Casing

ML = "Microsoft.MachineLearningServices"
MODEL_REGISTERED = f"{ML}.ModelRegistered"
MODEL_DEPLOYED = f"{ML}.ModelDeployed"
RUN_COMPLETED = f"{ML}.RunCompleted"
RUN_STATUS_CHANGED = f"{ML}.RunStatusChanged"
DATASET_DRIFT_DETECTED = f"{ML}.DatasetDriftDetected"
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
EVENT_TYPES = (
    MODEL_REGISTERED,
    MODEL_DEPLOYED,
    RUN_COMPLETED,
    RUN_STATUS_CHANGED,
    DATASET_DRIFT_DETECTED,
    BLOB_CREATED,
)
RUN_TYPES = {
    "Command": "azureml.scriptrun",
    "Pipeline": "azureml.PipelineRun",
    "Sweep": "hyperdrive",
    "AutoML": "automl",
}
GEN2_APIS = ("CreateFile", "FlushWithClose", "RenameFile", "CreateDirectory")


def event_time(moment: datetime) -> str:
    """Event Grid's timestamp form: seven fractional digits and ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass(frozen=True)
class EmittedEvent:
    """One event, schema-neutral; :meth:`to_event_grid` and :meth:`to_cloud_event` give the wire forms."""

    id: str
    topic: str
    subject: str
    event_type: str
    event_time: datetime
    data: dict[str, Any]
    data_version: str = ""

    def to_event_grid(self) -> dict[str, Any]:
        """The Event Grid schema form."""
        return {
            "id": self.id,
            "topic": self.topic,
            "subject": self.subject,
            "eventType": self.event_type,
            "eventTime": event_time(self.event_time),
            "data": self.data,
            "dataVersion": self.data_version,
            "metadataVersion": "1",
        }

    def to_cloud_event(self) -> dict[str, Any]:
        """The CloudEvents 1.0 form."""
        return {
            "id": self.id,
            "source": self.topic,
            "subject": self.subject,
            "type": self.event_type,
            "time": event_time(self.event_time),
            "data": self.data,
            "specversion": "1.0",
        }


def _keys(casing: Casing, data: dict[str, Any]) -> dict[str, Any]:
    """PascalCase the top-level keys for ``casing="doc"``."""
    if casing == "spec":
        return data
    return {k[:1].upper() + k[1:]: v for k, v in data.items()}


class EventFactory:
    """Builds the events of one emulated workspace and its data lake."""

    def __init__(self, world: AzureMLWorld, workspace_topic: str) -> None:
        self.world = world
        self.casing: Casing = world.event_data_casing
        self.workspace_topic = workspace_topic
        lake = world.lake
        self.storage_topic = (
            f"/subscriptions/{world.subscription_id}/resourceGroups/{lake.resource_group}"
            f"/providers/Microsoft.Storage/storageAccounts/{lake.account}"
            if lake
            else ""
        )
        self._sequencer = itertools.count(0x4420000000000028963)

    def _ml(self, event_type: str, subject: str, data: dict[str, Any], at: datetime) -> EmittedEvent:
        version = "2" if self.casing == "spec" else ""
        return EmittedEvent(str(uuid.uuid4()), self.workspace_topic, subject, event_type, at, data, version)

    def model_registered(self, model: ModelVersionRecord, at: datetime) -> EmittedEvent:
        version: Any = model.version
        if self.casing == "doc" and model.version.isdigit():
            version = int(model.version)
        data = {
            "modelName": model.name,
            "modelVersion": version,
            "modelTags": dict(model.tags),
            "modelProperties": dict(model.properties),
        }
        return self._ml(MODEL_REGISTERED, f"models/{model.name}:{model.version}", _keys(self.casing, data), at)

    def model_deployed(
        self,
        service_name: str,
        compute_type: str,
        model_ids: list[str],
        tags: dict[str, str],
        properties: dict[str, str],
        at: datetime,
    ) -> EmittedEvent:
        data = {
            "serviceName": service_name,
            "serviceComputeType": compute_type,
            "modelIds": ",".join(model_ids),
            "serviceTags": dict(tags),
            "serviceProperties": dict(properties),
        }
        return self._ml(MODEL_DEPLOYED, f"endpoints/{service_name}", _keys(self.casing, data), at)

    def _run_data(self, job: JobRecord) -> dict[str, Any]:
        return {
            "experimentId": experiment_id(job.experiment_name),
            "experimentName": job.experiment_name,
            "runId": job.name,
            "runType": RUN_TYPES.get(job.job_type),
            "runTags": job.tags,
            "runProperties": job.run_properties,
        }

    def _run_subject(self, job: JobRecord) -> str:
        return f"experiments/{experiment_id(job.experiment_name)}/runs/{job.name}"

    def run_completed(self, job: JobRecord, at: datetime) -> EmittedEvent:
        return self._ml(RUN_COMPLETED, self._run_subject(job), self._run_data(job), at)

    def run_status_changed(self, job: JobRecord, at: datetime) -> EmittedEvent:
        data = self._run_data(job)
        data["runStatus"] = job.status.lower() if self.casing == "doc" else job.status
        return self._ml(RUN_STATUS_CHANGED, self._run_subject(job), data, at)

    def dataset_drift_detected(
        self,
        monitor_name: str,
        base_dataset_id: str,
        target_dataset_id: str,
        coefficient: float,
        start: datetime,
        end: datetime,
        at: datetime,
    ) -> EmittedEvent:
        drift_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.workspace_topic}/datadrift/{monitor_name}"))
        run_id = f"{drift_id}_{int(at.timestamp() * 1000)}"
        data = {
            "dataDriftId": drift_id,
            "dataDriftName": monitor_name,
            "runId": run_id,
            "baseDatasetId": base_dataset_id,
            "targetDatasetId": target_dataset_id,
            "driftCoefficient": coefficient,
            "startTime": start.isoformat(),
            "endTime": end.isoformat(),
        }
        return self._ml(DATASET_DRIFT_DETECTED, f"datadrift/{drift_id}/run/{run_id}", _keys(self.casing, data), at)

    def blob_created(
        self,
        path: str,
        size: int,
        *,
        api: str,
        content_type: str,
        etag: str,
        at: datetime,
        filesystem: str | None = None,
    ) -> EmittedEvent:
        """``Microsoft.Storage.BlobCreated`` for ``path`` in the lake (ADLS Gen2 url for Gen2 apis)."""
        lake = self.world.lake
        if lake is None:
            raise ValueError("azure_ml.lake is not configured in the world")
        fs = filesystem or lake.filesystem
        gen2 = api in GEN2_APIS
        service = "dfs" if gen2 else "blob"
        data: dict[str, Any] = {
            "api": api,
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": etag,
            "contentType": content_type,
            "contentLength": 0 if api == "CreateFile" else size,
            "blobType": "BlockBlob",
            "url": f"https://{lake.account}.{service}.{self.world.storage_suffix}/{fs}/{path}",
            "sequencer": f"{next(self._sequencer):032x}",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        }
        if gen2:
            data["contentOffset"] = 0
        subject = f"/blobServices/default/containers/{fs}/blobs/{path}"
        return EmittedEvent(str(uuid.uuid4()), self.storage_topic, subject, BLOB_CREATED, at, data, "2" if gen2 else "")


def validation_event(subscription_topic: str, code: str, validation_url: str, at: datetime) -> dict[str, Any]:
    """The ``SubscriptionValidationEvent`` of the Event Grid schema handshake."""
    return {
        "id": str(uuid.uuid4()),
        "topic": subscription_topic,
        "subject": "",
        "data": {"validationCode": code, "validationUrl": validation_url},
        "eventType": SUBSCRIPTION_VALIDATION,
        "eventTime": event_time(at),
        "metadataVersion": "1",
        "dataVersion": "1",
    }

"""In-memory state of the emulated workspace: jobs, drift runs, model versions, other versioned assets, blobs."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapters.emulators.azure_ml.world import JobPlan, Signature

JOB_STATES = ("NotStarted", "Queued", "Running", "Completed", "Failed", "Canceled")
TERMINAL_STATES = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")


def experiment_id(experiment_name: str) -> str:
    """A stable GUID for an experiment name (the service assigns one per experiment)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"azureml-experiment:{experiment_name}"))


@dataclass
class JobRecord:
    """A submitted job: the REST ``properties`` as the SDK sent them, plus its simulated lifecycle."""

    name: str
    properties: dict[str, Any]
    plan: JobPlan
    created_at: datetime
    status: str = "NotStarted"
    start_time: datetime | None = None
    end_time: datetime | None = None
    registered_model: tuple[str, str] | None = None
    history: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def job_type(self) -> str:
        return str(self.properties.get("jobType") or "Command")

    @property
    def experiment_name(self) -> str:
        return str(self.properties.get("experimentName") or "Default")

    @property
    def display_name(self) -> str | None:
        value = self.properties.get("displayName")
        return str(value) if value is not None else None

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.properties.get("tags") or {})

    @property
    def run_properties(self) -> dict[str, str]:
        return dict(self.properties.get("properties") or {})

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATES


@dataclass
class ModelVersionRecord:
    """A registered model version."""

    name: str
    version: str
    path: str
    created_at: datetime
    model_type: str = "mlflow_model"
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    job_name: str | None = None
    stage: str | None = None
    flavors: dict[str, Any] = field(default_factory=dict)
    signature: Signature | None = None
    archived: bool = False


@dataclass
class AssetVersion:
    """A version of an environment, data asset, code snapshot or component: its REST ``properties``."""

    kind: str
    name: str
    version: str
    properties: dict[str, Any]
    created_at: datetime


@dataclass
class BlobRecord:
    """A blob in the emulated storage."""

    data: bytes
    content_type: str
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return (
            '"0x' + hashlib.sha256(self.data + self.last_modified.isoformat().encode()).hexdigest()[:15].upper() + '"'
        )


BlobKey = tuple[str, str, str]


@dataclass(frozen=True)
class DriftRunRecord:
    """A dataset monitor's run that measured drift (the run a ``DatasetDriftDetected`` event names)."""

    run_id: str
    monitor_name: str
    drift_coefficient: float
    base_dataset: str
    target_dataset: str
    window_start: datetime
    window_end: datetime


@dataclass
class WorkspaceState:
    """Everything the workspace and its storage hold."""

    jobs: dict[str, JobRecord] = field(default_factory=dict)
    drift_runs: dict[str, DriftRunRecord] = field(default_factory=dict)
    models: dict[str, dict[str, ModelVersionRecord]] = field(default_factory=dict)
    assets: dict[str, dict[str, dict[str, AssetVersion]]] = field(default_factory=dict)
    blobs: dict[BlobKey, BlobRecord] = field(default_factory=dict)
    staged_blocks: dict[BlobKey, dict[str, bytes]] = field(default_factory=dict)

    def model_versions(self, name: str, include_archived: bool = False) -> list[ModelVersionRecord]:
        """The versions of model ``name``, newest (latest created) first."""
        versions = self.models.get(name, {}).values()
        found = [m for m in versions if include_archived or not m.archived]
        return sorted(found, key=lambda m: (m.created_at, _version_key(m.version)), reverse=True)

    def latest_model(self, name: str) -> ModelVersionRecord | None:
        """The latest created version, what ``models.get(name, label="latest")`` returns."""
        versions = self.model_versions(name)
        return versions[0] if versions else None

    def next_model_version(self, name: str) -> str:
        numbers = [int(v) for v in self.models.get(name, {}) if v.isdigit()]
        return str(max(numbers, default=0) + 1)

    def asset_versions(self, kind: str, name: str) -> list[AssetVersion]:
        """The versions of an asset, newest first."""
        found = self.assets.get(kind, {}).get(name, {}).values()
        return sorted(found, key=lambda a: (a.created_at, _version_key(a.version)), reverse=True)

    def put_asset(self, asset: AssetVersion) -> AssetVersion:
        self.assets.setdefault(asset.kind, {}).setdefault(asset.name, {})[asset.version] = asset
        return asset

    def get_asset(self, kind: str, name: str, version: str) -> AssetVersion | None:
        return self.assets.get(kind, {}).get(name, {}).get(version)


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)

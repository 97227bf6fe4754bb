"""The seeded world of the Azure ML emulator: its ``azure_ml`` section of the world YAML, typed.

See ``default_world.yaml`` beside this module for every key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, Literal

import yaml

WORLD_KEY = "azure_ml"
Casing = Literal["spec", "doc"]
TERMINAL_OUTCOMES = ("Completed", "Failed", "Canceled")


@dataclass(frozen=True)
class Signature:
    """An MLflow model signature: column (or tensor) specs, as MLmodel holds them (JSON inside YAML)."""

    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    params: list[dict[str, Any]] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Signature | None:
        if not data:
            return None
        params = data.get("params")
        return cls(list(data.get("inputs") or []), list(data.get("outputs") or []), list(params) if params else None)


@dataclass(frozen=True)
class JobPlan:
    """How a simulated job runs: seconds in each state, its outcome, and the model it registers."""

    queued_after: float = 0.5
    running_after: float = 0.5
    duration: float = 2.0
    outcome: str = "Completed"
    registers_model: str | None = None
    signature: Signature | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, base: JobPlan | None = None) -> JobPlan:
        plan = base or cls()
        data = data or {}
        outcome = str(data.get("outcome", plan.outcome))
        if outcome not in TERMINAL_OUTCOMES:
            raise ValueError(f"azure_ml: job outcome {outcome!r} is not one of {', '.join(TERMINAL_OUTCOMES)}")
        return replace(
            plan,
            queued_after=float(data.get("queued_after", plan.queued_after)),
            running_after=float(data.get("running_after", plan.running_after)),
            duration=float(data.get("duration", plan.duration)),
            outcome=outcome,
        )


@dataclass(frozen=True)
class JobSpec:
    """A job the world knows: its azure-ai-ml YAML, the model it registers and how it runs."""

    name: str
    job: dict[str, Any]
    plan: JobPlan

    def matches(self, display_name: str | None, experiment_name: str | None) -> bool:
        """Whether a submitted job is this spec (same display name, or same experiment)."""
        names = {self.name, self.job.get("display_name")}
        return display_name in names or (
            experiment_name is not None and experiment_name == self.job.get("experiment_name")
        )


@dataclass(frozen=True)
class ModelSeed:
    """A registered model version present when the emulator starts."""

    name: str
    version: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    signature: Signature | None = None
    model_type: str = "mlflow_model"


@dataclass(frozen=True)
class DatastoreSeed:
    """A datastore: an AzureBlob container or an AzureDataLakeGen2 filesystem."""

    name: str
    type: str
    account: str
    container: str


@dataclass(frozen=True)
class LakeConfig:
    """The storage account / ADLS Gen2 filesystem whose ``BlobCreated`` events the emulator emits."""

    resource_group: str
    account: str
    filesystem: str
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeliveryConfig:
    """Event Grid delivery defaults: retry schedule (bounded), response timeout, handshake origin."""

    retry_schedule: tuple[float, ...] = (10.0, 30.0, 60.0, 300.0, 600.0)
    timeout: float = 30.0
    origin: str = "eventgrid.azure.net"


def _versions(section: dict[str, Any] | None) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, item in (section or {}).items():
        out[str(name)] = {str(v): dict(body or {}) for v, body in (item or {}).get("versions", {}).items()}
    return out


@dataclass(frozen=True)
class AzureMLWorld:
    """The emulator's world: one workspace, its assets and models, job specs, the data lake."""

    subscription_id: str = "00000000-0000-0000-0000-000000000001"
    resource_group: str = "rg-mlops"
    workspace: str = "ws-mlops"
    location: str = "westeurope"
    storage_suffix: str = "storage.emulator.test"
    event_data_casing: Casing = "spec"
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    default_job: JobPlan = field(default_factory=JobPlan)
    job_specs: dict[str, JobSpec] = field(default_factory=dict)
    computes: tuple[str, ...] = ()
    environments: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    components: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    datastores: dict[str, DatastoreSeed] = field(default_factory=dict)
    models: tuple[ModelSeed, ...] = ()
    endpoints: dict[str, str] = field(default_factory=dict)
    lake: LakeConfig | None = None
    drift_monitors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, world: dict[str, Any]) -> AzureMLWorld:
        """Parse a world: the whole world file (with an ``azure_ml`` key) or just that section."""
        s = world.get(WORLD_KEY, world) or {}
        casing = str(s.get("event_data_casing", "spec"))
        if casing not in ("spec", "doc"):
            raise ValueError(f"azure_ml.event_data_casing must be 'spec' or 'doc', not {casing!r}")
        d = s.get("delivery") or {}
        delivery = DeliveryConfig(
            retry_schedule=tuple(float(x) for x in d.get("retry_schedule", DeliveryConfig.retry_schedule)),
            timeout=float(d.get("timeout", DeliveryConfig.timeout)),
            origin=str(d.get("origin", DeliveryConfig.origin)),
        )
        default_job = JobPlan.from_dict(s.get("default_job"))
        specs = {}
        for name, spec in (s.get("job_specs") or {}).items():
            plan = JobPlan.from_dict(spec.get("simulation"), default_job)
            plan = replace(
                plan,
                registers_model=spec.get("registers_model"),
                signature=Signature.from_dict(spec.get("signature")),
            )
            specs[str(name)] = JobSpec(str(name), dict(spec.get("job") or {}), plan)
        models = tuple(
            ModelSeed(
                name=str(name),
                version=str(version),
                description=str(body.get("description", "")),
                tags={str(k): str(v) for k, v in (body.get("tags") or {}).items()},
                properties={str(k): str(v) for k, v in (body.get("properties") or {}).items()},
                signature=Signature.from_dict(body.get("signature")),
                model_type=str(body.get("type", "mlflow_model")),
            )
            for name, versions in _versions(s.get("models")).items()
            for version, body in versions.items()
        )
        datastores = {
            str(name): DatastoreSeed(
                str(name),
                str(ds.get("type", "AzureBlob")),
                str(ds["account"]),
                str(ds.get("container") or ds.get("filesystem") or name),
            )
            for name, ds in (s.get("datastores") or {}).items()
        }
        lake = s.get("lake")
        return cls(
            subscription_id=str(s.get("subscription_id", cls.subscription_id)),
            resource_group=str(s.get("resource_group", cls.resource_group)),
            workspace=str(s.get("workspace", cls.workspace)),
            location=str(s.get("location", cls.location)),
            storage_suffix=str(s.get("storage_suffix", cls.storage_suffix)),
            event_data_casing=casing,  # type: ignore[arg-type]
            delivery=delivery,
            default_job=default_job,
            job_specs=specs,
            computes=tuple(str(c) for c in s.get("computes") or ()),
            environments=_versions(s.get("environments")),
            components=_versions(s.get("components")),
            data=_versions(s.get("data")),
            datastores=datastores,
            models=models,
            endpoints={
                str(n): str((e or {}).get("compute_type", "Managed")) for n, e in (s.get("endpoints") or {}).items()
            },
            lake=LakeConfig(
                str(lake.get("resource_group", s.get("resource_group", cls.resource_group))),
                str(lake["account"]),
                str(lake.get("filesystem", "lake")),
                tuple(str(p) for p in lake.get("paths") or ()),
            )
            if lake
            else None,
            drift_monitors={str(n): dict(m or {}) for n, m in (s.get("drift_monitors") or {}).items()},
        )


def load_default_world() -> dict[str, Any]:
    """The shipped default world, as ``{"azure_ml": {...}}``."""
    text = resources.files(__package__).joinpath("default_world.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data

"""The model registry: model versions, their ``MLmodel`` artifacts in blob storage, and their signatures."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from datetime import datetime
from typing import Any

import yaml

from adapters.emulators.azure_ml.blob_routes import BlobService
from adapters.emulators.azure_ml.mlmodel import registry_flavors, render_mlmodel
from adapters.emulators.azure_ml.resources import ArmScope, datastore_path
from adapters.emulators.azure_ml.state import BlobKey, ModelVersionRecord, WorkspaceState
from adapters.emulators.azure_ml.world import AzureMLWorld, Signature


class ModelRegistry:
    """Registers model versions and keeps each one's ``MLmodel`` file where its ``modelUri`` points.

    A new version's signature is, in order: the one passed in, the next one scripted with
    :meth:`script_next_signature`, the one in the ``MLmodel`` already at its path (a job's output), or the
    previous latest version's.
    """

    def __init__(self, world: AzureMLWorld, scope: ArmScope, state: WorkspaceState, blobs: BlobService) -> None:
        self.world = world
        self.scope = scope
        self.state = state
        self.blobs = blobs
        self._next_signatures: deque[Signature | None] = deque()

    def script_next_signature(self, signature: Signature | None) -> None:
        """The next registered version gets ``signature`` (None: no signature at all)."""
        self._next_signatures.append(signature)

    def artifact_key(self, model_uri: str) -> BlobKey | None:
        """Where the ``MLmodel`` of a model at ``model_uri`` lives in the emulated storage."""
        found = datastore_path(model_uri)
        if found is None:
            return None
        ds = self.world.datastores.get(found[0])
        if ds is None:
            return None
        prefix = found[1].rstrip("/")
        return ds.account, ds.container, f"{prefix}/MLmodel" if prefix else "MLmodel"

    def read_signature(self, model_uri: str) -> tuple[bool, Signature | None]:
        """``(found, signature)`` of the ``MLmodel`` at ``model_uri``."""
        key = self.artifact_key(model_uri)
        record = self.state.blobs.get(key) if key else None
        if record is None:
            return False, None
        doc = yaml.safe_load(record.data) or {}
        sig = doc.get("signature") or {}
        if not sig:
            return True, None
        params = sig.get("params")
        return True, Signature(
            json.loads(sig.get("inputs") or "[]"),
            json.loads(sig.get("outputs") or "[]"),
            json.loads(params) if params else None,
        )

    def write_mlmodel(self, model_uri: str, signature: Signature | None, run_id: str | None, at: datetime) -> None:
        key = self.artifact_key(model_uri)
        if key is not None:
            text = render_mlmodel(signature, run_id=run_id, created_at=at)
            self.blobs.put(key, text.encode(), "application/x-yaml")

    def default_uri(self, name: str, version: str, job_name: str | None) -> str:
        if job_name:
            return self.scope.datastore_uri("workspaceartifactstore", f"ExperimentRun/dcid.{job_name}/model/")
        digest = hashlib.md5(f"{name}:{version}".encode(), usedforsecurity=False).hexdigest()
        return self.scope.datastore_uri("workspaceblobstore", f"LocalUpload/{digest}/{name}/")

    def normalize_uri(self, uri: str) -> str:
        """Job-output and short datastore URIs become the long datastore form the service stores."""
        found = datastore_path(uri)
        return self.scope.datastore_uri(*found) if found else uri

    def register(
        self,
        name: str,
        version: str | None,
        at: datetime,
        *,
        path: str | None = None,
        signature: Signature | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str = "",
        job_name: str | None = None,
        model_type: str = "mlflow_model",
        stage: str | None = None,
        flavors: dict[str, Any] | None = None,
    ) -> ModelVersionRecord:
        """Add a new version of ``name`` (the next integer when ``version`` is None) and its ``MLmodel``.

        Without ``signature`` the version gets the next scripted one, else the one in an ``MLmodel``
        already at its path, else the previous latest version's.
        """
        version = version or self.state.next_model_version(name)
        uri = self.normalize_uri(path) if path else self.default_uri(name, version, job_name)
        if signature is None:
            signature = self._choose_signature(name, uri)
        model = ModelVersionRecord(
            name=name,
            version=version,
            path=uri,
            created_at=at,
            model_type=model_type,
            description=description,
            tags=dict(tags or {}),
            properties=dict(properties or {}),
            job_name=job_name,
            stage=stage,
            flavors=flavors if flavors is not None else registry_flavors(),
            signature=signature,
        )
        found, existing = self.read_signature(uri)
        if not found or existing != signature:
            self.write_mlmodel(uri, signature, job_name, at)
        self.state.models.setdefault(name, {})[version] = model
        return model

    def _choose_signature(self, name: str, uri: str) -> Signature | None:
        if self._next_signatures:
            return self._next_signatures.popleft()
        found, signature = self.read_signature(uri)
        if found:
            return signature
        previous = self.state.latest_model(name)
        return previous.signature if previous else None

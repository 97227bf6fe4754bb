"""The MLflow ``MLmodel`` file of an emulated model version, and its registry ``flavors``.

In ``MLmodel`` (YAML) the signature's ``inputs``/``outputs``/``params`` are JSON strings, as MLflow writes
them (https://mlflow.org/docs/latest/model/signatures.html).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import yaml

from adapters.emulators.azure_ml.world import Signature

MLFLOW_VERSION = "2.19.0"
PYTHON_VERSION = "3.11.7"
SKLEARN_VERSION = "1.5.2"


def registry_flavors() -> dict[str, Any]:
    """The model version's REST ``properties.flavors`` (the SDK flattens ``data``)."""
    return {
        "python_function": {
            "data": {
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": "predict",
                "python_version": PYTHON_VERSION,
            }
        },
        "sklearn": {
            "data": {
                "pickled_model": "model.pkl",
                "serialization_format": "cloudpickle",
                "sklearn_version": SKLEARN_VERSION,
            }
        },
    }


def render_mlmodel(signature: Signature | None, *, run_id: str | None, created_at: datetime) -> str:
    """The text of an ``MLmodel`` file; a model without a signature simply lacks the key."""
    doc: dict[str, Any] = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": "predict",
                "python_version": PYTHON_VERSION,
            },
            "sklearn": {
                "code": None,
                "pickled_model": "model.pkl",
                "serialization_format": "cloudpickle",
                "sklearn_version": SKLEARN_VERSION,
            },
        },
        "mlflow_version": MLFLOW_VERSION,
        "model_size_bytes": 48213,
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": created_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    if run_id:
        doc["run_id"] = run_id
    if signature is not None:
        doc["signature"] = {
            "inputs": json.dumps(signature.inputs),
            "outputs": json.dumps(signature.outputs),
            "params": json.dumps(signature.params) if signature.params else None,
        }
    return yaml.safe_dump(doc, sort_keys=True)

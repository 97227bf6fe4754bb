"""Seeding the emulated workspace from the world: environments, data assets, components, model versions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from adapters.emulators.azure_ml.registry import ModelRegistry
from adapters.emulators.azure_ml.state import AssetVersion, WorkspaceState
from adapters.emulators.azure_ml.world import AzureMLWorld


def seed_workspace(world: AzureMLWorld, state: WorkspaceState, registry: ModelRegistry, now: datetime) -> None:
    """Fill ``state`` with the world's assets, created in the past and in the order the world lists them."""
    start = now - timedelta(days=30)
    n = 0
    for kind, assets in (
        ("environments", world.environments),
        ("data", world.data),
        ("components", world.components),
    ):
        for name, versions in assets.items():
            for version, body in versions.items():
                n += 1
                props = _properties(kind, name, version, body)
                state.put_asset(AssetVersion(kind, name, version, props, start + timedelta(minutes=n)))
    for i, seed in enumerate(world.models):
        registry.register(
            seed.name,
            seed.version,
            start + timedelta(days=i + 1),
            signature=seed.signature,
            tags=seed.tags,
            properties=seed.properties,
            description=seed.description,
            model_type=seed.model_type,
        )


def _properties(kind: str, name: str, version: str, body: dict[str, Any]) -> dict[str, Any]:
    """The REST ``properties`` of a seeded asset version."""
    if kind == "environments":
        return {
            "image": body.get("image"),
            "osType": body.get("os_type", "Linux"),
            "description": body.get("description"),
        }
    if kind == "data":
        return {
            "dataType": body.get("type", "uri_folder"),
            "dataUri": body.get("path"),
            "description": body.get("description"),
        }
    return {
        "componentSpec": {"name": name, "version": version, **body},
        "description": body.get("description"),
    }

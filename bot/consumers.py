"""The apps that consume a model: which version each one runs, what it declares it sends, and how a
model version stands against them.

An app runs its ``pinned_version`` if the configuration sets one, else the latest approved version:
the newest version tagged ``approved: "true"`` (Handoff tags a version so when its promotion gate is
approved) or ``stage: production``. Without an approved version, the version before the new one
stands in. An app may also declare a contract (``contract_file`` or ``contract``), checked too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bot.config import Settings
from bot.contracts import (
    Comparison,
    ContractError,
    Signature,
    Verdict,
    combine,
    compare,
    compare_contract,
    contract_signature,
)
from bot.contracts import parse_signature as parse_model_signature
from bot.ports import MLService, ModelVersion, ServiceRefused
from bot.records import JsonObject
from bot.versions import version_sort_key

log = logging.getLogger("handoff.consumers")

APPROVED_TAG = "approved"


def is_approved(tags: Mapping[str, Any]) -> bool:
    """Whether a model version's tags say it was approved for release."""
    return str(tags.get(APPROVED_TAG, "")).lower() == "true" or str(tags.get("stage", "")).lower() == "production"


@dataclass(frozen=True)
class Baseline:
    """The version an app runs, and why Handoff thinks so (``pinned``, ``latest approved``, ...)."""

    version: str | None
    source: str


@dataclass(frozen=True)
class AppCheck:
    """How one model version stands against one consuming app."""

    app: str
    verdict: Verdict
    differences: tuple[str, ...] = ()
    baseline: str | None = None
    baseline_source: str = ""
    contract: str | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "app": self.app,
            "verdict": self.verdict.value,
            "differences": list(self.differences),
            "baseline": self.baseline,
            "baseline_source": self.baseline_source,
            "contract": self.contract,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppCheck:
        return cls(
            app=str(data["app"]),
            verdict=Verdict(data.get("verdict", Verdict.UNKNOWN)),
            differences=tuple(data.get("differences", ())),
            baseline=data.get("baseline"),
            baseline_source=str(data.get("baseline_source", "")),
            contract=data.get("contract"),
            notes=tuple(data.get("notes", ())),
        )


@dataclass
class _Reads:
    """Model versions read during one check, so that each is read once."""

    versions: list[ModelVersion] | None = None
    by_version: dict[str, ModelVersion | None] = field(default_factory=dict)


class Consumers:
    """Answers, for a model, who consumes it and how a version stands against each consumer.

    Args:
        settings: models and apps.
        ml: Azure ML, where versions and signatures are read.
        base_dir: where relative ``contract_file`` paths are found (the configuration's folder).
    """

    def __init__(self, settings: Settings, ml: MLService | None, base_dir: Path | None = None) -> None:
        self.settings = settings
        self.ml = ml
        self.base_dir = base_dir or Path.cwd()

    def of(self, model: str) -> list[str]:
        """The apps that consume ``model``: its ``consumers``, and every app whose ``model`` it is."""
        configured = self.settings.models.get(model)
        names = list(configured.consumers) if configured else []
        names += [name for name, app in self.settings.apps.items() if app.model == model and name not in names]
        return names

    # --- reading ----------------------------------------------------------------------------------------

    async def version(self, model: str, version: str | None = None) -> ModelVersion:
        """A model version with its signature (raises ServiceRefused, also without Azure ML, or
        ServiceUnavailable)."""
        if self.ml is None:
            raise ServiceRefused("Azure ML is not connected to this Handoff")
        return await self.ml.model_version(model, version)

    async def _versions(self, model: str, reads: _Reads) -> list[ModelVersion]:
        if reads.versions is None:
            reads.versions = await self.ml.model_versions(model) if self.ml else []
        return reads.versions

    async def _read(self, model: str, version: str, reads: _Reads) -> ModelVersion | None:
        if version not in reads.by_version:
            try:
                reads.by_version[version] = await self.version(model, version)
            except ServiceRefused:
                reads.by_version[version] = None
        return reads.by_version[version]

    async def baseline(self, app: str, model: str, new_version: str | None, reads: _Reads | None = None) -> Baseline:
        """The version ``app`` runs: pinned, else the latest approved (``new_version`` too, once approved),
        else the one before ``new_version``."""
        settings = self.settings.apps[app]
        if settings.pinned_version:
            return Baseline(settings.pinned_version, "pinned")
        versions = await self._versions(model, reads or _Reads())
        approved = [v.version for v in versions if is_approved(v.tags)]
        if approved:
            return Baseline(max(approved, key=version_sort_key), "latest approved")
        if new_version is not None:
            older = [v.version for v in versions if version_sort_key(v.version) < version_sort_key(new_version)]
            if older:
                return Baseline(max(older, key=version_sort_key), "previous version (none approved)")
        return Baseline(None, "no earlier version")

    async def contract(self, app: str) -> tuple[Signature | None, str | None, str | None]:
        """``(signature, where it came from, problem)`` of the app's declared contract."""
        settings = self.settings.apps[app]
        if settings.contract is not None:
            where = f"{app}'s contract"
            try:
                return contract_signature(settings.contract, f"apps.{app}.contract"), where, None
            except ContractError as error:
                return None, where, str(error)
        if not settings.contract_file:
            return None, None, None
        path = Path(settings.contract_file)
        path = path if path.is_absolute() else self.base_dir / path
        where = f"{app}'s contract ({settings.contract_file})"
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
            doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
            return contract_signature(doc, settings.contract_file), where, None
        except OSError as error:
            return None, where, f"cannot read {settings.contract_file}: {error.strerror}"
        except (ValueError, yaml.YAMLError) as error:
            return None, where, f"{settings.contract_file}: {error}"

    # --- checking ---------------------------------------------------------------------------------------

    async def check(self, model: str, new: ModelVersion, apps: Sequence[str] | None = None) -> list[AppCheck]:
        """How ``new`` stands against each consuming app (or ``apps``)."""
        reads = _Reads(by_version={new.version: new})
        return [await self.check_app(app, model, new, reads) for app in (self.of(model) if apps is None else apps)]

    async def check_app(self, app: str, model: str, new: ModelVersion, reads: _Reads | None = None) -> AppCheck:
        reads = reads or _Reads(by_version={new.version: new})
        notes: list[str] = []
        new_signature = _signature(new, notes)
        new_label = f"{model}:{new.version}"
        baseline = await self.baseline(app, model, new.version, reads)
        contract, contract_label, problem = await self.contract(app)
        if problem:
            notes.append(f"{app}'s contract was not checked: {problem}")
        comparisons: list[Comparison] = []
        if baseline.version is not None:
            old = await self._read(model, baseline.version, reads)
            old_label = f"{model}:{baseline.version}"
            if old is None:
                notes.append(f"{old_label}, which {app} runs, is not in Azure ML")
            else:
                old_signature = _signature(old, notes)
                if old_signature is None and contract is not None:
                    notes.append(f"{old_label} has no signature; checked against {contract_label} only")
                else:
                    comparisons.append(compare(old_signature, new_signature, old_label, new_label))
        if contract is not None:
            against = compare_contract(contract, new_signature, contract_label or "the contract", new_label)
            comparisons.append(_attributed(against, contract_label or "the contract", comparisons))
        combined = combine(comparisons)
        differences = tuple(combined.texts)
        if not comparisons:
            differences = (
                f"nothing to compare {new_label} with: {app} runs no known version and declares no contract",
            )
        return AppCheck(
            app=app,
            verdict=combined.verdict,
            differences=differences,
            baseline=baseline.version,
            baseline_source=baseline.source,
            contract=contract_label if contract is not None else None,
            notes=tuple(notes),
        )


def _signature(version: ModelVersion, notes: list[str]) -> Signature | None:
    try:
        return parse_model_signature(version.signature)
    except ContractError as error:
        notes.append(f"{version.name}:{version.version} has an unreadable signature ({error})")
        return None


def _attributed(comparison: Comparison, label: str, earlier: Sequence[Comparison]) -> Comparison:
    """The contract's differences, each saying it comes from the contract unless a version said it too."""
    said = {d.text for c in earlier for d in c.differences}
    return replace(
        comparison,
        differences=tuple(
            d if d.text in said or d.side is None else replace(d, name=f"{d.name} ({label})")
            for d in comparison.differences
        ),
    )

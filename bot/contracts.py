"""Model contracts: two MLflow signatures compared, difference by difference, into a verdict.

A signature is what an MLflow model declares it takes and gives: the ``MLmodel`` file's
``signature.inputs`` / ``outputs`` / ``params`` (JSON inside YAML, see shared/reference/azure-ml.md
§3.4). Inputs and outputs are column-based (``{"name": "age", "type": "long"}``) or tensor-based
(``{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}``). An app may also
declare what it sends as a contract: an MLflow-style column list or signature, or a JSON schema
(:func:`contract_signature`); it is compared as if it were the old version, on what it declares only
(:func:`compare_contract`).

The rules, from the point of view of a caller built against the old side:

- **compatible**: nothing the caller can notice changed (named columns may change order);
- **additive**: the caller keeps working: a new optional input, an input that became optional, an
  input type widened (``integer`` → ``long``, ``float32`` → ``float64``), a tensor input dimension
  relaxed to ``-1``, a new output, a new param, a param default changed;
- **breaking**: the caller can fail: an input removed or renamed, a new required input, an input
  that became required, any other type change, any other shape change, a switch between
  column-based and tensor-based, an output removed, renamed or changed, a param removed or retyped;
- **unknown**: either side has no signature. Unknown is never compatible; only breaking is worse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal


class ContractError(ValueError):
    """A signature or contract document that cannot be read; the message says where."""


class Verdict(StrEnum):
    """How a new version stands against what a caller expects, from best to worst."""

    COMPATIBLE = "compatible"
    ADDITIVE = "additive"
    UNKNOWN = "unknown"
    BREAKING = "breaking"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @classmethod
    def worst(cls, verdicts: Iterable[Verdict]) -> Verdict:
        """The worst of ``verdicts``; compatible when there are none."""
        return max(verdicts, key=lambda v: v.rank, default=cls.COMPATIBLE)


_RANK = {Verdict.COMPATIBLE: 0, Verdict.ADDITIVE: 1, Verdict.UNKNOWN: 2, Verdict.BREAKING: 3}

Side = Literal["input", "output", "param"]
SchemaKind = Literal["columns", "tensors"]


@dataclass(frozen=True)
class Spec:
    """One column, tensor or param. ``type`` is an MLflow data type (``long``, ``array<string>``) or a
    tensor dtype (``float32``); ``default`` is a param's default as JSON text."""

    name: str | None
    type: str
    shape: tuple[int, ...] | None = None
    required: bool = True
    default: str | None = None


@dataclass(frozen=True)
class Schema:
    """The inputs or the outputs of a signature."""

    kind: SchemaKind
    specs: tuple[Spec, ...]

    @property
    def named(self) -> bool:
        return bool(self.specs) and all(s.name for s in self.specs)


@dataclass(frozen=True)
class Signature:
    """An MLflow signature; ``outputs`` may be undeclared, ``params`` are empty when there are none."""

    inputs: Schema
    outputs: Schema | None = None
    params: tuple[Spec, ...] = ()

    def describe(self) -> str:
        """A short description for people: ``3 columns → 1 column``."""
        kind = {"columns": "column", "tensors": "tensor"}
        inputs = f"{len(self.inputs.specs)} {kind[self.inputs.kind]}(s)"
        outputs = f"{len(self.outputs.specs)} {kind[self.outputs.kind]}(s)" if self.outputs else "undeclared"
        return f"{inputs} → {outputs}"


class Change(StrEnum):
    REMOVED = "removed"
    RENAMED = "renamed"
    ADDED = "added"
    TYPE = "type"
    SHAPE = "shape"
    REQUIRED = "required"
    OPTIONAL = "optional"
    KIND = "kind"
    DEFAULT = "default"
    UNDECLARED = "undeclared"
    MISSING = "missing"


@dataclass(frozen=True)
class Difference:
    """One named change and how much it matters (``severity`` is never compatible)."""

    side: Side | None
    change: Change
    name: str
    before: str | None
    after: str | None
    severity: Verdict

    @property
    def text(self) -> str:
        """The change in words: ``input `age`: long → string``."""
        what = f"{self.side} {self.name}"
        if self.change is Change.TYPE:
            return f"{what}: {self.before} → {self.after}"
        if self.change is Change.SHAPE:
            return f"{what}: shape {self.before} → {self.after}"
        if self.change is Change.RENAMED:
            return f"{what} renamed to {self.after}"
        if self.change is Change.ADDED:
            return f"{what}: added" + (f" ({self.after})" if self.after else "")
        if self.change is Change.REMOVED:
            return f"{what}: removed"
        if self.change is Change.REQUIRED:
            return f"{what}: optional → required"
        if self.change is Change.OPTIONAL:
            return f"{what}: required → optional"
        if self.change is Change.DEFAULT:
            return f"{what}: default {self.before} → {self.after}"
        if self.change is Change.KIND:
            return f"{self.side}s: {self.before} → {self.after}"
        if self.change is Change.UNDECLARED:
            return f"outputs: {self.after}"
        return self.name  # MISSING: the name says it all


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`: the verdict and every difference behind it."""

    verdict: Verdict
    differences: tuple[Difference, ...] = ()

    @property
    def texts(self) -> list[str]:
        return [d.text for d in self.differences]


# --- reading signatures -----------------------------------------------------------------------------------


def _decode(value: Any, where: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ContractError(f"{where} is not JSON") from None
    return value


def _type_of(spec: Mapping[str, Any], where: str) -> str:
    """The canonical text of a column type, nested types included."""
    kind = spec.get("type")
    if not isinstance(kind, str):
        raise ContractError(f"{where}: no type")
    if kind == "array":
        items = spec.get("items")
        return f"array<{_type_of(items, where) if isinstance(items, Mapping) else 'any'}>"
    if kind == "map":
        values = spec.get("values")
        return f"map<{_type_of(values, where) if isinstance(values, Mapping) else 'any'}>"
    if kind == "object":
        properties = spec.get("properties")
        if not isinstance(properties, Mapping):
            return "object"
        fields = ", ".join(
            f"{k}: {_type_of(v, where) if isinstance(v, Mapping) else 'any'}" for k, v in sorted(properties.items())
        )
        return f"object{{{fields}}}"
    return kind


def _shape(value: Any, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise ContractError(f"{where}: shape must be a list of integers")
    return tuple(value)


def _schema(raw: Any, where: str) -> Schema:
    specs = _decode(raw, where)
    if not isinstance(specs, list) or not all(isinstance(s, Mapping) for s in specs):
        raise ContractError(f"{where} must be a list of column or tensor specs")
    tensors = [s.get("type") == "tensor" for s in specs]
    if any(tensors) and not all(tensors):
        raise ContractError(f"{where} mixes columns and tensors")
    parsed = []
    for i, spec in enumerate(specs):
        here = f"{where}[{i}]"
        name = spec.get("name")
        if name is not None and not isinstance(name, str):
            raise ContractError(f"{here}: name must be text")
        if all(tensors):
            tensor = spec.get("tensor-spec")
            if not isinstance(tensor, Mapping) or not isinstance(tensor.get("dtype"), str):
                raise ContractError(f"{here}: tensor-spec needs a dtype")
            parsed.append(Spec(name or None, str(tensor["dtype"]), _shape(tensor.get("shape"), here)))
        else:
            parsed.append(Spec(name or None, _type_of(spec, here), required=bool(spec.get("required", True))))
    return Schema("tensors" if specs and all(tensors) else "columns", tuple(parsed))


def _params(raw: Any, where: str) -> tuple[Spec, ...]:
    params = _decode(raw, where)
    if params is None:
        return ()
    if not isinstance(params, list) or not all(
        isinstance(p, Mapping) and isinstance(p.get("name"), str) for p in params
    ):
        raise ContractError(f"{where} must be a list of named params")
    return tuple(
        Spec(
            str(p["name"]),
            _type_of(p, where),
            _shape(p.get("shape"), where),
            default=json.dumps(p.get("default"), sort_keys=True),
        )
        for p in params
    )


def parse_signature(raw: Mapping[str, Any] | None) -> Signature | None:
    """A signature from its MLmodel form (values may still be JSON strings); None when there is none.

    Raises :class:`ContractError` for a signature that is present but malformed.
    """
    if not raw or raw.get("inputs") in (None, "", "null"):
        return None
    outputs = raw.get("outputs")
    outputs = _decode(outputs, "signature.outputs")
    return Signature(
        inputs=_schema(raw["inputs"], "signature.inputs"),
        outputs=_schema(outputs, "signature.outputs") if outputs else None,
        params=_params(raw.get("params"), "signature.params"),
    )


_JSON_SCHEMA_TYPES = {"integer": "long", "number": "double", "string": "string", "boolean": "boolean"}
_JSON_SCHEMA_FORMATS = {"date-time": "datetime", "date": "datetime", "binary": "binary", "byte": "binary"}


def _json_schema_type(schema: Mapping[str, Any], where: str) -> tuple[str, bool]:
    """(MLflow type, nullable) of a JSON schema property."""
    declared = schema.get("type")
    nullable = False
    if isinstance(declared, list):
        nullable = "null" in declared
        rest = [t for t in declared if t != "null"]
        if len(rest) != 1:
            raise ContractError(f"{where}: one type (besides null) is needed, got {declared}")
        declared = rest[0]
    if declared == "string" and schema.get("format") in _JSON_SCHEMA_FORMATS:
        return _JSON_SCHEMA_FORMATS[str(schema["format"])], nullable
    if declared in _JSON_SCHEMA_TYPES:
        return _JSON_SCHEMA_TYPES[str(declared)], nullable
    if declared == "array":
        items = schema.get("items")
        inner = _json_schema_type(items, where)[0] if isinstance(items, Mapping) else "any"
        return f"array<{inner}>", nullable
    if declared == "object":
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return "object", nullable
        fields = ", ".join(
            f"{k}: {_json_schema_type(v, where)[0] if isinstance(v, Mapping) else 'any'}"
            for k, v in sorted(properties.items())
        )
        return f"object{{{fields}}}", nullable
    raise ContractError(f"{where}: unsupported type {declared!r}")


def _from_json_schema(schema: Mapping[str, Any], where: str) -> Schema:
    if schema.get("type") == "array" and isinstance(schema.get("items"), Mapping):
        schema = schema["items"]  # an array of records: the record is the contract
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        raise ContractError(f"{where}: a JSON schema contract needs properties")
    required = set(schema.get("required") or ())
    specs = []
    for name, prop in properties.items():
        if not isinstance(prop, Mapping):
            raise ContractError(f"{where}.properties.{name} must be a schema")
        kind, nullable = _json_schema_type(prop, f"{where}.properties.{name}")
        specs.append(Spec(str(name), kind, required=name in required and not nullable))
    return Schema("columns", tuple(specs))


def _is_json_schema(doc: Any) -> bool:
    return isinstance(doc, Mapping) and (
        "properties" in doc or "$schema" in doc or doc.get("type") in ("object", "array")
    )


def contract_signature(doc: Any, where: str = "contract") -> Signature:
    """What an app declares it sends (and reads), as a signature to compare a model version against.

    Accepted: an MLflow column (or tensor) spec list (the inputs); an MLflow-style signature
    ``{"inputs": ..., "outputs": ...}`` whose parts may be spec lists, JSON strings or JSON schemas; or a
    JSON schema of the record the app sends (``integer`` reads as ``long``, ``number`` as ``double``;
    properties not listed in ``required``, or nullable, are optional). Raises :class:`ContractError`.
    """
    if isinstance(doc, list):
        return Signature(_schema(doc, where))
    if not isinstance(doc, Mapping):
        raise ContractError(f"{where} must be a JSON schema, a column list or a signature")
    if "inputs" in doc:

        def part(value: Any, here: str) -> Schema:
            value = _decode(value, here)
            return _from_json_schema(value, here) if _is_json_schema(value) else _schema(value, here)

        outputs = doc.get("outputs")
        return Signature(
            part(doc["inputs"], f"{where}.inputs"),
            part(outputs, f"{where}.outputs") if outputs else None,
            _params(doc.get("params"), f"{where}.params"),
        )
    if _is_json_schema(doc):
        return Signature(_from_json_schema(doc, where))
    raise ContractError(f"{where} must be a JSON schema, a column list or a signature")


# --- comparing ---------------------------------------------------------------------------------------------

# Input types a caller's values still fit after the change (MLflow converts these safely).
_COLUMN_WIDENING = frozenset({("integer", "long"), ("integer", "double"), ("float", "double")})
_TENSOR_FAMILIES = (
    ("int8", "int16", "int32", "int64"),
    ("uint8", "uint16", "uint32", "uint64"),
    ("float16", "float32", "float64"),
)


def _widens(before: str, after: str) -> bool:
    if (before, after) in _COLUMN_WIDENING:
        return True
    for family in _TENSOR_FAMILIES:
        if before in family and after in family:
            return family.index(after) > family.index(before)
    return False


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "none" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def _relaxes(before: tuple[int, ...], after: tuple[int, ...]) -> bool:
    """The new shape accepts everything the old one did: same rank, each dimension equal or ``-1``."""
    return len(before) == len(after) and all(a in (b, -1) for b, a in zip(before, after, strict=True))


def _label(spec: Spec, position: int) -> str:
    return f"`{spec.name}`" if spec.name else f"#{position}"


def _pair(side: Side, label: str, old: Spec, new: Spec) -> list[Difference]:
    """Differences between two specs that stand for the same thing."""
    found: list[Difference] = []
    if old.type != new.type:
        widened = side == "input" and _widens(old.type, new.type)
        found.append(
            Difference(side, Change.TYPE, label, old.type, new.type, Verdict.ADDITIVE if widened else Verdict.BREAKING)
        )
    if old.shape != new.shape:
        relaxed = side == "input" and old.shape is not None and new.shape is not None and _relaxes(old.shape, new.shape)
        found.append(
            Difference(
                side,
                Change.SHAPE,
                label,
                _shape_text(old.shape),
                _shape_text(new.shape),
                Verdict.ADDITIVE if relaxed else Verdict.BREAKING,
            )
        )
    if side == "input" and old.required != new.required:
        if new.required:
            found.append(Difference(side, Change.REQUIRED, label, None, None, Verdict.BREAKING))
        else:
            found.append(Difference(side, Change.OPTIONAL, label, None, None, Verdict.ADDITIVE))
    if side == "param" and old.default != new.default:
        found.append(Difference(side, Change.DEFAULT, label, old.default, new.default, Verdict.ADDITIVE))
    return found


def _added(side: Side, label: str, spec: Spec) -> Difference:
    if side == "input":
        how = "required" if spec.required else "optional"
        return Difference(side, Change.ADDED, label, None, how, Verdict.BREAKING if spec.required else Verdict.ADDITIVE)
    return Difference(side, Change.ADDED, label, None, None, Verdict.ADDITIVE)


def _renames(
    old: Sequence[Spec], new: Sequence[Spec], removed: list[Spec], added: list[Spec]
) -> list[tuple[Spec, Spec]]:
    """Removed and added specs that are one spec renamed: alike (type, shape, required) and the only
    such pair, or failing that, alike and at the same position."""

    def key(spec: Spec) -> tuple[str, tuple[int, ...] | None, bool]:
        return spec.type, spec.shape, spec.required

    pairs = []
    taken: set[str | None] = set()
    for gone in removed:
        alike_gone = [s for s in removed if key(s) == key(gone)]
        alike_new = [s for s in added if key(s) == key(gone) and s.name not in taken]
        if len(alike_gone) != 1 or len(alike_new) != 1:
            alike_new = [s for s in alike_new if new.index(s) == old.index(gone)]
        if len(alike_new) == 1:
            pairs.append((gone, alike_new[0]))
            taken.add(alike_new[0].name)
    return pairs


def _compare_named(side: Side, old: Sequence[Spec], new: Sequence[Spec]) -> list[Difference]:
    before = {s.name: s for s in old}
    after = {s.name: s for s in new}
    found: list[Difference] = []
    for spec in old:
        if spec.name in after:
            found += _pair(side, f"`{spec.name}`", spec, after[spec.name])
    removed = [s for s in old if s.name not in after]
    added = [s for s in new if s.name not in before]
    renamed = _renames(old, new, removed, added)
    renamed_old = {o.name for o, _ in renamed}
    renamed_new = {n.name for _, n in renamed}
    for old_spec, new_spec in renamed:
        found.append(
            Difference(side, Change.RENAMED, f"`{old_spec.name}`", None, f"`{new_spec.name}`", Verdict.BREAKING)
        )
    found += [
        Difference(side, Change.REMOVED, f"`{s.name}`", None, None, Verdict.BREAKING)
        for s in removed
        if s.name not in renamed_old
    ]
    found += [_added(side, f"`{s.name}`", s) for s in added if s.name not in renamed_new]
    return found


def _compare_positional(side: Side, old: Sequence[Spec], new: Sequence[Spec]) -> list[Difference]:
    found: list[Difference] = []
    for i, (a, b) in enumerate(zip(old, new, strict=False)):
        label = _label(a, i)
        if a.name != b.name and a.name and b.name:
            found.append(Difference(side, Change.RENAMED, label, None, _label(b, i), Verdict.BREAKING))
        found += _pair(side, label, a, b)
    found += [
        Difference(side, Change.REMOVED, _label(s, i), None, None, Verdict.BREAKING)
        for i, s in enumerate(old)
        if i >= len(new)
    ]
    found += [_added(side, _label(s, i), s) for i, s in enumerate(new) if i >= len(old)]
    return found


_KIND_TEXT = {"columns": "column-based", "tensors": "tensor-based"}


def _compare_schema(side: Side, old: Schema, new: Schema) -> list[Difference]:
    if old.kind != new.kind and old.specs and new.specs:
        return [Difference(side, Change.KIND, "", _KIND_TEXT[old.kind], _KIND_TEXT[new.kind], Verdict.BREAKING)]
    if old.named and new.named:
        return _compare_named(side, old.specs, new.specs)
    return _compare_positional(side, old.specs, new.specs)


def compare(
    old: Signature | None,
    new: Signature | None,
    old_label: str = "the old version",
    new_label: str = "the new version",
) -> Comparison:
    """Every difference between ``old`` (what the caller was built for) and ``new``, and the verdict.

    The labels name the two sides in the differences that say a signature is missing.
    """
    if old is None or new is None:
        missing = [label for label, sig in ((old_label, old), (new_label, new)) if sig is None]
        return Comparison(
            Verdict.UNKNOWN,
            tuple(
                Difference(None, Change.MISSING, f"{m} has no signature", None, None, Verdict.UNKNOWN) for m in missing
            ),
        )
    found = _compare_schema("input", old.inputs, new.inputs)
    if old.outputs is not None and new.outputs is not None:
        found += _compare_schema("output", old.outputs, new.outputs)
    elif old.outputs is not None:
        found.append(Difference("output", Change.UNDECLARED, "", None, f"{new_label} declares none", Verdict.UNKNOWN))
    elif new.outputs is not None:
        found.append(
            Difference("output", Change.UNDECLARED, "", None, f"now declared by {new_label}", Verdict.ADDITIVE)
        )
    found += _compare_named("param", old.params, new.params)
    return Comparison(Verdict.worst(d.severity for d in found), tuple(found))


def compare_contract(
    contract: Signature, new: Signature | None, contract_label: str = "the contract", new_label: str = "the new version"
) -> Comparison:
    """An app's declared contract against a model version, on what the contract declares only: outputs or
    params a contract leaves out are none of the app's concern, so the model declaring them changes nothing
    (a contract of inputs alone would otherwise make every version "additive")."""
    if new is not None:
        new = replace(
            new,
            outputs=new.outputs if contract.outputs is not None else None,
            params=new.params if contract.params else (),
        )
    return compare(contract, new, contract_label, new_label)


def combine(comparisons: Sequence[Comparison]) -> Comparison:
    """Several comparisons for one caller (against a version and a contract) as one: the worst verdict,
    each difference once."""
    if not comparisons:
        return Comparison(Verdict.UNKNOWN)
    seen: dict[str, Difference] = {}
    for comparison in comparisons:
        for difference in comparison.differences:
            seen.setdefault(difference.text, difference)
    return Comparison(Verdict.worst(c.verdict for c in comparisons), tuple(seen.values()))

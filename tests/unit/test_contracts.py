"""Contracts: MLflow signatures compared into named differences and a verdict."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.contracts import (
    Comparison,
    ContractError,
    Signature,
    Verdict,
    combine,
    compare,
    compare_contract,
    contract_signature,
    parse_signature,
)

COLUMN_TYPES = ["boolean", "integer", "long", "float", "double", "string", "binary", "datetime"]
DTYPES = ["int8", "int32", "int64", "uint8", "float16", "float32", "float64", "bool", "object"]

TABULAR: dict[str, Any] = {
    "inputs": [
        {"name": "age", "type": "long"},
        {"name": "income", "type": "double"},
        {"name": "segment", "type": "string"},
    ],
    "outputs": [{"name": "prediction", "type": "double"}],
}
TENSOR: dict[str, Any] = {
    "inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}],
    "outputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 1]}}],
}


def sig(raw: dict[str, Any]) -> Signature:
    parsed = parse_signature(raw)
    assert parsed is not None
    return parsed


def changed(base: dict[str, Any], **parts: Any) -> Signature:
    return sig({**base, **parts})


def check(old: dict[str, Any] | Signature, new: dict[str, Any] | Signature) -> Comparison:
    return compare(
        old if isinstance(old, Signature) else sig(old),
        new if isinstance(new, Signature) else sig(new),
        "model-x:7",
        "model-x:8",
    )


# --- generated signatures -------------------------------------------------------------------------------

names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@st.composite
def column_schemas(draw: st.DrawFn) -> list[dict[str, Any]]:
    chosen = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    return [{"name": n, "type": draw(st.sampled_from(COLUMN_TYPES)), "required": draw(st.booleans())} for n in chosen]


@st.composite
def tensor_schemas(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 3))
    named = draw(st.booleans()) and count > 0
    chosen = draw(st.lists(names, min_size=count, max_size=count, unique=True))
    return [
        {
            **({"name": chosen[i]} if named else {}),
            "type": "tensor",
            "tensor-spec": {
                "dtype": draw(st.sampled_from(DTYPES)),
                "shape": draw(st.lists(st.sampled_from([-1, 1, 3, 4, 28]), min_size=1, max_size=4)),
            },
        }
        for i in range(count)
    ]


@st.composite
def signatures(draw: st.DrawFn) -> dict[str, Any]:
    schemas = column_schemas() if draw(st.booleans()) else tensor_schemas()
    raw: dict[str, Any] = {"inputs": json.dumps(draw(schemas))}  # as in MLmodel: JSON inside YAML
    if draw(st.booleans()):
        raw["outputs"] = json.dumps(draw(column_schemas() if draw(st.booleans()) else tensor_schemas()))
    if draw(st.booleans()):
        params = [
            {"name": n, "type": "double", "default": draw(st.floats(0, 1)), "shape": None}
            for n in draw(st.lists(names, max_size=3, unique=True))
        ]
        raw["params"] = json.dumps(params)
    return raw


@given(signatures())
def test_a_signature_is_compatible_with_itself(raw: dict[str, Any]) -> None:
    same = compare(sig(raw), sig(raw))
    assert same.verdict is Verdict.COMPATIBLE
    assert same.differences == ()


@given(signatures(), st.booleans())
def test_a_missing_signature_is_unknown_never_compatible(raw: dict[str, Any], old_missing: bool) -> None:
    present = sig(raw)
    result = compare(None, present) if old_missing else compare(present, None)
    assert result.verdict is Verdict.UNKNOWN
    assert compare(None, None).verdict is Verdict.UNKNOWN
    assert result.texts == [f"the {'old' if old_missing else 'new'} version has no signature"]


@given(signatures(), signatures())
def test_the_verdict_is_the_worst_difference_and_compatible_only_without_any(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    result = compare(sig(first), sig(second))
    assert all(d.severity is not Verdict.COMPATIBLE for d in result.differences)
    assert (result.verdict is Verdict.COMPATIBLE) == (result.differences == ())
    assert result.verdict is Verdict.worst(d.severity for d in result.differences)


@given(column_schemas(), st.data())
def test_removing_any_input_column_breaks(columns: list[dict[str, Any]], data: st.DataObject) -> None:
    if len(columns) < 2:
        return
    gone = data.draw(st.integers(0, len(columns) - 1))
    rest = [c for i, c in enumerate(columns) if i != gone]
    result = compare(sig({"inputs": columns}), sig({"inputs": rest}))
    assert result.verdict is Verdict.BREAKING
    assert f"input `{columns[gone]['name']}`: removed" in result.texts or any("renamed" in t for t in result.texts)


@given(column_schemas())
def test_adding_an_optional_input_is_additive_and_a_required_one_breaks(columns: list[dict[str, Any]]) -> None:
    optional = [*columns, {"name": "zz_new", "type": "string", "required": False}]
    required = [*columns, {"name": "zz_new", "type": "string"}]
    assert compare(sig({"inputs": columns}), sig({"inputs": optional})).texts == ["input `zz_new`: added (optional)"]
    assert compare(sig({"inputs": columns}), sig({"inputs": optional})).verdict is Verdict.ADDITIVE
    assert compare(sig({"inputs": columns}), sig({"inputs": required})).verdict is Verdict.BREAKING


# --- each kind of difference, named ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "verdict", "texts"),
    [
        (
            {
                "inputs": [
                    {"name": "income", "type": "double"},
                    {"name": "segment", "type": "string"},
                    TABULAR["inputs"][0],
                ]
            },
            Verdict.COMPATIBLE,
            [],
        ),
        (
            {"inputs": [{"name": "age", "type": "string"}, *TABULAR["inputs"][1:]]},
            Verdict.BREAKING,
            ["input `age`: long → string"],
        ),
        ({"inputs": TABULAR["inputs"][:2]}, Verdict.BREAKING, ["input `segment`: removed"]),
        (
            {"inputs": [*TABULAR["inputs"][:2], {"name": "customer_segment", "type": "string"}]},
            Verdict.BREAKING,
            ["input `segment` renamed to `customer_segment`"],
        ),
        (
            {"inputs": [*TABULAR["inputs"], {"name": "region", "type": "string"}]},
            Verdict.BREAKING,
            ["input `region`: added (required)"],
        ),
        (
            {"inputs": [*TABULAR["inputs"], {"name": "region", "type": "string", "required": False}]},
            Verdict.ADDITIVE,
            ["input `region`: added (optional)"],
        ),
        (
            {"inputs": [{"name": "age", "type": "long", "required": False}, *TABULAR["inputs"][1:]]},
            Verdict.ADDITIVE,
            ["input `age`: required → optional"],
        ),
        (
            {"outputs": [{"name": "prediction", "type": "double"}, {"name": "probability", "type": "double"}]},
            Verdict.ADDITIVE,
            ["output `probability`: added"],
        ),
        (
            {"outputs": [{"name": "prediction", "type": "string"}]},
            Verdict.BREAKING,
            ["output `prediction`: double → string"],
        ),
        (
            {"outputs": [{"name": "score", "type": "double"}]},
            Verdict.BREAKING,
            ["output `prediction` renamed to `score`"],
        ),
        (
            {"outputs": [{"name": "label", "type": "string"}]},
            Verdict.BREAKING,
            ["output `prediction`: removed", "output `label`: added"],
        ),
        ({"outputs": None}, Verdict.UNKNOWN, ["outputs: model-x:8 declares none"]),
        (
            {"inputs": TENSOR["inputs"]},
            Verdict.BREAKING,
            ["inputs: column-based → tensor-based"],
        ),
    ],
)
def test_tabular_differences(new: dict[str, Any], verdict: Verdict, texts: list[str]) -> None:
    result = check(TABULAR, {**TABULAR, **new})
    assert result.verdict is verdict
    assert result.texts == texts


def test_an_input_type_widened_is_additive_and_narrowed_breaks() -> None:
    old = {"inputs": [{"name": "count", "type": "integer"}, {"name": "ratio", "type": "float"}]}
    wider = {"inputs": [{"name": "count", "type": "long"}, {"name": "ratio", "type": "double"}]}
    assert check(old, wider).verdict is Verdict.ADDITIVE
    assert check(old, wider).texts == ["input `count`: integer → long", "input `ratio`: float → double"]
    assert check(wider, old).verdict is Verdict.BREAKING


def test_an_optional_input_made_required_breaks() -> None:
    old = {"inputs": [{"name": "age", "type": "long", "required": False}]}
    new = {"inputs": [{"name": "age", "type": "long"}]}
    assert check(old, new).texts == ["input `age`: optional → required"]
    assert check(old, new).verdict is Verdict.BREAKING


def test_nested_column_types_are_compared_whole() -> None:
    old = {"inputs": [{"name": "tags", "type": "array", "items": {"type": "string"}}]}
    new = {"inputs": [{"name": "tags", "type": "array", "items": {"type": "long"}}]}
    assert check(old, new).texts == ["input `tags`: array<string> → array<long>"]


@pytest.mark.parametrize(
    ("new", "verdict", "texts"),
    [
        (
            {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 5]}}]},
            Verdict.BREAKING,
            ["input #0: shape [-1, 4] → [-1, 5]"],
        ),
        (
            {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, -1]}}]},
            Verdict.ADDITIVE,
            ["input #0: shape [-1, 4] → [-1, -1]"],
        ),
        (
            {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2, 2]}}]},
            Verdict.BREAKING,
            ["input #0: shape [-1, 4] → [-1, 2, 2]"],
        ),
        (
            {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]},
            Verdict.ADDITIVE,
            ["input #0: float32 → float64"],
        ),
        (
            {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "int32", "shape": [-1, 4]}}]},
            Verdict.BREAKING,
            ["input #0: float32 → int32"],
        ),
        (
            {"outputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]},
            Verdict.BREAKING,
            ["output #0: shape [-1, 1] → [-1, 3]"],
        ),
        (
            {"inputs": [*TENSOR["inputs"], {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]},
            Verdict.BREAKING,
            ["input #1: added (required)"],
        ),
        ({"inputs": TABULAR["inputs"]}, Verdict.BREAKING, ["inputs: tensor-based → column-based"]),
    ],
)
def test_tensor_differences(new: dict[str, Any], verdict: Verdict, texts: list[str]) -> None:
    result = check(TENSOR, {**TENSOR, **new})
    assert (result.verdict, result.texts) == (verdict, texts)


def test_named_tensors_match_by_name() -> None:
    old = {
        "inputs": [
            {"name": "image", "type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": [-1, 28, 28]}},
            {"name": "mask", "type": "tensor", "tensor-spec": {"dtype": "bool", "shape": [-1, 28, 28]}},
        ]
    }
    swapped = {"inputs": list(reversed(old["inputs"]))}
    assert check(old, swapped).verdict is Verdict.COMPATIBLE


def test_params_added_removed_retyped_and_defaults() -> None:
    base = {**TABULAR, "params": [{"name": "threshold", "type": "double", "default": 0.5, "shape": None}]}
    more = {**base, "params": [*base["params"], {"name": "top_k", "type": "long", "default": 3, "shape": None}]}
    assert check(base, more).texts == ["param `top_k`: added"]
    assert check(base, more).verdict is Verdict.ADDITIVE
    assert check(more, base).texts == ["param `top_k`: removed"]
    assert check(more, base).verdict is Verdict.BREAKING
    moved = {**base, "params": [{"name": "threshold", "type": "double", "default": 0.6, "shape": None}]}
    assert check(base, moved).texts == ["param `threshold`: default 0.5 → 0.6"]
    assert check(base, moved).verdict is Verdict.ADDITIVE


# --- reading --------------------------------------------------------------------------------------------


def test_mlmodel_json_strings_and_a_missing_signature() -> None:
    as_in_file = {"inputs": json.dumps(TABULAR["inputs"]), "outputs": json.dumps(TABULAR["outputs"]), "params": None}
    assert parse_signature(as_in_file) == sig(TABULAR)
    assert parse_signature(None) is None
    assert parse_signature({}) is None


@pytest.mark.parametrize(
    "raw",
    [
        {"inputs": "not json"},
        {"inputs": [{"name": "age"}]},
        {"inputs": [{"name": "x", "type": "long"}, {"type": "tensor", "tensor-spec": {"dtype": "float32"}}]},
        {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": "4"}}]},
    ],
)
def test_a_malformed_signature_says_what_is_wrong(raw: dict[str, Any]) -> None:
    with pytest.raises(ContractError):
        parse_signature(raw)


def test_a_json_schema_contract_is_what_the_app_sends() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "age": {"type": "integer"},
            "income": {"type": "number"},
            "segment": {"type": ["string", "null"]},
        },
        "required": ["age", "income", "segment"],
    }
    contract = contract_signature(schema)
    assert [(s.name, s.type, s.required) for s in contract.inputs.specs] == [
        ("age", "long", True),
        ("income", "double", True),
        ("segment", "string", False),
    ]
    model = sig(TABULAR)
    result = compare(contract, model, "app-y's contract", "model-x:8")
    assert result.texts == ["input `segment`: optional → required", "outputs: now declared by model-x:8"]
    assert result.verdict is Verdict.BREAKING


def test_a_contract_checks_only_what_it_declares() -> None:
    inputs_only = contract_signature(TABULAR["inputs"])
    with_params = sig({**TABULAR, "params": [{"name": "threshold", "type": "double", "default": 0.5}]})
    for model in (sig(TABULAR), with_params):
        assert compare_contract(inputs_only, model, "app-y's contract", "model-x:9") == Comparison(Verdict.COMPATIBLE)
    # what it declares is checked as before
    narrower = sig({**TABULAR, "outputs": [{"name": "prediction", "type": "float"}]})
    assert compare_contract(contract_signature(TABULAR), narrower).texts == ["output `prediction`: double → float"]
    assert compare_contract(contract_signature(TABULAR), sig({"inputs": TABULAR["inputs"]})).verdict is Verdict.UNKNOWN
    renamed = sig({**TABULAR, "inputs": [*TABULAR["inputs"][:2], {"name": "tier", "type": "string"}]})
    assert compare_contract(inputs_only, renamed).verdict is Verdict.BREAKING
    assert compare_contract(inputs_only, None, new_label="model-x:9").texts == ["model-x:9 has no signature"]


def test_column_list_and_signature_contracts() -> None:
    assert contract_signature(TABULAR["inputs"]) == Signature(sig(TABULAR).inputs)
    assert contract_signature(TABULAR) == sig(TABULAR)
    records = {"type": "array", "items": {"type": "object", "properties": {"age": {"type": "integer"}}}}
    assert contract_signature(records).inputs.specs[0].name == "age"
    with pytest.raises(ContractError):
        contract_signature("age: long")
    with pytest.raises(ContractError):
        contract_signature({"type": "object", "properties": {"when": {"type": "null"}}})


def test_combining_keeps_the_worst_verdict_and_each_difference_once() -> None:
    breaking = check(TABULAR, {**TABULAR, "inputs": TABULAR["inputs"][:2]})
    same = check(TABULAR, TABULAR)
    both = combine([same, breaking, breaking])
    assert both.verdict is Verdict.BREAKING
    assert both.texts == ["input `segment`: removed"]
    assert combine([]).verdict is Verdict.UNKNOWN

"""The small readers under the parsers: typed JSON fields, organizations, projects, people."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from adapters.azure_devops.hook_context import (
    email_from_unique_name,
    organization_from_url,
    person,
    project_from_url,
)
from adapters.web.payloads import Fields, PayloadError, decode_json
from bot.events import Person


def test_fields_read_optional_values_tolerantly() -> None:
    fields = Fields({"n": 11, "f": 20.0, "g": 0.5, "s": "x", "empty": "", "null": None, "obj": {"a": 1}})
    assert (fields.text("n"), fields.text("f"), fields.text("g"), fields.text("s")) == ("11", "20", "0.5", "x")
    assert fields.text("empty") is None and fields.text("null") is None and fields.text("missing") is None
    assert not fields.obj("null") and not fields.obj("missing") and fields.obj("obj").integer("a") == 1
    assert fields.objects("missing") == [] and fields.integer("null") is None
    assert Fields({"i": "42"}).integer("i") == 42 and Fields({"i": 3.0}).integer("i") == 3


@pytest.mark.parametrize(
    ("data", "read"),
    [
        ({"k": {"a": 1}}, lambda f: f.text("k")),
        ({"k": [1]}, lambda f: f.text("k")),
        ({"k": True}, lambda f: f.text("k")),
        ({"k": "x"}, lambda f: f.obj("k")),
        ({"k": {"a": 1}}, lambda f: f.objects("k")),
        ({"k": [1]}, lambda f: f.objects("k")),
        ({"k": "²"}, lambda f: f.integer("k")),
        ({"k": 1.5}, lambda f: f.integer("k")),
        ({"k": float("inf")}, lambda f: f.integer("k")),
        ({"k": float("nan")}, lambda f: f.number("k")),
        ({"k": "yesterday"}, lambda f: f.time("k")),
        ({}, lambda f: f.require_text("k")),
    ],
)
def test_fields_reject_wrong_shapes_with_payload_error(data: dict[str, object], read: object) -> None:
    with pytest.raises(PayloadError) as caught:
        read(Fields(data, "resource"))  # type: ignore[operator]
    assert str(caught.value).startswith("resource.k")


def test_fields_ignore_case_and_strings() -> None:
    data = Fields({"ModelName": "m", "RunTags": {"a": "1", "b": 2, "c": None, "d": {"x": True}}}, ignore_case=True)
    assert data.text("modelName") == "m"
    assert data.strings("runTags") == {"a": "1", "b": "2", "d": '{"x": true}'}


def test_times_are_aware_utc() -> None:
    assert Fields({"t": "2016-09-19T13:03:26.4285528Z"}).time("t") == datetime(
        2016, 9, 19, 13, 3, 26, 428552, tzinfo=UTC
    )
    assert Fields({"t": "2026-01-01T00:00:00"}).time("t") == datetime(2026, 1, 1, tzinfo=UTC)


def test_decode_json() -> None:
    assert decode_json(b'{"a": 1}') == {"a": 1}
    for bad in (b"", b"{", b"\xff", b"[" * 100_000):
        with pytest.raises(PayloadError):
            decode_json(bad)
    assert decode_json(b"1" * 5000) == math.inf  # past any use: no getter of a number takes it


@pytest.mark.parametrize(
    ("url", "is_base", "organization"),
    [
        ("https://dev.azure.com/contoso/", True, "contoso"),
        ("https://dev.azure.com/contoso/Fabrikam/_apis/build/Builds/2", False, "contoso"),
        ("https://vsrm.dev.azure.com/contoso/Fabrikam/_apis/Release/releases/1", False, "contoso"),
        ("https://fabrikam.visualstudio.com/DefaultCollection/_apis/git", False, "fabrikam"),
        ("http://fabfiber.vsrm.visualstudio.com/DefaultCollection/_apis/Release", False, "fabfiber"),
        ("https://codedev.ms/org/863d/_build/results?buildId=11", False, None),
        ("http://127.0.0.1:8080/ado/contoso/", True, "contoso"),
        ("https://tfs.contoso.local/tfs/DefaultCollection/", True, "DefaultCollection"),
        ("http://[::1", True, None),
        ("vstfs:///Build/Build/2", False, None),
    ],
)
def test_organization_from_url(url: str, is_base: bool, organization: str | None) -> None:
    assert organization_from_url(url, is_base=is_base) == organization


@pytest.mark.parametrize(
    ("url", "project"),
    [
        ("https://dev.azure.com/contoso/Fabrikam/_build/results?buildId=1", "Fabrikam"),
        ("https://dev.azure.com/contoso/My%20Project/_git/repo", "My Project"),
        ("https://dev.azure.com/contoso/_apis/projects/1", None),
        ("https://fabrikam.visualstudio.com/DefaultCollection/_apis/git", None),
        ("https://fabrikam.visualstudio.com/DefaultCollection/Fabrikam/_apis/git", "Fabrikam"),
        (None, None),
    ],
)
def test_project_from_url(url: str | None, project: str | None) -> None:
    assert project_from_url(url, "contoso") == project


def test_people() -> None:
    assert email_from_unique_name("Windows Live ID\\fabrikamfiber4@hotmail.com") == "fabrikamfiber4@hotmail.com"
    assert email_from_unique_name("vstfs:///Classification/TeamProject/f08\\Mobile Team") is None
    assert email_from_unique_name("CONTOSO\\jamal") is None
    assert person(Fields({"displayName": None, "id": "x"})) == Person(id="x")
    assert person(Fields({"name": "Ana", "email": "ana@contoso.com"})) == Person(name="Ana", email="ana@contoso.com")
    assert person(Fields({})) is None and person(Fields({"displayName": None})) is None

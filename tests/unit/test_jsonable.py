"""Dataclasses as JSON data: the shape every stored event and card takes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum

import orjson

from bot.cards import Action, Card, Fact, Link, Mention, Status, Step
from bot.jsonable import as_json, tagged_json


class Colour(StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Inner:
    when: datetime
    colour: Colour


@dataclass(frozen=True)
class Empty:
    pass


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    items: tuple[int, ...] = ()
    extra: dict[int, str] = field(default_factory=dict)
    nothing: None = None


def test_dataclasses_become_objects_tuples_lists_datetimes_iso_strings_and_enums_values() -> None:
    value = Outer(
        "x",
        Inner(datetime(2026, 11, 28, 12, 0, 1, 250000, tzinfo=UTC), Colour.RED),
        (1, 2),
        {7: "seven"},
    )
    assert as_json(value) == {
        "name": "x",
        "inner": {"when": "2026-11-28T12:00:01.250000+00:00", "colour": "red"},
        "items": [1, 2],
        "extra": {"7": "seven"},
        "nothing": None,
    }


def test_times_keep_their_offset_and_whole_seconds_have_no_fraction() -> None:
    local = datetime(2026, 11, 28, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert as_json(Inner(local, Colour.RED))["when"] == local.isoformat() == "2026-11-28T13:00:00+01:00"


def test_an_integer_past_64_bits_is_kept_exactly() -> None:
    huge = 2**70 + 1
    assert as_json(Outer("big", Inner(datetime(2026, 1, 1, tzinfo=UTC), Colour.RED), (huge,))) == {
        "name": "big",
        "inner": {"when": "2026-01-01T00:00:00+00:00", "colour": "red"},
        "items": [huge],
        "extra": {},
        "nothing": None,
    }


def test_a_card_survives_json_and_back() -> None:
    card = Card(
        title="Pipeline run 20241203.4",
        status=Status.FAILED,
        summary="failed in Integration tests",
        facts=(Fact("Branch", "main"),),
        steps=(Step("Build", Status.SUCCEEDED), Step("Integration tests", Status.FAILED)),
        links=(Link("Open run", "https://dev.azure.com/contoso/mlops/_build/results?buildId=9"),),
        actions=(Action("approve", "Approve", {"gate": "g1"}, style="primary"),),
        context="requested by alice",
    )
    data = card.to_json()
    assert json.loads(json.dumps(data)) == data
    assert Card.from_json(data) == card
    assert data["status"] == "failed" and data["steps"][1] == {"name": "Integration tests", "status": "failed"}


def test_a_cards_mentions_by_email_or_chat_id_survive_json_and_mentions_stored_before_chat_ids_load() -> None:
    card = Card(
        title="Integration failed",
        mentions=(Mention("Dana", "dana@contoso.com"), Mention("", user_id="slack:U0ERIN")),
    )
    data = card.to_json()
    # a mention by email is stored as it always was; one by chat id carries it
    assert data["mentions"] == [
        {"name": "Dana", "email": "dana@contoso.com"},
        {"name": "", "email": "", "user_id": "slack:U0ERIN"},
    ]
    assert Card.from_json(data) == card
    stored_before = {"title": "Integration failed", "mentions": [{"name": "Dana", "email": "dana@contoso.com"}]}
    assert Card.from_json(stored_before).mentions == (Mention("Dana", "dana@contoso.com"),)


def test_a_mention_by_chat_id_names_its_platform() -> None:
    assert Mention("", user_id="slack:U0ERIN").id_on("slack") == "U0ERIN"
    assert Mention("", user_id="slack:U0ERIN").id_on("teams") is None
    assert Mention("", user_id="aad:0f1e2d3c").id_on("teams") == "0f1e2d3c"
    assert Mention("", user_id="teams:29:1dana").id_on("teams") == "29:1dana"
    assert Mention("", user_id="teams:29:1dana").id_on("slack") is None
    assert Mention("Dana", "dana@contoso.com").id_on("slack") is None


def test_tagged_json_names_the_class_and_is_the_same_json() -> None:
    value = Outer("x", Inner(datetime(2026, 11, 28, tzinfo=UTC), Colour.RED), (3,))
    assert json.loads(orjson.dumps(tagged_json(value))) == {"type": "Outer", **as_json(value)}
    assert orjson.dumps(tagged_json(Empty())) == b'{"type":"Empty"}'
    # what orjson cannot write is still stored, as data
    huge = Outer("big", value.inner, (2**70,))
    assert tagged_json(huge) == {"type": "Outer", **as_json(huge)}

"""Stored event payloads read back as the events they were (the samples' events: tests/adapters/ingest)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from bot.events import DomainEvent, GateChanged, GateDecision, ModelChecked, PromotionGateChanged
from bot.jsonable import tagged_json
from bot.stored_events import event_from_json
from tests.unit.test_handoff_cards import BREAKING, T0, checked, gate


def stored(event: DomainEvent) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(orjson.dumps(tagged_json(event)))
    return payload


def test_handoffs_own_events_read_back() -> None:
    decided = GateChanged(
        source="handoff",
        event_id="d1",
        occurred_at=T0,
        gate_id="handoff:promotion:model-x:8",
        status="approved",
        decisions=(GateDecision(actor="carol@contoso.com", decision="override", comment="known", platform="slack"),),
        needed=2,
    )
    for event in (decided, checked({"app-y": BREAKING}), gate(2, ("app-y: breaking change",))):
        back = event_from_json(stored(event))
        assert back == event and type(back) is type(event)
    assert isinstance(event_from_json(stored(gate(1, ()))), PromotionGateChanged)
    assert isinstance(event_from_json(stored(checked({}))), ModelChecked)


def test_what_this_version_does_not_know_reads_as_none() -> None:
    payload = stored(checked({}))
    assert event_from_json({**payload, "type": "SomethingNewer"}) is None
    assert event_from_json({k: v for k, v in payload.items() if k != "type"}) is None
    assert event_from_json({**payload, "occurred_at": "not a time"}) is None
    assert event_from_json({k: v for k, v in payload.items() if k != "model_name"}) is None
    assert event_from_json({"type": "DomainEvent"}) is None  # the base is no event anyone sends

"""The model handoff's living cards: verdicts survive the registration, nothing moves backwards."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot.cards import Status
from bot.events import AppHandoffChanged, GateChanged, GateDecision, ModelChecked, ModelRegistered, PromotionGateChanged
from bot.living import merge, render

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
KEY = "azure-ml:ws:model:model-x:8"
BREAKING = {"app": "app-y", "verdict": "breaking", "differences": ["input `age`: long → string"], "baseline": "6"}


def registered() -> ModelRegistered:
    return ModelRegistered(
        source="azure-ml", event_id="e1", occurred_at=T0, scope="ws", model_name="model-x", model_version="8"
    )


def checked(apps: dict[str, dict[str, object]], n: int = 0) -> ModelChecked:
    return ModelChecked(
        source="handoff",
        event_id=f"c{n}",
        occurred_at=T0,
        card_key=KEY,
        model_name="model-x",
        model_version="8",
        apps=apps,
    )


def facts(state: dict[str, object]) -> dict[str, str]:
    return {f.label: f.value for f in render(state).facts}


def test_the_verdict_stays_on_the_model_card_whichever_comes_first() -> None:
    first = merge(None, registered()).state
    with_verdict = merge(first, checked({"app-y": BREAKING}))
    assert (
        with_verdict.changed and facts(with_verdict.state)["app-y (runs v6)"] == "Breaking: input `age`: long → string"
    )
    assert [r.title for r in with_verdict.replies] == ["Breaking for app-y (runs v6)"]
    assert render(with_verdict.state).title == "Model model-x:8 registered"

    early = merge(None, checked({"app-y": BREAKING})).state
    late = merge(early, registered())
    assert render(late.state).title == "Model model-x:8 registered"
    assert facts(late.state)["app-y (runs v6)"].startswith("Breaking")
    assert render(late.state).status is Status.WARNING


def test_an_integration_never_goes_back_and_its_end_is_told_once() -> None:
    state = merge(None, checked({"app-y": BREAKING})).state
    done = {"state": "completed", "result": "failed", "pipeline": "integrate-app-y", "name": "20261128.1"}
    ended = merge(state, checked({"app-y": {"integration": done}}, 1))
    assert [r.title for r in ended.replies] == [
        "app-y integration against model-x:8: integrate-app-y 20261128.1: failed"
    ]
    late = merge(
        ended.state, checked({"app-y": {"integration": {"state": "running", "pipeline": "integrate-app-y"}}}, 2)
    )
    assert not late.changed
    assert facts(late.state)["app-y integration"] == "integrate-app-y 20261128.1: failed"
    again = merge(late.state, checked({"app-y": {"integration": {**done, "failing_step": "Integration tests"}}}, 3))
    assert again.replies == []  # learnt where it failed, without telling the channel twice
    assert facts(again.state)["app-y integration"] == "integrate-app-y 20261128.1: failed at Integration tests"


def test_an_unknown_verdict_warns_on_the_model_card_as_on_the_app_card() -> None:
    unknown = {"app": "app-y", "verdict": "unknown", "differences": ["model-x:8 has no signature"], "baseline": "6"}
    model = merge(merge(None, registered()).state, checked({"app-y": unknown}))
    assert render(model.state).status is Status.WARNING
    assert [(r.title, r.status) for r in model.replies] == [("Unknown for app-y (runs v6)", Status.WARNING)]
    assert render(merge(None, app_card(unknown)).state).status is Status.WARNING
    compatible = {**unknown, "verdict": "compatible", "differences": []}
    fine = merge(merge(None, registered()).state, checked({"app-y": compatible})).state
    assert render(fine).status is Status.SUCCEEDED


def app_card(check: dict[str, object], n: int = 1) -> AppHandoffChanged:
    return AppHandoffChanged(
        source="handoff",
        event_id=f"a{n}",
        occurred_at=T0,
        model_name="model-x",
        model_version="8",
        app="app-y",
        check=check,
    )


def test_the_app_card_shows_what_changed_and_the_run() -> None:
    event = app_card(
        {
            **BREAKING,
            "integration": {"state": "running", "pipeline": "integrate-app-y", "name": "2026.1", "url": "https://run"},
        }
    )
    card = render(merge(None, event).state)
    assert card.title == "New model model-x:8 for app-y: breaking"
    assert card.status is Status.WARNING
    assert ("Change", "input `age`: long → string") in [(f.label, f.value) for f in card.facts]
    assert ("Integration", "integrate-app-y 2026.1: running") in [(f.label, f.value) for f in card.facts]
    assert [link.url for link in card.links] == ["https://run"]


def test_a_passed_integration_is_on_both_cards_and_only_one_that_did_not_pass_is_told_in_their_threads() -> None:
    running = {"state": "running", "pipeline": "integrate-app-y", "name": "2026.1", "url": "https://run"}

    def integrated(n: int, integration: dict[str, object]) -> AppHandoffChanged:
        return app_card({"app": "app-y", "verdict": "compatible", "integration": integration}, n)

    for result, told in (("succeeded", False), ("failed", True), ("canceled", True)):
        ended = {**running, "state": "completed", "result": result}
        on_app = merge(merge(None, integrated(1, running)).state, integrated(2, ended))
        on_model = merge(
            merge(None, checked({"app-y": {"integration": running}})).state,
            checked({"app-y": {"integration": ended}}, 1),
        )
        assert on_app.changed and on_model.changed  # each card shows how it ended
        assert bool(on_app.replies) is told and bool(on_model.replies) is told, result
    [reply] = on_app.replies
    assert reply.title == "Integration integrate-app-y 2026.1: canceled"
    assert [link.url for link in reply.links] == ["https://run"]


def gate(revision: int, blockers: tuple[str, ...]) -> PromotionGateChanged:
    return PromotionGateChanged(
        source="handoff",
        event_id=f"g{revision}",
        occurred_at=T0,
        gate_id="handoff:promotion:model-x:8",
        model_name="model-x",
        model_version="8",
        release="release-app-y",
        apps={"app-y": BREAKING},
        blockers=blockers,
        override_roles=("release-managers",),
        revision=revision,
    )


def test_the_gate_card_offers_override_while_blocked_and_never_returns_to_older_evidence() -> None:
    blocked = merge(None, gate(2, ("app-y: breaking change",))).state
    assert [a.action_id for a in render(blocked).actions] == ["override", "reject"]
    older = merge(blocked, gate(1, ()))
    assert not older.changed
    clear = merge(blocked, gate(3, ())).state
    assert [a.action_id for a in render(clear).actions] == ["approve", "reject"]
    decided = merge(
        blocked,
        GateChanged(
            source="handoff",
            event_id="d1",
            occurred_at=T0,
            gate_id="handoff:promotion:model-x:8",
            status="approved",
            decisions=(
                GateDecision(actor="carol@contoso.com", decision="override", comment="known", platform="slack"),
            ),
        ),
    ).state
    card = render(decided)
    assert card.actions == () and card.title == "Promotion of model-x:8"
    assert ("Overridden by", "carol@contoso.com: known") in [(f.label, f.value) for f in card.facts]


def test_a_promotion_gate_names_its_approvers_as_people_not_its_role() -> None:
    """The role's members by name where a decision told it, else by email, a member known by a chat id only
    counted, and the requester the policy bars not at all; once decided, the headline does not repeat the
    status line."""
    waiting = replace(
        gate(2, ()),
        approver_roles=("release-managers",),
        approvers=("carol@contoso.com", "dave@contoso.com", "erin@contoso.com", "slack:U0FRANK01"),
        barred=("erin@contoso.com",),
        min_required=2,
    )
    carol = GateDecision(actor="carol@contoso.com", decision="approve", platform="slack", name="Carol Diaz")
    one = GateChanged(
        source="handoff",
        event_id="d1",
        occurred_at=T0,
        gate_id="handoff:promotion:model-x:8",
        status="pending",
        decisions=(carol,),
        needed=2,
        revision=3,
    )
    state = merge(merge(None, waiting).state, one).state
    assert facts(state)["Approvers"] == "Carol Diaz, dave@contoso.com and 1 more approver"
    decided = merge(state, replace(one, event_id="d2", status="approved", revision=4)).state
    assert render(decided).title == "Promotion of model-x:8" and render(decided).status is Status.APPROVED


def test_a_superseded_gate_card_names_the_newer_version_and_stays_superseded_as_evidence_arrives() -> None:
    waiting = merge(None, gate(2, ("app-y: integration not finished",))).state
    change = merge(
        waiting,
        GateChanged(
            source="handoff",
            event_id="s1",
            occurred_at=T0,
            gate_id="handoff:promotion:model-x:8",
            status="superseded",
            note="model-x:9 is newer and has its own promotion gate.",
            revision=3,
            superseded_by="model-x:9",
            superseded_by_url="https://ml.azure.com/model/model-x:9",
        ),
    )
    [reply] = change.replies
    assert (reply.title, reply.summary) == (
        "Superseded by model-x:9",
        "model-x:9 is newer and has its own promotion gate.",
    )
    # its integration goes on and is reported: the card stays superseded, without buttons
    later = merge(change.state, gate(4, ())).state
    for state in (change.state, later):
        card = render(state)
        assert card.title == "Promotion of model-x:8: superseded by model-x:9" and card.actions == ()
        assert card.summary.startswith("model-x:9 is newer and has its own promotion gate: decide there.")
        assert [(link.label, link.url) for link in card.links] == [
            ("model-x:9 in Azure ML", "https://ml.azure.com/model/model-x:9")
        ]


def test_a_later_run_of_the_integration_replaces_an_earlier_ones_outcome_on_both_cards() -> None:
    failed = {
        "state": "completed",
        "result": "failed",
        "failing_step": "Integration tests",
        "pipeline": "integrate-app-y",
        "run_id": "101",
        "name": "2026.1",
    }
    rerun = {
        "state": "completed",
        "result": "succeeded",
        "pipeline": "integrate-app-y",
        "run_id": "102",
        "name": "2026.2",
    }

    def integrated(n: int, integration: dict[str, object]) -> AppHandoffChanged:
        return app_card({"app": "app-y", "verdict": "compatible", "integration": integration}, n)

    on_app = merge(merge(None, integrated(1, failed)).state, integrated(2, rerun))
    on_model = merge(
        merge(None, checked({"app-y": {"integration": failed}})).state, checked({"app-y": {"integration": rerun}}, 1)
    )
    assert render(on_app.state).status is Status.SUCCEEDED
    assert ("Integration", "integrate-app-y 2026.2: passed") in [(f.label, f.value) for f in render(on_app.state).facts]
    assert facts(on_model.state)["app-y integration"] == "integrate-app-y 2026.2: passed"
    assert on_app.replies == [] and on_model.replies == []
    # the earlier run, reported late, does not take the cards back; a later run failing again is told again
    late = merge(on_app.state, integrated(3, {**failed, "failing_step": "Smoke"}))
    assert not late.changed
    again = merge(on_app.state, integrated(4, {**failed, "run_id": "103", "name": "2026.3"}))
    assert [r.title for r in again.replies] == ["Integration integrate-app-y 2026.3: failed at Integration tests"]

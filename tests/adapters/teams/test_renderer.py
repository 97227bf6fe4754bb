"""The Adaptive Card renderer: schema-valid 1.5 cards, Universal Actions, audiences, and the size guard."""

from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.teams.renderer import (
    MAX_CARD_BYTES,
    TRUNCATION_NOTE,
    card_from_refresh,
    message_size,
    parse_execute,
    parse_submit,
    render_card,
    with_mentions,
)
from adapters.teams.text import command_text, mentions
from bot.cards import Action, Card, Fact, Link, Status, Step

from .conftest import ALICE, ALICE_AAD, BOB, gate_card, shown_texts, texts, verbs


def test_a_gate_card_for_everyone_and_for_an_approver(card_validator: jsonschema.protocols.Validator) -> None:
    card = gate_card(audience=(ALICE,))

    shared = render_card(card)
    for_alice = render_card(card, viewer_ids=(ALICE,))
    for_alice_by_aad = render_card(card, viewer_ids=("29:unknown", ALICE_AAD.upper()))
    for_bob = render_card(card, viewer_ids=(BOB,))

    for document in (shared, for_alice, for_bob):
        card_validator.validate(document)
        assert (document["type"], document["version"]) == ("AdaptiveCard", "1.5")
        assert document["refresh"]["userIds"] == [ALICE]
        assert document["refresh"]["action"]["verb"] == "refresh"
    assert verbs(shared) == verbs(for_bob) == []
    assert verbs(for_alice) == ["approve", "reject"]
    assert verbs(render_card(gate_card(audience=(ALICE_AAD,)), viewer_ids=(ALICE, ALICE_AAD))) == ["approve", "reject"]
    assert verbs(for_alice_by_aad) == []  # the audience lists Alice's MRI, not her AAD id
    assert texts(shared) == [
        "Release app-y 2.3 with model-x:7 to prod",
        "⏸️ Waiting",
        "The integration tests passed; the release waits for approval.",
        "Approvers: release managers · expires in 72 h",
    ]
    facts = next(b for b in shared["body"] if b["type"] == "FactSet")["facts"]
    assert facts[1] == {"title": "Model", "value": "model-x:7"}
    assert shared["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Run #412",
            "url": "https://dev.azure.com/contoso/ml/_build/results?buildId=412",
        }
    ]


def test_buttons_are_action_execute_with_submit_fallbacks_and_reject_requires_a_comment(
    card_validator: jsonschema.protocols.Validator,
) -> None:
    document = render_card(gate_card(audience=()))
    card_validator.validate(document)
    approve, reject, link = document["actions"]

    # Approve opens a form whose comment is optional, as Slack's modal does
    assert {k: v for k, v in approve.items() if k != "card"} == {
        "type": "Action.ShowCard",
        "id": "approve-form",
        "title": "Approve",
        "style": "positive",
    }
    assert approve["card"]["body"] == [
        {
            "type": "Input.Text",
            "id": "comment",
            "isMultiline": True,
            "maxLength": 1000,
            "label": "Comment (optional)",
            "isRequired": False,
        }
    ]
    assert approve["card"]["actions"] == [
        {
            "type": "Action.Execute",
            "id": "approve",
            "title": "Approve",
            "verb": "approve",
            "data": {"gate_id": "gate-42"},
            "style": "positive",
            "fallback": {
                "type": "Action.Submit",
                "title": "Approve",
                "data": {"gate_id": "gate-42", "verb": "approve"},
                "style": "positive",
            },
        }
    ]
    assert (reject["type"], reject["title"], reject["style"]) == ("Action.ShowCard", "Reject", "destructive")
    [comment] = reject["card"]["body"]
    assert (comment["type"], comment["id"], comment["isRequired"], comment["label"]) == (
        "Input.Text",
        "comment",
        True,
        "Why reject?",
    )
    [execute] = reject["card"]["actions"]
    assert (execute["type"], execute["verb"], execute["fallback"]["data"]["verb"]) == (
        "Action.Execute",
        "reject",
        "reject",
    )
    assert link["type"] == "Action.OpenUrl"
    assert "refresh" not in document  # no audience: everyone sees the buttons


def test_an_audience_over_sixty_shows_everyone_the_buttons(card_validator: jsonschema.protocols.Validator) -> None:
    crowd = tuple(f"29:user{i}" for i in range(61))
    document = render_card(gate_card(audience=crowd))
    card_validator.validate(document)
    assert "refresh" not in document
    assert verbs(document) == ["approve", "reject"]


def test_every_status_renders(card_validator: jsonschema.protocols.Validator) -> None:
    for status in Status:
        card = Card(
            title=f"Run {status.value}",
            status=status,
            steps=(Step("build", status), Step("test", Status.QUEUED)),
        )
        document = render_card(card)
        card_validator.validate(document)
        assert status.label in texts(document)[1]


def test_a_skipped_stage_reads_skipped_with_a_skip_symbol() -> None:
    steps = (Step("build", Status.SUCCEEDED), Step("qa", Status.SKIPPED))
    card = Card("deploy-app-y #58", Status.SUCCEEDED, steps=steps)
    [shown] = [b for b in render_card(card)["body"] if b["type"] == "FactSet"]
    assert shown["facts"] == [{"title": "build", "value": "✅ Succeeded"}, {"title": "qa", "value": "⏭️ Skipped"}]


def test_text_from_outside_shows_as_written_and_handoffs_own_link_stays_a_link(
    card_validator: jsonschema.protocols.Validator,
) -> None:
    run_url = "https://dev.azure.com/contoso/ml/_build/results?buildId=412"
    card = Card(
        title="Release fix *all* the_things",
        status=Status.REJECTED,
        summary="Rejected by Carol: see [click](https://evil.example)\n1. not a list\n- nor this",
        facts=(Fact("Branch", "[main](https://evil.example)"), Fact("Requested by", "_Bob_ **Lee**")),
        steps=(Step("# stage", Status.FAILED),),
        links=(Link("Run #412", run_url), Link("Script", "javascript:alert(1)")),
        context="> quoted `code`",
    )

    document = render_card(card)

    card_validator.validate(document)
    assert texts(document) == [
        r"Release fix \*all\* the\_things",
        "⛔ Rejected",
        "Rejected by Carol: see \\[click\\]\\(https://evil.example\\)\n1\\. not a list\n\\- nor this",
        "Script",
        r"\> quoted \`code\`",
    ]
    facts = [fact for block in document["body"] if block["type"] == "FactSet" for fact in block["facts"]]
    assert facts == [
        {"title": "Branch", "value": r"\[main\]\(https://evil.example\)"},
        {"title": "Requested by", "value": r"\_Bob\_ \*\*Lee\*\*"},
        {"title": r"\# stage", "value": "❌ Failed"},
    ]
    assert shown_texts(document)[0] == card.title  # what Teams shows, once it reads the escapes
    # the link Handoff gives is a button that opens it; one to a script is its label only
    assert document["actions"] == [{"type": "Action.OpenUrl", "title": "Run #412", "url": run_url}]


def test_a_compact_card_keeps_its_buttons_and_stays_valid(card_validator: jsonschema.protocols.Validator) -> None:
    full = replace(
        gate_card(),
        facts=(Fact("Pipeline", "release-app-y"), Fact("Run", "20261128.4")),
        steps=(Step("Build", Status.SUCCEEDED), Step("Deploy", Status.WAITING)),
        context="Azure DevOps · contoso/mlops",
    )
    document = render_card(full.compacted(), viewer_ids=(ALICE,))  # as an approver sees it
    card_validator.validate(document)
    shown = json.dumps(document)
    assert "release-app-y" not in shown and "Deploy" not in shown and "contoso/mlops" not in shown
    assert full.title in shown
    assert verbs(document) == verbs(render_card(full, viewer_ids=(ALICE,))) == ["approve", "reject"]


def test_the_refresh_data_round_trips_the_card() -> None:
    card = gate_card()
    data = render_card(card)["refresh"]["action"]["data"]
    assert card_from_refresh(json.loads(json.dumps(data))) == card
    assert card_from_refresh({"card": {"no": "title"}}) is None
    assert card_from_refresh({}) is None


def test_clicks_are_parsed_from_execute_and_submit() -> None:
    execute = parse_execute("reject", {"gate_id": "g", "comment": " no ", "attempt": 2, "nested": {"x": 1}})
    assert execute is not None
    assert (execute.verb, execute.value, execute.comment) == ("reject", {"gate_id": "g", "attempt": "2"}, "no")
    submit = parse_submit({"verb": "approve", "gate_id": "g", "msteams": {"type": "messageBack"}})
    assert submit is not None and (submit.verb, submit.value) == ("approve", {"gate_id": "g"})
    assert parse_execute(None, {}) is None
    assert parse_execute("  ", {}) is None
    assert parse_submit({"gate_id": "g"}) is None
    assert parse_submit("approve") is None


def test_a_huge_card_is_shortened_visibly_and_stays_valid(card_validator: jsonschema.protocols.Validator) -> None:
    card = Card(
        title="Nightly evaluation " * 2000,
        status=Status.FAILED,
        summary="Traceback (most recent call last): " + "é" * 300_000,
        facts=tuple(Fact(f"metric {i}", "0.1234 " * 400) for i in range(300)),
        steps=tuple(Step(f"shard {i}", Status.FAILED) for i in range(200)),
        links=tuple(Link(f"log {i}", f"https://logs.example.com/{i}") for i in range(50)),
        actions=(Action("retry", "Retry", {"run_id": "r-1"}),),
        context="ctx " * 10_000,
        action_audience=(ALICE,),
    )

    for document in (render_card(card), render_card(card, viewer_ids=(ALICE,))):
        assert message_size(document) <= MAX_CARD_BYTES
        card_validator.validate(document)
        assert "… (truncated)" in "\n".join(shown_texts(document))
        assert TRUNCATION_NOTE in texts(document)[-1]
    assert verbs(render_card(card, viewer_ids=(ALICE,))) == ["retry"]
    # what the refresh carries renders the same again (the note is part of the shortened card)
    refreshed = card_from_refresh(render_card(card)["refresh"]["action"]["data"])
    assert refreshed is not None
    assert render_card(refreshed, viewer_ids=(ALICE,)) == render_card(card, viewer_ids=(ALICE,))


def test_a_card_is_measured_as_teams_counts_it_in_utf16() -> None:
    # 45 KB of JSON, 90 KB in UTF-16: shortened
    ascii_text = Card(title="Nightly evaluation", facts=tuple(Fact(f"m{i}", "x" * 1000) for i in range(45)))
    # 180 KB as JSON's escapes, 60 KB in UTF-16: shown whole
    japanese = Card(title="評価", facts=tuple(Fact(f"指標{i}", "モデル" * 333) for i in range(30)))

    assert TRUNCATION_NOTE in texts(render_card(ascii_text))[-1]
    [facts] = [b for b in render_card(japanese)["body"] if b["type"] == "FactSet"]
    assert [f["value"] for f in facts["facts"]] == [f.value for f in japanese.facts]
    assert message_size({"a": "é🚀"}) == len('{"a": "é🚀"}') * 2 + 2  # the emoji is a surrogate pair


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=3000)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=_text,
    summary=st.text(max_size=20_000),
    facts=st.lists(st.tuples(_text, _text), max_size=60),
    multiplier=st.integers(min_value=1, max_value=60),
)
def test_any_card_fits_in_80_kb(title: str, summary: str, facts: list[tuple[str, str]], multiplier: int) -> None:
    card = Card(
        title=title or "t",
        summary=summary * multiplier,
        facts=tuple(Fact(label, value) for label, value in facts),
        actions=(Action("approve", "Approve", {"gate_id": "g"}),),
        action_audience=(ALICE,),
    )
    document = render_card(card, viewer_ids=(ALICE,))
    assert message_size(document) <= MAX_CARD_BYTES
    if message_size(render_card(Card(title=card.title, summary=card.summary, facts=card.facts))) > MAX_CARD_BYTES:
        assert TRUNCATION_NOTE in json.dumps(document, ensure_ascii=False)


def test_command_text_matches_the_slack_grammar() -> None:
    assert command_text(" retrain  model-x data=lake:7 ") == "retrain model-x data=lake:7"
    assert command_text("/handoff subscribe") == "subscribe"
    assert command_text("/HANDOFF") == "help"
    assert command_text("handoff status model-x") == "status model-x"  # the Slack command, typed without its slash
    assert command_text("Handoff") == "help"
    assert command_text("handoffs") == "handoffs"  # a word of its own, for the grammar to answer
    assert command_text("/retrain model-x") == "retrain model-x"
    assert command_text("") == "help"
    assert command_text(None) == "help"
    assert command_text("<at>Handoff</at>&nbsp;status") == "status"
    assert command_text("status\xa0deploy-42") == "status deploy-42"
    assert command_text("<p>integrate app-y model=model-x:7</p>") == "integrate app-y model=model-x:7"


def test_command_text_drops_the_bots_mentions_and_names_other_people() -> None:
    bot = {"type": "mention", "text": "<at>Handoff (dev)</at>", "mentioned": {"id": "28:bot", "name": "Handoff"}}
    carol = {"type": "mention", "text": "<at>Carol Diaz</at>", "mentioned": {"id": "29:carol", "name": "Carol Diaz"}}
    seen = mentions([bot, carol, {"type": "clientInfo"}], "28:bot", "Handoff")
    assert command_text("<at>Handoff (dev)</at>&nbsp;retrain model-x", seen) == "retrain model-x"
    assert command_text("retrain model-x <at>Handoff (dev)</at>", seen) == "retrain model-x"
    assert command_text("<at>Handoff (dev)</at> <at>Carol Diaz</at> status", seen) == "'@Carol Diaz' status"
    assert command_text("<at>Carol Diaz</at> <at>Handoff (dev)</at> status", seen) == "'@Carol Diaz' status"
    assert command_text("<at>Handoff</at> subscribe actors_include=<at>Carol Diaz</at>", seen) == (
        "subscribe actors_include=@Carol Diaz"
    )
    # the bot's name typed as a word is a word: only its mention goes
    typed = "<at>Handoff (dev)</at> subscribe text_include=Handoff"
    assert command_text(typed, seen) == "subscribe text_include=Handoff"
    # a leading mention no entity names is the bot's, as Teams delivers a channel message only with it
    assert command_text("<at>HO</at> status", mentions([], "28:bot")) == "status"
    assert command_text("<at>R&amp;D</at> status", mentions([], "28:bot")) == "status"


def test_a_card_that_mentions_people_names_them_in_a_line_teams_resolves(
    card_validator: jsonschema.protocols.Validator,
) -> None:
    card = Card(title="integrate-app-y 20261128.1 failed in stage Integration tests", status=Status.FAILED)
    plain = render_card(card)
    mentioned = with_mentions(plain, [(BOB, "Bob Chen"), (ALICE, "Alice Ng")])
    assert with_mentions(plain, []) is plain and "msteams" not in plain
    assert mentioned["body"][:-1] == plain["body"]
    assert mentioned["body"][-1] == {"type": "TextBlock", "text": "<at>Bob Chen</at> <at>Alice Ng</at>", "wrap": True}
    assert mentioned["msteams"]["entities"] == [
        {"type": "mention", "text": "<at>Bob Chen</at>", "mentioned": {"id": BOB, "name": "Bob Chen"}},
        {"type": "mention", "text": "<at>Alice Ng</at>", "mentioned": {"id": ALICE, "name": "Alice Ng"}},
    ]
    # the Adaptive Card itself stays valid: msteams is Teams' own addition to it
    card_validator.validate({k: v for k, v in mentioned.items() if k != "msteams"})

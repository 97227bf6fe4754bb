"""Block Kit rendering of the neutral card: layout, escaping, and Slack's limits with visible cuts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.emulators.slack.blocks import check_blocks
from adapters.slack import buttons
from adapters.slack.renderer import (
    MAX_BLOCKS,
    MAX_MESSAGE_CHARS,
    SlackContent,
    message_chars,
    render_card,
    render_reply,
    render_text,
)
from bot.cards import Action, Card, Fact, Link, Status, Step
from bot.interactions import Reply, Visibility, link

from .harness import MODELS, Harness, gate_card


def texts(node: Any) -> list[str]:
    """Every text object's string, with its limit class."""
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            found.append(node["text"])
        for key, value in node.items():
            if key != "text" or not isinstance(value, str):
                found.extend(texts(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(texts(value))
    return found


def assert_within_limits(content: SlackContent) -> None:
    blocks = content.blocks
    check_blocks(blocks)  # what the emulator refuses, as Slack does
    assert 1 <= len(blocks) <= MAX_BLOCKS
    assert message_chars(blocks) <= MAX_MESSAGE_CHARS
    assert len(content.text) <= 3000
    ids = [b["block_id"] for b in blocks]
    assert len(set(ids)) == len(ids)
    for block in blocks:
        if block["type"] == "header":
            assert 0 < len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            if "text" in block:
                assert 0 < len(block["text"]["text"]) <= 3000
            for field in block.get("fields", []):
                assert 0 < len(field["text"]) <= 2000
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(0 < len(e["text"]) <= 3000 for e in block["elements"])
        if block["type"] == "actions":
            assert 1 <= len(block["elements"]) <= 25
            for button in block["elements"]:
                assert 0 < len(button["text"]["text"]) <= 75
                assert len(button["value"]) <= 2000
            action_ids = [b["action_id"] for b in block["elements"]]
            assert len(set(action_ids)) == len(action_ids)


def test_full_card_layout() -> None:
    content = render_card(gate_card())
    types = [b["type"] for b in content.blocks]
    assert types == ["header", "section", "section", "section", "actions", "context"]
    header, status, facts, links, actions, context = content.blocks
    assert header["text"]["text"] == "Release app-y 1.4 to prod"
    assert status["text"]["text"] == ":raised_hand: *Waiting*\nintegrate-app-y #57 passed; model-x:7"
    assert facts["fields"][0]["text"] == "*Pipeline*\nrelease-app-y"
    assert links["text"]["text"] == "<https://dev.azure.com/contoso/mlops/_build/results?buildId=57|Run>"
    approve, reject = actions["elements"]
    assert (approve["action_id"], approve["style"], approve["text"]["text"]) == ("approve", "primary", "Approve")
    assert reject["style"] == "danger"
    decoded = buttons.decode("reject", reject["value"])
    assert (decoded.action_id, decoded.value, decoded.comment) == (
        "reject",
        {"gate": "g-1"},
        buttons.CommentMode.REQUIRED,
    )
    assert buttons.decode("approve", approve["value"]).comment is buttons.CommentMode.OPTIONAL
    assert context["elements"][0]["text"] == "Needs 1 of release-managers"
    assert content.text == "Waiting: Release app-y 1.4 to prod. integrate-app-y #57 passed; model-x:7"
    assert_within_limits(content)


def test_status_emoji_and_steps() -> None:
    card = Card(
        "integrate-app-y #57", Status.FAILED, steps=(Step("build", Status.SUCCEEDED), Step("test", Status.FAILED))
    )
    content = render_card(card)
    assert content.blocks[1]["text"]["text"] == ":x: *Failed*"
    assert content.blocks[2]["text"]["text"] == ":white_check_mark: build\n:x: test"


def test_a_skipped_stage_shows_a_skip_symbol_not_info() -> None:
    steps = (Step("build", Status.SUCCEEDED), Step("qa", Status.SKIPPED))
    card = Card("deploy-app-y #58", Status.SUCCEEDED, steps=steps)
    lines = render_card(card).blocks[2]["text"]["text"].splitlines()
    assert lines == [":white_check_mark: build", ":black_right_pointing_double_triangle_with_vertical_bar: qa"]


def test_compact_variant() -> None:
    content = render_card(gate_card(), compact=True)
    types = [b["type"] for b in content.blocks]
    assert types == ["section", "context", "actions", "context"]
    assert content.blocks[0]["text"]["text"] == (
        ":raised_hand: *Release app-y 1.4 to prod* — integrate-app-y #57 passed; model-x:7"
    )
    assert content.blocks[0]["block_id"].startswith("c")
    assert_within_limits(content)


def test_text_from_outside_cannot_ping_or_forge_links() -> None:
    card = Card(
        "<!channel> deploy",
        summary="by <@U123> & <https://evil.example|click>",
        facts=(Fact("<!here>", "a > b"),),
        links=(Link("x|y>z", "javascript:alert(1)"), Link("ok", "https://example.com/a b|c>d")),
    )
    blocks = render_card(card).blocks
    assert blocks[0]["text"] == {"type": "plain_text", "text": "<!channel> deploy", "emoji": True}  # not parsed
    blob = json.dumps(blocks[1:])
    assert "<!channel>" not in blob and "<!here>" not in blob and "<@U123>" not in blob
    assert "&lt;@U123&gt;" in blob
    assert "javascript:" not in blob
    assert "<https://example.com/a%20b%7Cc%3Ed|ok>" in blob


def test_block_ids_change_with_the_content() -> None:
    first = render_card(gate_card())
    again = render_card(gate_card())
    changed = render_card(gate_card(Status.APPROVED))
    assert first.blocks[0]["block_id"] == again.blocks[0]["block_id"]
    assert first.blocks[0]["block_id"] != changed.blocks[0]["block_id"]


def test_huge_card_is_cut_visibly() -> None:
    card = Card(
        "T" * 500,
        summary="log line\n" * 2000,
        facts=tuple(Fact(f"metric {i}", "v" * 3000) for i in range(400)),
        steps=tuple(Step(f"stage {i}", Status.SUCCEEDED) for i in range(500)),
        links=tuple(Link(f"link {i}", f"https://example.com/{i}") for i in range(300)),
        actions=(Action("approve", "A" * 200, {"gate": "g"}),),
        context="c" * 5000,
    )
    content = render_card(card)
    assert_within_limits(content)
    blob = json.dumps(content.blocks)
    assert content.blocks[0]["text"]["text"].endswith("…")
    assert "_(truncated)_" in blob
    assert "not shown (Slack's message limits)" in blob
    assert content.blocks[-2]["type"] == "actions"  # the buttons survive the cut


def test_value_too_large_for_a_button_is_left_out() -> None:
    card = Card("x", actions=(Action("approve", "Approve", {"blob": "x" * 3000}), Action("reject", "Reject", {})))
    [actions] = [b for b in render_card(card).blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["reject"]


def test_replies_and_plain_text() -> None:
    plain = render_text("a < b & c")
    assert plain.blocks[0]["text"]["text"] == "a &lt; b &amp; c"
    assert plain.text == "a &lt; b &amp; c"
    reply = render_reply(Reply("Started", Card("run", Status.RUNNING), Visibility.THREAD), compact=True, note="by me")
    assert reply.text == "Started"
    assert reply.blocks[-1]["elements"][0]["text"] == "by me"


def test_a_replys_links_show_their_short_text() -> None:
    url = "https://ml.azure.com/runs/job-1?wsid=/subscriptions/0000/resourceGroups/rg/workspaces/ws&tid=t"
    text = f"• 1: Azure ML job {link(url, 'job-1')} & <b>, [not](a link) [x](javascript:alert(1))"
    plain = render_text(text)
    assert plain.blocks[0]["text"]["text"] == (
        f"• 1: Azure ML job <{url}|job-1> &amp; &lt;b&gt;, [not](a link) [x](javascript:alert(1))"
    )
    assert plain.text == "• 1: Azure ML job job-1 &amp; &lt;b&gt;, [not](a link) [x](javascript:alert(1))"
    odd = render_text(link("https://example.com/a (b)|c", "a <b> [c]"))
    assert odd.blocks[0]["text"]["text"] == "<https://example.com/a%20%28b%29%7Cc|a &lt;b&gt; (c)>"


def test_a_replys_bold_is_slacks_bold_and_code_is_kept_as_written() -> None:
    text = "**unsubscribe**: Remove one, e.g. `unsubscribe 3` or `pipelines=**/x**`; a ** b ** stays"
    plain = render_text(text)
    assert plain.blocks[0]["text"]["text"] == (
        "*unsubscribe*: Remove one, e.g. `unsubscribe 3` or `pipelines=**/x**`; a ** b ** stays"
    )
    assert plain.text == plain.blocks[0]["text"]["text"]


def test_a_cards_notification_text_is_its_text_escaped_never_read_as_markup() -> None:
    """Run and pipeline names, branches and commit messages come from outside: they say what they say."""
    card = Card("integrate-[app](https://evil.example) 20261130.1", Status.FAILED, summary="fix **all** <!here> & go")
    expected = "Failed: integrate-[app](https://evil.example) 20261130.1. fix **all** &lt;!here&gt; &amp; go"
    assert render_card(card).text == expected
    assert render_card(card, compact=True).text == expected
    # a reply that is its card says the card's text; one with its own text, written in the core's markup, says that
    assert render_reply(Reply(card.text, card, Visibility.THREAD)).text == expected
    written = Reply(f"Started {link('https://dev.azure.com/r/1', 'run 1')} **now**", card, Visibility.THREAD)
    assert render_reply(written).text == "Started run 1 *now*"
    long = render_card(Card("x" * 5000)).text
    assert len(long) == 3000 and long.endswith("…")


def region(i: int) -> str:
    """A stage display name of about 120 characters, as matrix and region stages have."""
    return (
        f"Deploy region {i:02d} (westeurope-prod-cluster-{i:02d}) · canary 10% → 50% → 100% with smoke tests and "
        "rollback guard"
    )


def regions_run(count: int, *, running: int, failed: int, name: Callable[[int], str] = region) -> Card:
    """A run of ``count`` region stages, run side by side: stage ``running`` still running, ``failed`` failed,
    every other one succeeded."""
    look = {running: Status.RUNNING, failed: Status.FAILED}
    steps = tuple(Step(name(i), look.get(i, Status.SUCCEEDED)) for i in range(count))
    links = (Link("Open run", "https://dev.azure.com/contoso/mlops/_build/results?buildId=9"),)
    facts = (Fact("Pipeline", "integrate-regions"),)
    context = "Azure DevOps · contoso/mlops"
    return Card("integrate-regions 20261130.9", Status.RUNNING, facts=facts, steps=steps, links=links, context=context)


def stage_lines(content: SlackContent) -> list[str]:
    """The lines of the sections that list stages, in order."""
    return [
        line
        for block in content.blocks
        if block["type"] == "section"
        and "text" in block
        and ("Deploy region" in block["text"]["text"] or "more stage" in block["text"]["text"])
        for line in block["text"]["text"].split("\n")
    ]


def hidden_counts(lines: list[str]) -> list[int]:
    """The counts of the "… N more stages" lines."""
    return [int(line.split()[1]) for line in lines if line.startswith("_… ")]


def test_a_long_stage_list_spreads_over_sections_and_shows_every_stage() -> None:
    """45 stages of about 120 characters do not fit one section's 3,000: they take three, none cut, the running
    and the failed stage among them."""
    content = render_card(regions_run(45, running=35, failed=43))
    assert_within_limits(content)
    lines = stage_lines(content)
    assert len(lines) == 45 and all(region(i) in line for i, line in enumerate(lines))
    assert lines[35].startswith(":arrows_counterclockwise: ") and lines[43].startswith(":x: ")
    assert "_(truncated)_" not in json.dumps(content.blocks)
    assert [b["type"] for b in content.blocks][-2:] == ["section", "context"]  # the run's link, then where it runs


def test_stages_beyond_slacks_limits_keep_the_ones_that_need_attention_and_count_the_rest() -> None:
    """400 stages of about 320 characters are over a message's 40,000: the running and the failed stage stay,
    with the stages nearest the last one, and each run of stages left out says how many it hides and how they
    stand."""
    card = regions_run(400, running=35, failed=43, name=lambda i: f"{region(i)} {'·' * 200}")
    content = render_card(card)
    assert_within_limits(content)
    lines = stage_lines(content)
    shown = [line for line in lines if not line.startswith("_… ")]
    assert sum(hidden_counts(lines)) == 400 - len(shown) > 0
    first_gap, running, second_gap, failed, third_gap, *rest = lines
    assert (first_gap, second_gap) == ("_… 35 more stages, all succeeded_", "_… 7 more stages, all succeeded_")
    assert running.startswith(":arrows_counterclockwise: Deploy region 35 ")
    assert failed.startswith(":x: Deploy region 43 ")
    # then the stages nearest the last one, which is where the run got to
    assert third_gap == f"_… {400 - 44 - len(rest)} more stages, all succeeded_"
    assert all(region(i) in line for i, line in zip(range(400 - len(rest), 400), rest, strict=True))
    assert "not shown (Slack's message limits)" not in json.dumps(content.blocks)  # the gaps say it where it is


def test_a_five_stage_card_renders_as_it_always_has() -> None:
    card = Card(
        title="integrate-app-y 20261130.4",
        status=Status.RUNNING,
        facts=(Fact("Pipeline", "integrate-app-y"), Fact("Run", "20261130.4"), Fact("Requested by", "Bob")),
        steps=(
            Step("Build", Status.SUCCEEDED),
            Step("Unit tests", Status.SUCCEEDED),
            Step("Integration tests", Status.RUNNING),
            Step("Package", Status.QUEUED),
            Step("Deploy to staging", Status.QUEUED),
        ),
        links=(Link("Open run", "https://dev.azure.com/contoso/mlops/_build/results?buildId=4"),),
        context="Azure DevOps · contoso/mlops",
    )
    assert render_card(card).blocks == [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": "integrate-app-y 20261130.4", "emoji": True},
            "block_id": "fcf9bfc0d34.0",
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": ":arrows_counterclockwise: *Running*"},
            "block_id": "fcf9bfc0d34.1",
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Pipeline*\nintegrate-app-y"},
                {"type": "mrkdwn", "text": "*Run*\n20261130.4"},
                {"type": "mrkdwn", "text": "*Requested by*\nBob"},
            ],
            "block_id": "fcf9bfc0d34.2",
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": ":white_check_mark: Build\n:white_check_mark: Unit tests\n"
                ":arrows_counterclockwise: Integration tests\n"
                ":hourglass_flowing_sand: Package\n:hourglass_flowing_sand: Deploy to staging",
            },
            "block_id": "fcf9bfc0d34.3",
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "<https://dev.azure.com/contoso/mlops/_build/results?buildId=4|Open run>",
            },
            "block_id": "fcf9bfc0d34.4",
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": "Azure DevOps · contoso/mlops"}],
            "block_id": "fcf9bfc0d34.5",
        },
    ]


facts = st.lists(st.builds(Fact, st.text(max_size=300), st.text(max_size=4000)), max_size=120)
cards = st.builds(
    Card,
    title=st.text(max_size=400),
    status=st.sampled_from(list(Status)),
    summary=st.text(max_size=6000),
    facts=facts.map(tuple),
    steps=st.lists(st.builds(Step, st.text(max_size=200), st.sampled_from(list(Status))), max_size=80).map(tuple),
    links=st.lists(st.builds(Link, st.text(max_size=100), st.text(max_size=300)), max_size=40).map(tuple),
    actions=st.lists(
        st.builds(
            Action,
            st.sampled_from(["approve", "reject", "retry"]),
            st.text(max_size=120),
            st.dictionaries(st.text(max_size=20), st.text(max_size=60), max_size=4),
        ),
        max_size=30,
    ).map(tuple),
    context=st.text(max_size=4000),
)


@settings(max_examples=300, deadline=None)
@given(card=cards, compact=st.booleans())
def test_any_card_fits_slack(card: Card, compact: bool) -> None:
    assert_within_limits(render_card(card, compact=compact))


async def test_the_emulator_accepts_a_huge_rendered_card(harness: Harness) -> None:
    card = Card(
        "big",
        summary="x" * 10_000,
        facts=tuple(Fact(f"f{i}", "y" * 1900) for i in range(200)),
        links=tuple(Link(f"l{i}", f"https://e.com/{i}") for i in range(200)),
    )
    posted = await harness.integration.channel.post_card(MODELS, card)
    [message] = harness.messages(MODELS)
    assert message.ts == posted.message_id
    assert message.blocks is not None and len(message.blocks) <= 50


def test_a_long_answer_is_shown_whole_in_sections_cut_at_line_breaks() -> None:
    lines = [f"• {n}: `events=run pipelines={chr(ord('a') + n) * 1900}`" for n in range(3)]
    plain = render_text("\n".join(["Subscriptions here:", *lines, "From Handoff's configuration file: none."]))
    texts = [block["text"]["text"] for block in plain.blocks]
    assert all(len(text) <= 3000 for text in texts)
    assert "\n".join(texts) == "\n".join(["Subscriptions here:", *lines, "From Handoff's configuration file: none."])


def test_an_answer_too_long_for_one_message_says_how_much_was_left_out() -> None:
    lines = [f"{n:03} " + "x" * 2900 for n in range(40)]
    plain = render_text("\n".join(lines))
    texts = [block["text"]["text"] for block in plain.blocks]
    assert sum(map(len, texts)) <= 40_000 and len(plain.blocks) <= 50
    shown = [line for text in texts[:-1] for line in text.split("\n")]
    assert shown == lines[: len(shown)]  # in order, none cut
    assert texts[-1] == f"… and {40 - len(shown)} more lines, too long for one Slack message."

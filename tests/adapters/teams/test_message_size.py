"""Cards too big for one Teams message, against the connector emulator: fitted to the size Teams counts (the
message's JSON in UTF-16), and sent again much shorter, at once, when Teams still refuses one with 413, whether
the outbox sends it or a command's or click's turn answers with it."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import jsonschema
import pytest

from adapters.emulators.botframework import default_world
from adapters.teams import MAX_CARD_BYTES
from adapters.teams.renderer import TRUNCATION_NOTE
from adapters.teams.sending import MessageTooBig
from bot.cards import Card, Fact, Link, Status
from bot.interactions import ActionResult, Reply

from .conftest import MODELS, RELEASES, Harness, adaptive_card, gate_card, shown_texts

TEAMS_LIMIT = default_world()["limits"]["max_message_bytes"]
OLD_TEAMS_LIMIT = 40_960  # "40 KB", as older versions of Teams' docs say


def tags_card(tags: int = 150, value: str = "0.0001234567 " * 24) -> Card:
    """A model version's card with ``tags`` tags, as the core builds it (each tag a fact)."""
    return Card(
        title="Model model-tags:3 registered",
        status=Status.SUCCEEDED,
        facts=(
            Fact("Model", "model-tags"),
            Fact("Version", "3"),
            *(Fact(f"hyperparam_{i:03d}", value) for i in range(tags)),
        ),
        links=(Link("Open", "https://ml.azure.com/model/model-tags:3/details"),),
        context="Azure ML · contoso-ml",
    )


def wide_card() -> Card:
    """A card of 40 long tags: about 72 KB, within Handoff's budget but over the older limit of 40 KB."""
    return tags_card(tags=40, value="0.0001234567 " * 69)


def utf16(document: Any) -> int:
    """The size Teams counts: the JSON as text, in UTF-16 bytes."""
    return len(json.dumps(document, ensure_ascii=False).encode("utf-16-le"))


def statuses(harness: Harness, route: str) -> list[int | None]:
    return [r.status for r in harness.teams.recorder.matching(route)]


def shown(activity: dict[str, Any]) -> str:
    return "\n".join(shown_texts(adaptive_card(activity)))


async def test_a_card_of_many_tags_is_fitted_to_the_size_teams_counts(
    harness: Harness, card_validator: jsonschema.protocols.Validator
) -> None:
    await harness.teams.install_app()

    posted = await harness.integration.channel.post_card(MODELS, tags_card())

    [post] = harness.teams.state.channel("ML models").posts
    assert post.id == posted.message_id
    assert statuses(harness, "POST /v3/conversations") == [201]  # taken the first time
    assert utf16(post.activity) <= MAX_CARD_BYTES + 2_000 < TEAMS_LIMIT  # (the SDK adds the addresses)
    text = shown(post.activity)
    assert "hyperparam_000: 0.0001234567" in text
    assert "… (truncated)" in text or "more not shown" in text
    assert TRUNCATION_NOTE in text
    card_validator.validate(adaptive_card(post.activity))


@pytest.mark.parametrize(
    ("value", "whole"),
    [("学習率のスケジュールは余弦減衰、ウォームアップ五百歩。" * 7, True), ("🚀🧪📈" * 300, False)],
    ids=["Japanese tags, about 60 KB", "emoji tags, about 270 KB"],
)
async def test_a_card_of_non_ascii_tags_is_fitted_to_the_size_teams_counts(
    harness: Harness, value: str, whole: bool
) -> None:
    await harness.teams.install_app()
    card = tags_card(value=value)

    await harness.integration.channel.post_card(MODELS, card)

    [post] = harness.teams.state.channel("ML models").posts
    assert statuses(harness, "POST /v3/conversations") == [201]
    assert utf16(post.activity) <= MAX_CARD_BYTES + 2_000
    text = shown(post.activity)
    assert f"hyperparam_000: {value[:20]}" in text
    if whole:  # within the budget in UTF-16: shown whole, though its JSON escapes take 6 bytes a character
        assert f"hyperparam_149: {value}" in text and TRUNCATION_NOTE not in text
    else:
        assert TRUNCATION_NOTE in text


class TestTeamsWithTheOlderLimitOf40KB:
    @pytest.fixture
    def world(self) -> dict[str, Any]:
        data = default_world()
        data["limits"] = {**data["limits"], "max_message_bytes": OLD_TEAMS_LIMIT}
        return data

    async def test_a_post_refused_as_too_big_is_sent_again_at_once_shorter(self, harness: Harness) -> None:
        await harness.teams.install_app()

        posted = await harness.integration.channel.post_card(MODELS, wide_card())

        [post] = harness.teams.state.channel("ML models").posts
        assert post.id == posted.message_id
        tries = statuses(harness, "POST /v3/conversations")
        assert tries[0] == 413 and tries[-1] == 201 and set(tries[1:-1]) <= {413}
        assert utf16(post.activity) <= OLD_TEAMS_LIMIT
        text = shown(post.activity)
        assert text.startswith("Model model-tags:3 registered") and "hyperparam_000" in text
        assert TRUNCATION_NOTE in text

    async def test_an_update_and_a_reply_refused_as_too_big_are_sent_again_shorter(self, harness: Harness) -> None:
        await harness.teams.install_app()
        channel = harness.integration.channel
        posted = await channel.post_card(MODELS, tags_card(tags=2))

        await channel.update_card(MODELS, posted, wide_card())
        await channel.reply(MODELS, posted, wide_card())

        tries = statuses(harness, "PUT /v3/conversations/**")
        assert tries[0] == 413 and tries[-1] == 200
        message = harness.teams.state.message(posted.message_id)
        assert len(message.versions) == 2
        assert utf16(message.activity) <= OLD_TEAMS_LIMIT
        assert "hyperparam_010" not in shown(message.versions[0])
        assert TRUNCATION_NOTE in shown(message.activity) and "hyperparam_000" in shown(message.activity)
        assert statuses(harness, "POST /v3/conversations/*/activities/*")[0] == 413
        [reply] = harness.teams.state.channel("ML models").posts[0].replies
        assert utf16(reply.activity) <= OLD_TEAMS_LIMIT and TRUNCATION_NOTE in shown(reply.activity)

    async def test_a_commands_answer_refused_as_too_big_is_sent_again_shorter(self, harness: Harness) -> None:
        await harness.teams.install_app()
        harness.handler.reply = lambda r: Reply("Your subscriptions:", wide_card())

        await harness.teams.send_channel_message("subscriptions", channel="ML models")

        tries = harness.teams.recorder.matching("POST /v3/conversations/*/activities/*")
        assert [t.status for t in tries] == [413, 200]
        assert utf16(tries[1].json()) <= OLD_TEAMS_LIMIT < utf16(tries[0].json())
        [reply] = harness.teams.state.channel("ML models").posts[0].replies
        assert reply.text == "Your subscriptions:"
        text = shown(reply.activity)
        assert text.startswith("Model model-tags:3 registered") and "hyperparam_000" in text
        assert TRUNCATION_NOTE in text

    async def test_a_submitted_clicks_card_refused_as_too_big_replaces_the_card_shorter(self, harness: Harness) -> None:
        await harness.teams.install_app()
        posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=()))
        harness.handler.decide = lambda r: ActionResult(True, "Approved.", wide_card())

        await harness.teams.submit_card(posted.message_id, {"verb": "approve", "gate_id": "gate-42"}, user="alice")

        tries = harness.teams.recorder.matching("PUT /v3/conversations/**")
        assert [t.status for t in tries] == [413, 200]
        assert utf16(tries[1].json()) <= OLD_TEAMS_LIMIT < utf16(tries[0].json())
        message = harness.teams.state.message(posted.message_id)
        assert len(message.versions) == 2
        text = shown(message.activity)
        assert text.startswith("Model model-tags:3 registered") and TRUNCATION_NOTE in text


class TestTeamsRefusingEvenTheSmallestForm:
    @pytest.fixture
    def world(self) -> dict[str, Any]:
        data = default_world()
        data["limits"] = {**data["limits"], "max_message_bytes": 600}
        return data

    async def test_the_card_is_given_up_after_its_title_and_status_are_refused(self, harness: Harness) -> None:
        await harness.teams.install_app()

        with pytest.raises(MessageTooBig) as refused:
            await harness.integration.channel.post_card(MODELS, tags_card())

        assert (refused.value.retryable, refused.value.reason) == (False, "Teams answered 413 MessageSizeTooBig")
        tries = harness.teams.recorder.matching("POST /v3/conversations")
        assert [t.status for t in tries] == [413, 413, 413, 413]  # the card, half, a quarter, the smallest form
        sizes = [utf16(t.json()) for t in tries]
        assert sizes == sorted(sizes, reverse=True) and sizes[1] <= sizes[0] // 2 + 2_000
        last = "\n".join(shown_texts(tries[-1].json()["activity"]["attachments"][0]["content"]))
        assert "This card is too large to show in Teams." in last and "hyperparam" not in last
        assert harness.teams.state.channel("ML models").posts == []

    async def test_a_commands_answer_is_given_up_after_its_title_and_status_are_refused(
        self, harness: Harness, caplog: pytest.LogCaptureFixture
    ) -> None:
        await harness.teams.install_app()
        harness.handler.reply = lambda r: Reply("Your subscriptions:", tags_card())

        await harness.teams.send_channel_message("subscriptions", channel="ML models")

        tries = harness.teams.recorder.matching("POST /v3/conversations/*/activities/*")
        assert [t.status for t in tries] == [413, 413, 413, 413]  # the card, half, a quarter, the smallest form
        last = "\n".join(shown_texts(adaptive_card(tries[-1].json())))
        assert "This card is too large to show in Teams." in last and "hyperparam" not in last
        assert harness.teams.state.channel("ML models").posts[0].replies == []
        assert "could not send the reply to a Teams command (Teams answered 413 MessageSizeTooBig)" in caplog.text


class TestTeamsRefusingSmallMessages:
    @pytest.fixture
    def world(self) -> dict[str, Any]:
        data = default_world()
        data["limits"] = {**data["limits"], "max_message_bytes": 1_000}
        return data

    @pytest.mark.parametrize(
        ("card", "tries"),
        [
            (Card("Run 57", Status.RUNNING), 1),  # its smallest form, with the note saying so, is bigger
            (Card("Run 57", Status.FAILED, "Stage Tests failed", tuple(Fact(f"k{i}", "v" * 20) for i in range(8))), 2),
        ],
        ids=["title only", "a few facts"],
    )
    async def test_a_message_sent_again_shorter_is_always_fewer_bytes_than_the_one_refused(
        self, harness: Harness, card: Card, tries: int
    ) -> None:
        await harness.teams.install_app()

        with pytest.raises(MessageTooBig) as refused:
            await harness.integration.channel.post_card(MODELS, card)

        assert refused.value.reason == "Teams answered 413 MessageSizeTooBig"
        sizes = [utf16(t.json()) for t in harness.teams.recorder.matching("POST /v3/conversations")]
        assert len(sizes) == tries and all(later < earlier for earlier, later in pairwise(sizes))

"""Cards too big for one Teams message, against the connector emulator: fitted to the size Teams counts (the
message's JSON in UTF-16)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from adapters.emulators.botframework import default_world
from adapters.teams import MAX_CARD_BYTES
from adapters.teams.renderer import TRUNCATION_NOTE
from bot.cards import Card, Fact, Link, Status

from .conftest import MODELS, Harness, adaptive_card, shown_texts

TEAMS_LIMIT = default_world()["limits"]["max_message_bytes"]


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

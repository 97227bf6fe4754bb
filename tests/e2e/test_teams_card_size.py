"""A model version registered with many tags, through ``/hooks/eventgrid`` to Teams: its card arrives within
the size Teams counts (the message's JSON in UTF-16), shortened visibly where it must be, and nothing is
dead-lettered, even where Teams holds to the older limit of 40 KB and refuses the first try with 413."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from adapters.emulators.botframework import default_world
from adapters.teams.renderer import TRUNCATION_NOTE
from bot.records import ConversationAddress, DeliveryState
from tests.e2e.conftest import Loop, card_text, eventually, teams_posts, teams_shown

ASCII_TAGS = {f"hyperparam_{i:03d}": "0.0001234567 " * 24 for i in range(150)}  # about 109 KB in UTF-16
WIDE_TAGS = {f"hyperparam_{i:03d}": "0.0001234567 " * 69 for i in range(40)}  # about 72 KB
JAPANESE = "学習率は余弦減衰、ウォームアップは五百歩、バッチは二百五十六。" * 5
JAPANESE_TAGS = {f"注記_{i:03d}": JAPANESE for i in range(150)}  # about 60 KB
EMOJI_TAGS = {f"flags_{i:03d}": "🚀🧪📈✅" * 120 for i in range(150)}  # 4 bytes an emoji in UTF-16


def shown(post: Any) -> str:
    """What the post shows, its non-ASCII characters as they are."""
    return json.dumps(teams_shown(post.activity), ensure_ascii=False)


def utf16(document: Any) -> int:
    return len(json.dumps(document, ensure_ascii=False).encode("utf-16-le"))


def teams_limited_to(limit: int) -> Callable[[dict[str, Any]], None]:
    def tweak(world: dict[str, Any]) -> None:
        teams = default_world()
        teams["limits"] = {**teams["limits"], "max_message_bytes": limit}
        world["teams"] = teams

    return tweak


async def registered(loop: Loop, tags: dict[str, str]) -> Any:
    """Register ``model-tags`` with ``tags`` in Azure ML (Event Grid delivers it to Handoff); its Teams post in
    ML models once every delivery is done, none given up there."""
    aml = loop.suite.aml
    version = aml.register_model("model-tags", tags=tags)
    await aml.drain_events()
    title = f"Model model-tags:{version.version} registered"
    [post] = await eventually(lambda: [p for p in teams_posts(loop, "ML models") if title in card_text(p)])
    store = loop.server.store
    for _ in range(200):  # until every delivery was sent or given up
        if not (await store.count_deliveries([DeliveryState.PENDING])).get("pending"):
            break
        await asyncio.sleep(0.1)
    models = loop.suite.teams.state.channel("ML models").id
    assert await store.count_dead_letters(ConversationAddress("teams", models), datetime(2000, 1, 1, tzinfo=UTC)) == 0
    return post


async def test_a_model_with_many_tags_reaches_teams_shortened(start_loop: Callable[..., Awaitable[Loop]]) -> None:
    loop = await start_loop()

    post = await registered(loop, ASCII_TAGS)

    assert utf16(post.activity) <= 82_000  # Handoff's budget of 80 KB, and the addresses the SDK adds
    text = card_text(post)
    assert "hyperparam_000" in text and "more not shown" in text and TRUNCATION_NOTE in text


async def test_a_model_with_long_non_ascii_tags_reaches_teams(start_loop: Callable[..., Awaitable[Loop]]) -> None:
    loop = await start_loop()

    japanese = await registered(loop, JAPANESE_TAGS)
    emoji = await registered(loop, EMOJI_TAGS)

    # about 60 KB in UTF-16: shown whole (its JSON's escapes, 6 bytes a character, are not what Teams counts)
    assert utf16(japanese.activity) <= 82_000
    assert all(f'"title": "{k}", "value": "{v}"' in shown(japanese) for k, v in JAPANESE_TAGS.items())
    assert TRUNCATION_NOTE not in shown(japanese)
    # about 290 KB in UTF-16: shortened to fit
    assert utf16(emoji.activity) <= 82_000
    assert "flags_000" in card_text(emoji) and TRUNCATION_NOTE in card_text(emoji)


async def test_teams_at_the_older_limit_of_40_kb_gets_a_shorter_card(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(world=teams_limited_to(40_960))

    post = await registered(loop, WIDE_TAGS)

    refused = [r for r in loop.suite.teams.recorder.matching("POST /v3/conversations") if r.status == 413]
    assert refused  # the first try, at about 72 KB
    assert utf16(post.activity) <= 40_960
    text = card_text(post)
    assert "hyperparam_000" in text and TRUNCATION_NOTE in text

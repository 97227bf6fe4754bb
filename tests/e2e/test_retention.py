"""Retention while a release waits for approval longer than ``store.card_retention``: the run's card stays, and
is updated in place once someone decides. Emulators → Handoff → Slack and Teams, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from adapters.sql.tables import card_states, cards
from tests.e2e.conftest import Loop, blocks_text, card_text, eventually, slack_messages, teams_posts
from tests.e2e.test_gate_endings import run_card, waiting_release


def keeping_cards_a_week(store_url: str) -> Any:
    def tweak(config: dict[str, Any]) -> None:
        config["store"].update(url=store_url, card_retention="7d")
        config["gates"]["default"]["expire_after"] = "30d"

    return tweak


def teams_run_cards(loop: Loop) -> list[Any]:
    return [p for p in teams_posts(loop, "App releases") if "Deploy to staging" in card_text(p)]


async def test_a_release_waiting_longer_than_card_retention_keeps_its_run_card(store_url: str, start_loop: Any) -> None:
    # (the store's fixture first, so that Handoff stops before its PostgreSQL schema is dropped)
    loop = await start_loop(tweak=keeping_cards_a_week(store_url))
    run, gate_card = await waiting_release(loop)
    card = await eventually(lambda: (found := run_card(loop)) and "Waiting for approval" in found.text and found)
    await eventually(lambda: len(teams_run_cards(loop)) == 1)
    store = loop.server.store
    assert store is not None and loop.server.handoff is not None
    # every message sent: a delivery still pending would keep the card whatever its gate
    for _ in range(200):
        if (await store.count_deliveries())["pending"] == 0:
            break
        await asyncio.sleep(0.1)
    assert (await store.count_deliveries())["pending"] == 0
    # ten days on, with the release still waiting at production's approval
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    async with store.engine.begin() as conn:
        await conn.execute(update(card_states).values(updated_at=ten_days_ago))
        await conn.execute(update(cards).values(updated_at=ten_days_ago))
    await loop.server.handoff.forget_old_rows()

    top_level = [m.ts for m in slack_messages(loop, "app-releases") if m.by_bot]
    teams_top_level = [p.id for p in teams_posts(loop, "App releases") if p.by_bot]
    slack = loop.suite.slack
    opened_before = set(slack.state.views)
    assert (await slack.click_button(gate_card.ts, "approve", user="carol")).status == 200
    view_id = await eventually(lambda: next(iter(set(slack.state.views) - opened_before), None))
    assert (await slack.submit_view(view_id, {"comment": {"comment": "ok"}})).status == 200
    await eventually(lambda: loop.suite.ado.run(run.id).state == "completed", timeout=30)

    # the card that read "Waiting" reads "Succeeded", in place; no second card for the run
    done = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if m.text.startswith("Succeeded: release")), None)
    )
    assert done.ts == card.ts and "Deploy to staging" in blocks_text(done)  # the whole run, as before
    assert [m.ts for m in slack_messages(loop, "app-releases") if m.by_bot] == top_level
    await eventually(lambda: any("Succeeded" in card_text(p) for p in teams_run_cards(loop)))
    assert [p.id for p in teams_posts(loop, "App releases") if p.by_bot] == teams_top_level

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .harness import Harness, start_harness, stop_harness


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    """Handoff's Slack side on 127.0.0.1:0, the Slack emulator as Slack, a recording handler."""
    running = await start_harness()
    try:
        yield running
    finally:
        await stop_harness(running)

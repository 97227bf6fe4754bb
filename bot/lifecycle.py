"""Process lifecycle helpers shared by the commands that serve until stopped."""

from __future__ import annotations

import asyncio
import signal


async def until_signalled() -> None:
    """Wait for SIGTERM or SIGINT (Ctrl-C)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

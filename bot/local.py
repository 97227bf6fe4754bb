"""The composition root for running on one machine: the emulators (and, later, the demo around them).

Like :mod:`bot.app`, this module may import adapters; it is kept apart so that ``handoff emulators``
starts without loading the store, the ORM or the chat SDKs.
"""

from __future__ import annotations

from adapters.emulators.suite import EmulatorSuite, load_world
from bot.lifecycle import until_signalled


async def serve_emulators(host: str, port: int, world_file: str | None) -> int:
    """Serve the four emulators until SIGTERM or SIGINT, printing their URLs first."""
    suite = EmulatorSuite(load_world(world_file), host=host, port=port)
    await suite.start()
    try:
        print(f"Azure DevOps   {suite.ado.org_url}   (project {suite.ado.world.project})", flush=True)
        print(f"Azure ML       {suite.urls['aml']}", flush=True)
        print(f"Bot Framework  {suite.teams.service_url}", flush=True)
        print(f"Slack Web API  {suite.slack.api_url}", flush=True)
        print("Ctrl-C stops them.", flush=True)
        await until_signalled()
    finally:
        await suite.stop()
    return 0

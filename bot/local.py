"""The composition root for running on one machine: the emulators, and Handoff wired to them.

Like :mod:`bot.app`, this module may import adapters; it is kept apart so that ``handoff emulators``
starts without loading the store, the ORM or the chat SDKs.

:func:`local_world` is the world the demo and the end-to-end tests use; :func:`local_config` is a
Handoff configuration for a running :class:`EmulatorSuite` (every secret generated, none written to
disk); :func:`connect_emulators` points the emulators' webhooks, Event Grid subscription, Slack
request URL and Teams messaging endpoint at Handoff, as ``handoff connect`` does for real services.
"""

from __future__ import annotations

import copy
import secrets
from pathlib import Path
from typing import Any

from adapters.emulators.azure_devops.world import load_default_world as default_azure_devops_world
from adapters.emulators.suite import EmulatorSuite, load_world
from bot.lifecycle import until_signalled

BOT_IDENTITY = "handoff-bot@contoso.com"
HOOK_USER = "handoff"


def local_world() -> dict[str, Any]:
    """The shipped world, with Handoff's own identity among the production approvers.

    Azure DevOps records the identity of the token as the approver, so the bot's identity must be an
    approver for Handoff to apply decisions made in chat (reference: azure-devops.md §2.1).
    """
    ado = copy.deepcopy(default_azure_devops_world())
    for environment in ado.get("environments", []):
        approval = environment.get("approval")
        if approval and BOT_IDENTITY not in approval.get("approvers", []):
            approval["approvers"] = [*approval["approvers"], BOT_IDENTITY]
    return {"azure_devops": ado}


def _slack_channel(suite: EmulatorSuite, name: str) -> str:
    return str(suite.slack.state.channel(name).id)


def _teams_channel(suite: EmulatorSuite, name: str) -> str:
    return str(suite.teams.state.channel(name).id)


def local_config(suite: EmulatorSuite, public_url: str, data_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """A Handoff configuration (raw YAML data) for ``suite``, and the environment with its secrets."""
    environ = {
        "LOCAL_SLACK_SIGNING_SECRET": suite.slack.signing_secret,
        "LOCAL_SLACK_BOT_TOKEN": suite.slack.bot_token,
        "LOCAL_AZURE_DEVOPS_PAT": suite.ado.pat(BOT_IDENTITY),
        "LOCAL_HOOK_PASSWORD": secrets.token_urlsafe(24),
        "LOCAL_EVENTGRID_SECRET": secrets.token_urlsafe(24),
    }
    job_file = suite.aml.write_job_yaml("train-model-x", data_dir)
    aml = suite.aml.world
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "public_url": public_url},
        "store": {"url": f"sqlite:///{data_dir / 'handoff.db'}"},
        "slack": {
            "signing_secret": "${LOCAL_SLACK_SIGNING_SECRET}",
            "bot_token": "${LOCAL_SLACK_BOT_TOKEN}",
            "api_base_url": suite.slack.api_url,
        },
        "teams": {"app_id": "", "allow_unauthenticated": True},
        "azure_devops": {
            "organization_url": suite.ado.org_url,
            "projects": [suite.ado.world.project],
            "pat": "${LOCAL_AZURE_DEVOPS_PAT}",
            "service_hooks": {"basic": {"username": HOOK_USER, "password": "${LOCAL_HOOK_PASSWORD}"}},
        },
        "azure_ml": {
            "subscription_id": aml.subscription_id,
            "resource_group": aml.resource_group,
            "workspace": aml.workspace,
            "credential": {"kind": "emulator"},
            "endpoint": suite.urls["aml"],
        },
        "eventgrid": {"delivery_secret": "${LOCAL_EVENTGRID_SECRET}"},
        "channels": {
            "ml-models": {
                "slack": _slack_channel(suite, "ml-models"),
                "teams": _teams_channel(suite, "ML models"),
                "description": "Data scientists",
            },
            "app-releases": {
                "slack": _slack_channel(suite, "app-releases"),
                "teams": _teams_channel(suite, "App releases"),
                "description": "App developers",
            },
            "ops": {"slack": _slack_channel(suite, "ops")},
        },
        "ops_channel": "ops",
        "subscriptions": [
            {
                "channel": "ml-models",
                "events": ["model_registered", "model_deployed", "training_run", "data_drift", "data_arrived"],
            },
            {"channel": "app-releases", "events": ["run", "approval"], "pipelines": ["integrate-*", "release-*"]},
        ],
        "models": {
            "model-x": {
                "retrain": {"azure_ml_job": {"job_file": str(job_file)}},
                "consumers": ["app-y"],
                "channels": ["ml-models"],
            }
        },
        "apps": {
            "app-y": {
                "integration": {"project": suite.ado.world.project, "pipeline": "integrate-app-y"},
                "model": "model-x",
                "channels": ["app-releases"],
            }
        },
        "roles": {
            "data-scientists": {"members": ["alice@contoso.com"]},
            "release-managers": {"members": ["carol@contoso.com"]},
        },
        "gates": {"default": {"approver_roles": ["release-managers"], "expire_after": "1h", "remind_every": "30m"}},
        "commands": {"retrain": {"roles": ["data-scientists"], "confirm": True}},
    }
    return config, environ


async def connect_emulators(suite: EmulatorSuite, public_url: str, environ: dict[str, str]) -> None:
    """Point every emulator at Handoff and install the bot in the Teams team (Handoff must be listening)."""
    suite.ado.add_webhook(f"{public_url}/hooks/azure-devops", basic=(HOOK_USER, environ["LOCAL_HOOK_PASSWORD"]))
    await suite.aml.add_event_subscription(
        f"{public_url}/hooks/eventgrid",
        schema="CloudEventSchemaV1_0",
        secret_query=("code", environ["LOCAL_EVENTGRID_SECRET"]),
    )
    suite.slack.events_url = f"{public_url}/slack/events"
    suite.teams.bot_endpoint = f"{public_url}/api/messages"
    await suite.teams.install_app()


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

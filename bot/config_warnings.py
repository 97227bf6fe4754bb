"""What a usable configuration still holds from the example: values ``serve`` accepts, but which the
commands that publish Handoff (``slack-manifest``, ``teams-package``, ``connect``) refuse or would send
nowhere, and ``doctor`` fails on. ``handoff check`` lists them as warnings."""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.config import Settings
from bot.config_problems import ConfigProblem

EXAMPLE_HOST = "handoff.example.com"  # handoff.example.yaml's server.public_url
EXAMPLE_APP_ID = "00000000-0000-0000-0000-000000000000"  # and its teams.app_id


def placeholder_warnings(settings: Settings) -> list[ConfigProblem]:
    """The example's placeholders still in ``settings``, each saying what to set instead."""
    warnings: list[ConfigProblem] = []
    public_url = settings.server.public_url
    if public_url and (urlsplit(public_url).hostname or "").lower() == EXAMPLE_HOST:
        warnings.append(
            ConfigProblem(
                "server.public_url",
                f"still the example's placeholder host {EXAMPLE_HOST}: set it to Handoff's own public https URL "
                "(slack-manifest and teams-package refuse it, connect would point hooks there, doctor fails on it)",
            )
        )
    teams = settings.teams
    if teams is not None and teams.enabled and teams.app_id.strip() == EXAMPLE_APP_ID:
        warnings.append(
            ConfigProblem(
                "teams.app_id",
                "still the example's all-zero placeholder: set it to the Azure Bot's Microsoft App ID "
                "(teams-package refuses it, and Teams could not authenticate Handoff)",
            )
        )
    return warnings

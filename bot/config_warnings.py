"""What a usable configuration holds that will not do what it seems to: values ``serve`` accepts, but which the
commands that publish Handoff (``slack-manifest``, ``teams-package``, ``connect``) refuse or would send
nowhere, and ``doctor`` fails on (the example's placeholders), and subscriptions to projects Handoff does not
follow, whose filters keep out some kind of event they name (or every event), or muted until a time already
past. ``handoff check`` lists them as warnings."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from bot.config import Settings
from bot.config_problems import ConfigProblem, did_you_mean
from bot.kept_out import carriers, joined, kept_out, reasons
from bot.routing import configured_subscriptions, unknown_projects

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


def configuration_warnings(settings: Settings, now: datetime | None = None) -> list[ConfigProblem]:
    """Everything ``handoff check`` warns about in ``settings`` (at ``now``, the current time unless given)."""
    return [
        *placeholder_warnings(settings),
        *unknown_project_warnings(settings),
        *kept_out_warnings(settings),
        *past_mute_warnings(settings, now or datetime.now(UTC)),
    ]


def past_mute_warnings(settings: Settings, now: datetime) -> list[ConfigProblem]:
    """The subscriptions muted until a time already past: muted no longer (which ``serve`` accepts, so that a
    configuration does not stop working once its mute is over), though the file seems to say so."""
    return [
        ConfigProblem(
            f"subscriptions[{index}].muted_until",
            f"{subscription.muted_until.isoformat()} has passed: the subscription is not muted; remove the key, "
            "or set a time to come",
        )
        for index, subscription in enumerate(settings.subscriptions)
        if subscription.muted_until is not None and subscription.muted_until <= now
    ]


def unknown_project_warnings(settings: Settings) -> list[ConfigProblem]:
    """The subscriptions' ``projects`` that match none of ``azure_devops.projects``: nothing would come from them
    (a project's id is taken as known)."""
    configured = settings.azure_devops.projects if settings.azure_devops is not None else []
    followed = ", ".join(configured) or "none"
    warnings: list[ConfigProblem] = []
    for index, subscription in enumerate(settings.subscriptions):
        for project in unknown_projects(subscription.projects, configured):
            warnings.append(
                ConfigProblem(
                    f"subscriptions[{index}].projects",
                    f"{project!r} is no project Handoff follows (azure_devops.projects: {followed})"
                    f"{did_you_mean(project, configured)}: no event would come from it; name a project by its "
                    "name or its id",
                )
            )
    return warnings


def kept_out_warnings(settings: Settings) -> list[ConfigProblem]:
    """The subscriptions whose filters no event of some kind they name can match (``events: [run, stage]`` with
    ``models``: no stage carries a model), or no event at all: they send nothing of it, silently. (``serve``
    takes them: the rest of a subscription works, and one that matches nothing harms nothing.)"""
    warnings: list[ConfigProblem] = []
    built = configured_subscriptions(settings)
    for index, (entry, subscription) in enumerate(zip(settings.subscriptions, built, strict=True)):
        filters = subscription.filters
        kept = kept_out(filters)
        at = f"subscriptions[{index}]"
        if len(kept) == len(filters.kinds):
            said = reasons(kept, filters) if filters.events else f"no event carries all it reads: {carriers(filters)}"
            can = filters.kinds_carrying()
            fix = f"events that can match its filters: {', '.join(can)}" if can else "leave a filter out, or split it"
            warnings.append(ConfigProblem(at, f"no event can ever come to {entry.channel} by it: {said} ({fix})"))
        elif kept and filters.events:
            # (where events names no kind, every filter narrows what comes: that some kinds never come is the point)
            one = len(kept) == 1
            warnings.append(
                ConfigProblem(
                    f"{at}.events",
                    f"{joined(kept)} in events never {'comes' if one else 'come'} to {entry.channel}: "
                    f"{reasons(kept, filters)}; take {'it' if one else 'them'} out of events, or into a subscription "
                    f"of {'its' if one else 'their'} own",
                )
            )
    return warnings

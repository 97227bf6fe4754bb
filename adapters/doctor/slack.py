"""Slack, for real: ``auth.test`` accepts the bot token, and the token has the scopes Handoff needs."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.doctor.report import DEADLINE, Check, fail, ok, section_off, skip, warn
from bot.config import Settings, SlackSettings

# Scopes Handoff works without, less well: reading history finds a post whose answer was lost; reading
# channels brings the events that say Handoff was removed from a channel, or it was archived.
RECOMMENDED_SCOPES = frozenset({"channels:history", "groups:history", "im:history", "mpim:history"})
MEMBERSHIP_SCOPES = frozenset({"channels:read", "groups:read"})


def required_scopes(settings: SlackSettings) -> list[str]:
    """The bot scopes of the shipped manifest (the OAuth scopes when the manifest is not installed)."""
    try:
        from adapters.slack.manifest import PLACEHOLDER_URL, manifest_data

        scopes = manifest_data(PLACEHOLDER_URL).get("oauth_config", {}).get("scopes", {}).get("bot", [])
        return [str(s) for s in scopes]
    except (OSError, ValueError):
        return list(settings.oauth.scopes) if settings.oauth else []


async def check_slack(settings: Settings, deadline: float = DEADLINE) -> list[Check]:
    """``auth.test`` and the token's scopes; each request waits ``deadline`` seconds for an answer."""
    slack = settings.slack
    name = "slack.auth"
    if (off := section_off(slack)) is not None:
        return [skip("slack", off)]
    assert slack is not None
    if slack.bot_token is None:
        return [skip(name, "installed per workspace with OAuth: tokens are checked as workspaces install")]
    timeout = max(1, round(deadline))
    client = AsyncWebClient(token=slack.bot_token.reveal(), base_url=slack.api_base_url, timeout=timeout)
    try:
        response = await client.auth_test()
    except SlackApiError as error:
        code = error.response.get("error", "error") if error.response is not None else "error"
        return [
            fail(
                name,
                f"auth.test refused the bot token ({code})",
                f"reinstall the app and put its Bot User OAuth Token (xoxb-…) in ${slack.bot_token.variable}",
            )
        ]
    except Exception as error:
        return [fail(name, f"cannot reach {slack.api_base_url} ({type(error).__name__})", "check slack.api_base_url")]
    team, user = response.get("team", "?"), response.get("user", "?")
    checks = [ok(name, f"bot {user} in workspace {team}")]
    granted_header = response.headers.get("x-oauth-scopes") or response.headers.get("X-OAuth-Scopes")
    wanted = required_scopes(slack)
    if granted_header is None:
        checks.append(warn("slack.scopes", "the API did not report the token's scopes; not checked"))
        return checks
    granted = {s.strip() for s in str(granted_header).split(",") if s.strip()}
    missing = [s for s in wanted if s not in granted and s not in RECOMMENDED_SCOPES | MEMBERSHIP_SCOPES]
    unread = [s for s in wanted if s not in granted and s in RECOMMENDED_SCOPES]
    unheard = [s for s in wanted if s not in granted and s in MEMBERSHIP_SCOPES]
    if unheard:
        checks.append(
            warn(
                "slack.membership_scopes",
                f"the token lacks {', '.join(unheard)}: Handoff does not hear that it was removed from a channel, "
                "or the channel archived, and keeps sending there (each failure is counted in the ops channel); "
                "add them and reinstall",
            )
        )
    if unread:
        checks.append(
            warn(
                "slack.history_scopes",
                f"the token lacks {', '.join(unread)}: a card whose answer was lost (a dropped connection, a "
                "restart at the wrong moment) is posted again instead of found; add them and reinstall",
            )
        )
    if missing:
        checks.append(
            fail(
                "slack.scopes",
                f"the token lacks {', '.join(missing)}",
                "add the scopes under OAuth & Permissions (or recreate the app from `handoff slack-manifest`) "
                "and reinstall it",
            )
        )
    else:
        checks.append(ok("slack.scopes", f"has {', '.join(s for s in wanted if s in granted)}"))
    return checks

"""Teams, for real: a Bot Framework token can be acquired with the Azure Bot's credentials, and, with
``teams.graph.find_lost_posts``, a Microsoft Graph token too.

The token comes from Microsoft Entra ID (client credentials for ``https://api.botframework.com/.default``),
as botbuilder gets it before every send. ``http_client`` lets tests point MSAL at a local token endpoint;
the Graph token comes from ``teams.graph.login_url``, as the outbox gets it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from adapters.doctor.report import Check, fail, ok, section_off, skip, warn
from adapters.worker_pool import in_own_thread
from bot.config import Settings, TeamsSettings
from bot.ports import DeliveryFailed

BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"
LOGIN = "https://login.microsoftonline.com"


def acquire_token(settings: TeamsSettings, http_client: Any = None) -> None:
    """Get one token, or raise ``PermissionError`` saying what Entra ID answered."""
    if settings.app_type == "UserAssignedMSI":
        from azure.identity import ManagedIdentityCredential

        ManagedIdentityCredential(client_id=settings.app_id).get_token(BOT_FRAMEWORK_SCOPE)
        return
    import msal

    assert settings.app_password is not None
    tenant = settings.tenant_id if settings.app_type == "SingleTenant" else "botframework.com"
    app = msal.ConfidentialClientApplication(
        settings.app_id,
        client_credential=settings.app_password.reveal(),
        authority=f"{LOGIN}/{tenant}",
        http_client=http_client,
    )
    result = app.acquire_token_for_client(scopes=[BOT_FRAMEWORK_SCOPE])
    if "access_token" not in result:
        description = str(result.get("error_description") or "").splitlines()
        raise PermissionError(f"{result.get('error', 'error')}: {description[0] if description else 'no token'}")


async def check_teams(settings: Settings, http_client: Any = None) -> list[Check]:
    teams = settings.teams
    name = "teams.token"
    if (off := section_off(teams)) is not None:
        return [skip("teams", off)]
    assert teams is not None
    if not teams.app_id:
        return [
            warn(
                name,
                "request authentication is off (empty app_id): fine on this machine, never in production",
                "register an Azure Bot and set teams.app_id and teams.app_password",
            )
        ]
    try:
        await in_own_thread(partial(acquire_token, teams, http_client))  # (a thread that never holds the exit)
    except Exception as error:
        variable = f"${teams.app_password.variable}" if teams.app_password is not None else "the identity"
        return [
            fail(
                name,
                f"no Bot Framework token for app {teams.app_id} ({type(error).__name__}: {error})",
                f"check teams.app_id, teams.app_type, teams.tenant_id and the client secret in {variable}",
            )
        ]
    return [ok(name, f"app {teams.app_id} ({teams.app_type}) gets Bot Framework tokens"), *await check_graph(teams)]


async def check_graph(teams: TeamsSettings) -> list[Check]:
    """With ``teams.graph.find_lost_posts``: the bot's credentials get a Microsoft Graph token."""
    name = "teams.graph"
    if not teams.graph.find_lost_posts:
        return []
    if not teams.tenant_id:
        return [skip(name, "a multi-tenant bot gets Graph tokens per tenant: the first lookup in a team shows it")]
    from adapters.teams.graph import GraphTokens

    password = teams.app_password.reveal() if teams.app_password is not None else None
    tokens = GraphTokens(teams.app_id, password, teams.graph.login_url)
    try:
        await tokens.token(teams.tenant_id)
    except DeliveryFailed as failure:
        return [
            fail(
                name,
                f"{failure.reason} (app {teams.app_id})",
                "check teams.app_id, teams.tenant_id, the client secret and teams.graph.login_url; or turn "
                "teams.graph.find_lost_posts off",
            )
        ]
    finally:
        await tokens.close()
    return [
        ok(
            name,
            f"app {teams.app_id} gets Microsoft Graph tokens for tenant {teams.tenant_id}; each team's consent "
            "(ChannelMessage.Read.Group) comes with the app package",
        )
    ]

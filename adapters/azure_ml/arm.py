"""Azure Resource Manager for Handoff: the Event Grid management client, and what ARM errors mean.

The client uses the same credential and, for the local emulator, the same rewriting transport as the
``MLClient`` (:mod:`adapters.azure_ml.client_factory`), so ``azure_ml.endpoint`` points it at the emulator's
management routes and nothing else changes. Synchronous, like every azure-mgmt client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from adapters.azure_ml.client_factory import EMULATOR_HOST, build_credential, build_transport, timeout_kwargs
from adapters.worker_pool import NoAnswer

if TYPE_CHECKING:
    from azure.mgmt.eventgrid import EventGridManagementClient

    from bot.config import AzureMLSettings

ARM_URL = "https://management.azure.com"
RESOURCES_API_VERSION = "2021-04-01"
EVENTGRID_ROLE = "EventGrid EventSubscription Contributor"


def arm_base_url(settings: AzureMLSettings) -> str:
    """The ARM endpoint: the emulator's fake https host, or the public cloud's."""
    return f"https://{EMULATOR_HOST}" if settings.endpoint else ARM_URL


def eventgrid_client(
    settings: AzureMLSettings, *, timeout: float | None = None, **kwargs: Any
) -> EventGridManagementClient:
    """An ``EventGridManagementClient`` on the workspace's subscription with the configured credential.

    ``timeout``: each request waits that many seconds to connect and for an answer, and is tried once (for a
    command a person waits on); else the timeouts of :mod:`adapters.azure_ml.client_factory`, with retries.
    """
    from azure.mgmt.eventgrid import EventGridManagementClient

    limits = {} if timeout is None else {"connection_timeout": timeout, "read_timeout": timeout}
    transport = build_transport(settings, **limits)
    extra: dict[str, Any] = {"transport": transport} if transport is not None else timeout_kwargs(**limits)
    if timeout is not None:
        extra["retry_total"] = 0
    return EventGridManagementClient(
        build_credential(settings),
        settings.subscription_id,
        base_url=arm_base_url(settings),
        **extra,
        **kwargs,
    )


def find_resource_id(client: EventGridManagementClient, resource_type: str, name: str) -> str | None:
    """A resource's ARM id by type and name, from ``GET /subscriptions/{sub}/resources?$filter=…``."""
    from azure.core.rest import HttpRequest

    subscription = client._config.subscription_id
    query = f"resourceType eq '{resource_type}' and name eq '{name}'"
    url = f"/subscriptions/{quote(subscription)}/resources?$filter={quote(query)}&api-version={RESOURCES_API_VERSION}"
    response = client._send_request(HttpRequest("GET", url, headers={"Accept": "application/json"}))
    response.raise_for_status()
    for item in response.json().get("value") or []:
        if str(item.get("name", "")).lower() == name.lower():
            return str(item["id"])
    return None


@dataclass(frozen=True)
class ArmFailure:
    """A classified ARM failure: a sentence for the person fixing it (never a secret)."""

    kind: str  # credentials | forbidden | not_found | handshake | unregistered | unreachable | other
    message: str


def classify_arm_error(error: BaseException, scope: str = "") -> ArmFailure:
    """What an azure-core exception from an ARM call means."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    where = f" on {scope}" if scope else ""
    if isinstance(error, NoAnswer):
        return ArmFailure("unreachable", f"Azure Resource Manager did not answer within {error.seconds:g} s")
    if isinstance(error, ClientAuthenticationError) and getattr(error, "status_code", None) is None:
        return ArmFailure("credentials", f"the Azure credential could not get a token ({_short(str(error))})")
    if isinstance(error, ServiceRequestError):
        return ArmFailure("unreachable", f"Azure Resource Manager is unreachable ({type(error).__name__})")
    if isinstance(error, HttpResponseError):
        status = error.status_code
        code = str(getattr(getattr(error, "error", None), "code", "") or "")
        message = _short(str(getattr(getattr(error, "error", None), "message", "") or error.message or error))
        if status == 401:
            return ArmFailure("credentials", f"Azure did not accept the credential ({message})")
        if status == 403:
            return ArmFailure(
                "forbidden",
                f"the identity may not manage event subscriptions{where}: give it the '{EVENTGRID_ROLE}' role "
                f"there (or Contributor) ({message})",
            )
        if code == "MissingSubscriptionRegistration":
            return ArmFailure(
                "unregistered", "the Microsoft.EventGrid resource provider is not registered on the subscription"
            )
        if status == 404:
            return ArmFailure("not_found", f"not found{where} ({message})")
        if code.lower().replace(" ", "") == "urlvalidation" or "handshake" in message.lower():
            return ArmFailure("handshake", f"Event Grid could not validate Handoff's endpoint ({message})")
        return ArmFailure("other", f"{status} {code}: {message}".strip())
    return ArmFailure("other", f"{type(error).__name__}: {_short(str(error))}")


def _short(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."

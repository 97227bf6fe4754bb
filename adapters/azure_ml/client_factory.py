"""Builds the real azure-ai-ml ``MLClient``, for the cloud or for the local emulator.

Emulator mode (shared/reference/azure-ml.md §4.1): the SDK is pointed at a custom *https* cloud whose one
fake host, :data:`EMULATOR_HOST`, a :class:`RewriteTransport` maps to the emulator's loopback URL (with its
mount prefix, e.g. ``http://127.0.0.1:PORT/aml``). Storage hosts ``{account}.blob.`` +
:data:`EMULATOR_STORAGE_SUFFIX` map to ``{emulator_url}/blob/{account}``. The credential returns an unsigned
JWT whose ``aud`` is the requested resource, because pipeline submission decodes the token.

Custom clouds are module-global in azure-ai-ml and ``MLClient`` writes ``AZUREML_CURRENT_CLOUD`` into the
environment, so every emulator client uses the same fixed cloud name and host; only the loopback target of
the transport differs.

``azure.ai.ml`` is imported inside :func:`build_ml_client` only: it costs about 3 s and 110 MB.
"""

from __future__ import annotations

import base64
import json
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.transport import RequestsTransport

from adapters.azure_ml.throttle import RetryAfterCap
from bot.config import is_loopback_host

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.pipeline.transport import HttpTransport

    from bot.config import AzureMLSettings

EMULATOR_CLOUD = "HandoffAzureMLEmulator"
"""The custom cloud name registered with azure-ai-ml for the emulator."""
EMULATOR_HOST = "aml.emulator.test"
"""The fake https host of the emulator's ARM, AML and portal endpoints."""
EMULATOR_STORAGE_SUFFIX = "storage.emulator.test"
"""The emulator's storage suffix: blob hosts are ``{account}.blob.storage.emulator.test``."""
EMULATOR_TENANT_ID = "11111111-1111-1111-1111-111111111111"
"""The tenant id in the emulator's fake tokens."""

CONNECTION_TIMEOUT = 10.0
"""Seconds a call waits to connect to Azure ML."""
READ_TIMEOUT = 60.0
"""Seconds a call waits for each answer. azure-core's own defaults are 300 s for both, and it tries a
call four times: a stalled workspace would hold a worker thread for twenty minutes."""
TIMEOUTS = ("connection_timeout", "read_timeout")

_TOKEN_EXPIRES_ON = 4102444800  # 2100-01-01
_AUTHORITIES = {
    "AzureChinaCloud": "login.chinacloudapi.cn",
    "AzureUSGovernment": "login.microsoftonline.us",
}


CredentialKind = Literal["default", "service_principal", "managed_identity", "emulator"]


@dataclass(frozen=True)
class AzureMLConnection:
    """Where the Azure ML workspace is and how to authenticate: what :func:`build_ml_client` needs.

    Build it from the config section with :meth:`from_settings`, or directly (tests, the emulator).

    Args:
        subscription_id: the workspace's subscription.
        resource_group: the workspace's resource group.
        workspace: the workspace name.
        emulator_url: the loopback URL of the local emulator, mount prefix included
            (``http://127.0.0.1:PORT/aml``); set it and the client talks to the emulator only.
        credential_kind: ``default`` (``DefaultAzureCredential``: environment, managed identity, Azure
            CLI...), ``service_principal`` (needs the three ids below), ``managed_identity`` (``client_id``
            picks a user-assigned identity) or ``emulator`` (unsigned tokens; implied by ``emulator_url``).
        tenant_id: the service principal's tenant.
        client_id: the service principal's or user-assigned identity's application id.
        client_secret: the service principal's secret (from the environment, never from the YAML file).
        cloud: an azure-ai-ml cloud name (``AzureCloud``, ``AzureChinaCloud``, ``AzureUSGovernment``).
    """

    subscription_id: str
    resource_group: str
    workspace: str
    emulator_url: str | None = None
    credential_kind: CredentialKind = "default"
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    cloud: str | None = None

    @property
    def uses_emulator(self) -> bool:
        """True when the client is to talk to the local emulator."""
        return bool(self.emulator_url)

    @classmethod
    def from_settings(cls, settings: AzureMLSettings) -> AzureMLConnection:
        """From the ``azure_ml`` section of ``handoff.yaml`` (``endpoint`` set: the emulator at that URL)."""
        credential = settings.credential
        secret = credential.client_secret.reveal() if credential.client_secret is not None else None
        return cls(
            subscription_id=settings.subscription_id,
            resource_group=settings.resource_group,
            workspace=settings.workspace,
            emulator_url=settings.endpoint,
            credential_kind=credential.kind,
            tenant_id=credential.tenant_id,
            client_id=credential.client_id,
            client_secret=secret,
        )


def as_connection(settings: AzureMLConnection | AzureMLSettings) -> AzureMLConnection:
    """``settings`` as an :class:`AzureMLConnection` (config sections are converted)."""
    return settings if isinstance(settings, AzureMLConnection) else AzureMLConnection.from_settings(settings)


@dataclass(frozen=True)
class ClientContext:
    """What :func:`build_ml_client` used for a client: the credential and transport to reuse for storage."""

    connection: AzureMLConnection | None
    credential: TokenCredential
    transport: HttpTransport[Any, Any] | None
    client_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def retry_kwargs(self) -> dict[str, Any]:
        """The ``retry_*`` settings the client was built with, for other pipelines to honour."""
        return {k: v for k, v in self.client_kwargs.items() if k.startswith("retry_")}


_CONTEXTS: weakref.WeakKeyDictionary[Any, ClientContext] = weakref.WeakKeyDictionary()


def _b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def fake_jwt(scope: str) -> str:
    """An unsigned JWT for ``scope`` whose ``aud`` is the scope's resource (for the emulator only)."""
    resource = scope[: -len("/.default")] if scope.endswith("/.default") else scope
    now = int(time.time())
    claims = {
        "aud": resource.rstrip("/"),
        "iss": f"https://{EMULATOR_HOST}/{EMULATOR_TENANT_ID}/",
        "tid": EMULATOR_TENANT_ID,
        "oid": "22222222-2222-2222-2222-222222222222",
        "appid": "33333333-3333-3333-3333-333333333333",
        "iat": now,
        "nbf": now,
        "exp": _TOKEN_EXPIRES_ON,
    }
    return f"{_b64url({'alg': 'none', 'typ': 'JWT'})}.{_b64url(claims)}.emulator"


class EmulatorCredential:
    """A ``TokenCredential`` for the emulator: unsigned JWTs with ``aud`` set to the requested resource."""

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(fake_jwt(scopes[0] if scopes else ""), _TOKEN_EXPIRES_ON)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(fake_jwt(scopes[0] if scopes else ""), _TOKEN_EXPIRES_ON)


class RewriteTransport(RequestsTransport):  # type: ignore[misc]
    """A requests transport that sends the emulator's fake https hosts to its loopback URL.

    ``https://{host}/x`` goes to ``{target}/x`` and ``https://{account}.blob.{storage_suffix}/x`` to
    ``{target}/blob/{account}/x``; each rewritten request carries ``X-Forwarded-Host`` and
    ``X-Forwarded-Proto: https`` so that the emulator hands out URLs on the fake host. Any other
    non-loopback URL is refused, so an emulator client never leaves the machine.

    Args:
        target: the emulator's loopback base URL, mount prefix included.
        host: the fake ARM/AML host.
        storage_suffix: the fake storage suffix.
    """

    def __init__(
        self,
        target: str,
        *,
        host: str = EMULATOR_HOST,
        storage_suffix: str = EMULATOR_STORAGE_SUFFIX,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target = target.rstrip("/")
        self.host = host
        self.storage_suffix = storage_suffix

    def rewrite(self, url: str) -> str | None:
        """The loopback URL for ``url``, or None when ``url`` is not on a fake host."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        if parts.scheme != "https":
            return None
        if host == self.host:
            return self.target + rest
        for service in ("blob", "dfs"):
            suffix = f".{service}.{self.storage_suffix}"
            if host.endswith(suffix):
                return f"{self.target}/blob/{host[: -len(suffix)]}{rest}"
        return None

    def send(self, request: Any, **kwargs: Any) -> Any:
        original = str(request.url)
        rewritten = self.rewrite(original)
        if rewritten is None:
            if not is_loopback_host((urlsplit(original).hostname or "").lower()):
                raise ServiceRequestError(f"emulator client refuses to send outside the machine: {original}")
            return super().send(request, **kwargs)
        request.url = rewritten
        request.headers["X-Forwarded-Host"] = urlsplit(original).netloc
        request.headers["X-Forwarded-Proto"] = "https"
        try:
            return super().send(request, **kwargs)
        finally:
            request.url = original
            request.headers.pop("X-Forwarded-Host", None)
            request.headers.pop("X-Forwarded-Proto", None)


def emulator_cloud_metadata() -> dict[str, str]:
    """The ``cloud_metadata`` of the emulator's custom cloud."""
    base = f"https://{EMULATOR_HOST}/"
    metadata = {
        key: base
        for key in (
            "azure_portal",
            "resource_manager",
            "active_directory",
            "aml_resource_id",
            "registry_discovery_endpoint",
        )
    }
    metadata["storage_endpoint"] = EMULATOR_STORAGE_SUFFIX
    return metadata


def build_credential(settings: AzureMLConnection | AzureMLSettings) -> TokenCredential:
    """The credential for ``settings``: fake for the emulator, else per ``credential_kind``."""
    conn = as_connection(settings)
    if conn.uses_emulator or conn.credential_kind == "emulator":
        return EmulatorCredential()
    authority = _AUTHORITIES.get(conn.cloud or "")
    extra: dict[str, Any] = {"authority": authority} if authority else {}
    if conn.credential_kind == "service_principal":
        if not (conn.tenant_id and conn.client_id and conn.client_secret):
            raise ValueError("a service principal needs tenant_id, client_id and client_secret")
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(conn.tenant_id, conn.client_id, conn.client_secret, **extra)
    if conn.credential_kind == "managed_identity":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=conn.client_id) if conn.client_id else ManagedIdentityCredential()
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(**extra)


def build_transport(settings: AzureMLConnection | AzureMLSettings, **timeouts: float) -> HttpTransport[Any, Any] | None:
    """The transport for ``settings``: a :class:`RewriteTransport` for the emulator, else None (azure-core's
    own, one per client).

    The emulator's waits at most :data:`CONNECTION_TIMEOUT` to connect and :data:`READ_TIMEOUT` for an
    answer, unless ``timeouts`` (``connection_timeout``, ``read_timeout``) says otherwise.
    """
    conn = as_connection(settings)
    if not conn.emulator_url:
        return None
    limits = timeout_kwargs(**timeouts)
    return RewriteTransport(
        conn.emulator_url, connection_timeout=limits["connection_timeout"], read_timeout=limits["read_timeout"]
    )


def timeout_kwargs(**timeouts: float) -> dict[str, float]:
    """``connection_timeout`` and ``read_timeout`` for an azure-core transport: ours unless ``timeouts`` says."""
    return {"connection_timeout": CONNECTION_TIMEOUT, "read_timeout": READ_TIMEOUT, **timeouts}


def build_ml_client(
    settings: AzureMLConnection | AzureMLSettings,
    *,
    credential: TokenCredential | None = None,
    transport: HttpTransport[Any, Any] | None = None,
    **client_kwargs: Any,
) -> MLClient:
    """A real ``azure.ai.ml.MLClient`` for the workspace in ``settings``.

    Construction makes no HTTP call. The SDK is synchronous: call it in a worker thread
    (``asyncio.to_thread``) from async code.

    Args:
        settings: an :class:`AzureMLConnection` or the config's ``azure_ml`` section.
        credential: overrides the credential :func:`build_credential` would choose.
        transport: overrides the transport :func:`build_transport` would choose.
        client_kwargs: passed on to ``MLClient`` and its azure-core clients (``polling_interval``,
            ``retry_total``, ``read_timeout``...); the timeouts are :data:`CONNECTION_TIMEOUT` and
            :data:`READ_TIMEOUT` unless they say otherwise. A ``Retry-After`` over
            :data:`~adapters.azure_ml.throttle.MAX_RETRY_AFTER_SECONDS` fails a call with
            :class:`~adapters.azure_ml.throttle.AzureMLThrottled` (``per_retry_policies``) instead of being
            waited out on the caller's thread.
    """
    from azure.ai.ml import MLClient

    conn = as_connection(settings)
    credential = credential or build_credential(conn)
    timeouts = {key: client_kwargs.pop(key) for key in TIMEOUTS if key in client_kwargs}
    transport = transport or build_transport(conn, **timeouts)
    kwargs: dict[str, Any] = {
        "enable_telemetry": False,
        "show_progress": False,
        "per_retry_policies": [RetryAfterCap()],
        **client_kwargs,
    }
    if conn.uses_emulator:
        kwargs.update(cloud=EMULATOR_CLOUD, cloud_metadata=emulator_cloud_metadata())
    elif conn.cloud:
        kwargs["cloud"] = conn.cloud
    if transport is not None:
        kwargs["transport"] = transport
    else:  # each client builds its own transport from these
        kwargs.update(timeout_kwargs(**timeouts))
    client = MLClient(credential, conn.subscription_id, conn.resource_group, conn.workspace, **kwargs)
    _CONTEXTS[client] = ClientContext(conn, credential, transport, dict(client_kwargs))
    return client


def client_context(ml_client: MLClient) -> ClientContext:
    """The credential and transport behind ``ml_client`` (its own credential if not built here)."""
    known = _CONTEXTS.get(ml_client)
    if known is not None:
        return known
    return ClientContext(None, ml_client._credential, None)

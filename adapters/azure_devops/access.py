"""Why Azure DevOps refused a call, in words that say which scope or permission to grant.

The SDK raises ``AzureDevOpsAuthenticationError`` for a 401 without a JSON body (an unknown, expired or
revoked PAT) and ``AzureDevOpsServiceError`` for any error with one; neither carries the HTTP status, so
:class:`StatusRecorder` keeps the last status each thread saw (a ``requests`` hook, reference §5).
A PAT without the scope a call needs gets ``401 TF400813 … is not authorized to access this resource``;
an identity without the permission gets ``403`` (``VS403…``, an access-check exception).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
from msrest.exceptions import ClientRequestError

from adapters.worker_pool import NoAnswer

RefusalKind = Literal[
    "credentials", "scope", "permission", "not_found", "invalid", "unreachable", "unsupported", "other"
]


@dataclass(frozen=True)
class Need:
    """What a kind of call needs: the PAT scope (as the PAT page names it) and the identity's permission."""

    scope: str
    permission: str


READ_PIPELINES = Need("vso.build (Build: Read)", "'View builds' on the project's pipelines")
RUN_PIPELINES = Need("vso.build_execute (Build: Read & execute)", "'Queue builds' on the pipelines")
APPROVE = Need(
    "vso.build_execute (Build: Read & execute)",
    "being an approver on the environments' Approval checks (or in a group that is)",
)
READ_IDENTITIES = Need("vso.identity (Identity: Read)", "being a member of the organization")
READ_PROJECT = Need("vso.project (Project and Team: Read)", "being a member of the project")
_HOOKS_PERMISSION = "'View subscriptions' and 'Edit subscriptions' for service hooks (Project Administrators have both)"


def hooks_need(event_type: str | None = None) -> Need:
    """Creating, listing or deleting service-hook subscriptions (for ``event_type``, if given): the PAT
    needs read access to the area the events come from; the identity the service-hook permissions."""
    if event_type is None:
        scope = "read access to the events' areas: vso.build (Build: Read), vso.code (Code: Read), vso.release"
    elif event_type.startswith("git."):
        scope = "vso.code (Code: Read)"
    elif event_type.startswith("ms.vss-release."):
        scope = "vso.release (Release: Read)"
    else:
        scope = "vso.build (Build: Read)"
    return Need(scope, _HOOKS_PERMISSION)


@dataclass(frozen=True)
class Refusal:
    """A classified failure: what kind, and a sentence for the person fixing it (never a secret)."""

    kind: RefusalKind
    message: str


class StatusRecorder:
    """Remembers the HTTP status of the last response each thread received through a client."""

    def __init__(self) -> None:
        self._local = threading.local()

    def attach(self, client: Any) -> Any:
        """Hook into an SDK client (``client.config.hooks``); returns the client."""
        client.config.hooks.append(self._record)
        return client

    def _record(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self._local.status = getattr(response, "status_code", None)

    def reset(self) -> None:
        self._local.status = None

    @property
    def last(self) -> int | None:
        status: int | None = getattr(self._local, "status", None)
        return status


def classify(error: BaseException, need: Need, status: int | None = None) -> Refusal:
    """What ``error`` means for a call that needs ``need``."""
    if isinstance(error, AzureDevOpsAuthenticationError):
        return Refusal(
            "credentials",
            "Azure DevOps did not accept the credentials (an unknown, expired or revoked PAT, or a service "
            "principal that is not a member of the organization)",
        )
    if isinstance(error, AzureDevOpsServiceError):
        key = getattr(error, "type_key", "") or ""
        message = (getattr(error, "message", "") or str(error)).strip()
        if status == 401 or "TF400813" in message or key == "UnauthorizedRequestException":
            return Refusal("scope", f"the PAT lacks the scope {need.scope} ({_short(message)})")
        if status == 403 or "VS403" in message or "AccessCheck" in key or "Permission" in key:
            return Refusal("permission", f"the identity lacks {need.permission} ({_short(message)})")
        if status == 404 or key.endswith("NotFoundException") or "TF200016" in message:
            return Refusal("not_found", _short(message))
        if status == 400 or key.endswith(("ValidationException", "ArgumentException")):
            return Refusal("invalid", _short(message))
        return Refusal("other", _short(message))
    if isinstance(error, NoAnswer):
        return Refusal("unreachable", f"Azure DevOps did not answer within {error.seconds:g} s")
    if isinstance(error, ClientRequestError | OSError | ConnectionError):
        return Refusal("unreachable", f"Azure DevOps is unreachable ({type(error).__name__})")
    if isinstance(error, ValueError) and "location" in str(error).lower():
        return Refusal("unsupported", "the server does not offer this API (is organization_url right?)")
    return Refusal("other", f"{type(error).__name__}: {_short(str(error))}")


def _short(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."

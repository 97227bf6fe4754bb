"""Errors in the service's shape: a status code and a ``WrappedException`` JSON body.

The SDK turns such a body into ``AzureDevOpsServiceError`` with ``type_key`` and ``message``; clients
switch on ``typeKey``, so each error here carries the key the real service uses.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

_FRAMEWORK = "Microsoft.TeamFoundation.Framework.Server"
_APPROVAL = "Microsoft.Azure.Pipelines.Approval.WebApi"
_NAMESPACES = {
    "Approval": _APPROVAL,
    "Build": "Microsoft.TeamFoundation.Build.WebApi",
    "Definition": "Microsoft.TeamFoundation.Build.WebApi",
    "Pipeline": "Microsoft.Azure.Pipelines.WebApi",
    "Release": "Microsoft.VisualStudio.Services.ReleaseManagement.Data.Exceptions",
    "Project": "Microsoft.TeamFoundation.Core.WebApi",
    "Subscription": "Microsoft.VisualStudio.Services.ServiceHooks.WebApi",
}


class ServiceError(Exception):
    """An error the emulated service answers with.

    Args:
        status: the HTTP status.
        type_key: the exception's ``typeKey``, e.g. ``ApprovalNotFoundException``.
        message: the human-readable ``message``.
        headers: extra response headers.
    """

    def __init__(self, status: int, type_key: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type_key = type_key
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        namespace = next((ns for prefix, ns in _NAMESPACES.items() if self.type_key.startswith(prefix)), _FRAMEWORK)
        assembly = namespace if namespace != _FRAMEWORK else _FRAMEWORK
        return {
            "$id": "1",
            "innerException": None,
            "message": self.message,
            "typeName": f"{namespace}.{self.type_key}, {assembly}",
            "typeKey": self.type_key,
            "errorCode": 0,
            "eventId": 3000,
        }

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            text=json.dumps(self.body()),
            content_type="application/json",
            headers=self.headers,
        )


def not_found(type_key: str, message: str) -> ServiceError:
    return ServiceError(404, type_key, message)


def bad_request(message: str, type_key: str = "ArgumentException") -> ServiceError:
    return ServiceError(400, type_key, message)


def missing_scope(caller_id: str) -> ServiceError:
    """What the service answers to a PAT that authenticates but lacks the scope a call needs: 401, with a body."""
    message = f"TF400813: The user '{caller_id}' is not authorized to access this resource."
    return ServiceError(401, "UnauthorizedRequestException", message)


def internal_error(activity_id: str = "6f3bd2f4-1c62-4a4b-9c0e-2a3e5c0b7d11") -> ServiceError:
    """What the service answers when an error of its own fails a request (TF400898), in its usual JSON shape;
    its status varies (500, 503): script it with ``Fault("503", body=internal_error().body())``."""
    return ServiceError(500, "Exception", f"TF400898: An Internal Error Occurred. Activity Id: {activity_id}.")


def unauthorized() -> web.Response:
    """What the service answers to a missing or unknown PAT: 401, no JSON body."""
    return web.Response(
        status=401,
        text="Access Denied: The Personal Access Token used has expired or is not valid.",
        content_type="text/plain",
        headers={"WWW-Authenticate": 'Basic realm="https://dev.azure.com/"'},
    )

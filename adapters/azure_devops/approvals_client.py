"""A client for YAML-pipeline approvals, built on the ``azure-devops`` SDK's own machinery.

The SDK (7.1.0b4) has no client for the Approvals and Checks area (reference/azure-devops.md §2.2), so
this small :class:`azure.devops.client.Client` subclass sends the three calls through ``Client._send``:
location discovery, api-version negotiation, credentials, headers and error handling are the SDK's.
It is synchronous like the SDK: call it from a worker thread.

Get one with ``connection.get_client("adapters.azure_devops.approvals_client.PipelineApprovalsClient")``
or ``PipelineApprovalsClient(organization_url, credentials)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from azure.devops.client import Client


class PipelineApprovalsClient(Client):  # type: ignore[misc]
    """Query, read and decide YAML-pipeline approvals (area ``approval``, resource ``approvals``)."""

    #: Served on the organization URL like ``PipelinesClient``, so no resource-area lookup is needed.
    resource_area_identifier = None
    #: The location id of ``approval/approvals``; used when the server's OPTIONS list does not name it.
    LOCATION_ID = "37794717-f36f-4d78-b2bf-4dc30d0cfbcd"
    #: Requested api-version; the SDK negotiates down if the server's maxVersion is lower.
    VERSION = "7.1-preview.1"

    def _location_id(self) -> str:
        for location in self._get_resource_locations(self.normalized_url, all_host_types=False):
            if (location.area or "").lower() == "approval" and (location.resource_name or "").lower() == "approvals":
                return str(location.id)
        return self.LOCATION_ID

    def query_approvals(
        self,
        project: str,
        approval_ids: Iterable[str] | None = None,
        state: str | None = None,
        expand: str | None = "steps",
        user_ids: Iterable[str] | None = None,
        top: int | None = None,
    ) -> list[dict[str, Any]]:
        """``GET {project}/_apis/pipelines/approvals``, e.g. ``state="pending"``; returns Approval dicts."""
        query = {
            "approvalIds": ",".join(approval_ids or []) or None,
            "state": state,
            "$expand": expand,
            "userIds": ",".join(user_ids or []) or None,
            "top": str(top) if top else None,
        }
        response = self._send(
            "GET",
            self._location_id(),
            self.VERSION,
            route_values={"project": project},
            query_parameters={k: v for k, v in query.items() if v},
        )
        value: list[dict[str, Any]] = response.json()["value"]
        return value

    def get_approval(self, project: str, approval_id: str, expand: str | None = "steps") -> dict[str, Any]:
        """``GET {project}/_apis/pipelines/approvals/{id}``."""
        response = self._send(
            "GET",
            self._location_id(),
            self.VERSION,
            route_values={"project": project, "approvalId": approval_id},
            query_parameters={"$expand": expand} if expand else None,
        )
        body: dict[str, Any] = response.json()
        return body

    def update_approvals(self, project: str, updates: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``PATCH {project}/_apis/pipelines/approvals`` with ``[{approvalId, status, comment}, …]``.

        ``status`` is ``"approved"`` or ``"rejected"``. The identity of the credentials is the approver.
        Refusals raise ``AzureDevOpsServiceError``; switch on its ``type_key``.
        """
        content = [dict(u) for u in updates]  # a list, not a JSON string: msrest encodes it
        response = self._send(
            "PATCH", self._location_id(), self.VERSION, route_values={"project": project}, content=content
        )
        value: list[dict[str, Any]] = response.json()["value"]
        return value

    def approve(self, project: str, approval_id: str, comment: str = "") -> dict[str, Any]:
        """Approve one approval; returns it as updated."""
        return self.update_approvals(project, [{"approvalId": approval_id, "status": "approved", "comment": comment}])[
            0
        ]

    def reject(self, project: str, approval_id: str, comment: str = "") -> dict[str, Any]:
        """Reject one approval; returns it as updated."""
        return self.update_approvals(project, [{"approvalId": approval_id, "status": "rejected", "comment": comment}])[
            0
        ]

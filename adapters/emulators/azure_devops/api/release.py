"""Classic release approvals (Release area): list and ``PATCH _apis/release/approvals/{id}`` (reference §2.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from adapters.emulators.azure_devops import locations
from adapters.emulators.azure_devops.errors import ServiceError, bad_request, not_found
from adapters.emulators.azure_devops.model import ReleaseApprovalStatus
from adapters.emulators.azure_devops.router import Call, Router
from adapters.emulators.azure_devops.shapes import collection

if TYPE_CHECKING:
    from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator

BASE = "{org}/{project}/_apis/Release/approvals"


def register(router: Router, emulator: AzureDevOpsEmulator) -> None:

    async def list_approvals(call: Call) -> web.Response:
        status = (call.arg("statusFilter") or "pending").lower()
        kind = (call.arg("typeFilter") or "all").lower()
        assigned = (call.arg("assignedToFilter") or "").lower()
        releases = {r for r in (call.arg("releaseIdsFilter") or "").split(",") if r}
        top = call.arg("top")
        items = sorted(emulator.release_approvals.values(), key=lambda a: a.id, reverse=True)
        if (call.arg("queryOrder") or "").lower() == "ascending":
            items.reverse()
        selected = [
            a
            for a in items
            if (status == "undefined" or a.status.lower() == status)
            and (kind == "all" or a.approval_type.lower() == kind)
            and (
                not assigned
                or assigned in (a.approver.id.lower(), a.approver.unique_name.lower(), a.approver.display_name.lower())
            )
            and (not releases or str(a.release_id) in releases)
        ]
        if top and top.isdigit():
            selected = selected[: int(top)]
        return web.json_response(collection([emulator.shapes.release_approval(a) for a in selected]))

    async def update_approval(call: Call) -> web.Response:
        approval_id = call.int_param("approvalId")
        approval = emulator.release_approvals.get(approval_id)
        if approval is None:
            raise not_found(
                "ReleaseManagementObjectNotFoundException", f"VS402864: Approval with id {approval_id} does not exist."
            )
        body = await call.json()
        if not isinstance(body, Mapping):
            raise bad_request("The approval must be a JSON object.")
        status = str(body.get("status") or "")
        if status not in ("approved", "rejected"):
            raise bad_request(
                f"Approval status '{status}' is not supported: use approved or rejected.", "InvalidRequestException"
            )
        assert call.caller is not None
        if approval.status != "pending":
            raise ServiceError(
                400, "InvalidRequestException", f"VS402860: The approval has already been {approval.status}."
            )
        if call.caller.id != approval.approver.id:
            raise ServiceError(
                403,
                "ReleaseManagementSecurityException",
                f"VS402904: {call.caller.display_name} is not the approver of approval {approval.id}; "
                f"it is assigned to {approval.approver.display_name}.",
            )
        decided: ReleaseApprovalStatus = "approved" if status == "approved" else "rejected"
        emulator.complete_release_approval(
            approval.id, decided, by=call.caller.id, comments=str(body.get("comments") or "")
        )
        return web.json_response(emulator.shapes.release_approval(approval))

    router.add("GET", BASE, list_approvals, location=locations.RELEASE_APPROVALS, vsrm=True)
    router.add("PATCH", BASE + r"/{approvalId:\d+}", update_approval, location=locations.RELEASE_APPROVAL, vsrm=True)

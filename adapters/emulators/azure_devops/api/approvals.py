"""Approvals and Checks API: get, query and update YAML-pipeline approvals (reference §2.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from adapters.emulators.azure_devops import approvals as rules
from adapters.emulators.azure_devops import locations
from adapters.emulators.azure_devops.errors import bad_request, not_found
from adapters.emulators.azure_devops.model import Approval
from adapters.emulators.azure_devops.router import Call, Router
from adapters.emulators.azure_devops.shapes import collection

if TYPE_CHECKING:
    from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator

BASE = "{org}/{project}/_apis/pipelines/approvals"
MAX_TOP = 250


def register(router: Router, emulator: AzureDevOpsEmulator) -> None:
    world = emulator.world
    engine = emulator.engine

    def find(approval_id: str) -> Approval:
        approval = engine.approvals.get(approval_id.lower())
        if approval is None:
            raise not_found("ApprovalNotFoundException", f"Approval with id {approval_id} was not found.")
        return approval

    def render(call: Call, approval: Approval, expand: str) -> dict[str, object]:
        return emulator.shapes.approval(approval, engine.runs[approval.run_id], expand=expand, caller=call.caller)

    async def get_approval(call: Call) -> web.Response:
        approval = find(call.params["approvalId"])
        return web.json_response(render(call, approval, call.arg("$expand") or ""))

    async def query_approvals(call: Call) -> web.Response:
        ids = {i.strip().lower() for i in (call.arg("approvalIds") or "").split(",") if i.strip()}
        users = {u.strip().lower() for u in (call.arg("userIds") or "").split(",") if u.strip()}
        state = (call.arg("state") or "").lower()
        top = call.arg("top") or call.arg("$top")
        found = sorted(engine.approvals.values(), key=lambda a: a.created_on, reverse=True)
        selected = [
            a
            for a in found
            if (not ids or a.id in ids)
            and (not state or state == "all" or a.status.lower() == state)
            and (not users or any(u in {m.lower() for m in world.members(s.assigned)} for s in a.steps for u in users))
        ]
        limit = min(int(top), MAX_TOP) if top and top.isdigit() else MAX_TOP
        expand = call.arg("$expand") or ""
        return web.json_response(collection([render(call, a, expand) for a in selected[:limit]]))

    async def update_approvals(call: Call) -> web.Response:
        body = await call.json()
        if not isinstance(body, list) or not body:
            raise bad_request("The request body must be a non-empty list of approval updates.")
        updates = [rules.ApprovalUpdate.parse(item) for item in body]
        assert call.caller is not None
        targets = [find(u.approval_id) for u in updates]
        for update, approval in zip(updates, targets, strict=True):  # refuse before changing anything
            rules.caller_steps(world, approval, call.caller, update.status)
        now = emulator.clock.now()
        for update, approval in zip(updates, targets, strict=True):
            reopened = rules.apply_decision(world, approval, call.caller, update.status, update.comment, now)
            engine.decided(approval, reopened)
        return web.json_response(collection([render(call, a, "steps") for a in targets]))

    router.add("GET", BASE, query_approvals, location=locations.APPROVALS)
    router.add("PATCH", BASE, update_approvals, location=locations.APPROVALS)
    router.add("GET", BASE + "/{approvalId}", get_approval, location=locations.APPROVALS)

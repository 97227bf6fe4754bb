"""Service Hooks API: Web Hooks subscriptions and their notification history (``ServiceHooksClient``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from adapters.emulators.azure_devops import locations
from adapters.emulators.azure_devops.errors import bad_request, not_found
from adapters.emulators.azure_devops.events import EVENT_TYPES
from adapters.emulators.azure_devops.router import Call, Router
from adapters.emulators.azure_devops.shapes import collection, iso
from adapters.emulators.azure_devops.webhooks import Delivery, Subscription, parse_http_headers

if TYPE_CHECKING:
    from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator

BASE = "{org}/_apis/hooks/subscriptions"
#: publisherInputs the emulator filters on, mapped to the event context key they compare with.
FILTERS = {
    "pipelineid": "pipelineId",
    "stagenameid": "stageName",
    "stagename": "stageName",
    "environmentname": "environmentName",
    "definitionname": "definitionName",
    "branch": "branch",
    "repository": "repository",
    "runstateid": "runState",
    "stagestateid": "stageState",
}
PUBLISHERS = {"build.complete": "tfs", "git.push": "tfs"}


def publisher_of(event_type: str) -> str:
    if event_type.startswith("ms.vss-release."):
        return "rm"
    return PUBLISHERS.get(event_type, "pipelines")


def register(router: Router, emulator: AzureDevOpsEmulator) -> None:
    shapes = emulator.shapes
    sender = emulator.webhooks

    def render(sub: Subscription) -> dict[str, Any]:
        event_type = sorted(sub.event_types)[0] if len(sub.event_types) == 1 else "*"
        consumer_inputs: dict[str, str] = {"url": sub.url}
        if sub.basic is not None:
            consumer_inputs["basicAuthUsername"] = sub.basic[0]
            consumer_inputs["basicAuthPassword"] = "********"
        if sub.headers:
            consumer_inputs["httpHeaders"] = "\n".join(f"{k}:********" for k, _ in sub.headers)
        return {
            "id": sub.id,
            "url": emulator.links.subscription(sub.id),
            "status": sub.status,
            "publisherId": publisher_of(event_type) if event_type != "*" else "*",
            "eventType": event_type,
            "resourceVersion": sub.resource_version or ("2.0" if event_type == "build.complete" else "5.1-preview.1"),
            "consumerId": "webHooks",
            "consumerActionId": "httpRequest",
            "publisherInputs": {"projectId": emulator.world.project_id, **sub.publisher_inputs},
            "consumerInputs": consumer_inputs,
            "createdBy": shapes.identity(sub.created_by),
            "modifiedBy": shapes.identity(sub.created_by),
            "createdDate": iso(sub.created),
            "modifiedDate": iso(sub.created),
            "probationRetries": sub.probation_retries,
            "_links": {"self": {"href": emulator.links.subscription(sub.id)}},
        }

    def notification(d: Delivery) -> dict[str, Any]:
        last = d.attempts[-1] if d.attempts else None
        return {
            "id": d.notification_id,
            "subscriptionId": d.subscription_id,
            "eventId": d.event.id,
            "status": d.status,
            "result": d.result,
            "createdDate": iso(d.created),
            "modifiedDate": iso(last.at if last else d.created),
            "details": {
                "eventType": d.event_type,
                "publisherId": d.event.publisher_id,
                "consumerId": "webHooks",
                "consumerActionId": "httpRequest",
                "requestAttempts": len(d.attempts),
                "response": f"HTTP {last.status}" if last and last.status else None,
                "errorMessage": last.error if last else None,
                "queuedDate": iso(d.created),
            },
        }

    def find(call: Call) -> Subscription:
        sub = sender.subscriptions.get(call.params["subscriptionId"].lower())
        if sub is None:
            raise not_found("SubscriptionNotFoundException", f"Subscription {call.params['subscriptionId']} not found.")
        return sub

    async def create(call: Call) -> web.Response:
        body = await call.json()
        if not isinstance(body, Mapping):
            raise bad_request("The subscription must be a JSON object.")
        if body.get("consumerId") != "webHooks" or body.get("consumerActionId", "httpRequest") != "httpRequest":
            raise bad_request("The emulator supports the webHooks consumer with the httpRequest action only.")
        event_type = str(body.get("eventType") or "")
        if event_type not in EVENT_TYPES:
            raise bad_request(f"Event type '{event_type}' is not supported.", "EventTypeNotFoundException")
        inputs = body.get("consumerInputs") or {}
        publisher_inputs = {str(k): str(v) for k, v in (body.get("publisherInputs") or {}).items()}
        user, password = inputs.get("basicAuthUsername"), inputs.get("basicAuthPassword")
        filters = {FILTERS[k.lower()]: v for k, v in publisher_inputs.items() if k.lower() in FILTERS and v}
        try:
            sub = sender.subscribe(
                str(inputs.get("url") or ""),
                [event_type],
                basic=(str(user or ""), str(password or "")) if user or password else None,
                headers=parse_http_headers(str(inputs.get("httpHeaders") or "")),
                resource_version=str(body["resourceVersion"]) if body.get("resourceVersion") else None,
                filters=filters,
                created=emulator.clock.now(),
                created_by=call.caller,
                publisher_inputs={k: v for k, v in publisher_inputs.items() if k != "projectId"},
            )
        except ValueError as exc:
            raise bad_request(str(exc), "InputValidationException") from None
        return web.json_response(render(sub))

    async def list_subscriptions(call: Call) -> web.Response:
        event_type = call.arg("eventType")
        publisher = call.arg("publisherId")
        subs = [
            s
            for s in sender.subscriptions.values()
            if (not event_type or event_type in s.event_types)
            and (not publisher or any(publisher_of(t) == publisher for t in s.event_types))
        ]
        return web.json_response(collection([render(s) for s in subs]))

    async def get(call: Call) -> web.Response:
        return web.json_response(render(find(call)))

    async def delete(call: Call) -> web.Response:
        sender.unsubscribe(find(call).id)
        return web.Response(status=204)

    async def notifications(call: Call) -> web.Response:
        sub = find(call)
        status, result = call.arg("status"), call.arg("result")
        items = [
            d
            for d in reversed(sender.deliveries)
            if d.subscription_id == sub.id and (not status or d.status == status) and (not result or d.result == result)
        ]
        top = call.arg("maxResults")
        if top and top.isdigit():
            items = items[: int(top)]
        return web.json_response(collection([notification(d) for d in items]))

    router.add("POST", BASE, create, location=locations.HOOK_SUBSCRIPTIONS)
    router.add("GET", BASE, list_subscriptions, location=locations.HOOK_SUBSCRIPTIONS)
    router.add("GET", BASE + "/{subscriptionId}", get, location=locations.HOOK_SUBSCRIPTIONS)
    router.add("DELETE", BASE + "/{subscriptionId}", delete, location=locations.HOOK_SUBSCRIPTIONS)
    router.add("GET", BASE + "/{subscriptionId}/notifications", notifications, location=locations.HOOK_NOTIFICATIONS)

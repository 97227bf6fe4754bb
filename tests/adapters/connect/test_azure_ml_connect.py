"""`handoff connect azure-ml` through azure-mgmt-eventgrid against the Azure ML emulator's management routes:
created subscriptions pass Handoff's handshake and become real deliveries."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from adapters.azure_ml.arm import eventgrid_client
from adapters.azure_ml.connect import connect_azure_ml
from adapters.emulators.azure_ml.emulator import AzureMLEmulator
from tests.adapters.connect.conftest import Wired, eventually

EG = "/providers/Microsoft.EventGrid/eventSubscriptions"


def changes(aml: AzureMLEmulator) -> int:
    return sum(len(aml.recorder.matching(f"{method} /subscriptions/**{EG}/*")) for method in ("PUT", "DELETE", "PATCH"))


def delivered_types(aml: AzureMLEmulator, name: str) -> list[str]:
    return [e.event_type for e in aml.dispatcher.subscriptions[name].delivered]


async def test_a_dry_run_plans_without_secrets_and_creates_nothing(wired: Wired) -> None:
    report = await connect_azure_ml(wired.settings, dry_run=True)
    assert report.ok, report.lines
    text = "\n".join(report.lines)
    assert "create  ws-mlops" in text and "handoff-azureml" in text
    assert "create  stmlopslake" in text and "new files under lake/raw/customers/" in text
    assert wired.environ["LOCAL_EVENTGRID_SECRET"] not in text
    assert wired.suite.aml.dispatcher.subscriptions == {} and changes(wired.suite.aml) == 0


async def test_connect_then_a_job_completion_posts_a_model_registered_card(wired: Wired) -> None:
    aml = wired.suite.aml
    report = await connect_azure_ml(wired.settings)
    assert report.ok, report.lines
    assert report.lines[-1] == "done: created 2, updated 0, deleted 0, kept 0"
    subscriptions = aml.dispatcher.subscriptions
    assert {s.state for s in subscriptions.values()} == {"Succeeded"}
    assert len(aml.recorder.matching(f"PUT /subscriptions/**{EG}/*")) == 2  # each answered after its handshake
    lake = next(name for name in subscriptions if name.startswith("handoff-lake-"))

    aml.script_next_job(queued_after=0.1, running_after=0.1, duration=0.3)
    aml.submit_job("train-model-x-0001", {"jobType": "Command", "displayName": "train-model-x"})
    await aml.wait_for_job("train-model-x-0001", timeout=10)
    card = await eventually(
        lambda: next((m for m in wired.slack_messages("ml-models") if "model-x" in json.dumps(m.blocks)), None)
    )
    assert "8" in json.dumps(card.blocks)  # model-x:8, the version the job registered
    await aml.drain_events()
    assert "Microsoft.MachineLearningServices.ModelRegistered" in delivered_types(aml, "handoff-azureml")
    assert delivered_types(aml, lake) == []  # the workspace's events go to the workspace's subscription only

    before = changes(aml)
    again = await connect_azure_ml(wired.settings)
    assert again.ok and again.lines[-1] == "nothing to do: 2 subscription(s) in place"
    assert changes(aml) == before


async def test_only_committed_files_under_the_configured_path_arrive(wired: Wired) -> None:
    aml = wired.suite.aml
    assert (await connect_azure_ml(wired.settings)).ok
    lake = next(name for name in aml.dispatcher.subscriptions if name.startswith("handoff-lake-"))
    aml.land_blob("raw/customers/2026-01.parquet", 1000, with_create_file=True)
    aml.land_blob("raw/suppliers/2026-01.parquet", 1000)
    await aml.drain_events()
    (event,) = aml.dispatcher.subscriptions[lake].delivered
    assert event.data["api"] == "FlushWithClose" and event.subject.endswith("raw/customers/2026-01.parquet")
    await eventually(lambda: any("2026-01.parquet" in json.dumps(m.blocks) for m in wired.slack_messages("ml-models")))


async def test_a_changed_config_updates_and_removes_only_handoffs_subscriptions(wired: Wired) -> None:
    aml = wired.suite.aml
    assert (await connect_azure_ml(wired.settings)).ok
    old_lake = next(name for name in aml.dispatcher.subscriptions if name.startswith("handoff-lake-"))
    client = eventgrid_client(wired.settings.azure_ml)  # type: ignore[arg-type]
    others = await asyncio.to_thread(_someone_elses, client, aml, wired.public_url)

    def new_secret_and_path(config: dict[str, Any], environ: dict[str, str]) -> None:
        environ["LOCAL_EVENTGRID_SECRET"] = "a-rotated-delivery-secret-0123"
        config["eventgrid"]["data_lake_paths"][0]["path"] = "curated/"

    settings = wired.variant(new_secret_and_path)
    report = await connect_azure_ml(settings)
    assert report.ok, report.lines
    text = "\n".join(report.lines)
    assert "update  ws-mlops             handoff-azureml" in text
    assert f"delete  stmlopslake          {old_lake}" in text and text.count("create ") == 1
    assert "a-rotated-delivery-secret" not in text
    names = set(aml.dispatcher.subscriptions)
    assert old_lake not in names and others in names
    assert "code=a-rotated-delivery-secret-0123" in aml.dispatcher.subscriptions["handoff-azureml"].url
    assert (await connect_azure_ml(settings)).lines[-1] == "nothing to do: 2 subscription(s) in place"


def _someone_elses(client: Any, aml: AzureMLEmulator, public_url: str) -> str:
    from azure.mgmt.eventgrid.models import EventSubscription, WebHookEventSubscriptionDestination

    body = EventSubscription(
        destination=WebHookEventSubscriptionDestination(endpoint_url=f"{public_url}/hooks/eventgrid?code=x"),
        event_delivery_schema="CloudEventSchemaV1_0",
    )
    client.event_subscriptions.begin_create_or_update(aml.workspace_topic, "analytics-team", body).result()
    return "analytics-team"


async def test_a_name_taken_by_someone_else_is_a_conflict_not_an_overwrite(wired: Wired) -> None:
    from azure.mgmt.eventgrid.models import EventSubscription, WebHookEventSubscriptionDestination

    aml = wired.suite.aml
    client = eventgrid_client(wired.settings.azure_ml)  # type: ignore[arg-type]
    body = EventSubscription(
        destination=WebHookEventSubscriptionDestination(endpoint_url=f"{wired.public_url}/hooks/eventgrid?code=x"),
        event_delivery_schema="CloudEventSchemaV1_0",
        labels=["not-ours"],
    )
    await asyncio.to_thread(
        lambda: client.event_subscriptions.begin_create_or_update(aml.workspace_topic, "handoff-azureml", body).result()
    )
    report = await connect_azure_ml(wired.settings)
    assert not report.ok and "handoff-azureml" in report.failures[0]
    assert "exists and is not Handoff's" in "\n".join(report.lines)
    assert aml.dispatcher.subscriptions["handoff-azureml"].url.endswith("code=x")


async def test_an_endpoint_that_fails_the_handshake_is_reported(wired: Wired) -> None:
    def wrong_public_url(config: dict[str, Any], environ: dict[str, str]) -> None:
        config["server"]["public_url"] = "http://127.0.0.1:9"  # nothing listens there

    report = await connect_azure_ml(wired.variant(wrong_public_url))
    assert not report.ok
    assert "Event Grid could not validate Handoff's endpoint" in report.failures[0]
    assert "Webhook validation handshake failed for http://127.0.0.1:9/hooks/eventgrid" in report.failures[0]
    assert wired.environ["LOCAL_EVENTGRID_SECRET"] not in "\n".join(report.lines)


async def test_an_unknown_storage_account_names_the_setting(wired: Wired) -> None:
    def unknown_account(config: dict[str, Any], environ: dict[str, str]) -> None:
        config["eventgrid"]["data_lake_paths"][0]["storage_account"] = "nosuchaccount"

    report = await connect_azure_ml(wired.variant(unknown_account))
    assert not report.ok
    assert "storage account nosuchaccount was not found" in report.failures[0]
    assert "eventgrid.allowed_topics" in report.failures[0]


async def test_the_management_routes_hide_the_secret_and_take_updates(wired: Wired) -> None:
    from azure.mgmt.eventgrid.models import EventSubscriptionUpdateParameters

    aml = wired.suite.aml
    assert (await connect_azure_ml(wired.settings)).ok
    client = eventgrid_client(wired.settings.azure_ml)  # type: ignore[arg-type]

    def read_and_update() -> tuple[Any, Any, str]:
        shown = client.event_subscriptions.get(aml.workspace_topic, "handoff-azureml")
        full = client.event_subscriptions.get_full_url(aml.workspace_topic, "handoff-azureml").endpoint_url
        update = EventSubscriptionUpdateParameters(labels=["handoff", "reviewed"])
        updated = client.event_subscriptions.begin_update(aml.workspace_topic, "handoff-azureml", update).result()
        return shown, updated, full

    shown, updated, full = await asyncio.to_thread(read_and_update)
    assert shown.destination.endpoint_url is None
    assert shown.destination.endpoint_base_url == f"{wired.public_url}/hooks/eventgrid"
    assert full == f"{wired.public_url}/hooks/eventgrid?code={wired.environ['LOCAL_EVENTGRID_SECRET']}"
    assert shown.provisioning_state == "Succeeded" and updated.labels == ["handoff", "reviewed"]
    assert aml.dispatcher.subscriptions["handoff-azureml"].state == "Succeeded"


async def test_a_storage_account_listed_in_allowed_topics_needs_no_lookup(wired: Wired) -> None:
    aml = wired.suite.aml

    def allowed(config: dict[str, Any], environ: dict[str, str]) -> None:
        config["eventgrid"]["allowed_topics"] = [aml.workspace_topic, aml.storage_topic]

    report = await connect_azure_ml(wired.variant(allowed))
    assert report.ok and "warning" not in "\n".join(report.lines)
    assert aml.recorder.matching("GET /subscriptions/*/resources") == []
    assert {s.topic for s in aml.dispatcher.subscriptions.values()} == {aml.workspace_topic, aml.storage_topic}

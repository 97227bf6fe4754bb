"""The Azure ML emulator: a workspace (jobs, models, assets), its blob storage and data lake, and the
Event Grid deliveries they cause, served over HTTP to the real azure-ai-ml SDK.

::

    async with AzureMLEmulator(clock=clock) as aml:
        ml_client = build_ml_client(aml.connection())      # adapters.azure_ml
        await aml.add_event_subscription(receiver_url, schema="CloudEventSchemaV1_0")
        aml.land_blob("raw/customers/2026-01.csv", 1024)
"""

from adapters.emulators.azure_ml.emulator import AzureMLEmulator
from adapters.emulators.azure_ml.eventgrid import (
    DeliveryAttempt,
    EventSubscription,
    SubscriptionValidationError,
)
from adapters.emulators.azure_ml.events import (
    BLOB_CREATED,
    DATASET_DRIFT_DETECTED,
    EVENT_TYPES,
    MODEL_DEPLOYED,
    MODEL_REGISTERED,
    RUN_COMPLETED,
    RUN_STATUS_CHANGED,
    EmittedEvent,
)
from adapters.emulators.azure_ml.world import AzureMLWorld, JobPlan, Signature, load_default_world

__all__ = [
    "BLOB_CREATED",
    "DATASET_DRIFT_DETECTED",
    "EVENT_TYPES",
    "MODEL_DEPLOYED",
    "MODEL_REGISTERED",
    "RUN_COMPLETED",
    "RUN_STATUS_CHANGED",
    "AzureMLEmulator",
    "AzureMLWorld",
    "DeliveryAttempt",
    "EmittedEvent",
    "EventSubscription",
    "JobPlan",
    "Signature",
    "SubscriptionValidationError",
    "load_default_world",
]

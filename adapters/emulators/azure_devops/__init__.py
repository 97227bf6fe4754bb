"""A local Azure DevOps for the real ``azure-devops`` SDK: pipelines, builds, approvals, service hooks.

See :class:`AzureDevOpsEmulator`; the seeded world is ``default_world.yaml`` beside this module.
"""

from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator
from adapters.emulators.azure_devops.events import DEFAULT_EVENT_TYPES, EVENT_TYPES
from adapters.emulators.azure_devops.webhooks import Delivery, RetrySchedule, Subscription
from adapters.emulators.azure_devops.world import WORLD_KEY, World, WorldError, load_default_world, parse_world

__all__ = [
    "DEFAULT_EVENT_TYPES",
    "EVENT_TYPES",
    "WORLD_KEY",
    "AzureDevOpsEmulator",
    "Delivery",
    "RetrySchedule",
    "Subscription",
    "World",
    "WorldError",
    "load_default_world",
    "parse_world",
]

"""Adapter tests: keep the azure-devops SDK's on-disk discovery cache out of the user's home.

The SDK resolves ``AZURE_DEVOPS_CACHE_DIR`` when ``azure.devops`` is first imported and then reuses
``options.json`` / ``resources.json`` for 12 hours, keyed by URL. Emulators listen on fresh ports, but a
stale cache from an earlier run could still answer for a reused port, so every test session gets its own
empty cache directory, set before any test module imports the SDK.
"""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.emulators.azure_devops import AzureDevOpsEmulator, load_default_world
from adapters.emulators.azure_ml import AzureMLEmulator
from bot.clock import FakeClock

_CACHE_DIR = tempfile.mkdtemp(prefix="azure-devops-sdk-cache-")
os.environ["AZURE_DEVOPS_CACHE_DIR"] = _CACHE_DIR
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)  # (the test run's own: nothing else reads it)

if "azure.devops._file_cache" in sys.modules:  # imported earlier in this process: repoint its caches
    _file_cache = sys.modules["azure.devops._file_cache"]
    for _cache in (_file_cache.OPTIONS_CACHE, _file_cache.RESOURCE_CACHE):
        _cache.file_name = os.path.join(_CACHE_DIR, os.path.basename(_cache.file_name))
        _cache.data = {}
        _cache.initial_load_occurred = False


@pytest.fixture
async def aml(clock: FakeClock) -> AsyncIterator[AzureMLEmulator]:
    """The Azure ML emulator on the test's clock; long-running operations answer without a wait."""
    async with AzureMLEmulator(clock=clock, lro_retry_after=0) as emulator:
        yield emulator


@pytest.fixture
def ado_world() -> dict[str, Any] | None:
    """The world ``ado`` starts with: None for the shipped default. A test changes it with
    ``@pytest.mark.parametrize("ado_world", [...])``."""
    return None


def production_approval(**approval: Any) -> dict[str, Any]:
    """The shipped Azure DevOps world, with ``approval``'s keys set on production's approval check."""
    world = copy.deepcopy(load_default_world())
    [production] = [e for e in world["environments"] if e["name"] == "production"]
    production["approval"].update(approval)
    return world


@pytest.fixture
async def ado(clock: FakeClock, ado_world: dict[str, Any] | None) -> AsyncIterator[AzureDevOpsEmulator]:
    """The Azure DevOps emulator with the shipped default world (or ``ado_world``), on the test's clock."""
    async with AzureDevOpsEmulator(ado_world, clock=clock) as emulator:
        yield emulator

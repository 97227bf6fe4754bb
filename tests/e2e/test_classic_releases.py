"""Classic release deployments, as Azure DevOps sends them (the documented sample, published by the emulator
through its service hook), routed by chat subscriptions."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.emulators.azure_devops.events import Event
from tests.e2e.conftest import Loop, Person, blocks_text, eventually, slack_messages

SAMPLE = "samples/ado/ms.vss-release.deployment-completed-event.json"


def deployed(loop: Loop, shared_dir: Path, release: str, environment: str, status: str) -> None:
    """Azure DevOps tells its service hooks that ``release`` finished deploying to ``environment`` (``status``
    as its ``releaseEnvironmentStatus`` says: succeeded, rejected, canceled, partiallySucceeded)."""
    sample = json.loads((shared_dir / SAMPLE).read_text())
    resource = copy.deepcopy(sample["resource"])
    resource["environment"].update(name=environment, status=status)
    resource["environment"]["release"].update(id=int(release.rpartition("-")[2]), name=release)
    text = f"Deployment of release {release} on environment {environment} {status}."
    loop.suite.ado.publish(
        Event(
            id=str(uuid.uuid4()),
            event_type=sample["eventType"],
            publisher_id=sample["publisherId"],
            resources={sample["resourceVersion"]: resource},
            default_version=sample["resourceVersion"],
            message={"text": text, "html": text, "markdown": text},
            detailed_message={"text": text, "html": text, "markdown": text},
            created=datetime.now(UTC),
            containers=sample["resourceContainers"],
            context={},
        )
    )


def about(loop: Loop, channel: str, release: str) -> list[Any]:
    return [m for m in slack_messages(loop, channel) if release in blocks_text(m)]


async def test_a_classic_deployment_that_failed_comes_where_failed_releases_go(loop: Loop, shared_dir: Path) -> None:
    """A deployment that failed ends its environment `rejected`: `outcomes=failed` gets it."""
    carol = Person(loop, "slack", "carol", "ml-models")
    await carol.say("subscribe events=release outcomes=failed", "Subscribed this channel")
    deployed(loop, shared_dir, "Release-7", "production", "rejected")
    deployed(loop, shared_dir, "Release-8", "production", "succeeded")
    await loop.suite.ado.drain(timeout=30)
    (card,) = await eventually(lambda: about(loop, "ml-models", "Release-7 → production"))
    assert ":x:" in blocks_text(card) and "Failed" in blocks_text(card)  # not "Info"
    await asyncio.sleep(1.5)  # (the outbox would have posted the other by now)
    assert about(loop, "ml-models", "Release-8") == []


async def test_subscribe_alone_follows_the_classic_deployments_that_failed(loop: Loop, shared_dir: Path) -> None:
    """`subscribe` follows failures: a classic release's failed deployment is one, a successful one is not;
    typed beside the defaults, `environments=production` keeps those to production."""
    carol = Person(loop, "slack", "carol", "ml-models")
    await carol.say("subscribe", "Subscribed this channel")
    releases = Person(loop, "slack", "carol", "app-releases")
    await releases.say("subscribe environments=production", "Subscribed this channel")
    deployed(loop, shared_dir, "Release-7", "production", "rejected")
    deployed(loop, shared_dir, "Release-8", "production", "succeeded")
    deployed(loop, shared_dir, "Release-9", "staging", "rejected")
    await loop.suite.ado.drain(timeout=30)
    await eventually(lambda: about(loop, "ml-models", "Release-7 → production"))
    await eventually(lambda: about(loop, "ml-models", "Release-9 → staging"))
    await eventually(lambda: about(loop, "app-releases", "Release-7 → production"))
    await asyncio.sleep(1.5)  # (the outbox would have posted the others by now)
    assert about(loop, "ml-models", "Release-8") == []
    assert about(loop, "app-releases", "Release-8") == [] and about(loop, "app-releases", "Release-9") == []

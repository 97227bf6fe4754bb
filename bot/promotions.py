"""A model version's promotion gate: opened by Handoff when the version is registered, ordered by version, and
superseded by a newer version's, so that approving one never releases an older version over a newer one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from bot.clock import Clock
from bot.gate_outcomes import HANDOFF, decided_already
from bot.gate_updates import GateUpdates
from bot.policy import Policy
from bot.ports import Store
from bot.records import Gate, GateState, JsonObject
from bot.versions import is_newer_version, version_order

log = logging.getLogger("handoff.gates")


def promotion_gate_id(model: str, version: str) -> str:
    """The id (and card key) of a model version's promotion gate."""
    return f"handoff:promotion:{model}:{version}".lower()


def version_label(gate: Gate) -> str:
    """A promotion gate's model version: ``model-x:12``."""
    return f"{gate.details.get('model')}:{gate.details.get('version')}"


def _promotion_target(gate: Gate) -> tuple[str, str, str]:
    """What a promotion gate releases: its model, and the project and pipeline its approval starts."""
    release = gate.details.get("release") or {}
    return (
        str(gate.details.get("model", "")).lower(),
        str(release.get("project", "")).lower(),
        str(release.get("pipeline", "")).lower(),
    )


def _newest_over(gate: Gate, others: Sequence[Gate]) -> Gate | None:
    """Of ``others``, the newest whose version is newer than ``gate``'s; None if there is none."""
    version = str(gate.details.get("version", ""))
    newer = [
        other
        for other in others
        if other.gate_id != gate.gate_id and is_newer_version(str(other.details.get("version", "")), version)
    ]
    return max(newer, key=lambda other: version_order(str(other.details.get("version", ""))) or (), default=None)


class Promotions:
    """Opens the promotion gates of model versions and supersedes the ones a newer version puts out of date.

    Args:
        store: gates.
        policy: the gate policies (a promotion gate's expiry and approver roles).
        clock: when things happen.
        updates: where a gate's change is shown and audited.
    """

    def __init__(self, store: Store, policy: Policy, clock: Clock, updates: GateUpdates) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.updates = updates

    async def open_gate(
        self,
        *,
        model: str,
        version: str,
        release: JsonObject,
        policy: str,
        evidence: JsonObject,
        requesters: Sequence[str] = (),
    ) -> Gate | None:
        """Open the promotion gate of a newly registered model version; None if it is already open.

        ``release`` is the pipeline to start on approval (``project``, ``pipeline``, ``branch``,
        ``parameters``); ``evidence`` goes into the details as it is (``apps``, ``blockers``...).
        """
        now = self.clock.now()
        settings = self.policy.settings.gates.get(policy) or self.policy.settings.gates.get("default")
        expires = now + (settings.expire_after if settings else timedelta(hours=72))
        gate = Gate(
            gate_id=promotion_gate_id(model, version),
            source=HANDOFF,
            external_id=f"{model}:{version}",
            title=f"Promote {model}:{version}",
            state=GateState.PENDING,
            version=1,
            created_at=now,
            expires_at=expires,
            details={
                **evidence,
                "model": model,
                "version": version,
                "release": release,
                "project": str(release.get("project", "")),
                "approvers": [],
                "approver_names": list(settings.approver_roles) if settings else [],
                "requesters": [r.lower() for r in requesters],
                "min_required": 1,
                "applied": False,
            },
            policy={"name": policy},
        )
        if not await self.store.create_gate(gate):
            return None
        log.info("promotion gate %s opened", gate.gate_id)
        return gate

    async def supersede_older(self, gate: Gate) -> list[Gate]:
        """Supersede the promotion gates that ``gate``'s model version, or a newer one, puts out of date.

        Each pending promotion gate of the same model and release pipeline whose version is older than one
        that is pending or approved is superseded by the newest of those: ``gate``'s older versions, and
        ``gate`` itself when its version is the older (a registration that arrived late). Superseding is a
        compare-and-set, so a gate decided meanwhile stays decided, and each gate is superseded once, however
        many replicas try; it goes to the audit log, and its cards lose their buttons and name the newer
        version. Idempotent; returns the gates this call superseded.
        """
        if gate.source != HANDOFF:
            return []
        live = await self.like(gate)
        superseded = []
        for older in live:
            newer = _newest_over(older, live) if older.state is GateState.PENDING else None
            if newer is not None and (done := await self._supersede(older, newer)) is not None:
                superseded.append(done)
        return superseded

    async def like(self, gate: Gate) -> list[Gate]:
        """The pending and approved promotion gates that release what ``gate`` releases."""
        target = _promotion_target(gate)
        return [
            found
            for state in (GateState.PENDING, GateState.APPROVED)
            for found in await self.store.list_gates(state)
            if found.source == HANDOFF and _promotion_target(found) == target
        ]

    async def out_of_date(self, gate: Gate) -> bool:
        """Whether the pending promotion ``gate`` has a newer version's gate pending or approved: then it is
        superseded (or it changed meanwhile), and the caller looks again."""
        if gate.source != HANDOFF:
            return False
        newer = _newest_over(gate, await self.like(gate))
        if newer is None:
            return False
        await self._supersede(gate, newer)
        return True

    async def released_since(self, gate: Gate) -> Gate | None:
        """The newest promotion of a version newer than ``gate``'s whose release has started, if any."""
        released = [g for g in await self.like(gate) if g.details.get("release_run")]
        return _newest_over(gate, released)

    async def already_decided(self, gate: Gate) -> tuple[str, str]:
        """The audit outcome and the answer for a click on ``gate``, decided already. A superseded promotion
        names the version that superseded it and, if that one is superseded too, the latest since."""
        newer = gate.details.get("superseded_by") if gate.state is GateState.SUPERSEDED else None
        if not newer:
            return "refused: already decided", decided_already(gate)
        label, by = version_label(gate), f"{newer.get('model')}:{newer.get('version')}"
        latest, state, seen = by, GateState.PENDING, {gate.gate_id}
        while newer and newer.get("gate_id") not in seen:
            seen.add(str(newer.get("gate_id")))
            found = await self.store.get_gate(str(newer.get("gate_id")))
            if found is None:
                break
            latest, state = version_label(found), found.state
            newer = found.details.get("superseded_by") if found.state is GateState.SUPERSEDED else None
        then = "decide on that one" if state is GateState.PENDING else f"it was {state.value}"
        where = (
            f"{by}, a newer version with its own promotion gate: {then}"
            if latest == by
            else f"{by} and later versions: {latest} is the latest, with its own promotion gate; {then}"
        )
        return (
            f"refused: superseded by {by}",
            f"Thanks, but {label} was superseded by {where}. Nothing is released or tagged for {label}.",
        )

    async def _supersede(self, gate: Gate, newer: Gate) -> Gate | None:
        """Move the pending ``gate`` to superseded by ``newer`` (compare-and-set); None if it was decided
        meanwhile."""
        for _ in range(20):
            current = await self.store.get_gate(gate.gate_id)
            if current is None or current.state is not GateState.PENDING:
                return None
            by = {
                "gate_id": newer.gate_id,
                "model": newer.details.get("model"),
                "version": newer.details.get("version"),
                "url": newer.details.get("model_url"),
            }
            details = {k: v for k, v in current.details.items() if k != "apply_claimed_at"}
            details["superseded_by"] = by
            now = self.clock.now()
            updated = await self.store.update_gate(
                current.gate_id, current.version, GateState.SUPERSEDED, details, decided_at=now
            )
            if updated is None:
                continue  # a click or new evidence changed it first: look again
            label = version_label(newer)
            log.info("gate %s superseded by %s", gate.gate_id, label)
            await self.updates.audit("Handoff", "supersede", updated, f"superseded by {label}")
            await self.updates.publish(updated, note=f"{label} is newer and has its own promotion gate.")
            return updated
        log.error("gate %s kept changing: not superseded by %s", gate.gate_id, version_label(newer))
        return None

"""Gates and their decisions; every change is a compare-and-set on the gate's version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from adapters.sql.base import SqlBase, insert_unless_present, must_utc, storable, utc
from adapters.sql.retention import FORGET_CHUNK, forget_in_chunks
from adapters.sql.tables import gate_decisions, gates
from bot.records import Gate, GateDecision, GateState, JsonObject


def _gate(row: Any) -> Gate:
    return Gate(
        gate_id=row.gate_id,
        source=row.source,
        external_id=row.external_id,
        title=row.title,
        state=GateState(row.state),
        version=int(row.version),
        created_at=must_utc(row.created_at),
        expires_at=utc(row.expires_at),
        details=row.details,
        policy=row.policy,
        decided_at=utc(row.decided_at),
    )


def _decision(row: Any) -> GateDecision:
    return GateDecision(
        gate_id=row.gate_id,
        actor=row.actor,
        platform=row.platform,
        decision=row.decision,
        at=must_utc(row.at),
        comment=row.comment,
    )


class SqlGateStore(SqlBase):
    async def create_gate(self, gate: Gate) -> bool:
        values = {
            "gate_id": gate.gate_id,
            "source": gate.source,
            "external_id": storable(gate.external_id),
            "title": storable(gate.title),
            "state": gate.state.value,
            "version": gate.version,
            "created_at": gate.created_at,
            "expires_at": gate.expires_at,
            "decided_at": gate.decided_at,
            "details": gate.details,
            "policy": gate.policy,
        }
        async with self.engine.begin() as conn:
            inserted = await conn.execute(insert_unless_present(self.dialect, gates, values, ["gate_id"]))
            return inserted.first() is not None

    async def get_gate(self, gate_id: str) -> Gate | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(gates).where(gates.c.gate_id == gate_id))).first()
        return _gate(row) if row else None

    async def update_gate(
        self,
        gate_id: str,
        expected_version: int,
        state: GateState,
        details: JsonObject | None = None,
        decision: GateDecision | None = None,
        decided_at: datetime | None = None,
    ) -> Gate | None:
        values: dict[str, Any] = {"state": state.value, "version": expected_version + 1}
        if details is not None:
            values["details"] = details
        if decided_at is not None:
            values["decided_at"] = decided_at
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(gates)
                .where(gates.c.gate_id == gate_id, gates.c.version == expected_version)
                .values(**values)
                .returning(*gates.c)
            )
            row = result.first()
            if row is None:
                return None
            if decision is not None:
                await conn.execute(
                    insert(gate_decisions).values(
                        gate_id=gate_id,
                        actor=storable(decision.actor),
                        platform=decision.platform,
                        decision=decision.decision,
                        comment=storable(decision.comment),
                        at=decision.at,
                    )
                )
        return _gate(row)

    async def reopen_gate(
        self, gate_id: str, expected_version: int, details: JsonObject, withdrawn: GateDecision
    ) -> Gate | None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(gates)
                .where(gates.c.gate_id == gate_id, gates.c.version == expected_version)
                .values(state=GateState.PENDING.value, version=expected_version + 1, details=details, decided_at=None)
                .returning(*gates.c)
            )
            row = result.first()
            if row is None:
                return None
            latest = (
                select(func.max(gate_decisions.c.id))
                .where(
                    gate_decisions.c.gate_id == gate_id,
                    gate_decisions.c.actor == withdrawn.actor,
                    gate_decisions.c.decision == withdrawn.decision,
                )
                .scalar_subquery()
            )
            await conn.execute(delete(gate_decisions).where(gate_decisions.c.id == latest))
        return _gate(row)

    async def gate_decisions(self, gate_id: str) -> list[GateDecision]:
        query = select(gate_decisions).where(gate_decisions.c.gate_id == gate_id).order_by(gate_decisions.c.id)
        async with self.engine.connect() as conn:
            return [_decision(row) for row in await conn.execute(query)]

    async def list_gates(self, state: GateState | None = None) -> list[Gate]:
        query = select(gates).order_by(gates.c.created_at)
        if state is not None:
            query = query.where(gates.c.state == state.value)
        async with self.engine.connect() as conn:
            return [_gate(row) for row in await conn.execute(query)]

    async def forget_gates_decided_before(self, cutoff: datetime, chunk: int = FORGET_CHUNK) -> int:
        decided = (gates.c.state != GateState.PENDING.value) & (gates.c.decided_at < cutoff)

        def forget_chunk(conn: Connection) -> int:
            ids = list(conn.execute(select(gates.c.gate_id).where(decided).limit(chunk)).scalars())
            if ids:  # a decided gate never opens again: nothing to read twice
                conn.execute(delete(gate_decisions).where(gate_decisions.c.gate_id.in_(ids)))
                conn.execute(delete(gates).where(gates.c.gate_id.in_(ids)))
            return len(ids)

        return await forget_in_chunks(self.engine, forget_chunk, chunk)

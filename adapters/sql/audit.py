"""The append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from adapters.sql.base import SqlBase, must_utc, storable
from adapters.sql.retention import forget_rows
from adapters.sql.tables import audit_log
from bot.records import AuditEntry


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=int(row.id),
        at=must_utc(row.at),
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        platform=row.platform,
        conversation=row.conversation,
        comment=row.comment,
        details=row.details,
    )


class SqlAuditLog(SqlBase):
    async def append_audit(self, entry: AuditEntry) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(audit_log)
                .values(
                    at=entry.at,
                    actor=storable(entry.actor),
                    action=entry.action,
                    target=storable(entry.target),
                    outcome=storable(entry.outcome),
                    platform=entry.platform,
                    conversation=storable(entry.conversation),
                    comment=storable(entry.comment),
                    details=entry.details,
                )
                .returning(audit_log.c.id)
            )
            return int(result.scalar_one())

    async def list_audit(self, since: datetime | None = None) -> list[AuditEntry]:
        query = select(audit_log).order_by(audit_log.c.id)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        async with self.engine.connect() as conn:
            return [_entry(row) for row in await conn.execute(query)]

    async def forget_audit_before(self, cutoff: datetime) -> int:
        return await forget_rows(self.engine, audit_log, audit_log.c.at < cutoff)

"""The SQL implementation of the ``Store`` port."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from adapters.sql.audit import SqlAuditLog
from adapters.sql.cards import SqlCardStore
from adapters.sql.command_runs import SqlCommandRunStore
from adapters.sql.conversations import SqlConversationStore
from adapters.sql.engine import create_engine_for
from adapters.sql.events import SqlEventLog
from adapters.sql.gates import SqlGateStore
from adapters.sql.migrate import current_revision, head_revision, upgrade_database
from adapters.sql.outbox import SqlOutbox
from adapters.sql.subscriptions import SqlSubscriptionStore


class SqlStore(
    SqlEventLog,
    SqlOutbox,
    SqlCardStore,
    SqlGateStore,
    SqlAuditLog,
    SqlSubscriptionStore,
    SqlConversationStore,
    SqlCommandRunStore,
):
    """Everything Handoff keeps, in SQLite or PostgreSQL.

    Use :meth:`open` to build one from a store URL (``sqlite:///path.db`` or ``postgresql://…``).
    """

    @classmethod
    async def open(cls, url: str, migrate: bool = True) -> SqlStore:
        """Connect to the database at ``url`` and, unless told not to, migrate it to the latest schema."""
        store = cls(create_engine_for(url))
        if migrate:
            await store.migrate()
        return store

    async def migrate(self) -> str:
        return await upgrade_database(self.engine)

    async def is_ready(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return await current_revision(self.engine) == head_revision()
        except (SQLAlchemyError, OSError):
            return False

    async def close(self) -> None:
        await self.engine.dispose()

"""Command runs, deduplicated by idempotency key within a window."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from adapters.sql.base import SqlBase, insert_unless_present, must_utc, utc
from adapters.sql.tables import command_runs
from bot.records import CONFIRMATION_KEY_PREFIX, CommandRun, CommandRunState, JsonObject


def _run(row: Any) -> CommandRun:
    return CommandRun(
        id=int(row.id),
        idempotency_key=row.request_key,
        actor=row.actor,
        platform=row.platform,
        conversation=row.conversation,
        command=row.command,
        target=row.target,
        state=CommandRunState(row.state),
        created_at=must_utc(row.created_at),
        backend_run_id=row.backend_run_id,
        details=row.details,
        updated_at=utc(row.updated_at),
    )


class SqlCommandRunStore(SqlBase):
    async def start_command_run(
        self, run: CommandRun, window: timedelta, *, until_ended: bool = False
    ) -> tuple[CommandRun, bool]:
        # The unique idempotency_key column holds the key only while a run counts (within the window
        # and, with until_ended, until the run ends); a holder that no longer counts gives it up with a
        # compare-and-set, so concurrent callers on any replica agree on one run.
        values = {
            "idempotency_key": run.idempotency_key,
            "request_key": run.idempotency_key,
            "actor": run.actor,
            "platform": run.platform,
            "conversation": run.conversation,
            "command": run.command,
            "target": run.target,
            "state": run.state.value,
            "backend_run_id": run.backend_run_id,
            "details": run.details,
            "created_at": run.created_at,
            "updated_at": run.created_at,
        }
        for _ in range(5):
            async with self.engine.begin() as conn:
                inserted = await conn.execute(
                    insert_unless_present(self.dialect, command_runs, values, ["idempotency_key"])
                )
                if inserted.first() is not None:
                    row = (
                        await conn.execute(
                            select(command_runs).where(command_runs.c.idempotency_key == run.idempotency_key)
                        )
                    ).one()
                    return _run(row), True
                holder = (
                    await conn.execute(
                        select(command_runs).where(command_runs.c.idempotency_key == run.idempotency_key)
                    )
                ).first()
                if holder is None:
                    continue
                ended = until_ended and CommandRunState(holder.state).ended
                if must_utc(holder.created_at) > run.created_at - window and not ended:
                    return _run(holder), False
                await conn.execute(
                    update(command_runs)
                    .where(command_runs.c.id == holder.id, command_runs.c.idempotency_key == run.idempotency_key)
                    .values(idempotency_key=None)
                )
        raise RuntimeError(f"could not settle command run {run.idempotency_key!r}")

    async def confirm_command_run(
        self, confirmation_id: int, run: CommandRun, window: timedelta, *, until_ended: bool = False
    ) -> tuple[CommandRun | None, bool]:
        # The confirmation's row takes the run's key with a compare-and-set on it still waiting (its
        # confirmation key and state): of concurrent confirmations one wins, the others change nothing. A
        # holder of the key that no longer counts gives it up as in start_command_run; two rows taking the
        # same key at once collide on the unique column, and the loser settles again.
        waiting = (
            command_runs.c.id == confirmation_id,
            command_runs.c.request_key.startswith(CONFIRMATION_KEY_PREFIX, autoescape=True),
            command_runs.c.state == CommandRunState.REQUESTED.value,
        )
        for _ in range(5):
            try:
                async with self.engine.begin() as conn:
                    pending = (await conn.execute(select(command_runs).where(*waiting))).first()
                    if pending is None:
                        return None, False
                    holder = (
                        await conn.execute(
                            select(command_runs).where(command_runs.c.idempotency_key == run.idempotency_key)
                        )
                    ).first()
                    if holder is not None:
                        ended = until_ended and CommandRunState(holder.state).ended
                        if must_utc(holder.created_at) > run.created_at - window and not ended:
                            closed = await conn.execute(
                                update(command_runs)
                                .where(*waiting)
                                .values(
                                    state=CommandRunState.CANCELED.value,
                                    updated_at=run.created_at,
                                    details={**pending.details, "same_as": int(holder.id)},
                                )
                            )
                            return (_run(holder), False) if closed.rowcount else (None, False)
                        await conn.execute(
                            update(command_runs)
                            .where(
                                command_runs.c.id == holder.id,
                                command_runs.c.idempotency_key == run.idempotency_key,
                            )
                            .values(idempotency_key=None)
                        )
                    became = await conn.execute(
                        update(command_runs)
                        .where(*waiting)
                        .values(
                            idempotency_key=run.idempotency_key,
                            request_key=run.idempotency_key,
                            state=run.state.value,
                            backend_run_id=run.backend_run_id,
                            details=run.details,
                            created_at=run.created_at,
                            updated_at=run.created_at,
                        )
                    )
                    if not became.rowcount:
                        return None, False
                    row = (await conn.execute(select(command_runs).where(command_runs.c.id == confirmation_id))).one()
                    return _run(row), True
            except IntegrityError:
                continue  # another confirmation took the key at the same moment: look again
        raise RuntimeError(f"could not settle the confirmation of command run {run.idempotency_key!r}")

    async def update_command_run(
        self,
        run_id: int,
        state: CommandRunState,
        now: datetime,
        backend_run_id: str | None = None,
        details: JsonObject | None = None,
        *,
        expected: CommandRunState,
    ) -> bool:
        # one UPDATE whose WHERE names the state the caller saw: PostgreSQL re-checks it on the row a
        # concurrent writer left (read committed), SQLite's writers go one at a time
        values: dict[str, Any] = {"state": state.value, "updated_at": now}
        if backend_run_id is not None:
            values["backend_run_id"] = backend_run_id
        if details is not None:
            values["details"] = details
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(command_runs)
                .where(command_runs.c.id == run_id, command_runs.c.state == expected.value)
                .values(**values)
            )
        return bool(result.rowcount)

    async def get_command_run(self, run_id: int) -> CommandRun | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(command_runs).where(command_runs.c.id == run_id))).first()
        return _run(row) if row else None

    async def list_command_runs(self, target: str | None = None, limit: int = 10) -> list[CommandRun]:
        query = (
            select(command_runs)
            .where(~command_runs.c.request_key.startswith(CONFIRMATION_KEY_PREFIX, autoescape=True))
            .order_by(command_runs.c.created_at.desc(), command_runs.c.id.desc())
            .limit(limit)
        )
        if target is not None:
            # a model's runs include the integrations run against one of its versions
            against = command_runs.c.command.contains(f" model={target}:", autoescape=True)
            query = query.where(or_(command_runs.c.target == target, against))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_run(row) for row in rows]

    async def unfinished_command_runs(self, created_after: datetime) -> list[CommandRun]:
        query = (
            select(command_runs)
            .where(
                command_runs.c.state.in_([CommandRunState.REQUESTED.value, CommandRunState.STARTED.value]),
                command_runs.c.created_at > created_after,
                ~command_runs.c.request_key.startswith(CONFIRMATION_KEY_PREFIX, autoescape=True),
            )
            .order_by(command_runs.c.created_at, command_runs.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_run(row) for row in rows]

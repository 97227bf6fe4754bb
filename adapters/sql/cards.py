"""Posted cards: which platform message shows a grouping key in a conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, Select, and_, delete, func, select, union
from sqlalchemy.engine import Connection

from adapters.sql.base import SqlBase, address, upsert, utc
from adapters.sql.retention import FORGET_CHUNK, forget_in_chunks
from adapters.sql.tables import card_states, cards, deliveries, gates
from bot.records import ConversationAddress, DeliveryState, GateState, PostedCard


def _card(row: Any) -> PostedCard:
    return PostedCard(
        grouping_key=row.grouping_key,
        conversation=address(row.platform, row.conversation_id),
        message_id=row.message_id,
        thread_id=row.thread_id,
        rank=int(row.rank),
        content=row.content,
        updated_at=utc(row.updated_at),
        first_rank=None if row.first_rank is None else int(row.first_rank),
    )


def card_upsert(dialect: str, card: PostedCard) -> Any:
    """The statement that inserts or replaces ``card`` for its grouping key and conversation (a replaced card
    keeps its ``first_rank``)."""
    values = {
        "grouping_key": card.grouping_key,
        "platform": card.conversation.platform,
        "conversation_id": card.conversation.conversation_id,
        "message_id": card.message_id,
        "thread_id": card.thread_id,
        "rank": card.rank,
        "content": card.content,
        "updated_at": card.updated_at,
        "first_rank": card.rank if card.first_rank is None else card.first_rank,
    }
    return upsert(dialect, cards, values, ["grouping_key", "platform", "conversation_id"], kept=["first_rank"])


def _waiting_gates_detail(name: str) -> Select[tuple[str]]:
    """The detail ``name`` of the gates still waiting for a decision, where they have it (never NULL: a NULL in
    ``NOT IN`` would keep every card)."""
    value = gates.c.details[name].as_string()
    return select(value).where(gates.c.state == GateState.PENDING.value, value.is_not(None), value != "")


def _cards_of_waiting_gates() -> CompoundSelect[tuple[str]]:
    """The keys of the cards a gate still waiting for a decision belongs to: its own card (the approval's, or the
    promotion's), the card of the run a pipeline approval waits in (whose stages go on once it is decided), and
    the card of the model version a promotion gate releases. Its details name them; the state index finds the
    waiting gates."""
    return union(
        select(gates.c.gate_id).where(gates.c.state == GateState.PENDING.value),
        _waiting_gates_detail("run_key"),
        _waiting_gates_detail("model_card_key"),
    )


class SqlCardStore(SqlBase):
    async def get_card(self, grouping_key: str, conversation: ConversationAddress) -> PostedCard | None:
        query = select(cards).where(
            cards.c.grouping_key == grouping_key,
            cards.c.platform == conversation.platform,
            cards.c.conversation_id == conversation.conversation_id,
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _card(row) if row else None

    async def save_card(self, card: PostedCard) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(card_upsert(self.dialect, card))

    async def cards_for(self, grouping_key: str) -> list[PostedCard]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(cards).where(cards.c.grouping_key == grouping_key).order_by(cards.c.id))
            return [_card(row) for row in rows]

    async def forget_cards_before(self, cutoff: datetime, chunk: int = FORGET_CHUNK) -> int:
        model_card = func.coalesce(card_states.c.state["model_card_key"].as_string(), "")
        forgotten = and_(
            card_states.c.updated_at < cutoff,
            # a card still on its way keeps its card, and so does every card a gate still waiting belongs to
            card_states.c.grouping_key.not_in(
                select(deliveries.c.grouping_key).where(deliveries.c.state == DeliveryState.PENDING.value)
            ),
            card_states.c.grouping_key.not_in(_cards_of_waiting_gates()),
            # an app's card of a model version a waiting promotion gate releases (it names the version's card)
            model_card.not_in(_waiting_gates_detail("model_card_key")),
        )

        def forget_chunk(conn: Connection) -> int:
            keys = list(conn.execute(select(card_states.c.grouping_key).where(forgotten).limit(chunk)).scalars())
            # the condition again: on PostgreSQL an event may have updated one of them since it was read
            gone = delete(card_states).where(card_states.c.grouping_key.in_(keys), forgotten)
            deleted = list(conn.execute(gone.returning(card_states.c.grouping_key)).scalars())
            if deleted:
                conn.execute(delete(cards).where(cards.c.grouping_key.in_(deleted)))
            return len(keys)

        return await forget_in_chunks(self.engine, forget_chunk, chunk)

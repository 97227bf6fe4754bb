"""Posted cards: which platform message shows a grouping key in a conversation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from adapters.sql.base import SqlBase, address, upsert, utc
from adapters.sql.tables import cards
from bot.records import ConversationAddress, PostedCard


def _card(row: Any) -> PostedCard:
    return PostedCard(
        grouping_key=row.grouping_key,
        conversation=address(row.platform, row.conversation_id),
        message_id=row.message_id,
        thread_id=row.thread_id,
        rank=int(row.rank),
        content=row.content,
        updated_at=utc(row.updated_at),
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
        values = {
            "grouping_key": card.grouping_key,
            "platform": card.conversation.platform,
            "conversation_id": card.conversation.conversation_id,
            "message_id": card.message_id,
            "thread_id": card.thread_id,
            "rank": card.rank,
            "content": card.content,
            "updated_at": card.updated_at,
        }
        async with self.engine.begin() as conn:
            await conn.execute(upsert(self.dialect, cards, values, ["grouping_key", "platform", "conversation_id"]))

    async def cards_for(self, grouping_key: str) -> list[PostedCard]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(cards).where(cards.c.grouping_key == grouping_key).order_by(cards.c.id))
            return [_card(row) for row in rows]

"""The schema, as SQLAlchemy Core tables. Migrations in ``migrations/versions`` create it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

received_events = Table(
    "received_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(400), nullable=False, unique=True),
    Column("source", String(64), nullable=False),
    Column("kind", String(128), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("payload", JSON, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_key", String(400), nullable=True),
    Column("platform", String(16), nullable=False),
    Column("conversation_id", String(400), nullable=False),
    Column("grouping_key", String(400), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Index("ix_deliveries_due", "state", "next_attempt_at"),
    Index("ix_deliveries_conversation", "platform", "conversation_id", "state", "id"),
)

# When each conversation was sent a message, for the platforms' per-conversation limits across replicas
# (see bot.ratelimit); kept for the longest limit's window.
conversation_sends = Table(
    "conversation_sends",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("platform", String(16), nullable=False),
    Column("conversation_id", String(400), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False, index=True),
    Index("ix_conversation_sends_conversation", "platform", "conversation_id", "sent_at"),
)

# The merged state of each living card (one per grouping key), changed by compare-and-set on version.
card_states = Table(
    "card_states",
    metadata,
    Column("grouping_key", String(400), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

# The card each conversation was last shown for a repeat key (see bot.records.RepeatMark), one per key.
repeat_marks = Table(
    "repeat_marks",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("conversation_id", String(400), primary_key=True),
    Column("repeat_key", String(400), primary_key=True),
    Column("grouping_key", String(400), nullable=False),
    Column("shown_at", DateTime(timezone=True), nullable=False, index=True),
)

cards = Table(
    "cards",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("grouping_key", String(400), nullable=False, index=True),
    Column("platform", String(16), nullable=False),
    Column("conversation_id", String(400), nullable=False),
    Column("message_id", String(400), nullable=False),
    Column("thread_id", String(400), nullable=True),
    Column("rank", Integer, nullable=False, default=0),
    Column("content", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    # the version first posted in the conversation (NULL: posted before Handoff recorded it)
    Column("first_rank", Integer, nullable=True),
    UniqueConstraint("grouping_key", "platform", "conversation_id", name="uq_cards_key_conversation"),
)

gates = Table(
    "gates",
    metadata,
    Column("gate_id", String(400), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("external_id", String(400), nullable=False),
    Column("title", Text, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True, index=True),
    Column("details", JSON, nullable=False),
    Column("policy", JSON, nullable=False),
)

gate_decisions = Table(
    "gate_decisions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("gate_id", String(400), ForeignKey("gates.gate_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("actor", String(400), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("comment", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(400), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("platform", String(16), nullable=False),
    Column("conversation", String(400), nullable=False),
    Column("comment", Text, nullable=False),
    Column("details", JSON, nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("platform", String(16), nullable=False),
    Column("conversation_id", String(400), nullable=False, index=True),
    Column("filters", JSON, nullable=False),
    Column("created_by", String(400), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("muted_until", DateTime(timezone=True), nullable=True),
    # StoredSubscription.filters_key: one subscription per conversation and filters, whoever stores it when
    # (null for a duplicate stored before the key existed)
    Column("filters_key", String(64), nullable=True),
    Index("ix_subscriptions_conversation_filters", "platform", "conversation_id", "filters_key", unique=True),
    # a removed subscription's id is never another's (chat names them by id: `unsubscribe 2`, the audit log);
    # PostgreSQL's identity never reuses one
    sqlite_autoincrement=True,
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("platform", String(16), nullable=False),
    Column("conversation_id", String(400), nullable=False),
    Column("name", String(400), nullable=False),
    Column("tenant_id", String(128), nullable=True),
    Column("team_id", String(400), nullable=True),
    Column("reference", JSON, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("platform", "conversation_id", name="uq_conversations_address"),
)

command_runs = Table(
    "command_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # set while the run counts for deduplication; cleared when its window has passed
    Column("idempotency_key", String(400), nullable=True, unique=True),
    Column("request_key", String(400), nullable=False, index=True),
    Column("actor", String(400), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("conversation", String(400), nullable=False),
    Column("command", Text, nullable=False),
    Column("target", String(400), nullable=False),
    Column("state", String(16), nullable=False),
    Column("backend_run_id", String(400), nullable=True),
    Column("details", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

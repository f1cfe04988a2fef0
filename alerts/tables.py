"""The alerting tables (SQLAlchemy Core); migration ``0002_alerts`` creates them.

Times are integer epoch milliseconds (UTC) on both SQLite and PostgreSQL, so
comparisons and leases behave the same on each.

alert_states            one row per alert that is pending, firing, or resolved but not yet notified
alert_groups            one row per alert group with a timer (group_wait / group_interval)
alert_notification_log  per group and channel: the incident, what was notified, when
alert_silences          silences (matchers, start and end, author, comment)
alert_outbox            every notification, from its queuing to its delivery or failure
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
"""The alerting tables' metadata, for Alembic next to the monitor's."""

alert_states = Table(
    "alert_states",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("rule", String(255), nullable=False),
    Column("model", String(255), nullable=False, index=True),
    Column("labels", Text, nullable=False),
    Column("group_key", String(64), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("streak", Integer, nullable=False),
    Column("prior_streak", Integer, nullable=False),
    Column("quiet", Integer, nullable=False, server_default="0"),
    Column("prior_quiet", Integer, nullable=False, server_default="0"),
    Column("last_seen_at", BigInteger, nullable=False, server_default="0"),
    Column("last_window_index", Integer, nullable=False),
    Column("since", BigInteger, nullable=False),
    Column("fired_at", BigInteger),
    Column("resolved_at", BigInteger),
    Column("stale", Boolean, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

alert_groups = Table(
    "alert_groups",
    metadata,
    Column("group_key", String(64), primary_key=True),
    Column("labels", Text, nullable=False),
    Column("model", String(255), nullable=False),
    Column("next_flush_at", BigInteger, nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
)

alert_notification_log = Table(
    "alert_notification_log",
    metadata,
    Column("group_key", String(64), primary_key=True),
    Column("channel", String(255), primary_key=True),
    Column("incident_id", String(64), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("notified", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("last_sent_at", BigInteger, nullable=False),
)

alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("matchers", Text, nullable=False),
    Column("starts_at", BigInteger, nullable=False),
    Column("ends_at", BigInteger, nullable=False, index=True),
    Column("author", String(255), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("channel", String(255), nullable=False),
    Column("channel_type", String(32), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("group_key", String(64), nullable=False),
    Column("model", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("rules", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", BigInteger),
    Column("delivered_at", BigInteger),
    Column("last_status", Integer),
    Column("last_error", Text),
    UniqueConstraint("channel", "idempotency_key", name="uq_alert_outbox_key"),
    Index("ix_alert_outbox_group", "channel", "group_key", "state", "id"),
    # the evidence pages: a model's notifications, and an incident's by key prefix
    Index("ix_alert_outbox_model", "model", "id"),
    Index("ix_alert_outbox_key", "idempotency_key"),
)

"""SQLAlchemy Core tables of the register. Alembic migrations are written against these.

The ``facts`` journal is the truth (each fact keeps its command and provenance); ``persons``,
``entitlements`` and ``detentions`` are projections kept in the same transaction so the
register can be queried; ``register_changes`` is the history of every projected value.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# JSONB on PostgreSQL, JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for long journals.
BigId = BigInteger().with_variant(Integer(), "sqlite")

persons = Table(
    "persons", metadata,
    Column("id", String(36), primary_key=True),
    Column("nhs_number", String(10), nullable=True, unique=True),
    Column("nhs_number_verified", Boolean, nullable=True),
    Column("family_name", String(200)),
    Column("given_name", String(200)),
    Column("birth_date", Date),
    Column("sex", String(20)),
    Column("postcode", String(10)),
    Column("gp_practice_ods", String(12)),
    Column("death_date", Date),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

person_identifiers = Table(
    "person_identifiers", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("person_id", String(36), ForeignKey("persons.id"), nullable=False, index=True),
    Column("source", String(64), nullable=False),
    Column("value", String(64), nullable=False),
    UniqueConstraint("source", "value", name="uq_person_identifiers_source_value"),
)

# Identity blocking keys (``reconciliation.blocking``) of each person's current demographics:
# an incoming person with no exact match is compared only with the people sharing a key,
# found by one indexed query (the repository rewrites a person's keys when they change).
person_blocking_keys = Table(
    "person_blocking_keys", metadata,
    Column("person_id", String(36), ForeignKey("persons.id"), primary_key=True),
    Column("key", String(40), primary_key=True),
    # Whether the person holds a valid NHS number: a record that carries one can only ever
    # link to a person without (different valid numbers never link), and the index lets
    # that look-up skip everyone else sharing a common key.
    Column("nhs_known", Boolean, nullable=False, default=False),
    Index("ix_person_blocking_keys_key_nhs_known", "key", "nhs_known"),
)

# One row per merge (ADT A40, or a register owner's "same-person" decision): what moved from
# the merged person to the survivor, so an un-merge can move exactly that back.
person_merges = Table(
    "person_merges", metadata,
    Column("id", String(36), primary_key=True),
    Column("survivor_id", String(36), ForeignKey("persons.id"), nullable=False, index=True),
    Column("merged_id", String(36), ForeignKey("persons.id"), nullable=False, index=True),
    Column("fact_ids", Json, nullable=False),
    # [fact id, seq before, seq after, retracted_by before], identifiers, NHS number, keys.
    Column("moved", Json, nullable=False),
    Column("source", String(64), nullable=False),
    Column("source_ref", String(200), nullable=False),
    Column("merged_by", String(100), nullable=False),
    Column("merged_at", DateTime(timezone=True), nullable=False),
    Column("unmerged_by", String(100)),
    Column("unmerged_at", DateTime(timezone=True)),
)

facts = Table(
    "facts", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("person_id", String(36), ForeignKey("persons.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("effective", Date, nullable=True),
    Column("payload", Json, nullable=False),
    Column("source", String(64), nullable=False),
    Column("source_ref", String(200), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(100), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("retracted_by", Integer, nullable=True),
    UniqueConstraint("person_id", "seq", name="uq_facts_person_seq"),
    Index("ix_facts_source_ref", "source", "source_ref"),
    Index("ix_facts_kind_effective", "kind", "effective"),
)

entitlements = Table(
    "entitlements", metadata,
    Column("person_id", String(36), ForeignKey("persons.id"), primary_key=True),
    Column("status", String(10), nullable=False, index=True),
    Column("start", Date),
    Column("pending_since", Date),
    Column("trigger_section", String(2)),
    Column("trigger_episode", String(100)),
    Column("responsible_council", String(12), index=True),
    Column("responsible_icb", String(12), index=True),
    Column("named_practitioner", String(200)),
    Column("aftercare_plan_date", Date),
    Column("last_review", Date),
    Column("next_review_due", Date, index=True),
    Column("ended_date", Date),
    Column("ended", Json),
    Column("on_cto", Boolean, nullable=False, default=False),
    Column("in_hospital", Boolean, nullable=False, default=False),
    Column("explain", Json, nullable=False),
    # The episodes last written to ``detentions``, so they are rewritten only on change.
    Column("detentions", Json),
    # The day the projection was last written: a sweep that computes the same values as of
    # a later day leaves the row as it is.
    Column("as_of", Date, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# What the register sweep last settled for each person: their stored position and exceptions
# were brought in step with journal ``version`` under the rules fingerprinted ``rules`` (the
# code and configuration that compute positions and findings) and stay right until
# ``holds_until`` (None: no date alone moves them). The nightly pass skips a person while all
# three still hold (``register_core.services.reconcile``).
person_checks = Table(
    "person_checks", metadata,
    Column("person_id", String(36), ForeignKey("persons.id"), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("rules", String(64), nullable=False),
    Column("holds_until", Date, nullable=True),
)

detentions = Table(
    "detentions", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("person_id", String(36), ForeignKey("persons.id"), nullable=False, index=True),
    Column("ref", String(120), nullable=False),
    Column("section", String(2), nullable=False),
    Column("start", Date, nullable=False),
    Column("end", Date),
    Column("end_reason", String(40)),
    Column("provider_ods", String(12)),
)

register_changes = Table(
    "register_changes", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("person_id", String(36), ForeignKey("persons.id"), nullable=False, index=True),
    Column("field", String(60), nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("source", String(64), nullable=False),
    Column("source_ref", String(200), nullable=False),
    Column("recorded_by", String(100), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

disputes = Table(
    "disputes", metadata,
    Column("id", String(36), primary_key=True),
    Column("person_id", String(36), ForeignKey("persons.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("opened", Date, nullable=False),
    Column("stage", Integer, nullable=False),
    Column("stage_started", Date, nullable=False),
    Column("stage_due", Date),
    Column("summary", Text, nullable=False),
    Column("outcome", Text),
    Column("resolved", Date),
    Column("history", Json, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

register_exceptions = Table(
    "register_exceptions", metadata,
    Column("id", String(36), primary_key=True),
    Column("person_id", String(36), ForeignKey("persons.id"), nullable=True, index=True),
    Column("kind", String(40), nullable=False, index=True),
    Column("status", String(12), nullable=False, index=True),
    Column("fingerprint", String(200), nullable=False),
    Column("summary", Text, nullable=False),
    Column("detail", Json, nullable=False),
    Column("raised", DateTime(timezone=True), nullable=False),
    Column("assigned_to", String(100)),
    Column("decision", Text),
    Column("reason", Text),
    Column("closed_by", String(100)),
    Column("closed_at", DateTime(timezone=True)),
    Index("ix_register_exceptions_fingerprint", "fingerprint"),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    # One role, or several joined by commas ("integration-engineer,register-owner").
    Column("role", String(120), nullable=False),
    Column("source", String(64)),
    Column("label", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

# A web-console login: the cookie holds a random value whose sha256 is ``id``; the session
# acts with its token's roles and dies with it (revoking the token ends the session).
console_sessions = Table(
    "console_sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("token_id", String(36), ForeignKey("api_tokens.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(36), nullable=False),
    Column("role", String(120), nullable=False),
    Column("action", String(10), nullable=False),
    Column("resource", String(60), nullable=False),
    Column("resource_id", String(100)),
    Column("person_id", String(36), index=True),
    Column("purpose", String(200)),
    Column("request", String(300)),
)

# -- inbound (issue 3) -----------------------------------------------------------------------

sources = Table(
    "sources", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("organisation_code", String(12)),
    Column("config", Json, nullable=False),  # MSH-3/4 match, code maps, locations, poll address
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

inbox_messages = Table(
    "inbox_messages", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("message_id", String(200), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("message_type", String(60)),
    Column("partition", Integer, nullable=False, default=0),
    Column("payload", Text, nullable=False),
    # The bytes received, only where ``payload`` encoded as UTF-8 is not them (another
    # character set, invalid bytes, a NUL): NULL means the text gives them back exactly.
    Column("raw", LargeBinary),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("resent", Integer, nullable=False, default=0),
    Column("error", Json),
    Column("ack", Text),
    Column("person_ids", Json),
    Column("processed_at", DateTime(timezone=True)),
    # [[kind, command], ...] as mapped on arrival: the worker applies these instead of
    # parsing the payload again; replay clears them so the payload is mapped afresh.
    Column("commands", Json),
    UniqueConstraint("source", "message_id", name="uq_inbox_messages_source_message_id"),
    Index("ix_inbox_messages_status_partition_id", "status", "partition", "id"),
    Index("ix_inbox_messages_received_at", "received_at"),
)

poll_cursors = Table(
    "poll_cursors", metadata,
    Column("source", String(64), primary_key=True),
    Column("cursor", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True)),
)

# Config as seed: the config file's entry for a source or subscription as last applied, per
# kind and id. The entry is applied again only when its digest changes, so a change made
# through the API lasts until that entry in the file is edited. ``fields``: a digest per
# top-level field of the definition as stored right after applying (never the values), to
# tell which fields a later API change touched.
config_seeds = Table(
    "config_seeds", metadata,
    Column("kind", String(20), primary_key=True),  # source | subscription
    Column("id", String(64), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("fields", Json, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

# -- outbound (issue 5) ----------------------------------------------------------------------

subscriptions = Table(
    "subscriptions", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("endpoint", String(500), nullable=False),
    Column("config", Json, nullable=False),  # credentials, change filter, retry, HL7 header
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per status change: the state partners are told of, snapshotted in the transaction
# of the change (rendered per subscriber kind only when sent).
outbound_changes = Table(
    "outbound_changes", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("person_id", String(36), nullable=False, index=True),
    Column("changes", Json, nullable=False),
    Column("document", Json, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The outbox: one row per (change, subscriber). The row is the truth; broker messages are
# hints. ``id`` orders deliveries of one subscriber and person (sent strictly in that order).
outbound_deliveries = Table(
    "outbound_deliveries", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("change_id", BigId, ForeignKey("outbound_changes.id"), nullable=False),
    Column("subscription_id", String(64), nullable=False),
    Column("person_id", String(36), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("idempotency_key", String(36), nullable=False, unique=True),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claim", String(36)),
    Column("lease_until", DateTime(timezone=True)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_error", Json),
    Column("response_body", Text),
    Column("manual_retries", Integer, nullable=False, default=0),
    Column("warned_at", DateTime(timezone=True)),
    Column("breached_at", DateTime(timezone=True)),
    # When the alert webhook accepted the warning / breach alert (None: not (yet) accepted).
    Column("warning_alerted_at", DateTime(timezone=True)),
    Column("breach_alerted_at", DateTime(timezone=True)),
    # An alert not accepted yet is tried again from then on (None: no alert outstanding).
    Column("alert_retry_at", DateTime(timezone=True)),
    # A delivery closed as ``superseded``: the later delivery that gave the partner a newer state.
    Column("superseded_by", BigId),
    Index("ix_outbound_deliveries_status_next", "status", "next_attempt_at"),
    Index("ix_outbound_deliveries_sub_person_id", "subscription_id", "person_id", "id"),
)
# Partial indexes: claims and SLA checks look only at open rows, which stay few however
# long the delivered history grows.
_WAITING = outbound_deliveries.c.status.in_(("pending", "retrying"))
_OPEN = outbound_deliveries.c.status.in_(("pending", "sending", "retrying", "failed"))
Index("ix_outbound_deliveries_waiting", outbound_deliveries.c.subscription_id,
      outbound_deliveries.c.id, postgresql_where=_WAITING, sqlite_where=_WAITING)
Index("ix_outbound_deliveries_open_due", outbound_deliveries.c.due_at,
      postgresql_where=_OPEN, sqlite_where=_OPEN)
_ALERT_OUTSTANDING = outbound_deliveries.c.alert_retry_at.is_not(None)
Index("ix_outbound_deliveries_alert_retry", outbound_deliveries.c.alert_retry_at,
      postgresql_where=_ALERT_OUTSTANDING, sqlite_where=_ALERT_OUTSTANDING)

# Best-effort SLA alerts sent to the configured webhook, kept whether or not they got through.
delivery_alerts = Table(
    "delivery_alerts", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("delivery_id", BigId, nullable=False, index=True),
    Column("kind", String(10), nullable=False),  # warning | breach
    Column("url", String(500)),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("payload", Json, nullable=False),
)

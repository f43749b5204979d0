"""A small synthetic world for the console tests (TestClient and browser): one token per
role, a source conflict between a trust and a council, an HL7 message that got AE, a failed
delivery and a dispute. Synthetic data only: NHS numbers from the 999 test range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select, update

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.inbound_mapper import make_mapper
from register_core.adapters import outbox
from register_core.adapters.exceptions_store import ExceptionFilter, ExceptionStore
from register_core.adapters.security import Role, TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import inbox_messages, outbound_deliveries
from register_core.domain.commands import PersonRef, RecordDetentionStarted
from register_core.domain.nhs_number import make_synthetic
from register_core.services import disputes
from register_core.services.inbound import drain
from register_core.services.reconcile import sweep
from s117hub.bootstrap import Hub
from tests.e2e.test_mllp_inbound import adt

from .reconcile_people import admit, apply, prov

TRUST_A = SourceDefinition(source_id="trust-a", kind="hl7v2-mllp", display_name="Trust A EPR",
                           hl7_sending_application="EPR", hl7_sending_facility="RX1")
CONFLICT_SERIAL = 41
FAILED_SERIAL = 42
CONSOLE_ROLES = ("integration-engineer", "register-owner", "auditor")
ALL_CALLERS = (*CONSOLE_ROLES, "source-system")


@dataclass
class ConsoleWorld:
    tokens: dict[str, str]  # role → plaintext
    token_ids: dict[str, str]  # role → token id
    conflict_person: str
    conflict_exception: str
    failed_message: int
    failed_delivery: int
    dispute_id: str


def failing_hl7(control_id: str = "CONSOLE-1") -> str:
    """An admission under a local legal-status code ``XX`` the source's code map lacks: AE."""
    return (adt("A01", control_id, nhs=make_synthetic(FAILED_SERIAL), zls="ZLS|XX|20260105")
            .replace("Testperson^Alex", "Invented^Consolia"))


def fix_code_map(hub: Hub) -> None:
    hub.sources.save(TRUST_A.model_copy(update={"code_map": {"XX": "03"}}), hub.clock.now())
    hub.sources.invalidate()


def make_tokens(hub: Hub) -> tuple[dict[str, str], dict[str, str]]:
    store = TokenStore(hub.engine, hub.clock)
    tokens, ids = {}, {}
    for role in ALL_CALLERS:
        source = "trust-a" if role == Role.SOURCE_SYSTEM else None
        ids[role], tokens[role] = store.create(role, source=source, label=f"test {role}")
    return tokens, ids


def seed(hub: Hub, *, with_hl7: bool = True) -> ConsoleWorld:
    hub.sources.save(TRUST_A, hub.clock.now())
    tokens, token_ids = make_tokens(hub)
    today = hub.clock.today()
    start = today - timedelta(days=20)
    # The trust says section 3; the council was told section 2 for the same detention.
    person = admit(hub, CONFLICT_SERIAL, start)
    apply(hub, RecordDetentionStarted(
        person=PersonRef(nhs_number=make_synthetic(CONFLICT_SERIAL)),
        provenance=prov("council-a", f"{CONFLICT_SERIAL}-notified", start), section="02",
        start=start, episode_ref="C41"))
    sweep(hub.engine, hub.clock, hub.policy)
    with hub.engine.connect() as conn:
        _, found = ExceptionStore(conn).query(ExceptionFilter(kind="source-conflict",
                                                              person_id=person))
    assert found, "the sweep raises the conflict"
    failed_message = receive_failing_hl7(hub) if with_hl7 else 0
    with hub.engine.begin() as conn:
        now = hub.clock.now()
        _, (delivery,) = outbox.add_change(
            conn, person_id=person, changes=[{"field": "entitlement.status"}],
            document={"status": "pending"}, received_at=now, now=now,
            deliveries=[outbox.NewDelivery("council-x", "council-rest", now,
                                           now + timedelta(days=7))])
        conn.execute(update(outbound_deliveries).where(outbound_deliveries.c.id == delivery)
                     .values(status="failed", attempts=1, last_status_code=400,
                             response_body='{"error": "unknown council code"}',
                             last_error={"kind": "http", "message": "HTTP 400"}))
    with hub.uow() as uow:
        dispute = disputes.open_dispute(uow, hub.clock, person_id=person, kind="funding",
                                        summary="ICB and council disagree on the split",
                                        opened=date(2026, 5, 1), by=token_ids["register-owner"])
        uow.commit()
    return ConsoleWorld(tokens, token_ids, person, found[0]["id"], failed_message, delivery,
                        dispute["id"])


def receive_failing_hl7(hub: Hub) -> int:
    ack = Hl7Receiver(hub.engine, hub.sources, hub.clock, hub.notify).handle(
        failing_hl7().encode()).ack
    assert b"MSA|AE" in ack, ack
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
    with hub.engine.connect() as conn:
        return int(conn.execute(select(inbox_messages.c.id)
                                .where(inbox_messages.c.message_id == "CONSOLE-1")).scalar_one())

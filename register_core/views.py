"""Read-side queries for the API and the console: the register JSON of architecture section 7."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, and_, func, select

from register_core.adapters.database import as_utc
from register_core.adapters.repository import SqlPersonRepository
from register_core.adapters.tables import (
    disputes,
    entitlements,
    facts,
    persons,
    register_exceptions,
)
from register_core.domain.position import Policy, Position, compute_position


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def person_json(conn: Connection, person_id: str, today: date,
                policy: Policy | None = None) -> dict[str, Any] | None:
    person = SqlPersonRepository(conn).get(person_id)
    if person is None:
        return None
    position = compute_position(person, today, policy)
    return {
        "id": person.id,
        "nhs_number": person.nhs_number,
        "nhs_number_verified": person.nhs_number_verified,
        "family_name": person.family_name,
        "given_name": person.given_name,
        "birth_date": _iso(person.birth_date),
        "sex": person.sex,
        "postcode": person.postcode,
        "gp_practice_ods": person.gp_practice_ods,
        "death_date": _iso(person.death_date),
        "identifiers": [{"source": i.source, "value": i.value} for i in person.identifiers],
        **position_json(position),
        "open_exceptions": open_exceptions(conn, person_id),
        "disputes": disputes_for(conn, person_id, today),
        "provenance": [
            {"fact": f.seq, "kind": f.kind, "source": f.source,
             "source_ref": f.command.provenance.source_ref,
             "received_at": as_utc(f.command.provenance.received_at).isoformat(),
             "recorded_by": f.command.provenance.recorded_by,
             "effective": _iso(f.effective), "retracted": f.retracted_by is not None}
            for f in person.facts],
    }


def position_json(position: Position) -> dict[str, Any]:
    ent = position.entitlement
    return {
        "detentions": [
            {"ref": d.ref, "section": d.section, "start": _iso(d.start), "end": _iso(d.end),
             "end_reason": d.end_reason, "provider_ods": d.provider_ods,
             "sections": [{"section": s, "from": _iso(since)} for s, since in d.sections]}
            for d in position.detentions],
        "legal_status_events": [
            {"kind": e.kind, "date": _iso(e.date), "section": e.section, "end": _iso(e.end),
             "episode_ref": e.episode_ref, "source": e.fact.source}
            for e in position.legal_status_events],
        "entitlement": {
            "status": ent.status,
            "start": _iso(ent.start),
            "pending_since": _iso(ent.pending_since),
            "trigger_section": ent.trigger_section,
            "responsible_council": ent.responsible_council,
            "responsible_icb": ent.responsible_icb,
            "named_practitioner": ent.named_practitioner,
            "aftercare_plan_date": _iso(ent.aftercare_plan_date),
            "last_review": _iso(ent.last_review),
            "next_review_due": _iso(ent.next_review_due),
            "on_cto": position.on_cto,
            "ended": ({"date": _iso(ent.ended.date), "reason": ent.ended.reason,
                       "council_signoff": ent.ended.council_signoff,
                       "icb_signoff": ent.ended.icb_signoff} if ent.ended else None),
        },
        "reviews": [{"date": _iso(d), "kind": k} for d, k in position.reviews],
        "explain": {k: v.as_dict() for k, v in position.explain.items()},
    }


def open_exceptions(conn: Connection, person_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(register_exceptions.c.id, register_exceptions.c.kind,
               register_exceptions.c.raised, register_exceptions.c.summary)
        .where(and_(register_exceptions.c.person_id == person_id,
                    register_exceptions.c.status.in_(("open", "assigned"))))
        .order_by(register_exceptions.c.raised))
    return [{"id": r.id, "kind": r.kind, "raised": as_utc(r.raised).isoformat(),
             "summary": r.summary}
            for r in rows]


def disputes_for(conn: Connection, person_id: str, today: date) -> list[dict[str, Any]]:
    rows = conn.execute(select(disputes).where(disputes.c.person_id == person_id)
                        .order_by(disputes.c.opened)).mappings()
    return [dispute_json(r, today) for r in rows]


def dispute_json(row: Any, today: date) -> dict[str, Any]:
    due = row["stage_due"]
    return {"id": row["id"], "person_id": row["person_id"], "kind": row["kind"],
            "opened": _iso(row["opened"]), "stage": row["stage"], "stage_due": _iso(due),
            "overdue": bool(row["resolved"] is None and due is not None and today > due),
            "summary": row["summary"], "outcome": row["outcome"],
            "resolved": _iso(row["resolved"])}


def people_by_nhs_number(conn: Connection, nhs_number: str) -> list[str]:
    return list(conn.execute(select(persons.c.id).where(persons.c.nhs_number == nhs_number))
                .scalars())


def list_people(conn: Connection, limit: int, offset: int) -> list[str]:
    return list(conn.execute(select(persons.c.id).order_by(persons.c.created_at, persons.c.id)
                             .limit(limit).offset(offset)).scalars())


def entitlement_rows(conn: Connection, today: date, *, status: str | None = None,
                     overdue: bool | None = None, council: str | None = None,
                     icb: str | None = None, limit: int = 100,
                     offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """The register itself, from the projection. ``overdue`` means a review is overdue."""
    conditions = []
    if status:
        conditions.append(entitlements.c.status == status)
    else:
        conditions.append(entitlements.c.status != "none")
    if council:
        conditions.append(entitlements.c.responsible_council == council)
    if icb:
        conditions.append(entitlements.c.responsible_icb == icb)
    if overdue is True:
        conditions.append(and_(entitlements.c.next_review_due.is_not(None),
                               entitlements.c.next_review_due < today))
    elif overdue is False:
        conditions.append((entitlements.c.next_review_due.is_(None))
                          | (entitlements.c.next_review_due >= today))
    where = and_(*conditions)
    total = conn.execute(select(func.count()).select_from(entitlements).where(where)).scalar_one()
    rows = conn.execute(
        select(entitlements, persons.c.nhs_number)
        .join(persons, persons.c.id == entitlements.c.person_id)
        .where(where).order_by(entitlements.c.next_review_due, entitlements.c.person_id)
        .limit(limit).offset(offset)).mappings()
    items = [{
        "person_id": r["person_id"], "nhs_number": r["nhs_number"], "status": r["status"],
        "start": _iso(r["start"]), "trigger_section": r["trigger_section"],
        "responsible_council": r["responsible_council"],
        "responsible_icb": r["responsible_icb"], "named_practitioner": r["named_practitioner"],
        "next_review_due": _iso(r["next_review_due"]),
        "review_overdue": bool(r["next_review_due"] and r["next_review_due"] < today),
        "on_cto": r["on_cto"], "ended": r["ended"]} for r in rows]
    return total, items


def fact_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(facts)).scalar_one()

"""The person repository over SQLAlchemy Core: loads a person with their journal, and saves
new facts, identifiers and the recomputed projections in the caller's transaction."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, select, update

from register_core.domain.codec import command_from_json, to_json
from register_core.domain.errors import ConcurrentChange
from register_core.domain.model import Fact, Identifier, Person
from register_core.domain.position import Position

from .tables import detentions, entitlements, facts, person_identifiers, persons, register_changes

_DEMOGRAPHICS = ("nhs_number", "nhs_number_verified", "family_name", "given_name", "birth_date",
                 "sex", "postcode", "gp_practice_ods", "death_date")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def projection_values(person: Person, position: Position | None) -> dict[str, str | None]:
    """The register values whose every change is kept in ``register_changes``."""
    values = {f"person.{name}": _text(getattr(person, name)) for name in _DEMOGRAPHICS}
    if position is not None:
        ent = position.entitlement
        values.update({
            "entitlement.status": ent.status,
            "entitlement.start": _text(ent.start),
            "entitlement.trigger_section": ent.trigger_section,
            "entitlement.responsible_council": ent.responsible_council,
            "entitlement.responsible_icb": ent.responsible_icb,
            "entitlement.named_practitioner": ent.named_practitioner,
            "entitlement.aftercare_plan_date": _text(ent.aftercare_plan_date),
            "entitlement.next_review_due": _text(ent.next_review_due),
            "entitlement.ended": _text(ent.ended.date if ent.ended else None),
            "entitlement.on_cto": _text(position.on_cto),
        })
    return values


# Built once: constructing statements per call cost more than SQLite running them.
_UPDATE_PERSON = (update(persons)
                  .where(and_(persons.c.id == bindparam("pid"),
                              persons.c.version == bindparam("old_version")))
                  .values({name: bindparam(name) for name in _DEMOGRAPHICS}
                          | {"version": bindparam("new_version"),
                             "updated_at": bindparam("now")}))
_INSERT_IDENTIFIER = insert(person_identifiers)
_INSERT_FACTS = insert(facts)
_INSERT_CHANGES = insert(register_changes)
_INSERT_ENTITLEMENT = insert(entitlements)
_ENTITLEMENT_COLUMNS = [c.name for c in entitlements.columns if c.name != "person_id"]
_UPDATE_ENTITLEMENT = (update(entitlements)
                       .where(entitlements.c.person_id == bindparam("pid"))
                       .values({name: bindparam(name) for name in _ENTITLEMENT_COLUMNS}))
_DELETE_DETENTIONS = delete(detentions).where(detentions.c.person_id == bindparam("pid"))
_INSERT_DETENTIONS = insert(detentions)


class SqlPersonRepository:
    def __init__(self, connection: Connection) -> None:
        self.conn = connection
        self._loaded: dict[str, dict[str, str | None]] = {}
        self._stored_identifiers: dict[str, set[Identifier]] = {}
        self._stored_detentions: dict[str, list[tuple[Any, ...]]] = {}

    # -- reads ---------------------------------------------------------------------------

    def get(self, person_id: str, *, for_update: bool = False) -> Person | None:
        query = select(persons).where(persons.c.id == person_id)
        if for_update and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).mappings().first()
        if row is None:
            return None
        person = Person(id=row["id"], version=row["version"],
                        **{name: row[name] for name in _DEMOGRAPHICS})
        person.identifiers = [
            Identifier(r.source, r.value) for r in self.conn.execute(
                select(person_identifiers.c.source, person_identifiers.c.value)
                .where(person_identifiers.c.person_id == person_id)
                .order_by(person_identifiers.c.id))]
        person.facts = [
            Fact(id=r.id, seq=r.seq, command=command_from_json(r.kind, r.payload),
                 retracted_by=r.retracted_by)
            for r in self.conn.execute(
                select(facts.c.id, facts.c.seq, facts.c.kind, facts.c.payload,
                       facts.c.retracted_by)
                .where(facts.c.person_id == person_id).order_by(facts.c.seq))]
        self._loaded[person_id] = self._stored_projection(person)
        self._stored_identifiers[person_id] = set(person.identifiers)
        return person

    def id_by_nhs_number(self, nhs_number: str) -> str | None:
        return self.conn.execute(
            select(persons.c.id).where(persons.c.nhs_number == nhs_number)).scalar()

    def id_by_identifier(self, source: str, value: str) -> str | None:
        return self.conn.execute(
            select(person_identifiers.c.person_id).where(and_(
                person_identifiers.c.source == source, person_identifiers.c.value == value))
        ).scalar()

    def _stored_projection(self, person: Person) -> dict[str, str | None]:
        values = {f"person.{name}": _text(getattr(person, name)) for name in _DEMOGRAPHICS}
        row = self.conn.execute(
            select(entitlements).where(entitlements.c.person_id == person.id)
        ).mappings().first()
        self._stored_detentions[person.id] = (row["detentions"] or []) if row else []
        if row is not None:
            values.update({
                "entitlement.status": row["status"],
                "entitlement.start": _text(row["start"]),
                "entitlement.trigger_section": row["trigger_section"],
                "entitlement.responsible_council": row["responsible_council"],
                "entitlement.responsible_icb": row["responsible_icb"],
                "entitlement.named_practitioner": row["named_practitioner"],
                "entitlement.aftercare_plan_date": _text(row["aftercare_plan_date"]),
                "entitlement.next_review_due": _text(row["next_review_due"]),
                "entitlement.ended": _text(row["ended_date"]),
                "entitlement.on_cto": _text(row["on_cto"]),
            })
        return values

    # -- writes --------------------------------------------------------------------------

    def save(self, person: Person, position: Position, *, source: str, source_ref: str,
             recorded_by: str, now: datetime) -> list[tuple[str, str | None, str | None]]:
        """Write the person, new facts and projections; return the changed register values.

        Optimistic locking on ``persons.version`` turns a lost race into ConcurrentChange, so
        two writers never both "win" (the caller retries the whole unit of work).
        """
        before = self._loaded.get(person.id, {})
        row = {name: getattr(person, name) for name in _DEMOGRAPHICS}
        created = person.version == 0
        if created:
            self.conn.execute(insert(persons).values(
                id=person.id, version=1, created_at=now, updated_at=now, **row))
            person.version = 1
        else:
            result = self.conn.execute(_UPDATE_PERSON, {
                **row, "pid": person.id, "old_version": person.version,
                "new_version": person.version + 1, "now": now})
            if result.rowcount != 1:
                raise ConcurrentChange("the person was changed by another writer",
                                       field="person", rule="optimistic-lock")
            person.version += 1
        self._save_identifiers(person)
        self._save_facts(person, now)
        self._save_projection(person, position, now, created=created)
        after = projection_values(person, position)
        changes = [(name, before.get(name), value) for name, value in after.items()
                   if before.get(name) != value]
        if changes:
            self.conn.execute(_INSERT_CHANGES, [
                {"person_id": person.id, "field": name, "old_value": old, "new_value": new,
                 "source": source, "source_ref": source_ref, "recorded_by": recorded_by,
                 "at": now} for name, old, new in changes])
        self._loaded[person.id] = after
        return changes

    def _save_identifiers(self, person: Person) -> None:
        known = self._stored_identifiers.setdefault(person.id, set())
        for ident in person.identifiers:
            if ident in known:
                continue
            known.add(ident)
            owner = self.id_by_identifier(ident.source, ident.value)
            if owner is None:
                self.conn.execute(_INSERT_IDENTIFIER, {
                    "person_id": person.id, "source": ident.source, "value": ident.value})
            elif owner != person.id:
                # A merge moves the identifier to the surviving record (ADT A40).
                self.conn.execute(update(person_identifiers).where(and_(
                    person_identifiers.c.source == ident.source,
                    person_identifiers.c.value == ident.value)).values(person_id=person.id))

    def _save_facts(self, person: Person, now: datetime) -> None:
        new = person.new_facts
        if new:
            self.conn.execute(_INSERT_FACTS, [{
                "person_id": person.id, "seq": f.seq, "kind": f.kind, "effective": f.effective,
                "payload": to_json(f.command), "source": f.command.provenance.source,
                "source_ref": f.command.provenance.source_ref,
                "received_at": f.command.provenance.received_at,
                "recorded_by": f.command.provenance.recorded_by, "recorded_at": now,
                "retracted_by": f.retracted_by} for f in new])
        new_seqs = {f.seq for f in new}
        for fact in person.facts:
            if fact.id is not None and fact.retracted_by in new_seqs:
                self.conn.execute(update(facts).where(facts.c.id == fact.id)
                                  .values(retracted_by=fact.retracted_by))
        person.new_facts = []

    def _save_projection(self, person: Person, position: Position, now: datetime, *,
                         created: bool) -> None:
        ent = position.entitlement
        values = {
            "status": ent.status, "start": ent.start, "pending_since": ent.pending_since,
            "trigger_section": ent.trigger_section, "trigger_episode": ent.trigger_episode,
            "responsible_council": ent.responsible_council,
            "responsible_icb": ent.responsible_icb,
            "named_practitioner": ent.named_practitioner,
            "aftercare_plan_date": ent.aftercare_plan_date, "last_review": ent.last_review,
            "next_review_due": ent.next_review_due,
            "ended_date": ent.ended.date if ent.ended else None,
            "ended": ({"date": ent.ended.date.isoformat(), "reason": ent.ended.reason,
                       "council_signoff": ent.ended.council_signoff,
                       "icb_signoff": ent.ended.icb_signoff} if ent.ended else None),
            "on_cto": position.on_cto, "in_hospital": position.in_hospital,
            "explain": {k: v.as_dict() for k, v in position.explain.items()},
            "as_of": position.as_of, "updated_at": now,
        }
        episodes = [[d.ref, d.section, _text(d.start), _text(d.end), d.end_reason,
                     d.provider_ods] for d in position.detentions]
        values["detentions"] = episodes
        if created or self.conn.execute(_UPDATE_ENTITLEMENT,
                                        {**values, "pid": person.id}).rowcount == 0:
            self.conn.execute(_INSERT_ENTITLEMENT, {**values, "person_id": person.id})
        # The detentions table is rewritten only when the episodes really changed.
        if episodes == self._stored_detentions.get(person.id):
            return
        self._stored_detentions[person.id] = episodes
        if not created:
            self.conn.execute(_DELETE_DETENTIONS, {"pid": person.id})
        if position.detentions:
            self.conn.execute(_INSERT_DETENTIONS, [{
                "person_id": person.id, "ref": d.ref, "section": d.section, "start": d.start,
                "end": d.end, "end_reason": d.end_reason, "provider_ods": d.provider_ods}
                for d in position.detentions])

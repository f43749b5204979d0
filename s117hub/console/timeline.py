"""A person's story for the Person page, and the why of each register value.

Built from ``views.person_json`` (the API's record), so the page and ``GET /people/{id}``
can never tell different stories.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from register_core.domain.calendar import working_days_between
from register_core.domain.legal_status import describe

# Register values in the order a reader asks about them, with their labels.
ENTITLEMENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("status", "Status"), ("start", "Start"), ("pending_since", "Pending since"),
    ("trigger_section", "Triggering section"), ("responsible_council", "Responsible council"),
    ("responsible_icb", "Responsible ICB"), ("named_practitioner", "Named practitioner"),
    ("aftercare_plan_date", "Aftercare plan agreed"), ("last_review", "Last review"),
    ("next_review_due", "Next review due"), ("on_cto", "On a CTO"), ("ended", "Ended"),
)
# explain keys that differ from the field name
_EXPLAIN_KEY = {"aftercare_plan_date": "entitlement.aftercare_plan"}


def section_label(code: str | None) -> str:
    if not code:
        return "—"
    return f"{code} ({describe(code)})" if code.isdigit() else code


def _event(day: str | None, kind: str, text: str, source: str | None = None,
           **extra: Any) -> dict[str, Any]:
    return {"date": day or "", "kind": kind, "text": text, "source": source, **extra}


def timeline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Detentions, legal-status events, the entitlement, reviews, disputes and exceptions,
    oldest first (undated last)."""
    events: list[dict[str, Any]] = []
    for d in record["detentions"]:
        events.append(_event(d["start"], "detention",
                             f"Detained under section {section_label(d['section'])}",
                             d.get("provider_ods"), ref=d["ref"]))
        for span in d["sections"][1:]:
            events.append(_event(span["from"], "detention",
                                 f"Regraded to section {section_label(span['section'])}",
                                 d.get("provider_ods"), ref=d["ref"]))
        if d["end"]:
            reason = f" ({d['end_reason']})" if d["end_reason"] else ""
            events.append(_event(d["end"], "detention", f"Detention ended{reason}",
                                 d.get("provider_ods"), ref=d["ref"]))
    for e in record["legal_status_events"]:
        section = f", section {section_label(e['section'])}" if e["section"] else ""
        until = f", until {e['end']}" if e["end"] else ""
        events.append(_event(e["date"], "legal-status", f"{e['kind']}{section}{until}",
                             e["source"]))
    ent = record["entitlement"]
    if ent["pending_since"]:
        events.append(_event(ent["pending_since"], "entitlement", "S117 entitlement pending"))
    if ent["start"]:
        events.append(_event(ent["start"], "entitlement", "S117 aftercare entitlement began"))
    if ent["aftercare_plan_date"]:
        events.append(_event(ent["aftercare_plan_date"], "entitlement",
                             "Aftercare plan agreed"))
    if ent["ended"]:
        reason = f" ({ent['ended']['reason']})" if ent["ended"].get("reason") else ""
        events.append(_event(ent["ended"]["date"], "entitlement",
                             f"S117 entitlement ended{reason}"))
    if ent["next_review_due"]:
        events.append(_event(ent["next_review_due"], "review", "Next review due"))
    for r in record["reviews"]:
        events.append(_event(r["date"], "review", f"Review completed ({r['kind']})"))
    for d in record["disputes"]:
        events.append(_event(d["opened"], "dispute",
                             f"Dispute opened ({d['kind']}), stage {d['stage']}", id=d["id"]))
        if d["resolved"]:
            events.append(_event(d["resolved"], "dispute", f"Dispute resolved ({d['kind']})",
                                 id=d["id"]))
    for x in record["open_exceptions"]:
        events.append(_event(x["raised"][:10], "exception", f"Exception raised: {x['kind']}",
                             id=x["id"]))
    return sorted(events, key=lambda e: (e["date"] == "", e["date"]))


def explained_values(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each entitlement value with the rule and facts behind it, where the rules gave one."""
    ent, explain = record["entitlement"], record["explain"]
    rows = []
    for field, label in ENTITLEMENT_FIELDS:
        why = explain.get(_EXPLAIN_KEY.get(field, f"entitlement.{field}"))
        value = ent.get(field)
        if field == "trigger_section":
            value = section_label(value)
        rows.append({"field": field, "label": label, "value": value,
                     "rule": why["rule"] if why else None,
                     "facts": why["facts"] if why else []})
    shown = {_EXPLAIN_KEY.get(f, f"entitlement.{f}") for f, _ in ENTITLEMENT_FIELDS}
    for key, why in sorted(explain.items()):  # any other value the rules explain
        if key not in shown:
            rows.append({"field": key, "label": key, "value": None, "rule": why["rule"],
                         "facts": why["facts"]})
    return rows


def working_days_left(today: date, due: str | None) -> int | None:
    """Working days until ``due`` (negative once past it), or None without a deadline.

    0 is also what a deadline passed just before a weekend or bank holiday gives (no working
    day since): the page takes "overdue" from the dispute's own flag, as the API does."""
    if not due:
        return None
    deadline = date.fromisoformat(due)
    if deadline >= today:
        return working_days_between(today, deadline)
    return -working_days_between(deadline, today)

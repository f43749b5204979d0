"""The partnership-board report (architecture section 5, ``GET /api/v1/reports/board``).

Read-side only, SQLAlchemy Core over the projections (``entitlements``, ``disputes``,
``register_exceptions``, ``outbound_deliveries``) and the ``facts`` journal for reviews, so it
runs the same on SQLite and PostgreSQL. Aggregates only: no NHS number, name or person id
leaves this module, which is why the report needs no audit entry.

**The period** is the last ``months`` calendar months counting the current one: from the
first day of the month ``months - 1`` before ``today``'s month, to ``today`` inclusive
(``as_of.period_start`` / ``as_of.period_end``). "In period" below means in that range.

What each figure counts:

``register`` (now, from the entitlement projection)
    ``people_known``: every person the hub holds, entitled or not.
    ``on_register``: people whose entitlement status is pending, active or ended
    (``none`` — no entitling detention and no council confirmation — is not on the register).
    ``by_status``: those people by status: ``pending`` (detained under an entitling section,
    not yet left hospital), ``active`` (left hospital, aftercare owed), ``ended`` (ended by a
    joint decision).
    ``entitled``: people entitled to aftercare now = ``active``.
    ``receiving_aftercare``: ``active`` people with an agreed aftercare plan on record dated
    on or before ``today`` (the latest ``aftercare-plan.agreed``).
    ``entitled_without_plan``: ``entitled - receiving_aftercare``.
    ``on_cto``: ``active`` people on a community treatment order.
    ``entitled_by_council`` / ``entitled_by_icb``: ``active`` people by responsible council
    (GSS code) / ICB (ODS code), ``unknown`` where the register has none (who pays is the
    board's first question: cabinet report para 10).
    ``entitled_children``: ``active`` people under 18 today, by band ``under-16`` and
    ``16-17`` (para 10 counts them: transition to adult services is planned from 16);
    a person without a birth date is not counted.

``trend`` (one row per month of the period, oldest first; the current month runs to today)
    ``active``: entitlements started on or before the month's end and not ended by then
    (ended on or before it); ``started``: entitlements whose start (leaving hospital) falls in
    the month; ``ended``: entitlements whose end date falls in the month. From each person's
    current entitlement period: an earlier period that ended before a new detention is not
    counted again.

``reviews`` (every entitlement with a discharge date, active or ended; reviews are the
``review-completed`` facts not retracted, held on or after discharge — less any a precedence
rule set aside, where two sources told one review differently: the register's reviews)
    ``first``: the review due 3 months after discharge (joint policy 14.1) — ``on_time``
    (held on or before the due date), ``late`` (first held after it), ``due`` (not held,
    due date today or later), ``overdue`` (not held, past due, still active),
    ``ended_unreviewed`` (not held, the entitlement ended after the due date). Counted when
    the due date falls on or after the period start (so ``due`` ones are included).
    An entitlement that ended before its review fell due is not counted.
    ``annual``: each review due 12 months after the previous one held, counted the same way.

``disputes`` (the ``disputes`` table)
    ``open``: not resolved; ``open_by_stage``: those by stage "1".."4"; ``overdue``: open and
    past the current stage's working-day deadline (stage 4 has none);
    ``open_by_age_working_days``: open by England working days since opened, banded by the
    protocol's cumulative deadlines (5, 5+10, 5+10+15): ``0-5``, ``6-15``, ``16-30``,
    ``over-30``; ``opened_in_period``: opened date in period; ``resolved_in_period``:
    resolved date in period.

``missed_entitlements`` (exceptions of kind ``missed-entitlement``)
    ``found_in_period``: raised in period; ``resolved_in_period``: closed as resolved in
    period (by a person or by the system when the condition no longer held);
    ``dismissed_in_period``: closed as dismissed in period; ``open``: open or assigned now,
    whenever raised.

``deliveries`` (the outbox, one row per status change and subscriber)
    ``total``: deliveries whose notice the hub received in period; of those, by what became
    of them, ``delivered_within_sla`` (delivered at or before the five-working-day due time,
    no breach recorded), ``delivered_late`` (delivered after it, or with a breach recorded),
    ``cancelled``, ``superseded`` (not sent: a newer change reached the partner first); and,
    across those, ``breached``: the ones that missed their due time whatever became of them
    since — a breach recorded, delivered late, still open and past due at ``now``, or
    superseded or cancelled only after the due time (a later change reaching the partner,
    or an engineer closing it, does not undo a missed deadline). ``open``: not delivered now
    (pending, sending, retrying or failed), whenever received; ``open_breached``: open and
    past due at ``now`` (whether or not the sweeper has recorded the breach yet).

``exceptions``
    ``open``: open or assigned exceptions now; ``open_by_kind``: those by kind.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Connection, and_, case, func, not_, or_, select

from register_core.adapters.register_pages import read_page
from register_core.adapters.tables import (
    disputes,
    entitlements,
    facts,
    outbound_deliveries,
    persons,
    register_exceptions,
)
from register_core.domain.calendar import working_days_between
from register_core.domain.position import Policy, compute_position
from register_core.domain.rules.reviews import (
    FIRST_REVIEW_MONTHS,
    REVIEW_INTERVAL_MONTHS,
    add_months,
)

REGISTER_STATUSES = ("pending", "active", "ended")
OPEN_EXCEPTION = ("open", "assigned")
OPEN_DELIVERY = ("pending", "sending", "retrying", "failed")
MISSED_ENTITLEMENT = "missed-entitlement"
REVIEW_OUTCOMES = ("on_time", "late", "due", "overdue", "ended_unreviewed")
DISPUTE_STAGES = (1, 2, 3, 4)
SETTLED_PAGE = 500  # people read at a time to recompute their reviews
# Upper bounds (inclusive) of the age bands: the protocol's cumulative stage deadlines.
DISPUTE_AGE_BANDS: tuple[tuple[str, int | None], ...] = (
    ("0-5", 5), ("6-15", 15), ("16-30", 30), ("over-30", None))


def board_report(conn: Connection, *, today: date, now: datetime, months: int = 12,
                 policy: Policy | None = None) -> dict[str, Any]:
    """The board report as of ``today`` (see the module docstring for every figure)."""
    if months < 1:
        raise ValueError("months must be at least 1")
    period_start = _month_start(add_months(today.replace(day=1), -(months - 1)))
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    return {
        "as_of": {"date": today.isoformat(), "generated_at": now.isoformat(),
                  "months": months, "period_start": period_start.isoformat(),
                  "period_end": today.isoformat()},
        "register": _register(conn, today),
        "trend": _trend(conn, today, months),
        "reviews": _reviews(conn, today, period_start, policy or Policy()),
        "disputes": _disputes(conn, today, period_start),
        "missed_entitlements": _missed_entitlements(conn, _start_of(period_start)),
        "deliveries": _deliveries(conn, now, _start_of(period_start)),
        "exceptions": _exceptions(conn),
    }


# -- register and trend ----------------------------------------------------------------------

def _register(conn: Connection, today: date) -> dict[str, Any]:
    e = entitlements.c
    by_status = {status: 0 for status in REGISTER_STATUSES}
    for status, count in conn.execute(select(e.status, func.count()).group_by(e.status)):
        if status in by_status:
            by_status[status] = int(count)
    active = e.status == "active"
    with_plan = and_(active, e.aftercare_plan_date.is_not(None),
                     e.aftercare_plan_date <= today)
    receiving, on_cto = conn.execute(select(_count_if(with_plan),
                                            _count_if(and_(active, e.on_cto.is_(True))))
                                     ).one()
    people = conn.execute(select(func.count()).select_from(persons)).scalar_one()
    by_body = {}
    for name, column in (("council", e.responsible_council), ("icb", e.responsible_icb)):
        counts: dict[str, int] = {}
        for code, count in conn.execute(select(column, func.count()).where(active)
                                        .group_by(column)):
            key = code or "unknown"  # None and "" alike: nobody named
            counts[key] = counts.get(key, 0) + int(count)
        by_body[name] = dict(sorted(counts.items()))
    # Under 18 today: born after this day 18 years ago; 16-17: and on or before 16 years ago.
    eighteen, sixteen = add_months(today, -18 * 12), add_months(today, -16 * 12)
    birth = persons.c.birth_date
    under_16, aged_16_17 = conn.execute(
        select(_count_if(birth > sixteen),
               _count_if(and_(birth > eighteen, birth <= sixteen)))
        .select_from(entitlements.join(persons, persons.c.id == e.person_id))
        .where(active)).one()
    return {"people_known": int(people), "on_register": sum(by_status.values()),
            "by_status": by_status, "entitled": by_status["active"],
            "receiving_aftercare": int(receiving),
            "entitled_without_plan": by_status["active"] - int(receiving),
            "on_cto": int(on_cto), "entitled_by_council": by_body["council"],
            "entitled_by_icb": by_body["icb"],
            "entitled_children": {"under-16": int(under_16), "16-17": int(aged_16_17)}}


def _trend(conn: Connection, today: date, months: int) -> list[dict[str, Any]]:
    e = entitlements.c
    rows = []
    first = today.replace(day=1)
    for back in range(months - 1, -1, -1):
        month_first = add_months(first, -back)
        month_end = min(_month_end(month_first), today)
        started_by_then = and_(e.start.is_not(None), e.start <= month_end,
                               e.status.in_(("active", "ended")))
        not_ended_by_then = (e.ended_date.is_(None)) | (e.ended_date > month_end)
        active, started, ended = conn.execute(select(
            _count_if(and_(started_by_then, not_ended_by_then)),
            _count_if(and_(e.start >= month_first, e.start <= month_end,
                           e.status.in_(("active", "ended")))),
            _count_if(and_(e.status == "ended", e.ended_date >= month_first,
                           e.ended_date <= month_end)))).one()
        rows.append({"month": month_first.strftime("%Y-%m"), "active": int(active),
                     "started": int(started), "ended": int(ended)})
    return rows


# -- reviews ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Period:
    """One entitlement period as the review figures see it."""

    discharge: date
    ended: date | None  # None while active
    reviews: list[date]  # held on or after discharge, ascending


def _review_periods(conn: Connection, today: date, policy: Policy) -> Iterator[_Period]:
    e = entitlements.c
    held: dict[str, list[date]] = {}
    told_by: dict[str, set[str]] = {}
    review_rows = conn.execute(
        select(facts.c.person_id, facts.c.effective, facts.c.source)
        .join(entitlements, entitlements.c.person_id == facts.c.person_id)
        .where(and_(facts.c.kind == "review-completed", facts.c.retracted_by.is_(None),
                    facts.c.effective.is_not(None), e.start.is_not(None),
                    facts.c.effective >= e.start,
                    e.status.in_(("active", "ended")))))
    for person_id, effective, source in review_rows:
        held.setdefault(person_id, []).append(effective)
        told_by.setdefault(person_id, set()).add(source)
    if policy.precedence.review:
        held.update(_settled_reviews(
            conn, sorted(pid for pid, told in told_by.items() if len(told) > 1), today, policy))
    for person_id, start, status, ended_date in conn.execute(
            select(e.person_id, e.start, e.status, e.ended_date)
            .where(and_(e.start.is_not(None), e.status.in_(("active", "ended"))))):
        yield _Period(discharge=start,
                      ended=(ended_date or start) if status == "ended" else None,
                      reviews=sorted(held.get(person_id, [])))


def _settled_reviews(conn: Connection, person_ids: Sequence[str], today: date,
                     policy: Policy) -> dict[str, list[date]]:
    """The reviews the register keeps for people whose reviews more than one source told:
    only there can a precedence rule set one aside, and only their position knows which."""
    kept: dict[str, list[date]] = {}
    for first in range(0, len(person_ids), SETTLED_PAGE):
        for snapshot in read_page(conn, person_ids[first:first + SETTLED_PAGE]):
            position = compute_position(snapshot.person, today, policy)
            start = position.entitlement.start
            kept[snapshot.person.id] = [day for day, _kind in position.reviews
                                        if start is not None and day >= start]
    return kept


def _review_outcome(due: date, held: date | None, ended: date | None,
                    today: date) -> str | None:
    """How one review that fell due went; None when the entitlement ended before it."""
    if held is not None:
        return "on_time" if held <= due else "late"
    if ended is not None:
        return "ended_unreviewed" if ended > due else None
    return "due" if today <= due else "overdue"


def _reviews(conn: Connection, today: date, period_start: date,
             policy: Policy) -> dict[str, Any]:
    first = dict.fromkeys(REVIEW_OUTCOMES, 0)
    annual = dict.fromkeys(REVIEW_OUTCOMES, 0)
    for period in _review_periods(conn, today, policy):
        due = add_months(period.discharge, FIRST_REVIEW_MONTHS)
        held = period.reviews[0] if period.reviews else None
        _tally(first, due, held, period, today, period_start)
        # Each review held starts the next 12-month clock; the next one held answers it.
        for index, review in enumerate(period.reviews):
            due = add_months(review, REVIEW_INTERVAL_MONTHS)
            following = period.reviews[index + 1] if index + 1 < len(period.reviews) else None
            _tally(annual, due, following, period, today, period_start)
    return {"first": first | {"total": sum(first.values())},
            "annual": annual | {"total": sum(annual.values())}}


def _tally(counts: dict[str, int], due: date, held: date | None, period: _Period,
           today: date, period_start: date) -> None:
    if due < period_start:
        return
    outcome = _review_outcome(due, held, period.ended, today)
    if outcome is not None:
        counts[outcome] += 1


# -- disputes, exceptions, deliveries --------------------------------------------------------

def _disputes(conn: Connection, today: date, period_start: date) -> dict[str, Any]:
    t = disputes.c
    open_rows = conn.execute(select(t.stage, t.stage_due, t.opened)
                             .where(t.resolved.is_(None))).all()
    by_stage = {str(stage): 0 for stage in DISPUTE_STAGES}
    by_age = {band: 0 for band, _ in DISPUTE_AGE_BANDS}
    overdue = 0
    for stage, stage_due, opened in open_rows:
        by_stage[str(stage)] = by_stage.get(str(stage), 0) + 1
        overdue += int(stage_due is not None and today > stage_due)
        by_age[_age_band(working_days_between(opened, today))] += 1
    opened_in_period, resolved_in_period = conn.execute(select(
        _count_if(and_(t.opened >= period_start, t.opened <= today)),
        _count_if(and_(t.resolved.is_not(None), t.resolved >= period_start,
                       t.resolved <= today)))).one()
    return {"open": len(open_rows), "open_by_stage": by_stage, "overdue": overdue,
            "open_by_age_working_days": by_age,
            "opened_in_period": int(opened_in_period),
            "resolved_in_period": int(resolved_in_period)}


def _age_band(working_days: int) -> str:
    for band, upper in DISPUTE_AGE_BANDS:
        if upper is None or working_days <= upper:
            return band
    return DISPUTE_AGE_BANDS[-1][0]


def _missed_entitlements(conn: Connection, period_from: datetime) -> dict[str, int]:
    x = register_exceptions.c
    found, resolved, dismissed, still_open = conn.execute(
        select(_count_if(x.raised >= period_from),
               _count_if(and_(x.status == "resolved", x.closed_at >= period_from)),
               _count_if(and_(x.status == "dismissed", x.closed_at >= period_from)),
               _count_if(x.status.in_(OPEN_EXCEPTION)))
        .where(x.kind == MISSED_ENTITLEMENT)).one()
    return {"found_in_period": int(found), "resolved_in_period": int(resolved),
            "dismissed_in_period": int(dismissed), "open": int(still_open)}


def _deliveries(conn: Connection, now: datetime, period_from: datetime) -> dict[str, int]:
    d = outbound_deliveries.c
    in_period = d.received_at >= period_from
    delivered = and_(in_period, d.status == "delivered", d.delivered_at.is_not(None))
    # A breach recorded is final (outbox module docstring): it outweighs the final status.
    late = or_(d.delivered_at > d.due_at, d.breached_at.is_not(None))
    missed = or_(
        d.breached_at.is_not(None),
        and_(d.status == "delivered", d.delivered_at > d.due_at),
        and_(d.status.in_(OPEN_DELIVERY), d.due_at < now),
        # closed unsent after the due time, before a sweep recorded the breach
        and_(d.status.in_(("cancelled", "superseded")), d.updated_at > d.due_at))
    total, on_time, late_count, cancelled, superseded, breached_any = conn.execute(select(
        _count_if(in_period), _count_if(and_(delivered, not_(late))),
        _count_if(and_(delivered, late)),
        _count_if(and_(in_period, d.status == "cancelled")),
        _count_if(and_(in_period, d.status == "superseded")),
        _count_if(and_(in_period, missed)))).one()
    still_open, breached = conn.execute(select(
        func.count(), _count_if(d.due_at < now)).where(d.status.in_(OPEN_DELIVERY))).one()
    return {"total": int(total), "delivered_within_sla": int(on_time),
            "delivered_late": int(late_count), "cancelled": int(cancelled),
            "superseded": int(superseded), "breached": int(breached_any),
            "open": int(still_open), "open_breached": int(breached)}


def _exceptions(conn: Connection) -> dict[str, Any]:
    x = register_exceptions.c
    by_kind = {kind: int(count) for kind, count in conn.execute(
        select(x.kind, func.count()).where(x.status.in_(OPEN_EXCEPTION))
        .group_by(x.kind).order_by(x.kind))}
    return {"open": sum(by_kind.values()), "open_by_kind": by_kind}


# -- flat rows for CSV -----------------------------------------------------------------------

CSV_HEADER = ("section", "metric", "key", "value")


def report_rows(report: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """The report as ``(section, metric, key, value)`` rows: a scalar has an empty key, a
    breakdown one row per key, a trend row one row per figure keyed by month."""
    for section, body in report.items():
        if isinstance(body, list):  # the trend
            for row in body:
                month = str(row["month"])
                for metric, value in row.items():
                    if metric != "month":
                        yield section, metric, month, _text(value)
            continue
        for metric, value in body.items():
            if isinstance(value, dict):
                yield from ((section, metric, str(k), _text(v)) for k, v in value.items())
            else:
                yield section, metric, "", _text(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# -- helpers ---------------------------------------------------------------------------------

def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)

"""Register owners' pages: Exceptions (assign, resolve, dismiss), Person, Disputes, Board.

Reading needs the roles of the API's read routes (register owner or auditor); decisions the
register owner's. Every read of a person's data is audited exactly as the API audits it
(worklist rows, one exception, one person, dispute rows), with the console's request line.
Worklists show the person id, never a name or NHS number: those appear only on the Person
page, whose every opening is an audited read of that one record. Looking a person up is
audited too, found or not (``person-lookup``: by NHS number or register id, and whom it
found), since the answer alone says whether someone is on the register and their id; the NHS
number itself is not kept.

Form text with control characters is refused (422) before it reaches the database: a NUL
cannot be stored in PostgreSQL; free text keeps its line breaks and tabs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from sqlalchemy import Connection

from mapping.council_models import control_character_in
from reconciliation.exceptions import DEMOGRAPHICS_KIND, IDENTITY_KIND, SOURCE_CONFLICT_KIND
from reconciliation.findings import EXCEPTION_KINDS
from register_core import reports, views
from register_core.adapters import console_reads
from register_core.adapters.disputes_store import DisputeStore
from register_core.adapters.exceptions_store import ExceptionStore
from register_core.domain import nhs_number as nhs
from register_core.domain.errors import InvalidValue, NotFound
from register_core.domain.precedence import question_of
from register_core.services import disputes as dispute_workflow
from s117hub.api.auth import audit, audit_read, get_audit_log

from . import actions, timeline
from .filters import day_filter, england_midnight
from .web import (
    AUDITORS,
    OPS_READERS,
    OWNER,
    REGISTER_READERS,
    ConsoleRoute,
    ConsoleUser,
    actor,
    hub_of,
    read_and_audit,
    render,
    see_other,
    viewer,
)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
Reader = Annotated[ConsoleUser, Depends(viewer(REGISTER_READERS))]
Owner = Annotated[ConsoleUser, Depends(actor(OWNER))]
# Looking a person up sends an NHS number: a POST, so it stays out of URLs and history.
LookupUser = Annotated[ConsoleUser, Depends(actor(REGISTER_READERS))]
Text = Annotated[str, Query(max_length=40)]
LIVE = ("open", "assigned")
EXCEPTION_STATUSES = ("open", "assigned", "resolved", "dismissed")
AGE_CHOICES = (1, 5, 10, 30, 90)
SHOW_DISPUTES: dict[str, bool | None] = {"open": False, "resolved": True, "all": None,
                                         "": None}
MAX_AGE_DAYS = 36_600  # a century: older than the register
PAGE_SIZE = 100
AUDIT_PAGE_SIZE = 200
ExceptionId = Annotated[str, Path(max_length=36)]
PersonId = Annotated[str, Path(max_length=36)]
Reason = Annotated[str, Form(max_length=2000)]

def _text(value: str, field: str, *, free_text: bool = False, label: str | None = None
          ) -> str:
    """``value`` if it holds no control character (free text: none but tab and line breaks);
    InvalidValue naming the field otherwise (a 422 page)."""
    if (found := control_character_in(value, free_text=free_text)) is not None:
        raise InvalidValue(f"The {label or field.replace('_', ' ')} may not hold control "
                           f"characters (found {found}).", field=field,
                           rule="no-control-characters")
    return value


# -- exceptions ------------------------------------------------------------------------------


@router.get("/ui/exceptions")
def exceptions_page(request: Request, user: Reader, kind: Text = "", status: Text = "",
                    older_than: Text = "", council: Text = "", icb: Text = "",
                    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    hub = hub_of(request)
    if status not in ("", "all", *EXCEPTION_STATUSES):
        raise InvalidValue("unknown status", field="status", rule="known-status")
    # ASCII digits only ("²" passes isdigit but not int), and a bounded age: a huge one
    # overflows the date arithmetic.
    if older_than and not (older_than.isascii() and older_than.isdigit()
                           and int(older_than) <= MAX_AGE_DAYS):
        raise InvalidValue(f"age is a number of days up to {MAX_AGE_DAYS}",
                           field="older_than", rule="days")
    wanted = console_reads.Worklist(
        kind=kind.strip() or None, council=council.strip() or None, icb=icb.strip() or None,
        status=status if status in EXCEPTION_STATUSES else None,
        statuses=None if status else LIVE,
        older_than_days=int(older_than) if older_than else None)
    now = hub.clock.now()
    with read_and_audit(hub) as conn:
        total, items = console_reads.exception_worklist(conn, wanted, now, limit=PAGE_SIZE,
                                                        offset=offset)
        for item in items:  # the API audits each listed exception as a read of its person
            audit_read(conn, request, user.principal, "exception", item["id"],
                       item["person_id"])
    for item in items:
        item["age_seconds"] = (now - datetime.fromisoformat(item["raised"])).total_seconds()
    form = {"kind": kind, "status": status, "older_than": older_than, "council": council,
            "icb": icb}
    return render(request, "exceptions.html", user, active="exceptions", items=items,
                  total=total, offset=offset, page_size=PAGE_SIZE, form=form,
                  kinds=EXCEPTION_KINDS, statuses=EXCEPTION_STATUSES, ages=AGE_CHOICES)


@router.get("/ui/exceptions/{exception_id}")
def exception_page(request: Request, user: Reader, exception_id: ExceptionId) -> Response:
    hub = hub_of(request)
    with read_and_audit(hub) as conn:
        item = ExceptionStore(conn).get(exception_id)
        if item is None:
            raise NotFound("no exception with this id")
        audit_read(conn, request, user.principal, "exception", exception_id,
                   item["person_id"])
    detail = item["detail"] or {}
    competing = [v for v in detail.get("values", []) if isinstance(v, dict) and "source" in v]
    if item["kind"] == SOURCE_CONFLICT_KIND:
        # accept-source takes a source's value: offered only for a source that told one of
        # the competing values (the API refuses it where no source's value settles it).
        question = question_of(detail)
        competing = [v for v in competing
                     if question is not None and v["source"] in question.sources]
    shown = {"rule", "values"}
    other_detail = {k: v for k, v in detail.items() if k not in shown}
    # An identity review is decided same-person / different-people (the API's decisions):
    # "resolved" or "corrected" would close it without merging or remembering the pair.
    identity = item["kind"] == IDENTITY_KIND
    candidate = detail.get("candidate_person_id") if identity else None
    return render(request, "exception.html", user, active="exceptions", item=item,
                  competing=competing, rule=detail.get("rule"), other_detail=other_detail,
                  identity=identity, candidate=candidate,
                  # No correction sets a birth date: accept a source's value instead.
                  correctable=item["kind"] != DEMOGRAPHICS_KIND,
                  today=hub.clock.today().isoformat(),
                  live=item["status"] in LIVE, may_decide=user.may(OWNER),
                  correction_types=list(actions.CORRECTION_TYPES),
                  section_label=timeline.section_label)


@router.post("/ui/exceptions/{exception_id}/assign")
def assign(request: Request, user: Owner, exception_id: ExceptionId,
           assignee: Annotated[str, Form(max_length=100)] = "") -> Response:
    actions.assign_exception(request, hub_of(request), user.principal, exception_id,
                             _text(assignee, "assignee"))
    return see_other(f"/ui/exceptions/{exception_id}?done=assigned")


@router.post("/ui/exceptions/{exception_id}/resolve")
def resolve(request: Request, user: Owner, exception_id: ExceptionId,
            decision: Annotated[str, Form(max_length=100)] = "resolved", reason: Reason = "",
            apply_type: Annotated[str, Form(max_length=40)] = "",
            apply_date: Annotated[str, Form(max_length=20)] = "",
            apply_value: Annotated[str, Form(max_length=200)] = "",
            apply_review_kind: Annotated[str, Form(max_length=20)] = "",
            apply_joint: Annotated[str, Form(max_length=10)] = "") -> Response:
    correction = actions.correction_from_form(apply_type, apply_date,
                                              _text(apply_value, "apply_value"),
                                              review_kind=apply_review_kind,
                                              joint=apply_joint)
    actions.close_exception(request, hub_of(request), user.principal, exception_id,
                            decision=_text(decision, "decision"),
                            reason=_text(reason, "reason", free_text=True),
                            correction=correction)
    return see_other(f"/ui/exceptions/{exception_id}?done=resolved")


@router.post("/ui/exceptions/{exception_id}/dismiss")
def dismiss(request: Request, user: Owner, exception_id: ExceptionId,
            reason: Reason = "") -> Response:
    actions.close_exception(request, hub_of(request), user.principal, exception_id,
                            decision="dismiss", reason=_text(reason, "reason", free_text=True))
    return see_other(f"/ui/exceptions/{exception_id}?done=dismissed")


# -- people ----------------------------------------------------------------------------------


@router.get("/ui/people")
def people_page(request: Request, user: Reader) -> Response:
    return render(request, "people.html", user, active="people", error=None)


@router.post("/ui/people/lookup")
def lookup(request: Request, user: LookupUser,
           wanted: Annotated[str, Form(max_length=64)] = "") -> Response:
    text = _text(wanted.strip(), "wanted", label="NHS number or id")
    hub = hub_of(request)
    by_nhs_number = nhs.redact(text, "") != text  # shaped like an NHS number
    wanted_nhs = nhs.validate(text, field="nhs_number") if by_nhs_number else None
    found: list[str] = []
    with read_and_audit(hub) as conn:
        if wanted_nhs is not None:
            found = views.people_by_nhs_number(conn, wanted_nhs)
        elif text:
            found = [text] if views.person_json(conn, text, hub.clock.today()) else []
        if text:  # the answer says whether someone is on the register: audited either way
            _audit_lookup(conn, request, user, "nhs-number" if by_nhs_number
                          else "register-id", found)
    if len(found) == 1:
        return see_other(f"/ui/people/{found[0]}")
    return render(request, "people.html", user, active="people", status=404,
                  error="No person on the register has that NHS number or id.")


def _audit_lookup(conn: Connection, request: Request, user: ConsoleUser, by: str,
                  found: list[str]) -> None:
    """One ``person-lookup`` read per person found (as the API's ``GET /people?nhs_number=``
    audits each match), or one with no person when nobody was; ``resource_id`` says what was
    looked up by (``nhs-number`` or ``register-id``), never the value."""
    people: list[str | None] = [*found] or [None]
    for person_id in people:
        audit(conn, request, user.principal, action="read", resource="person-lookup",
              resource_id=by, person_id=person_id)


@router.get("/ui/people/{person_id}")
def person_page(request: Request, user: Reader, person_id: PersonId) -> Response:
    hub = hub_of(request)
    today = hub.clock.today()
    with read_and_audit(hub) as conn:
        record = views.person_json(conn, person_id, today, hub.policy)
        if record is None:
            raise NotFound("no person with this id")
        audit_read(conn, request, user.principal, "person", person_id, person_id)
        merged = console_reads.merged_into(conn, person_id)
    return render(request, "person.html", user, active="people", person=record, merged=merged,
                  events=timeline.timeline(record),
                  values=timeline.explained_values(record), today=today.isoformat(),
                  section_label=timeline.section_label, may_see_flow=user.may(OPS_READERS))


# -- disputes --------------------------------------------------------------------------------


@router.get("/ui/disputes")
def disputes_page(request: Request, user: Reader, stage: Text = "",
                  show: Text = "open") -> Response:
    hub = hub_of(request)
    today = hub.clock.today()
    if stage and stage not in ("1", "2", "3", "4"):
        raise InvalidValue("a stage is 1 to 4", field="stage", rule="dispute-stage")
    if show not in SHOW_DISPUTES:
        raise InvalidValue("show is open, resolved or all", field="show", rule="known-choice")
    resolved = SHOW_DISPUTES[show]
    with read_and_audit(hub) as conn:
        _, rows = DisputeStore(conn).query(today, stage=int(stage) if stage else None,
                                           resolved=resolved, limit=500)
        items = [dispute_workflow.dispute_json(row, today) for row in rows]
        for item in items:  # as the API: each listed dispute is a read of its person
            audit_read(conn, request, user.principal, "dispute", item["id"],
                       item["person_id"])
    for item in items:
        item["working_days_left"] = (None if item["resolved"] else
                                     timeline.working_days_left(today, item["stage_due"]))
    by_stage = {n: [i for i in items if i["stage"] == n] for n in (1, 2, 3, 4)}
    return render(request, "disputes.html", user, active="disputes", by_stage=by_stage,
                  total=len(items), overdue=sum(1 for i in items if i["overdue"]),
                  form={"stage": stage, "show": show}, today=today)


# -- audit log (auditors) ----------------------------------------------------------------

Auditor = Annotated[ConsoleUser, Depends(viewer(AUDITORS))]


@router.get("/ui/audit")
def audit_page(request: Request, user: Auditor, person_id: Text = "", actor_id: Text = "",
               since: Text = "",
               offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> Response:
    """Who read or changed which record, when, and from which API call or console view
    (the same rows as ``GET /api/v1/audit``, newest first), a page at a time; ``since`` is
    an English day (from its midnight), as the Messages filter."""
    hub = hub_of(request)
    first = day_filter(since, "since")
    with hub.engine.connect() as conn:
        total, rows = get_audit_log(request).query(
            conn, person_id=person_id.strip() or None, actor=actor_id.strip() or None,
            since=england_midnight(first) if first else None, limit=AUDIT_PAGE_SIZE,
            offset=offset)
    return render(request, "audit.html", user, active="audit", rows=rows, total=total,
                  offset=offset, page_size=AUDIT_PAGE_SIZE,
                  form={"person_id": person_id, "actor_id": actor_id, "since": since})


# -- board report ------------------------------------------------------------------------


@router.get("/ui/board")
def board_page(request: Request, user: Reader,
               months: Annotated[int, Query(ge=1, le=60)] = 12) -> Response:
    hub = hub_of(request)
    with hub.engine.connect() as conn:
        report = reports.board_report(conn, today=hub.clock.today(), now=hub.clock.now(),
                                      months=months, policy=hub.policy)
    trend_labels = [f"{row['month']} active" for row in report["trend"]]
    return render(request, "board.html", user, active="board", report=report, months=months,
                  trend_labels=trend_labels)

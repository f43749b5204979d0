"""The partnership-board report (architecture section 5): ``GET /api/v1/reports/board``.

JSON by default; CSV (``section,metric,key,value`` rows) with ``?format=csv`` or
``Accept: text/csv``. The figures and what each counts are defined in
``register_core.reports``. Register owners and auditors may read it; it holds aggregates
only, so reading it touches no person's record and is not audited as such.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from register_core import reports
from register_core.adapters.security import Principal, Role
from s117hub.bootstrap import Hub

from .auth import get_hub, require_roles
from .routes_register import PROBLEM_RESPONSES

HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require_roles(Role.REGISTER_OWNER, Role.AUDITOR))]

CSV_MEDIA_TYPE = "text/csv"

BOARD_EXAMPLE: dict[str, Any] = {
    "as_of": {"date": "2026-06-01", "generated_at": "2026-06-01T09:00:00+00:00",
              "months": 12, "period_start": "2025-07-01", "period_end": "2026-06-01"},
    "register": {"people_known": 5, "on_register": 4,
                 "by_status": {"pending": 1, "active": 2, "ended": 1}, "entitled": 2,
                 "receiving_aftercare": 1, "entitled_without_plan": 1, "on_cto": 0,
                 "entitled_by_council": {"E10000034": 2}, "entitled_by_icb": {"QGH": 1,
                                                                           "unknown": 1},
                 "entitled_children": {"under-16": 0, "16-17": 1}},
    "trend": [{"month": "2026-05", "active": 2, "started": 0, "ended": 1},
              {"month": "2026-06", "active": 2, "started": 0, "ended": 0}],
    "reviews": {
        "first": {"on_time": 1, "late": 0, "due": 0, "overdue": 1, "ended_unreviewed": 0,
                  "total": 2},
        "annual": {"on_time": 0, "late": 0, "due": 1, "overdue": 0, "ended_unreviewed": 0,
                   "total": 1}},
    "disputes": {"open": 2, "open_by_stage": {"1": 1, "2": 0, "3": 1, "4": 0}, "overdue": 1,
                 "open_by_age_working_days": {"0-5": 1, "6-15": 1, "16-30": 0,
                                              "over-30": 0},
                 "opened_in_period": 3, "resolved_in_period": 1},
    "missed_entitlements": {"found_in_period": 2, "resolved_in_period": 1,
                            "dismissed_in_period": 0, "open": 1},
    "deliveries": {"total": 10, "delivered_within_sla": 7, "delivered_late": 1,
                   "cancelled": 0, "superseded": 0, "open": 2, "open_breached": 1,
                   "breached": 1},
    "exceptions": {"open": 3, "open_by_kind": {"missed-entitlement": 1,
                                               "review-overdue": 2}},
}
CSV_EXAMPLE = ("section,metric,key,value\r\nas_of,date,,2026-06-01\r\n"
               "register,by_status,active,2\r\ntrend,active,2026-06,2\r\n"
               "reviews,first,on_time,1\r\n")


class AsOf(BaseModel):
    date: str = Field(description="The day the report is as of (ISO date).")
    generated_at: str
    months: int
    period_start: str = Field(description="First day of the period (first of a month).")
    period_end: str = Field(description="Last day of the period: `date`.")


class RegisterFigures(BaseModel):
    people_known: int = Field(description="Every person the hub holds.")
    on_register: int = Field(description="Entitlement pending, active or ended.")
    by_status: dict[str, int] = Field(description="`pending`, `active`, `ended`.")
    entitled: int = Field(description="Active entitlements (left hospital).")
    receiving_aftercare: int = Field(description="Active with an agreed aftercare plan.")
    entitled_without_plan: int
    on_cto: int
    entitled_by_council: dict[str, int] = Field(
        description="Active by responsible council (GSS code); `unknown`: none on record.")
    entitled_by_icb: dict[str, int] = Field(
        description="Active by responsible ICB (ODS code); `unknown`: none on record.")
    entitled_children: dict[str, int] = Field(
        description="Active and under 18 today: `under-16`, `16-17` (no birth date: not "
                    "counted).")


class TrendMonth(BaseModel):
    month: str = Field(description="YYYY-MM", examples=["2026-06"])
    active: int = Field(description="Active at the month's end (today for this month).")
    started: int
    ended: int


class ReviewFigures(BaseModel):
    on_time: int
    late: int
    due: int = Field(description="Not held yet, not yet past due.")
    overdue: int
    ended_unreviewed: int
    total: int


class Reviews(BaseModel):
    first: ReviewFigures = Field(description="Reviews due 3 months after discharge.")
    annual: ReviewFigures = Field(description="Reviews due 12 months after the last one.")


class DisputeFigures(BaseModel):
    open: int
    open_by_stage: dict[str, int]
    overdue: int
    open_by_age_working_days: dict[str, int]
    opened_in_period: int
    resolved_in_period: int


class MissedEntitlements(BaseModel):
    found_in_period: int
    resolved_in_period: int
    dismissed_in_period: int
    open: int


class DeliveryFigures(BaseModel):
    total: int = Field(description="Deliveries whose notice arrived in the period.")
    delivered_within_sla: int
    delivered_late: int
    cancelled: int
    superseded: int = Field(description="Not sent: a newer change reached the partner first.")
    open: int = Field(description="Not delivered now, whenever received.")
    open_breached: int = Field(description="Open and past their five-working-day due time.")
    breached: int = Field(description="Missed the due time, whatever became of them since.")


class ExceptionFigures(BaseModel):
    open: int
    open_by_kind: dict[str, int]


class BoardReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True,
                              json_schema_extra={"examples": [BOARD_EXAMPLE]})
    as_of: AsOf
    # Aliased: a field named ``register`` would shadow BaseModel.register.
    register_figures: RegisterFigures = Field(alias="register")
    trend: list[TrendMonth]
    reviews: Reviews
    disputes: DisputeFigures
    missed_entitlements: MissedEntitlements
    deliveries: DeliveryFigures
    exceptions: ExceptionFigures


router = APIRouter(prefix="/api/v1", tags=["reports"], responses=PROBLEM_RESPONSES)


def wants_csv(request: Request, format_: str | None) -> bool:
    """An explicit ``format`` wins; otherwise ``Accept: text/csv`` asks for CSV."""
    if format_ is not None:
        return format_ == "csv"
    return CSV_MEDIA_TYPE in request.headers.get("accept", "").lower()


def report_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(reports.CSV_HEADER)
    writer.writerows(reports.report_rows(report))
    return buffer.getvalue()


@router.get(
    "/reports/board", response_model=BoardReport,
    summary="Partnership-board report: register size, trend, reviews, disputes, SLA",
    description=(reports.__doc__ or "").split("What each figure counts:")[-1].strip(),
    responses={200: {"description": "The report",
                     "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"},
                                                  "example": CSV_EXAMPLE}}}})
def board_report(
    request: Request, hub: HubDep, _principal: Reader,
    format_: Annotated[Literal["json", "csv"] | None, Query(
        alias="format", description="`csv` for flat `section,metric,key,value` rows; "
        "default JSON, or CSV when `Accept: text/csv`.")] = None,
    months: Annotated[int, Query(ge=1, le=60, description="Months in the trend and period "
                                 "(counting the current one).")] = 12,
) -> Any:
    with hub.engine.connect() as conn:
        report = reports.board_report(conn, today=hub.clock.today(), now=hub.clock.now(),
                                      months=months, policy=hub.policy)
    if wants_csv(request, format_):
        filename = f"board-report-{report['as_of']['date']}.csv"
        return Response(report_csv(report), media_type=CSV_MEDIA_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return report

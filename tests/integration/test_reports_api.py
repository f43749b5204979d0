"""The board report over HTTP on the real databases, on a small register built through the
real command handlers (``record_command`` plus the outbox, as the inbound worker does).

The clock stands at Monday 2026-06-01 09:00; the 12-month period runs from 2025-07-01.
Synthetic people only (NHS numbers from the 999 range, an invented family name)::

    A  s3 2026-01-05, left 2026-02-01; no review (first due 2026-05-01: overdue); no plan
    B  s3 2026-01-05, left 2026-03-15; plan 2026-03-20; review 2026-05-10 (on time;
       the annual one is due 2027-05-10)
    C  s3 2026-05-01, still in hospital (pending)
    D  s3 2025-09-01, left 2025-10-01; joint review 2026-01-20 (first due 2026-01-01: late);
       ended jointly 2026-05-20
    E  s2 only: not on the register
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from register_core.adapters import outbox
from register_core.adapters.security import TokenStore
from register_core.adapters.subscriptions import SubscriptionRegistry
from register_core.adapters.tables import outbound_deliveries, register_exceptions
from register_core.domain.commands import (
    Command,
    PersonRef,
    Provenance,
    RecordAftercarePlanAgreed,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordOrdinaryResidenceChanged,
    RecordReviewCompleted,
    RecordS117Ended,
    Signoff,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.ports import FixedClock
from register_core.services.reconcile import sweep
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub
from tests.unit.outbound.support import apply, sub

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

RECEIVED = datetime(2026, 5, 20, 10, 0, tzinfo=UTC)  # due 2026-05-28 10:00 (25 May holiday)


@dataclass
class Register:
    overdue: str
    reviewed: str
    pending: str
    ended: str


def _prov(local: str, ref: str) -> Provenance:
    return Provenance(source="trust-a", source_ref=f"{local}-{ref}", received_at=RECEIVED)


def _record(hub: Hub, command: Command) -> str:
    applied, _ids = apply(hub.engine, hub.clock, command, received_at=RECEIVED)
    return applied.person_id


def _admit(hub: Hub, n: int, start: date, left: date | None, section: str = "03") -> str:
    local = f"RX1-{n:04d}"
    person = PersonRef(nhs_number=make_synthetic(n), local_id=local, family_name="Testfamily",
                       given_name="Robin", birth_date=date(1980, 2, 2))
    person_id = _record(hub, RecordDetentionStarted(
        person=person, provenance=_prov(local, "admit"), section=section, start=start,
        episode_ref=f"{local}-V1"))
    if left is not None:
        _record(hub, RecordLeftHospital(person=PersonRef(local_id=local),
                                        provenance=_prov(local, "left"), date=left,
                                        episode_ref=f"{local}-V1"))
    return person_id


def _review(hub: Hub, n: int, on: date, *, joint: bool = False) -> None:
    local = f"RX1-{n:04d}"
    _record(hub, RecordReviewCompleted(person=PersonRef(local_id=local),
                                       provenance=_prov(local, f"review-{on}"), date=on,
                                       joint=joint))


@pytest.fixture
def register(hub: Hub) -> Register:
    SubscriptionRegistry(hub.engine).save(
        sub("trust-fhir", "fhir-r4", "http://127.0.0.1:9/fhir"), hub.clock.now())
    overdue = _admit(hub, 1, date(2026, 1, 5), date(2026, 2, 1))
    reviewed = _admit(hub, 2, date(2026, 1, 5), date(2026, 3, 15))
    _record(hub, RecordAftercarePlanAgreed(person=PersonRef(local_id="RX1-0002"),
                                           provenance=_prov("RX1-0002", "plan"),
                                           date=date(2026, 3, 20)))
    _review(hub, 2, date(2026, 5, 10))
    pending = _admit(hub, 3, date(2026, 5, 1), None)
    ended = _admit(hub, 4, date(2025, 9, 1), date(2025, 10, 1))
    _review(hub, 4, date(2026, 1, 20), joint=True)  # an ending needs a joint review (16.1)
    _record(hub, RecordS117Ended(
        person=PersonRef(local_id="RX1-0004"), provenance=_prov("RX1-0004", "end"),
        date=date(2026, 5, 20), reason="needs met after joint review",
        council_signoff=Signoff(by="council-amhp-lead", date=date(2026, 5, 20)),
        icb_signoff=Signoff(by="icb-s117-lead", date=date(2026, 5, 20))))
    _admit(hub, 5, date(2026, 4, 1), date(2026, 4, 20), section="02")
    sweep(hub.engine, hub.clock, hub.policy)  # the detectors, as `s117hub reconcile` runs them
    return Register(overdue=overdue, reviewed=reviewed, pending=pending, ended=ended)


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    _token_id, token = TokenStore(hub.engine).create("register-owner")
    with TestClient(create_app(hub), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def _report(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/reports/board", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()  # type: ignore[no-any-return]


def test_register_counts_people_by_status_and_plan(client: TestClient,
                                                   register: Register) -> None:
    report = _report(client)
    assert report["as_of"] == {"date": "2026-06-01", "generated_at": "2026-06-01T09:00:00+00:00",
                               "months": 12, "period_start": "2025-07-01",
                               "period_end": "2026-06-01"}
    assert report["register"] == {
        "people_known": 5, "on_register": 4,
        "by_status": {"pending": 1, "active": 2, "ended": 1}, "entitled": 2,
        "receiving_aftercare": 1, "entitled_without_plan": 1, "on_cto": 0,
        "entitled_by_council": {"unknown": 2}, "entitled_by_icb": {"unknown": 2},
        "entitled_children": {"under-16": 0, "16-17": 0}}


def test_the_entitled_by_council_icb_and_childrens_ages(client: TestClient, hub: Hub,
                                                       register: Register) -> None:
    """Cabinet report para 10: who the entitled are the responsibility of, and how many are
    children (under 16, and 16-17, whose transition to adult services is planned)."""
    for n, birth, council in ((6, date(2010, 6, 1), "E10000034"),  # 16 on the day
                              (7, date(2010, 6, 2), "E10000034"),  # 15: 16 tomorrow
                              (8, date(2008, 6, 2), "E06000019")):  # 17: 18 tomorrow
        local = f"RX1-{n:04d}"
        person = PersonRef(nhs_number=make_synthetic(n), local_id=local,
                           family_name="Testfamily", given_name="Kit", birth_date=birth)
        _record(hub, RecordOrdinaryResidenceChanged(
            person=person, provenance=_prov(local, "or"), council_code=council,
            date=date(2025, 1, 1)))
        _record(hub, RecordDetentionStarted(
            person=person, provenance=_prov(local, "admit"), section="03",
            start=date(2026, 1, 5), episode_ref=f"{local}-V1", responsible_icb="QGH"))
        _record(hub, RecordLeftHospital(person=PersonRef(local_id=local),
                                        provenance=_prov(local, "left"),
                                        date=date(2026, 3, 1), episode_ref=f"{local}-V1"))
    register_figures = _report(client)["register"]
    assert register_figures["entitled"] == 5
    assert register_figures["entitled_by_council"] == {"E06000019": 1, "E10000034": 2,
                                                       "unknown": 2}
    assert register_figures["entitled_by_icb"] == {"QGH": 3, "unknown": 2}
    assert register_figures["entitled_children"] == {"under-16": 1, "16-17": 2}
    rows = client.get("/api/v1/reports/board", params={"format": "csv"}).text.splitlines()
    assert "register,entitled_children,16-17,2" in rows


def test_trend_has_one_row_per_month_with_starts_and_ends(client: TestClient,
                                                          register: Register) -> None:
    trend = _report(client)["trend"]
    assert [row["month"] for row in trend] == [
        "2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12",
        "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
    by_month = {row["month"]: (row["active"], row["started"], row["ended"]) for row in trend}
    assert by_month["2025-09"] == (0, 0, 0)
    assert by_month["2025-10"] == (1, 1, 0)  # D left hospital
    assert by_month["2026-01"] == (1, 0, 0)
    assert by_month["2026-02"] == (2, 1, 0)  # A
    assert by_month["2026-03"] == (3, 1, 0)  # B
    assert by_month["2026-05"] == (2, 0, 1)  # D ended
    assert by_month["2026-06"] == (2, 0, 0)
    short = _report(client, months=3)["trend"]
    assert [row["month"] for row in short] == ["2026-04", "2026-05", "2026-06"]


def test_reviews_on_time_late_due_and_overdue(client: TestClient, register: Register) -> None:
    reviews = _report(client)["reviews"]
    assert reviews["first"] == {"on_time": 1, "late": 1, "due": 0, "overdue": 1,
                                "ended_unreviewed": 0, "total": 3}
    # B's next is due 2027-05-10; D's would have been due after D's aftercare ended.
    assert reviews["annual"] == {"on_time": 0, "late": 0, "due": 1, "overdue": 0,
                                 "ended_unreviewed": 0, "total": 1}
    # With a 3-month period D's first review (due 2026-01-01) falls before it.
    assert _report(client, months=3)["reviews"]["first"]["late"] == 0


def test_disputes_by_stage_age_and_overdue(client: TestClient, register: Register) -> None:
    def open_dispute(person_id: str, kind: str, opened: str) -> str:
        response = client.post("/api/v1/disputes", json={
            "person_id": person_id, "kind": kind, "opened": opened,
            "summary": "who funds the supported accommodation"})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    open_dispute(register.overdue, "funding", "2026-05-01")  # stage 1, due in May: overdue
    open_dispute(register.reviewed, "ending", "2026-05-28")  # stage 3, 2 working days old
    settled = open_dispute(register.ended, "scope", "2026-04-01")
    assert client.post(f"/api/v1/disputes/{settled}/resolve",
                       json={"outcome": "agreed at stage 1"}).status_code == 200
    disputes = _report(client)["disputes"]
    assert disputes == {
        "open": 2, "open_by_stage": {"1": 1, "2": 0, "3": 1, "4": 0}, "overdue": 1,
        # 2026-05-01 to 06-01 is 19 working days (4 and 25 May are bank holidays).
        "open_by_age_working_days": {"0-5": 1, "6-15": 0, "16-30": 1, "over-30": 0},
        "opened_in_period": 3, "resolved_in_period": 1}


def test_missed_entitlements_found_resolved_and_open(client: TestClient, hub: Hub,
                                                     register: Register) -> None:
    with hub.engine.connect() as conn:
        missed = list(conn.execute(select(register_exceptions.c.id).where(
            register_exceptions.c.kind == "missed-entitlement")).scalars())
    assert missed, "the detectors found no missed entitlement to report"
    response = client.post(f"/api/v1/exceptions/{missed[0]}/resolve", json={
        "decision": "resolved", "reason": "council confirmed s117 by letter"})
    assert response.status_code == 200, response.text
    figures = _report(client)["missed_entitlements"]
    assert figures == {"found_in_period": len(missed), "resolved_in_period": 1,
                       "dismissed_in_period": 0, "open": len(missed) - 1}
    exceptions = _report(client)["exceptions"]
    assert exceptions["open_by_kind"].get("missed-entitlement", 0) == len(missed) - 1
    assert exceptions["open_by_kind"]["review-overdue"] == 1  # A's first review
    assert exceptions["open"] == sum(exceptions["open_by_kind"].values())


def test_deliveries_within_sla_late_open_and_breached(client: TestClient, hub: Hub,
                                                      clock: FixedClock,
                                                      register: Register) -> None:
    with hub.engine.begin() as conn:
        total = conn.execute(select(func.count()).select_from(outbound_deliveries)
                             ).scalar_one()
        claimed = outbox.claim(conn, "trust-fhir", now=clock.now(),
                               lease_until=clock.now() + timedelta(hours=1), limit=2)
        assert len(claimed) == 2
        on_time, late = claimed
        outbox.record(conn, [outbox.Result(id=on_time.id, claim=on_time.claim,
                                           status="delivered")],
                      datetime(2026, 5, 21, 9, 0, tzinfo=UTC))
        outbox.record(conn, [outbox.Result(id=late.id, claim=late.claim,
                                           status="delivered")],
                      datetime(2026, 5, 29, 9, 0, tzinfo=UTC))
    deliveries = _report(client)["deliveries"]
    # Every delivery's notice arrived on 2026-05-20, due 2026-05-28: all open ones breached.
    assert deliveries == {"total": total, "delivered_within_sla": 1, "delivered_late": 1,
                          "cancelled": 0, "superseded": 0, "open": total - 2,
                          "open_breached": total - 2, "breached": total - 1}
    clock.at = datetime(2026, 5, 27, 9, 0, tzinfo=UTC)  # before the due time: none breached
    assert _report(client)["deliveries"]["open_breached"] == 0


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_by_query_or_accept_header(client: TestClient, register: Register) -> None:
    by_query = client.get("/api/v1/reports/board", params={"format": "csv"})
    by_accept = client.get("/api/v1/reports/board", headers={"Accept": "text/csv"})
    for response in (by_query, by_accept):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
    rows = _csv_rows(by_query.text)
    assert rows[0] == ["section", "metric", "key", "value"]
    assert all(len(row) == 4 for row in rows)
    assert ["register", "by_status", "active", "2"] in rows
    assert ["register", "on_register", "", "4"] in rows
    assert ["trend", "active", "2026-03", "3"] in rows
    assert ["reviews", "first", "overdue", "1"] in rows
    assert ["as_of", "date", "", "2026-06-01"] in rows
    assert by_accept.text == by_query.text
    explicit_json = client.get("/api/v1/reports/board", params={"format": "json"},
                               headers={"Accept": "text/csv"})
    assert explicit_json.headers["content-type"].startswith("application/json")


def test_the_report_carries_no_nhs_number_or_name(client: TestClient,
                                                  register: Register) -> None:
    text = client.get("/api/v1/reports/board").text + client.get(
        "/api/v1/reports/board", params={"format": "csv"}).text
    assert make_synthetic(1) not in text and "Testfamily" not in text
    assert register.overdue not in text


@pytest.mark.parametrize("role, status", [("auditor", 200), ("integration-engineer", 403),
                                          ("source-system", 403)])
def test_auditors_may_read_it_engineers_may_not(hub: Hub, role: str, status: int) -> None:
    source = "trust-a" if role == "source-system" else None
    _id, token = TokenStore(hub.engine).create(role, source=source)
    with TestClient(create_app(hub)) as client:
        response = client.get("/api/v1/reports/board",
                              headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status


def test_months_out_of_range_is_422(client: TestClient) -> None:
    response = client.get("/api/v1/reports/board", params={"months": 0})
    assert response.status_code == 422 and response.json()["field"] == "months"

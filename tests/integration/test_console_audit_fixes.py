"""The console audit's findings (issue 6): identity decisions on the exception page, odd
query values as 422 pages (not 500s), unexpected errors and unknown addresses as console
pages with the security headers, paging on the Audit log and Deliveries, impossible
correction dates refused, a review correction's kind and joint said on the form, disputes
overdue across a weekend, a merged-away person, and English days in the date filters.
Synthetic data only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from register_core.adapters import outbox
from register_core.adapters.tables import (
    audit_log,
    disputes,
    facts,
    inbox_messages,
    outbound_deliveries,
    person_merges,
    register_exceptions,
)
from register_core.domain.commands import PersonRef, Provenance
from register_core.domain.errors import InvalidValue
from s117hub.api.app import create_app
from s117hub.api.corrections import CompleteReview, ConfirmS117
from s117hub.bootstrap import Hub
from s117hub.console import actions, figures
from s117hub.console.filters import england_midnight

from .console_world import seed
from .identity_people import (
    TYPO,
    apply,
    confirmed,
    council_ref,
    detention,
    identity_exceptions,
    left_hospital,
    residence,
    trust_ref,
)
from .test_console import AUDITOR, ENGINEER, OWNER, Console, TestClient


@pytest.fixture
def console(hub: Hub) -> Iterator[Console]:
    world = seed(hub)
    with TestClient(create_app(hub), base_url="https://hub.test",
                    follow_redirects=False) as client:
        yield Console(hub, world, client)


def _secured_html(answer: object) -> None:
    headers = answer.headers  # type: ignore[attr-defined]
    assert headers["content-type"].startswith("text/html")
    assert headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def _options(page: str) -> list[str]:
    decide = page[page.index('name="decision"'):]
    decide = decide[:decide.index("</select>")]
    return re.findall(r'<option value="([^"]*)"', decide)


# -- 1: identity-uncertain decided in the console ----------------------------------------


def _identity_pair(console: Console) -> tuple[str, str, str]:
    hub = console.hub
    trust = apply(hub, detention(trust_ref()))
    apply(hub, left_hospital(trust_ref()))
    council = apply(hub, residence(council_ref(**TYPO)))
    apply(hub, confirmed(council_ref(**TYPO)))
    [row] = identity_exceptions(hub.engine)
    return trust.person_id, council.person_id, row["id"]


def test_an_identity_review_offers_same_person_and_different_people(console: Console) -> None:
    trust, council, exception_id = _identity_pair(console)
    client = console.login(OWNER)
    path = f"/ui/exceptions/{exception_id}"
    page = client.get(path).text
    assert _options(page) == ["", "same-person", "different-people"]
    assert f'href="/ui/people/{trust}"' in page  # the candidate's register id, linked
    assert 'name="apply_type"' not in page  # an identity decision applies no correction
    assert f"/ui/exceptions/{exception_id}/dismiss" in page
    answer = client.post(f"{path}/resolve", data={
        "csrf_token": console.csrf(path), "decision": "same-person",
        "reason": "same person: checked with the council"})
    assert answer.status_code == 303, answer.text
    with console.hub.engine.connect() as conn:
        merge = conn.execute(select(person_merges)).mappings().one()
    assert (merge["survivor_id"], merge["merged_id"]) == (trust, council)
    # 7: the merged-away record says where it went instead of looking live and empty.
    merged_page = client.get(f"/ui/people/{council}").text
    assert "Merged into" in merged_page and f'href="/ui/people/{trust}"' in merged_page
    assert "Merged into" not in client.get(f"/ui/people/{trust}").text


def test_other_kinds_keep_resolved_and_corrected(console: Console) -> None:
    page = console.login(OWNER).get(console.path("/ui/exceptions/{conflict_exception}")).text
    options = _options(page)
    assert options[-2:] == ["resolved", "corrected"]
    assert set(options[:-2]) == {"", "accept-source:trust-a", "accept-source:council-a"}


def test_different_people_from_the_console_dismisses_the_review(console: Console) -> None:
    _, _, exception_id = _identity_pair(console)
    client = console.login(OWNER)
    path = f"/ui/exceptions/{exception_id}"
    answer = client.post(f"{path}/resolve", data={
        "csrf_token": console.csrf(path), "decision": "different-people",
        "reason": "twins: different people"})
    assert answer.status_code == 303, answer.text
    with console.hub.engine.connect() as conn:
        row = conn.execute(select(register_exceptions).where(
            register_exceptions.c.id == exception_id)).mappings().one()
    assert (row["status"], row["decision"]) == ("dismissed", "different-people")


# -- 2 and 8: odd query values, errors, unknown addresses --------------------------------


@pytest.mark.parametrize(("role", "path"), [
    (OWNER, "/ui/exceptions?older_than=%C2%B2"),
    (OWNER, "/ui/exceptions?older_than=2999999"),
    (OWNER, "/ui/exceptions?older_than=-1"),
    (ENGINEER, "/ui/messages?until=9999-12-31"),
    (ENGINEER, "/ui/messages?since=0001-01-01"),
    (ENGINEER, "/ui/deliveries?status=failed&offset=%C2%B2"),
    (ENGINEER, "/ui/deliveries?offset_failed=-5"),
    (OWNER, "/ui/disputes?show=bogus"),
    (AUDITOR, "/ui/audit?since=9999-12-31"),
    (AUDITOR, "/ui/audit?since=yesterday"),
])
def test_odd_query_values_are_422_pages(console: Console, role: str, path: str) -> None:
    answer = console.login(role).get(path)
    assert answer.status_code == 422, answer.text
    _secured_html(answer)


def test_a_large_but_valid_age_is_an_empty_worklist(console: Console) -> None:
    answer = console.login(OWNER).get("/ui/exceptions?older_than=36600")
    assert answer.status_code == 200 and "No exception matches" in answer.text


def test_an_unexpected_error_is_a_console_500_page_with_the_headers(
        console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console.login(ENGINEER)

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("synthetic failure")

    monkeypatch.setattr(figures, "flow", broken)
    answer = client.get("/ui/flow")
    assert answer.status_code == 500
    _secured_html(answer)
    assert "Something went wrong" in answer.text and "synthetic failure" not in answer.text


def test_an_unknown_console_address_is_a_console_404_page(console: Console) -> None:
    answer = console.login(ENGINEER).get("/ui/no-such-page")
    assert answer.status_code == 404
    _secured_html(answer)
    assert "Not found" in answer.text
    assert console.client.get("/ui/static/console.js").status_code == 200


def test_date_filters_start_at_midnight_in_england() -> None:
    # 1 June is in British Summer Time: its day starts at 23:00 UTC on 31 May.
    assert england_midnight(date(2026, 6, 1)) == datetime(2026, 5, 31, 23, 0, tzinfo=UTC)
    assert england_midnight(date(2026, 1, 5)) == datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


def test_the_message_filter_uses_the_english_day(console: Console) -> None:
    # 23:30 UTC on 31 May is 00:30 on 1 June in London: an English 1 June message.
    with console.hub.engine.begin() as conn:
        conn.execute(update(inbox_messages).where(
            inbox_messages.c.id == console.world.failed_message).values(
            received_at=datetime(2026, 5, 31, 23, 30, tzinfo=UTC)))
    client = console.login(ENGINEER)
    assert "CONSOLE-1" in client.get("/ui/messages?since=2026-06-01&until=2026-06-01").text
    assert "CONSOLE-1" not in client.get("/ui/messages?until=2026-05-31").text


# -- 3: the audit log pages, and filters by day ------------------------------------------


def _audit_rows(console: Console, count: int, at: datetime) -> None:
    with console.hub.engine.begin() as conn:
        conn.execute(insert(audit_log), [
            {"at": at - timedelta(minutes=i), "actor": "synthetic-actor", "role": "auditor",
             "action": "read", "resource": "person", "resource_id": f"row-{i}"}
            for i in range(count)])


def test_the_audit_log_pages_past_the_newest_200_and_filters_by_day(console: Console) -> None:
    now = console.hub.clock.now()
    _audit_rows(console, 230, now - timedelta(days=3))
    client = console.login(AUDITOR)
    first = client.get("/ui/audit?actor_id=synthetic-actor")
    assert first.status_code == 200
    assert "1–200 of 230" in first.text and "offset=200" in first.text
    assert "row-199" in first.text and "row-200<" not in first.text
    second = client.get("/ui/audit?actor_id=synthetic-actor&offset=200")
    assert "201–230 of 230" in second.text and "row-229" in second.text
    recent = client.get(f"/ui/audit?actor_id=synthetic-actor&since={now.date()}")
    assert "0 entries" in recent.text
    older = (now - timedelta(days=3)).date()
    assert "230 entries" in client.get(
        f"/ui/audit?actor_id=synthetic-actor&since={older - timedelta(days=1)}").text


# -- 4: deliveries page per status ---------------------------------------------------------


def test_the_failed_worklist_pages_beyond_50(console: Console) -> None:
    hub = console.hub
    now = hub.clock.now()
    with hub.engine.begin() as conn:
        for _ in range(55):
            _, (delivery,) = outbox.add_change(
                conn, person_id=console.world.conflict_person,
                changes=[{"field": "entitlement.status"}], document={"status": "pending"},
                received_at=now, now=now,
                deliveries=[outbox.NewDelivery("council-x", "council-rest", now,
                                               now + timedelta(days=7))])
            conn.execute(update(outbound_deliveries)
                         .where(outbound_deliveries.c.id == delivery)
                         .values(status="failed", attempts=1))
    client = console.login(ENGINEER)
    page = client.get("/ui/deliveries").text
    assert "Failed (56)" in page and "offset_failed=50" in page
    oldest = f'href="/ui/deliveries/{console.world.failed_delivery}"'
    assert oldest not in page  # newest first: the seed's own delivery is on page 2
    second = client.get("/ui/deliveries?offset_failed=50").text
    assert "51–56 of 56" in second and oldest in second
    single = client.get("/ui/deliveries?status=failed&offset=50").text
    assert "51–56 of 56" in single and oldest in single


# -- 5: correction dates, and the review's kind and joint --------------------------------


def test_a_correction_dated_in_the_future_is_refused_and_the_exception_stays_open(
        console: Console) -> None:
    client = console.login(OWNER)
    path = console.path("/ui/exceptions/{conflict_exception}")
    answer = client.post(f"{path}/resolve", data={
        "csrf_token": console.csrf(path), "decision": "corrected", "reason": "phoned",
        "apply_type": "s117.confirmed", "apply_date": "9999-12-31"})
    assert answer.status_code == 422 and "apply.start" in answer.text
    api = console.client.post(
        f"/api/v1/exceptions/{console.world.conflict_exception}/resolve",
        headers={"Authorization": f"Bearer {console.world.tokens[OWNER]}"},
        json={"decision": "corrected", "reason": "phoned",
              "apply": {"type": "aftercare-plan.agreed", "date": "2026-06-02"}})
    assert api.status_code == 422 and "apply.date" in api.text
    with console.hub.engine.connect() as conn:
        status = conn.execute(select(register_exceptions.c.status).where(
            register_exceptions.c.id == console.world.conflict_exception)).scalar_one()
    assert status == "open"


def test_correction_dates_run_from_1900_to_today() -> None:
    today = date(2026, 6, 1)
    ConfirmS117(type="s117.confirmed", start=today).check_dates(today)
    with pytest.raises(InvalidValue, match="after today") as after:
        ConfirmS117(type="s117.confirmed", start=date(2026, 6, 2)).check_dates(today)
    assert after.value.field == "apply.start"
    with pytest.raises(InvalidValue, match="before 1900"):
        CompleteReview(type="review.completed", date=date(1899, 12, 31)).check_dates(today)
    prov = Provenance(source="register", source_ref="exception:x",
                      received_at=datetime(2026, 5, 31, 23, 30, tzinfo=UTC))
    # 23:30 UTC on 31 May is 00:30 on 1 June in London: 1 June is today, not the future.
    ConfirmS117(type="s117.confirmed", start=today).command(PersonRef(local_id="x"), prov)


def test_the_review_form_says_kind_and_joint(console: Console) -> None:
    review = actions.correction_from_form("review.completed", "2026-05-01", "",
                                          review_kind="unscheduled", joint="no")
    assert (review.kind, review.joint) == ("unscheduled", False)
    unknown = actions.correction_from_form("review.completed", "2026-05-01", "")
    assert (unknown.kind, unknown.joint) == ("scheduled", None)
    with pytest.raises(InvalidValue):
        actions.correction_from_form("review.completed", "2026-05-01", "", joint="maybe")
    client = console.login(OWNER)
    path = console.path("/ui/exceptions/{conflict_exception}")
    page = client.get(path).text
    assert 'name="apply_review_kind"' in page and 'name="apply_joint"' in page
    answer = client.post(f"{path}/resolve", data={
        "csrf_token": console.csrf(path), "decision": "corrected", "reason": "reviewed",
        "apply_type": "review.completed", "apply_date": "2026-05-01",
        "apply_review_kind": "unscheduled", "apply_joint": "no"})
    assert answer.status_code == 303, answer.text
    with console.hub.engine.connect() as conn:
        payload = conn.execute(select(facts.c.payload).where(
            facts.c.source == "register", facts.c.kind == "review-completed")).scalar_one()
    assert '"unscheduled"' in str(payload).replace("'", '"')
    assert "false" in str(payload).lower()


# -- 6: a deadline passed just before a weekend ----------------------------------------------


def test_a_dispute_due_on_friday_is_overdue_on_saturday(console: Console) -> None:
    with console.hub.engine.begin() as conn:
        conn.execute(update(disputes).where(disputes.c.id == console.world.dispute_id)
                     .values(stage_due=date(2026, 6, 5)))  # a Friday
    console.hub.clock.at = datetime(2026, 6, 6, 9, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    page = console.login(OWNER).get("/ui/disputes").text
    at = page.index("ICB and council disagree")
    row = page[page.rindex("<tr", 0, at):page.index("</tr>", at)]
    assert "overdue" in row and "<td>0</td>" not in row

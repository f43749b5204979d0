"""Due times in England working days, backoff with jitter, outcomes, subscriber filters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from register_core.adapters.outbox import Claimed
from register_core.adapters.subscriptions import RetrySettings, SubscriptionDefinition
from register_core.domain.position import Entitlement, Position
from register_core.services.outbound import (
    Attempt,
    alert_retry_delay,
    backoff,
    due_time,
    outcome,
    outstanding_alert,
    status_changes,
    wanted_by,
)

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("received, due", [
    (datetime(2026, 6, 1, 9, 0, tzinfo=UTC), datetime(2026, 6, 8, 9, 0, tzinfo=UTC)),
    # Friday 22 May 2026 → the Spring bank holiday (25 May) does not count
    (datetime(2026, 5, 22, 14, 0, tzinfo=UTC), datetime(2026, 6, 1, 14, 0, tzinfo=UTC)),
    # Saturday: counted from the following working days
    (datetime(2026, 6, 6, 10, 0, tzinfo=UTC), datetime(2026, 6, 12, 10, 0, tzinfo=UTC)),
    # 23:30 UTC on Sunday 31 May is 00:30 on Monday 1 June in London (BST): due 00:30 on
    # Monday 8 June in London
    (datetime(2026, 5, 31, 23, 30, tzinfo=UTC), datetime(2026, 6, 7, 23, 30, tzinfo=UTC)),
    # Christmas and New Year: 25, 28 December and 1 January are bank holidays in 2026/27
    (datetime(2026, 12, 23, 15, 0, tzinfo=UTC), datetime(2027, 1, 4, 15, 0, tzinfo=UTC)),
])
def test_due_five_england_working_days_after_the_notice(received: datetime,
                                                         due: datetime) -> None:
    assert due_time(received) == due


def test_backoff_grows_is_capped_jittered_and_honours_retry_after() -> None:
    retry = RetrySettings(min_backoff_seconds=2, max_backoff_seconds=60)
    assert [backoff(n, retry, rand=lambda: 0.0) for n in (1, 2, 3, 10)] == [1, 2, 4, 30]
    assert [backoff(n, retry, rand=lambda: 1.0) for n in (1, 2, 3, 10)] == [2, 4, 8, 60]
    assert backoff(1, retry, retry_after=120, rand=lambda: 0.5) == 120


def _claimed(attempts: int, due_at: datetime = NOW) -> Claimed:
    return Claimed(id=1, subscription_id="s", person_id="p", kind="council-rest",
                   idempotency_key="K", attempts=attempts, claim="c", change_id=1,
                   document={}, due_at=due_at)


def test_outcomes() -> None:
    retry = RetrySettings(max_attempts=3, min_backoff_seconds=10)
    assert outcome(_claimed(1), Attempt("delivered", 200), retry, NOW).status == "delivered"
    assert outcome(_claimed(1), Attempt("permanent", 400, body="no"), retry,
                   NOW).status == "failed"
    again = outcome(_claimed(1), Attempt("transient", 503), retry, NOW, rand=lambda: 0.0)
    assert again.status == "retrying" and again.next_attempt_at == NOW + timedelta(seconds=5)
    assert outcome(_claimed(3), Attempt("transient", 503), retry, NOW).status == "failed"


def test_attempts_used_up_keep_retrying_at_the_cap_until_the_due_time() -> None:
    """A partner down overnight is not dead-lettered while the five working days run."""
    retry = RetrySettings()  # the defaults: 12 attempts, 5 s doubling to 3600 s
    due = NOW + timedelta(days=7)
    again = outcome(_claimed(12, due), Attempt("transient", 503), retry, NOW,
                    rand=lambda: 1.0)
    assert again.status == "retrying" and again.next_attempt_at == NOW + timedelta(hours=1)
    assert outcome(_claimed(40, due), Attempt("transient", None), retry,
                   due - timedelta(seconds=1)).status == "retrying"
    assert outcome(_claimed(40, due), Attempt("transient", 503), retry, due).status == "failed"
    assert outcome(_claimed(1, due), Attempt("permanent", 400), retry, NOW).status == "failed"
    # Before the attempts are used up, past due or not, the backoff goes on as before.
    assert outcome(_claimed(2, NOW - timedelta(days=1)), Attempt("transient", 503), retry,
                   NOW).status == "retrying"


def _position(council: str | None, icb: str | None = None) -> Position:
    return Position(as_of=date(2026, 6, 1), detentions=[], legal_status_events=[],
                    entitlement=Entitlement(status="active", responsible_council=council,
                                            responsible_icb=icb),
                    on_cto=False, conditionally_discharged=False, in_hospital=False,
                    reviews=[], charges_under_s117=[], refused_endings=[],
                    child_notified=None, explain={})


def _sub(**changes: list[str]) -> SubscriptionDefinition:
    return SubscriptionDefinition(subscription_id="s", kind="council-rest",
                                  endpoint="https://x.example/", changes=changes)


def test_filters_by_field_and_by_council_before_or_after() -> None:
    status = [("entitlement.status", "pending", "active")]
    moved = [("entitlement.responsible_council", "E10000034", "E06000019")]
    assert wanted_by(_sub(), status, _position(None))
    assert not wanted_by(_sub(), [("entitlement.named_practitioner", None, "x")],
                         _position(None))
    assert not wanted_by(_sub(fields=["entitlement.ended"]), status, _position(None))
    assert wanted_by(_sub(councils=["E10000034"]), status, _position("E10000034"))
    assert not wanted_by(_sub(councils=["E10000034"]), status, _position("E06000019"))
    assert wanted_by(_sub(councils=["E10000034"]), moved, _position("E06000019"))  # losing it
    assert wanted_by(_sub(icbs=["QGH"]), status, _position(None, "QGH"))
    disabled = _sub().model_copy(update={"enabled": False})
    assert wanted_by(disabled, status, _position(None))  # queued; sent once enabled again


def test_a_new_person_without_entitlement_is_no_news() -> None:
    first_save = [("person.family_name", None, "Testfamily"), ("entitlement.status", None, "none"),
                  ("entitlement.on_cto", None, "False")]
    assert status_changes(first_save) == []
    assert not wanted_by(_sub(), first_save, _position(None))
    detained = [("entitlement.status", None, "pending"), ("entitlement.on_cto", None, "False")]
    # The published schema's status values: a person with no entitlement row yet was "none"
    # (as one whose row says none), never null; not on a CTO is "False".
    assert status_changes(detained) == [("entitlement.status", "none", "pending")]
    assert status_changes([("entitlement.on_cto", None, "True")]) == [
        ("entitlement.on_cto", "False", "True")]
    assert status_changes([("entitlement.start", None, "2026-03-01")]) == [
        ("entitlement.start", None, "2026-03-01")]
    assert status_changes([("entitlement.on_cto", "False", "True")]) != []
    assert status_changes([("entitlement.status", "pending", "none")]) != []


def _alerting(**row: object) -> dict[str, object]:
    base = {"status": "failed", "due_at": NOW + timedelta(hours=3), "warned_at": None,
            "warning_alerted_at": None, "breached_at": None, "breach_alerted_at": None}
    return {**base, **row}


def test_which_alert_is_still_outstanding() -> None:
    warned = NOW - timedelta(hours=1)
    assert outstanding_alert(_alerting(warned_at=warned), NOW) == ("warning", warned)
    assert outstanding_alert(_alerting(warned_at=warned, warning_alerted_at=NOW), NOW) is None
    assert outstanding_alert(_alerting(warned_at=warned, status="delivered"), NOW) is None
    assert outstanding_alert(_alerting(warned_at=warned, status="superseded"), NOW) is None
    assert outstanding_alert(_alerting(warned_at=warned, due_at=NOW), NOW) is None
    # The breach replaces the warning; a breach alert still matters once delivered late.
    assert outstanding_alert(_alerting(warned_at=warned, breached_at=NOW, status="delivered"),
                             NOW) == ("breach", NOW)
    assert outstanding_alert(_alerting(breached_at=NOW, breach_alerted_at=NOW), NOW) is None


def test_alert_tries_double_apart_within_bounds() -> None:
    assert [alert_retry_delay(timedelta(seconds=s), 10, 300).total_seconds()
            for s in (0, 10, 20, 40, 250, 5000)] == [10, 10, 20, 40, 250, 300]

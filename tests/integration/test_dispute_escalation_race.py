"""Two escalations of the same dispute at once move it one stage, not two (audit D6).

Both register owners saw stage 1 and meant to leave it. The row lock made the second wait,
and then it escalated again: 1 → 3, a stage skipped. Escalation is now a compare-and-set on
the stage the caller means to leave (``from_stage``, or the stage the request found when it
arrived): one 200, one 409. Run on SQLite and PostgreSQL. Synthetic data only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from register_core.adapters.security import Role
from register_core.adapters.unit_of_work import SqlUnitOfWork
from s117hub.bootstrap import Hub

from .reconcile_people import TestClient, client_for, kept


@pytest.fixture
def owner(hub: Hub) -> Iterator[TestClient]:
    with client_for(hub, Role.REGISTER_OWNER) as client:
        yield client


@pytest.fixture
def dispute(hub: Hub, owner: TestClient) -> dict[str, Any]:
    person = kept(hub, 1, date(2026, 1, 5), date(2026, 3, 2))
    opened = owner.post("/api/v1/disputes", json={
        "person_id": person, "kind": "funding", "summary": "who pays for the placement"})
    assert opened.status_code == 201 and opened.json()["stage"] == 1
    return opened.json()  # type: ignore[no-any-return]


def _escalate(client: TestClient, dispute_id: str, **body: Any) -> Any:
    return client.post(f"/api/v1/disputes/{dispute_id}/escalate",
                       json={"reason": "stage 1 leads could not agree", **body})


def test_two_escalations_at_once_move_the_dispute_one_stage(
        hub: Hub, owner: TestClient, dispute: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Both requests are in before either writes: each waits at the barrier as it opens its
    # write transaction, so they then run one after the other, as under real load.
    barrier = threading.Barrier(2, timeout=30)
    opened = hub.uow

    def uow_after_both_arrived() -> SqlUnitOfWork:
        barrier.wait()
        return opened()

    monkeypatch.setattr(hub, "uow", uow_after_both_arrived)
    answers: list[Any] = [None, None]

    def press(i: int) -> None:
        answers[i] = _escalate(owner, dispute["id"], reason=f"owner {i}: no agreement")

    threads = [threading.Thread(target=press, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    monkeypatch.undo()
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    conflict = next(a.json() for a in answers if a.status_code == 409)
    assert (conflict["error"], conflict["field"], conflict["rule"]) == (
        "concurrent-change", "from_stage", "dispute-stage-unchanged")
    assert "stage 2 now, not 1" in conflict["message"]
    final = owner.get(f"/api/v1/disputes/{dispute['id']}").json()
    assert final["stage"] == 2
    assert [(h["event"], h.get("from_stage"), h["stage"]) for h in final["history"]] == [
        ("opened", None, 1), ("escalated", 1, 2)]


def test_from_stage_says_which_stage_the_caller_means_to_leave(
        owner: TestClient, dispute: dict[str, Any]) -> None:
    moved = _escalate(owner, dispute["id"], from_stage=1)
    assert moved.status_code == 200 and moved.json()["stage"] == 2
    stale = _escalate(owner, dispute["id"], from_stage=1)  # a page still showing stage 1
    assert stale.status_code == 409 and stale.json()["field"] == "from_stage"
    assert owner.get(f"/api/v1/disputes/{dispute['id']}").json()["stage"] == 2
    assert _escalate(owner, dispute["id"], from_stage=2).json()["stage"] == 3


def test_one_after_the_other_without_from_stage_still_escalates_each_time(
        owner: TestClient, dispute: dict[str, Any]) -> None:
    """Sequential presses are not a race: each leaves the stage it found."""
    assert [_escalate(owner, dispute["id"]).json()["stage"] for _ in range(3)] == [2, 3, 4]
    beyond = _escalate(owner, dispute["id"])
    assert beyond.status_code == 422  # no stage after 4, as before


@pytest.mark.parametrize("from_stage", [0, 4, "two"])
def test_from_stage_is_1_to_3(owner: TestClient, dispute: dict[str, Any],
                              from_stage: Any) -> None:
    answer = _escalate(owner, dispute["id"], from_stage=from_stage)
    assert answer.status_code == 422 and answer.json()["field"] == "from_stage"


def test_an_unknown_dispute_is_still_404(owner: TestClient) -> None:
    missing = _escalate(owner, "00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["field"] == "dispute_id"

"""Identity matching over the whole register (``s117hub reconcile``'s first pass), on the real
databases: records onboarded before the people they match were registered (matching off while
they were loaded, as a bulk history load) are linked afterwards with the write path's matcher,
thresholds, review detail and fingerprint; merges are reversible; a register owner's
``different-people`` stands; different valid NHS numbers are never merged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import Table, select

from register_core.adapters.tables import (
    entitlements,
    facts,
    person_merges,
    persons,
    register_changes,
)
from register_core.domain.position import Policy
from register_core.ports import FixedClock
from register_core.services import bulk_matching
from register_core.services import exceptions as workflow
from register_core.services.applied import Applied
from register_core.services.bulk_matching import MatchingReport, match_register
from register_core.services.unmerging import unmerge_person
from s117hub import cli_reconcile
from s117hub.bootstrap import Hub
from s117hub.config import Settings

from .identity_people import (
    COUNCIL,
    TRUST,
    TYPO,
    apply,
    confirmed,
    council_ref,
    detention,
    identifiers_of,
    identity_exceptions,
    keys_of,
    left_hospital,
    person_ids,
    residence,
    trust_ref,
)

# The write path's detail keys: the console and the API read both kinds alike.
DETAIL_KEYS = {"candidate_person_id", "probability", "score", "rule", "comparison", "levels",
               "weights", "thresholds", "source", "source_ref"}


@pytest.fixture
def onboarded(hub: Hub) -> Iterator[Hub]:
    """Records are loaded with probabilistic matching off (a source's history onboarded in
    bulk, the council's before the trust's); the pass then runs with the configured one."""
    configured = hub.policy
    hub.policy = replace(configured, probabilistic_identity=False)
    yield hub
    hub.policy = configured


def _load(hub: Hub, **council_changes: object) -> tuple[str, str]:
    """A council-only person without an NHS number, then the trust's person (with one)."""
    council = apply(hub, residence(council_ref(**council_changes))).person_id
    trust = apply(hub, detention(trust_ref())).person_id
    apply(hub, left_hospital(trust_ref()))
    assert council != trust
    return council, trust


def _run(hub: Hub, policy: Policy | None = None) -> MatchingReport:
    return match_register(hub.engine, hub.clock, policy or Policy())


def test_an_exact_match_is_merged_and_can_be_unmerged(onboarded: Hub) -> None:
    """standards.md section 4: name, birth date and postcode that all agree link the council's
    record to the trust's person, through the reversible merge."""
    hub = onboarded
    council, trust = _load(hub)
    report = _run(hub)
    assert (report.compared, report.linked, report.reviews_opened) == (1, 1, 0)
    assert report.merges == [(trust, council)]
    assert identifiers_of(hub.engine, trust) == {(TRUST, "RX1-701"), (COUNCIL, "C-701")}
    assert identifiers_of(hub.engine, council) == set()
    with hub.engine.connect() as conn:
        merge = conn.execute(select(person_merges)).mappings().one()
    assert (merge["survivor_id"], merge["merged_id"], merge["source"],
            merge["merged_by"]) == (trust, council, "register", "system")
    assert identity_exceptions(hub.engine) == []
    # A second pass finds nothing new: the merged record is nobody's candidate.
    again = _run(hub)
    assert (again.compared, again.linked, again.reviews_opened) == (0, 0, 0)
    with hub.uow() as uow:
        unmerge_person(uow, council, by="token-1", clock=hub.clock, policy=hub.policy)
        uow.commit()
    assert identifiers_of(hub.engine, council) == {(COUNCIL, "C-701")}
    assert identifiers_of(hub.engine, trust) == {(TRUST, "RX1-701")}


def test_a_review_band_pair_opens_identity_uncertain_as_the_write_path_does(
        onboarded: Hub) -> None:
    """standards.md section 4: a surname and birth date each one keystroke off is a question
    for the register owner, with the same detail and fingerprint as on arrival."""
    hub = onboarded
    council, trust = _load(hub, **TYPO)
    report = _run(hub)
    assert (report.compared, report.linked, report.reviews_opened) == (1, 0, 1)
    [row] = identity_exceptions(hub.engine)
    assert (row["person_id"], row["status"]) == (council, "open")
    detail = row["detail"]
    assert set(detail) == DETAIL_KEYS
    assert detail["candidate_person_id"] == trust
    assert detail["rule"] == "score-in-review-band" and 0.5 <= detail["probability"] < 0.95
    assert (detail["source"], detail["source_ref"]) == ("register", "reconcile")
    assert row["fingerprint"] == f"identity-uncertain:{'|'.join(sorted((council, trust)))}"
    assert "Thornl" not in repr(row) and "1984" not in repr(row)
    assert person_ids(hub.engine) == sorted([council, trust])
    again = _run(hub)  # raised once: the open exception is the question
    assert (again.reviews_opened, again.known) == (0, 1)


def test_an_answered_different_people_pair_is_neither_raised_nor_merged_again(
        onboarded: Hub) -> None:
    """standards.md section 4: "different-people" keeps a pair apart for good, even when a
    later pass (here, a lower link threshold) would link it."""
    hub = onboarded
    council, _ = _load(hub, **TYPO)
    _run(hub)
    [row] = identity_exceptions(hub.engine)
    with hub.uow() as uow:
        workflow.close_exception(uow, hub.clock, row["id"], decision="different-people",
                                 reason="twins, checked with the GP", by="token-1")
        uow.commit()
    for policy in (Policy(), Policy(identity_link_threshold=0.6,
                                    identity_review_threshold=0.3)):
        report = _run(hub, policy)
        assert (report.linked, report.reviews_opened, report.known) == (0, 0, 1)
    assert [r["status"] for r in identity_exceptions(hub.engine)] == ["dismissed"]
    assert identifiers_of(hub.engine, council) == {(COUNCIL, "C-701")}


def test_different_valid_nhs_numbers_are_never_merged(onboarded: Hub) -> None:
    """standards.md section 4: "Never link two records with different valid NHS numbers",
    whatever the demographics; a record without a number links to one of them only."""
    hub = onboarded
    first = apply(hub, detention(trust_ref(701))).person_id
    twin = apply(hub, residence(council_ref(nhs_number=trust_ref(702).nhs_number))).person_id
    report = _run(hub)
    assert (report.compared, report.linked) == (0, 0)
    assert first != twin and len(person_ids(hub.engine)) == 2
    # A third record, without a number, is as like one as the other: review, not a merge.
    third = apply(hub, confirmed(council_ref("C-703", gp_practice_ods=None),
                                 msg="ev-3")).person_id
    report = _run(hub)
    assert report.linked == 0 and report.reviews_opened == 1
    [row] = identity_exceptions(hub.engine)
    assert row["person_id"] == third and row["detail"]["rule"] == "ambiguous-candidates"
    with hub.engine.connect() as conn:
        assert conn.execute(select(person_merges)).first() is None


def test_the_command_line_matches_then_sweeps_and_no_matching_skips_it(
        onboarded: Hub, database_url: str, clock: FixedClock,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 4 item 6: ``s117hub reconcile`` re-runs matching and reports what it did."""
    hub = onboarded
    council, trust = _load(hub)
    monkeypatch.delenv("S117HUB_CONFIG_FILE", raising=False)
    settings = Settings(database_url=database_url)
    assert cli_reconcile.run(["--no-progress", "--no-matching"], settings, clock) == 0
    out, _ = capsys.readouterr()
    assert "people compared" not in out and "people swept\t2" in out.splitlines()
    assert identifiers_of(hub.engine, council) == {(COUNCIL, "C-701")}
    assert cli_reconcile.run(["--progress"], settings, clock) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[:4] == ["people compared\t1", "pairs scored\t1", "people linked (merged)\t1",
                         "people sent to review\t0"]
    assert "people swept\t2" in lines
    assert "matching" in err and "reconcile" in err  # both bars, on stderr
    assert identifiers_of(hub.engine, trust) == {(TRUST, "RX1-701"), (COUNCIL, "C-701")}
    assert cli_reconcile.run(["--workers", "0"], settings) == 2


NAMES = {711: ("Ashworth", "Bea"), 712: ("Brennan", "Cal"), 721: ("Castillo", "Dee"),
         722: ("Dunmore", "Eli")}


def _pair(hub: Hub, serial: int) -> tuple[str, str]:
    family, given = NAMES[serial]
    local = f"C-{serial}"
    council = apply(hub, residence(council_ref(local, family_name=family, given_name=given),
                                   msg=f"ev-{serial}")).person_id
    trust = trust_ref(serial, family_name=family, given_name=given)
    survivor = apply(hub, detention(trust, msg=f"adt-{serial}-1")).person_id
    apply(hub, left_hospital(trust, msg=f"adt-{serial}-2"))
    return survivor, council


def _register_of(hub: Hub, serial: int, pair: tuple[str, str]) -> dict[str, object]:
    """What the merge of pair ``serial`` left, without ids, serials or times."""
    survivor, merged = pair
    with hub.engine.connect() as conn:
        def rows(table: Table, pid: str, *columns: str) -> list[tuple[object, ...]]:
            order = table.c.seq if "seq" in table.c else table.c.person_id
            if "id" in table.c:
                order = table.c.id
            return [tuple(r) for r in conn.execute(
                select(*(table.c[name] for name in columns))
                .where(table.c.person_id == pid).order_by(order))]

        merge = conn.execute(select(person_merges).where(
            person_merges.c.merged_id == merged)).mappings().one()
        entitlement_columns = ("status", "start", "trigger_section", "responsible_council",
                               "responsible_icb", "next_review_due", "on_cto")
        return {
            "journals": [rows(facts, pid, "seq", "kind", "source", "retracted_by")
                         for pid in (survivor, merged)],
            "entitlements": [rows(entitlements, pid, *entitlement_columns)
                             for pid in (survivor, merged)],
            "changes": [[(name, source, ref.replace(str(serial), "N"), by)
                         for name, source, ref, _, by in rows(
                             register_changes, pid, "field", "source", "source_ref",
                             "new_value", "recorded_by")] for pid in (survivor, merged)],
            "versions": [conn.execute(select(persons.c.version).where(persons.c.id == pid))
                         .scalar_one() for pid in (survivor, merged)],
            "moved": ([fact[1:] for fact in merge["moved"]["facts"]],
                      sorted(source for source, _ in merge["moved"]["identifiers"])),
            "keys of the merged": keys_of(hub.engine, merged),
            "merge": (merge["source"], merge["source_ref"], merge["merged_by"]),
        }


def test_links_merged_in_bulk_leave_what_one_by_one_merges_leave(
        onboarded: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bulk page (merges.merge_loaded) and the one-by-one path (merge_persons) make the
    same journals, projections, change history, merge records and keys."""
    hub = onboarded
    pairs = {serial: _pair(hub, serial) for serial in NAMES}
    one_by_one = {pairs[721][1], pairs[722][1]}
    real = bulk_matching._Apply._merge_bulk

    def leaving_some(self, uow, links, report):  # type: ignore[no-untyped-def]
        rest = [p for p in links if p.person_id in one_by_one]
        return real(self, uow, [p for p in links if p.person_id not in one_by_one],
                    report) + rest

    monkeypatch.setattr(bulk_matching._Apply, "_merge_bulk", leaving_some)
    told: list[Applied] = []
    report = match_register(hub.engine, hub.clock, Policy(),
                            on_merge=lambda conn, applied: told.append(applied))
    assert report.linked == 4 and sorted(report.merges) == sorted(pairs.values())
    # Partners hear of each survivor's new responsible council, in the merge's transaction.
    assert sorted(applied.person_id for applied in told) == sorted(
        survivor for survivor, _ in pairs.values())
    for bulk, single in ((711, 721), (712, 722)):
        assert (_register_of(hub, bulk, pairs[bulk])
                == _register_of(hub, single, pairs[single]))
    # And each comes apart exactly.
    for survivor, merged in pairs.values():
        with hub.uow() as uow:
            unmerge_person(uow, merged, by="token-1", clock=hub.clock, policy=hub.policy)
            uow.commit()
        assert identifiers_of(hub.engine, merged) == {(COUNCIL, f"C-{_serial(pairs, merged)}")}
        assert len(identifiers_of(hub.engine, survivor)) == 1


def _serial(pairs: dict[int, tuple[str, str]], merged: str) -> int:
    return next(serial for serial, (_, pid) in pairs.items() if pid == merged)


def test_decisions_split_among_processes_merge_what_one_process_merges(
        onboarded: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: with workers the decisions are applied by forked processes, each with its
    own connections and its own groups of people; the same links are merged, once each."""
    hub = onboarded
    pairs = {serial: _pair(hub, serial) for serial in NAMES}
    monkeypatch.setattr(bulk_matching, "PARALLEL_APPLY_FROM", 1)
    report = match_register(hub.engine, hub.clock, Policy(), workers=2)
    assert report.linked == 4 and sorted(report.merges) == sorted(pairs.values())
    with hub.engine.connect() as conn:
        merged = conn.execute(select(person_merges.c.survivor_id, person_merges.c.merged_id)
                              ).all()
    assert sorted(merged) == sorted(pairs.values())
    for survivor, gone in pairs.values():
        assert len(identifiers_of(hub.engine, survivor)) == 2
        assert identifiers_of(hub.engine, gone) == set()


def _proposal(person_id: str, candidate_id: str) -> bulk_matching.Proposal:
    decision = bulk_matching.MatchDecision("link", candidate_id, 9.0, 0.99, {}, {}, "rule")
    return bulk_matching.Proposal(person_id, decision)


def test_groups_keep_every_person_in_one_group_in_plan_order() -> None:
    proposals = [_proposal("a", "b"), _proposal("c", "d"), _proposal("e", "b"),
                 _proposal("f", "g"), _proposal("h", "i"), _proposal("d", "j")]
    groups = bulk_matching._groups(proposals, 3)
    assert sorted(p.person_id for g in groups for p in g) == sorted(
        p.person_id for p in proposals)
    home = {}
    for index, group in enumerate(groups):
        assert group == sorted(group, key=proposals.index)  # plan order kept
        for p in group:
            for pid in (p.person_id, p.decision.candidate_id):
                assert home.setdefault(pid, index) == index  # one group per person
    assert sorted(len(g) for g in groups) == [2, 2, 2]  # {a,b,e} {c,d,j} {f,g}+{h,i}

"""A register owner's ``accept-source:<source>`` on a source-conflict is a journalled ruling
(``RecordSourceAccepted``) that the position honours as it would a matching precedence rule
for that group, ahead of the configured rules, citing the decision; the detectors no longer
raise that conflict while the sources tell the same values. Synthetic data only."""

from __future__ import annotations

import pytest

from register_core.domain.commands import Command
from register_core.domain.position import Policy
from register_core.domain.precedence import Precedence, question_of

from ..domain.builders import (
    COUNCIL_A,
    COUNCIL_B,
    d,
    details,
    detention,
    gp,
    plan,
    practitioner,
    regrade,
    residence,
    review,
    source_accepted,
)
from .helpers import council_detention, from_source, of_kind, run

DECIDED = "2026-04-01"
DECISION = "register owner owner-token-1 resolving exception exception-1: accept-source:"


def section_03_or_02() -> list[Command]:
    """council-csv tells section 3, council-a section 2, for the same detention dates; both
    tell the leaving, so on council-csv's word the person is active under s3."""
    return [*council_detention("2026-01-05", "03", "2026-03-02", source="council-csv"),
            *council_detention("2026-01-05", "02", "2026-03-02", source="council-a")]


def conflict_fields(findings: list) -> list[str]:  # type: ignore[type-arg]
    return [f.detail["field"] for f in of_kind(findings, "source-conflict")]


def ruled(commands: list[Command], field: str, source: str,
          today: str = DECIDED) -> list[Command]:
    """``commands`` and the owner's accept-source on the conflict they raise on ``field``."""
    findings, _ = run(commands, today)
    [conflict] = [f for f in of_kind(findings, "source-conflict")
                  if f.detail["field"] == field]
    return [*commands, source_accepted(today, conflict.detail, source)]


def test_accepting_the_section_2_source_ends_the_s3_entitlement_and_explain_says_who():
    findings, before = run(section_03_or_02(), DECIDED)
    assert conflict_fields(findings) == ["detention.section"]
    assert (before.entitlement.status, before.entitlement.trigger_section) == ("active", "03")

    findings, after = run(ruled(section_03_or_02(), "detention.section", "council-a"), DECIDED)
    assert conflict_fields(findings) == []
    assert [ep.section for ep in after.detentions] == ["02"]
    assert (after.entitlement.status, after.entitlement.trigger_section) == ("none", None)
    [key] = [k for k in after.explain if k.endswith("].section")]
    why = after.explain[key]
    assert why.rule.startswith(DECISION + "council-a (detention facts from council-a over "
                               "council-csv): section Section 2 (02), not council-csv's "
                               "Section 3 (03)")
    assert why.facts[-1].endswith("source-accepted from register (exception:exception-1) "
                                  "effective 2026-04-01")
    assert DECISION + "council-a" in after.explain["entitlement.status"].rule


def test_accepting_the_section_3_source_keeps_s3_and_cites_the_decision():
    findings, after = run(ruled(section_03_or_02(), "detention.section", "council-csv"),
                          DECIDED)
    assert conflict_fields(findings) == []
    assert (after.entitlement.status, after.entitlement.trigger_section) == ("active", "03")
    assert DECISION + "council-csv" in after.explain["entitlement.trigger_section"].rule


def test_the_decision_goes_before_a_configured_rule_for_the_other_source():
    csv_first = Policy(precedence=Precedence(detention=("council-csv",)))
    told = section_03_or_02()
    _, by_rule = run(told, DECIDED, position_policy=csv_first)
    assert by_rule.entitlement.trigger_section == "03"
    # The conflict the owner saw (no rule then); the rule came with a later config change.
    findings, decided = run(ruled(told, "detention.section", "council-a"), DECIDED,
                            position_policy=csv_first)
    assert conflict_fields(findings) == []
    assert decided.entitlement.status == "none"


def test_new_values_are_a_new_question_the_decision_does_not_answer():
    """council-csv regrades its detention to s37 after the decision: the sources now tell
    37 and 2, which the owner was not asked about."""
    later = [*ruled(section_03_or_02(), "detention.section", "council-a"),
             *[from_source(regrade("2026-01-10", "37", episode=None), "council-csv")]]
    findings, position = run(later, "2026-04-02")
    [conflict] = of_kind(findings, "source-conflict")
    assert {v["value"] for v in conflict.detail["values"]} == {"02", "37"}
    assert not [k for k, v in position.explain.items() if DECISION in v.rule]


def test_accepting_a_councils_residence_sets_the_responsible_council():
    told = [from_source(residence("2025-01-01", COUNCIL_A), "council-a"),
            from_source(residence("2025-01-01", COUNCIL_B), "council-b"),
            detention("2026-01-05")]
    _, before = run(told, DECIDED)
    assert before.entitlement.responsible_council == COUNCIL_B  # the last one told
    findings, after = run(ruled(told, "ordinary_residence.council_code", "council-a"),
                          DECIDED)
    assert conflict_fields(findings) == []
    assert after.entitlement.responsible_council == COUNCIL_A
    assert (DECISION + "council-a (ordinary residence from council-a over council-b): "
            f"{COUNCIL_A} from 2025-01-01") in after.explain[
        "entitlement.responsible_council"].rule


def every_kind_of_disagreement() -> list[Command]:
    """One journal telling every kind of disagreement a source's word may settle."""
    return [*council_detention("2026-01-05", "03", "2026-03-02", source="council-csv"),
            *council_detention("2026-01-05", "02", "2026-03-04", source="council-a"),
            from_source(residence("2025-01-01", COUNCIL_A), "council-a"),
            from_source(residence("2025-01-01", COUNCIL_B), "council-b"),
            gp("2025-06-01", "P11111", "ICB-1"),
            from_source(gp("2025-06-01", "P22222", "ICB-2"), "trust-a"),
            practitioner("worker-17", "2026-01-08"),
            from_source(practitioner("worker-42", "2026-01-08"), "trust-a"),
            plan("2026-03-02"), from_source(plan("2026-03-06"), "trust-a"),
            review("2026-05-01"), from_source(review("2026-05-08"), "trust-a"),
            review("2026-06-20", joint=True),
            from_source(review("2026-06-20", joint=False), "trust-a")]


def the_conflicts() -> list[tuple[str, str]]:
    findings, _ = run(every_kind_of_disagreement(), "2026-07-01")
    return sorted((f.fingerprint, f.detail["values"][0]["source"])
                  for f in of_kind(findings, "source-conflict"))


def test_every_kind_of_disagreement_is_found():
    fields = conflict_fields(run(every_kind_of_disagreement(), "2026-07-01")[0])
    assert sorted(fields) == sorted([
        "detention.section", "detention.end", "ordinary_residence.council_code",
        "gp_registration.gp_practice_ods", "entitlement.named_practitioner",
        "entitlement.aftercare_plan_date", "entitlement.last_review", "reviews.joint"])


@pytest.mark.parametrize("fingerprint, source", the_conflicts())
def test_accepting_a_source_settles_exactly_that_conflict(fingerprint: str, source: str):
    """The question the service reads from an exception's detail is the one the position and
    the detectors ask of the disagreement: accepting one of its sources settles it (and, for
    a detention, that detention's other fields: one winner per detention, as a rule)."""
    told = every_kind_of_disagreement()
    findings, _ = run(told, "2026-07-01")
    [conflict] = [f for f in findings if f.fingerprint == fingerprint]
    others = {f.fingerprint for f in of_kind(findings, "source-conflict")} - {fingerprint}
    decided = [*told, source_accepted("2026-07-01", conflict.detail, source)]
    after, position = run(decided, "2026-07-01")
    left = {f.fingerprint for f in of_kind(after, "source-conflict")}
    assert fingerprint not in left
    detention_pair = fingerprint.startswith("source-conflict:detention|")
    assert left == ({o for o in others if not o.startswith("source-conflict:detention|")}
                    if detention_pair else others)
    assert any(DECISION + source in why.rule for why in position.explain.values())


def test_a_death_date_decision_settles_the_conflict_as_a_rule_does():
    told: list[Command] = [
        detention("2026-01-05"),
        details(as_of="2026-02-01", death_date=d("2026-02-01")),
        from_source(details(as_of="2026-02-01", death_date=d("2026-02-03")), "trust-a")]
    findings, _ = run(told, DECIDED)
    [conflict] = [f for f in of_kind(findings, "source-conflict")
                  if f.fingerprint.startswith("source-conflict:death|")]
    findings, position = run([*told, source_accepted(DECIDED, conflict.detail, "pds")],
                             DECIDED)
    assert not [f for f in of_kind(findings, "source-conflict")
                if f.fingerprint.startswith("source-conflict:death|")]
    assert position.explain["person.death_date"].rule.startswith(DECISION + "pds")


def test_conflicts_no_source_value_settles_ask_no_question():
    """Events after a death: either could be wrong; accepting a source means nothing."""
    assert question_of({"field": "person.death_date", "death_date": "2026-02-01",
                        "death_told_by": [{"source": "pds"}]}) is None
    assert question_of({"field": "entitlement.trigger_section", "values": [
        {"source": "council-a", "value": "entitled (s117.confirmed)"},
        {"source": "trust-a", "value": "no entitling detention"}]}) is None

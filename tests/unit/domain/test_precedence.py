"""How a precedence rule picks a winner (s117-rules.md: "Sources disagree: section, dates,
responsible council or ICB, alive/deceased"; architecture section 1 step 3: a rule settles a
conflict, the rest are exceptions). Pure: plain data in, a settlement or None out."""

from __future__ import annotations

from datetime import date

import pytest

from register_core.domain.episodes import build_detentions
from register_core.domain.precedence import Precedence, aftercare_periods

from .builders import detention, left, record_all


def test_no_rules_settle_nothing():
    assert Precedence().settle("detention", {"trust-a": {"03"}, "council-a": {"02"}}) is None


def test_the_first_pattern_naming_a_disagreeing_source_wins_whatever_comes_later():
    rules = Precedence(detention=("pds", "council-*", "trust-*"))
    settled = rules.settle("detention", {"trust-a": {"03"}, "council-a": {"02"}})
    assert settled is not None
    assert (settled.winners, settled.overruled, settled.value, settled.pattern) == (
        ("council-a",), ("trust-a",), "02", "council-*")
    assert settled.rule == ("precedence: detention facts from council-a over trust-a "
                            "(config precedence.detention: 'council-*')")


def test_preferred_sources_that_agree_win_together():
    rules = Precedence(ordinary_residence=("council-*",))
    settled = rules.settle("ordinary_residence", {"council-a": {"LA-A"}, "council-b": {"LA-A"},
                                                  "trust-a": {"LA-B"}})
    assert settled is not None
    assert (settled.winners, settled.overruled) == (("council-a", "council-b"), ("trust-a",))


def test_preferred_sources_that_disagree_among_themselves_settle_nothing():
    rules = Precedence(ordinary_residence=("council-*", "trust-a"))
    assert rules.settle("ordinary_residence", {"council-a": {"LA-A"}, "council-b": {"LA-B"},
                                               "trust-a": {"LA-A"}}) is None


def test_patterns_are_case_sensitive_globs_on_source_ids():
    rules = Precedence(death=("PDS", "council-?"))
    settled = rules.settle("death", {"pds": {"2026-05-01"}, "council-a": {"2026-05-03"}})
    assert settled is not None and settled.winners == ("council-a",)


def test_an_unknown_group_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown precedence group"):
        Precedence().patterns("identity")


def test_an_aftercare_period_opens_at_each_detention_after_leaving_hospital():
    """Another source's version of a stay (a day later, no end told), an s3 episode opened
    while the person is still in on s2, and a transfer told as a new episode join the stay,
    which lasts to the latest end told; a readmission after leaving opens a new period."""
    person = record_all([
        detention("2026-01-05", "02", episode="ep-1"),
        detention("2026-01-20", "03", episode="ep-2"), left("2026-03-02", episode="ep-2"),
        detention("2026-01-06", "03", episode=None, source="council"),
        detention("2026-02-20", "03", episode="ep-3", end="2026-04-01"),
        detention("2026-04-20", "37", episode="ep-4")])
    episodes, _ = build_detentions(person.live_facts(), date(2026, 6, 1))
    assert [ep.ref for ep in aftercare_periods(episodes)] == ["ep-1", "ep-4"]

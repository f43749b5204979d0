"""How a precedence rule picks a winner (s117-rules.md: "Sources disagree: section, dates,
responsible council or ICB, alive/deceased"; architecture section 1 step 3: a rule settles a
conflict, the rest are exceptions). Pure: plain data in, a settlement or None out."""

from __future__ import annotations

import pytest

from register_core.domain.precedence import Precedence


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

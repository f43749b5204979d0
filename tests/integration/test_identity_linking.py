"""Probabilistic identity in the write path (architecture section 1 step 3), on the real
databases: a council record without an NHS number lands on the person the trust registered;
a look-alike in the review band opens identity-uncertain instead; different valid NHS numbers
never link (standards.md section 4, "NHS number"); the worker's batch finds a person created
earlier in the same batch; thresholds come from the config file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from register_core.adapters.tables import person_blocking_keys
from register_core.domain.commands import RecordPersonDetails
from register_core.domain.position import Policy
from register_core.services.inbound import process_batch
from register_core.services.reconcile import sweep
from s117hub.bootstrap import Hub, bootstrap
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
    store_commands,
    trust_ref,
)


def test_a_council_record_without_nhs_number_lands_on_the_trusts_person(hub: Hub) -> None:
    """standards.md section 4 ("NHS number"): the number links first; without one, name,
    birth date and postcode that all agree link to the person the trust registered."""
    trust = apply(hub, detention(trust_ref()))
    apply(hub, left_hospital(trust_ref()))
    council = apply(hub, residence(council_ref()))
    assert council.person_id == trust.person_id
    assert (council.created, council.identity) == (False, "probabilistic")
    # The council's record joined as a merge of a person of its own (reversible): that
    # person stays, emptied, and is nobody's candidate.
    [arrived] = [a.person_id for a in council.also]
    assert sorted(person_ids(hub.engine)) == sorted([trust.person_id, arrived])
    assert identifiers_of(hub.engine, arrived) == set() and keys_of(hub.engine, arrived) == set()
    assert identifiers_of(hub.engine, trust.person_id) == {(TRUST, "RX1-701"),
                                                           (COUNCIL, "C-701")}
    # The council's identifier now finds the person exactly, and the council's facts count.
    again = apply(hub, confirmed(council_ref(family_name=None, birth_date=None)))
    assert (again.person_id, again.identity) == (trust.person_id, "exact")
    assert again.position is not None
    assert again.position.entitlement.responsible_council == "E08000035"
    assert identity_exceptions(hub.engine) == []


def test_a_typo_in_the_review_band_opens_identity_uncertain_and_does_not_link(
        hub: Hub) -> None:
    """standards.md section 4: only a strong identity links; a surname and a birth date each
    one keystroke off (no postcode) is a new person and a question for the register owner."""
    trust = apply(hub, detention(trust_ref()))
    council = apply(hub, residence(council_ref(**TYPO)))
    assert council.person_id != trust.person_id
    assert (council.created, council.identity) == (True, "new")
    [row] = identity_exceptions(hub.engine)
    assert council.identity_exception == row["id"]
    assert row["person_id"] == council.person_id and row["status"] == "open"
    detail = row["detail"]
    assert detail["candidate_person_id"] == trust.person_id
    assert 0.5 <= detail["probability"] < 0.95
    assert detail["rule"] == "score-in-review-band"
    assert detail["comparison"] == {
        "family_name": "fuzzy", "given_name": "agree", "birth_date": "fuzzy", "sex": "agree",
        "postcode": "missing", "gp_practice": "agree"}
    assert detail["thresholds"] == {"link": 0.95, "review": 0.5}
    assert (detail["source"], detail["source_ref"]) == (COUNCIL, "ev-1")
    # Ids and levels only: the summary and detail name nobody.
    text = repr(row)
    assert "Thornl" not in text and "1984" not in text
    # The sync leaves it alone (no detector raises it): only a person's decision closes it.
    sweep(hub.engine, hub.clock, hub.policy)
    [after] = identity_exceptions(hub.engine)
    assert after["status"] == "open"


def test_different_valid_nhs_numbers_never_link(hub: Hub) -> None:
    """standards.md section 4: "Never link two records with different valid NHS numbers" —
    not even when every demographic agrees."""
    first = apply(hub, detention(trust_ref(701)))
    twin = apply(hub, residence(council_ref(nhs_number=trust_ref(702).nhs_number)))
    assert twin.person_id != first.person_id and twin.created
    assert identity_exceptions(hub.engine) == []
    assert len(person_ids(hub.engine)) == 2


def test_a_source_holds_a_person_once(hub: Hub) -> None:
    """standards.md section 4: a second council record for someone the council already
    holds is not merged silently: it goes to review."""
    trust = apply(hub, detention(trust_ref()))
    apply(hub, residence(council_ref("C-701")))
    second = apply(hub, residence(council_ref("C-999"), msg="ev-9"))
    assert second.person_id != trust.person_id
    [row] = identity_exceptions(hub.engine)
    assert row["detail"]["rule"] == "candidate-holds-another-record-of-the-source"


def test_blocking_keys_follow_the_demographics(hub: Hub) -> None:
    """standards.md section 4: the keys a look-up uses are those of today's demographics."""
    person = apply(hub, detention(trust_ref())).person_id
    before = keys_of(hub.engine, person)
    assert before and any(k.startswith("pLS6 2AB") for k in before)
    apply(hub, RecordPersonDetails(person=trust_ref(postcode="M1 1AE"),
                                   provenance=detention(trust_ref()).provenance))
    after = keys_of(hub.engine, person)
    assert any(k.startswith("pM1 1AE") for k in after)
    assert not any(k.startswith("pLS6") for k in after)
    # Moved house: the council, which knows the new address, still finds them.
    council = apply(hub, residence(council_ref(postcode="M1 1AE")))
    assert council.person_id == person


def test_a_person_created_earlier_in_the_same_batch_is_found(hub: Hub) -> None:
    """standards.md section 4: the worker's batch defers its writes, yet the council's
    message finds the person the trust's message created a moment before in the batch."""
    ids = store_commands(hub.engine, [
        detention(trust_ref()), left_hospital(trust_ref()),
        residence(council_ref()), confirmed(council_ref(**TYPO, local_id="C-702"))])
    outcomes = process_batch(hub.engine, ids, lambda entry: [], hub.clock, hub.policy)
    assert [o.status for o in outcomes] == ["applied"] * 4
    trust_id = outcomes[0].applied[0].person_id
    assert outcomes[2].applied[0].person_id == trust_id
    assert outcomes[2].applied[0].identity == "probabilistic"
    look_alike = outcomes[3].applied[0]
    assert look_alike.person_id != trust_id and look_alike.created
    [row] = identity_exceptions(hub.engine)
    assert (row["person_id"], row["detail"]["candidate_person_id"]) == (look_alike.person_id,
                                                                         trust_id)
    assert identifiers_of(hub.engine, trust_id) == {(TRUST, "RX1-701"), (COUNCIL, "C-701")}
    with hub.engine.connect() as conn:
        owners = conn.execute(select(func.count(func.distinct(
            person_blocking_keys.c.person_id)))).scalar_one()
    assert owners == 2


def test_thresholds_come_from_the_config_file(hub: Hub, tmp_path: Path) -> None:
    """standards.md section 4: where the line between link and review lies is the
    partnership's choice; a lower link threshold links the typo, disabling links nothing."""
    config = tmp_path / "hub.toml"
    config.write_text("[identity]\nlink_threshold = 0.8\nreview_threshold = 0.3\n")
    lenient = bootstrap(Settings(database_url=str(hub.engine.url.render_as_string(
        hide_password=False)), config_file=config), clock=hub.clock, engine=hub.engine)
    try:
        assert (lenient.policy.identity_link_threshold,
                lenient.policy.identity_review_threshold) == (0.8, 0.3)
        trust = apply(lenient, detention(trust_ref()))
        assert apply(lenient, residence(council_ref(**TYPO))).person_id == trust.person_id
    finally:
        lenient.broker.close()
    hub.policy = Policy(probabilistic_identity=False)
    other = apply(hub, residence(council_ref(local_id="C-800"), msg="ev-8"))
    assert other.created and identity_exceptions(hub.engine) == []


def test_review_threshold_may_not_exceed_link_threshold(tmp_path: Path) -> None:
    """standards.md section 4: a configuration that could never review is refused."""
    config = tmp_path / "hub.toml"
    config.write_text("[identity]\nlink_threshold = 0.6\nreview_threshold = 0.9\n")
    with pytest.raises(ValueError, match="review_threshold"):
        Settings(config_file=config).load_file()


def test_a_record_without_demographics_is_simply_new(hub: Hub) -> None:
    """standards.md section 4: nothing to compare, nothing linked (the exact path only)."""
    apply(hub, detention(trust_ref()))
    bare = apply(hub, residence(council_ref("C-5", family_name=None, given_name=None,
                                            birth_date=None, postcode=None)))
    assert bare.created and bare.identity == "new"

"""The ``[precedence]`` table of the config file (architecture section 1 step 3): per field
group, source-id patterns in order of preference; a typo must fail loudly, not settle nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from register_core.domain.precedence import FIELD_GROUPS
from s117hub.bootstrap import bootstrap
from s117hub.config import FileConfig, Settings

SAMPLE = Path(__file__).resolve().parents[2] / "docker" / "config" / "hub.toml"


def test_by_default_no_rule_settles_anything():
    rules = FileConfig().precedence
    assert all(getattr(rules, group) == [] for group in FIELD_GROUPS)


def test_every_group_of_the_config_reaches_the_policy(tmp_path: Path):
    config = tmp_path / "hub.toml"
    config.write_text("[precedence]\n" + "".join(
        f'{group} = ["{group}-source"]\n' for group in FIELD_GROUPS))
    hub = bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'r.sqlite3'}",
                             config_file=config))
    try:
        assert all(hub.policy.precedence.patterns(group) == (f"{group}-source",)
                   for group in FIELD_GROUPS)
    finally:
        hub.close()


def test_the_sample_config_recommends_the_trust_for_detentions_the_council_for_residence():
    rules = Settings(config_file=SAMPLE).load_file().precedence
    assert rules.detention == ["trust-*"]
    assert rules.ordinary_residence == ["council-*"]
    assert rules.death == []


def test_a_misspelt_group_is_refused():
    with pytest.raises(ValidationError, match="detentions"):
        FileConfig.model_validate({"precedence": {"detentions": ["trust-*"]}})


@pytest.mark.parametrize("pattern", ["", " trust-a", "kind:hl7v2-mllp"])
def test_a_pattern_is_a_source_id_or_glob(pattern: str):
    with pytest.raises(ValidationError, match=r"precedence pattern|source id"):
        FileConfig.model_validate({"precedence": {"detention": [pattern]}})

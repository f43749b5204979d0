"""The example partnership the compose file loads (docker/config/hub.toml) is a valid config:
its sources and subscriptions validate, so the examples a new engineer copies from it work."""

from __future__ import annotations

from pathlib import Path

from register_core.adapters.sources import SourceDefinition
from register_core.adapters.subscriptions import SubscriptionDefinition
from s117hub.config import Settings

SHIPPED = Path(__file__).resolve().parents[2] / "docker" / "config" / "hub.toml"


def test_the_shipped_config_file_validates() -> None:
    config = Settings(config_file=SHIPPED).load_file()
    sources = {s.source_id: s for s in map(SourceDefinition.model_validate, config.sources)}
    subscriptions = [SubscriptionDefinition.model_validate(s) for s in config.subscriptions]
    assert {"trust-a", "council-a", "council-csv"} <= sources.keys()
    assert sources["trust-a"].code_map["S3"] == "03"
    assert sources["council-csv"].csv.header("type") == "Event"
    assert [s.subscription_id for s in subscriptions] == ["council-a-status"]
    assert subscriptions[0].changes.fields == ["entitlement.status", "entitlement.ended"]
    assert config.identity.enabled and not subscriptions[0].enabled  # placeholder endpoint

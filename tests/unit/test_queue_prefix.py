"""S117HUB_QUEUE_PREFIX: hubs sharing one broker keep to their own queues (a concurrency audit
ran two hubs on one RabbitMQ, each taking the other's hints)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from s117hub.bootstrap import bootstrap
from s117hub.config import Settings


def test_queues_carry_the_prefix(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("S117HUB_QUEUE_PREFIX", "staging-")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}")
    hub = bootstrap(settings, run_migrations=True)
    try:
        assert hub.broker.get_declared_queues() >= {"staging-inbound", "staging-outbound"}
        assert not hub.broker.get_declared_queues() & {"inbound", "outbound"}
    finally:
        hub.close()


def test_without_a_prefix_the_names_are_unchanged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hub = bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}"),
                    run_migrations=True)
    try:
        assert hub.broker.get_declared_queues() >= {"inbound", "outbound"}
    finally:
        hub.close()


def test_a_prefix_a_queue_name_cannot_hold_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(queue_prefix="staging inbound/")

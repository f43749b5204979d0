"""Config as seed: the config file's sources and subscriptions are applied when an entry first
appears and again only when it changes, so a change made through the API survives restarts
and every command that preloads the file (SQLite and PostgreSQL).

The commands run in this process through ``s117hub.cli.main`` with ``S117HUB_CONFIG_FILE`` and
``S117HUB_DATABASE_URL`` set (``serve`` and ``worker`` stop as soon as they are wired); API
changes go through the real routes.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.inbound_mapper import make_mapper
from register_core.adapters.security import Role, TokenStore
from register_core.adapters.sources import SourceRegistry
from register_core.adapters.subscriptions import SubscriptionRegistry
from register_core.adapters.tables import config_seeds
from register_core.domain.nhs_number import make_synthetic
from register_core.services.inbound import drain
from s117hub import serve as serve_module
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub
from s117hub.cli import main
from s117hub.config import Settings
from s117hub.demo import SEEDED_MARK, DemoRun
from s117hub.demo_people import TRUST_HL7, UNMAPPED_HL7_CODE, UNMAPPED_HL7_CODE_MEANS
from tests.integration.test_replay import Messages, _message

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

FILE_TOKEN = "file-token-one"  # synthetic credentials: asserted never to reach the log
API_TOKEN = "api-token-from-the-engineer"

TRUST_A = '''
[[sources]]
source_id = "trust-a"
kind = "hl7v2-mllp"
display_name = "Trust A EPR"
organisation_code = "RX1"
hl7_sending_application = "EPR"
hl7_sending_facility = "RX1"
'''
COUNCIL_A = '''
[[sources]]
source_id = "council-a"
kind = "council-csv"
organisation_code = "E10000034"
'''
SUBSCRIPTION = '''
[[subscriptions]]
subscription_id = "council-a-status"
kind = "council-rest"
display_name = "County council case system"
endpoint = "https://case-system.council.example/s117/status"
changes = {{ fields = ["entitlement.status"] }}
credentials = {{ bearer_token = "{token}" }}
'''


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the root logger; give the other tests theirs back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def config(hub: Hub, database_url: str, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Path:
    """The config file every command below reads, on the emptied test database."""
    path = tmp_path / "hub.toml"
    path.write_text(TRUST_A + COUNCIL_A + SUBSCRIPTION.format(token=FILE_TOKEN))
    monkeypatch.setenv("S117HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("S117HUB_CONFIG_FILE", str(path))
    monkeypatch.setenv("S117HUB_BROKER_URL", "stub://")
    monkeypatch.setenv("S117HUB_LOG_JSON", "false")
    # serve and worker: wired (preloading included) by the real `_hub`, then stopped at once.
    monkeypatch.setattr(serve_module, "serve", lambda hub, **_: hub.close())
    monkeypatch.setattr(serve_module, "run_worker", lambda hub, **_: hub.close())
    return path


@pytest.fixture
def engineer(hub: Hub) -> Iterator[TestClient]:
    _id, token = TokenStore(hub.engine).create(Role.INTEGRATION_ENGINEER)
    with TestClient(create_app(hub), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def _source(hub: Hub, source_id: str) -> Any:
    return SourceRegistry(hub.engine).get(source_id)  # a fresh registry: no cache


def _subscription(hub: Hub, subscription_id: str) -> Any:
    return SubscriptionRegistry(hub.engine).get(subscription_id)


def _change_through_the_api(engineer: TestClient) -> None:
    """The audit's repro: disable the subscription (and rotate its token), map a code."""
    subscription = engineer.get("/api/v1/subscriptions/council-a-status").json()
    response = engineer.put("/api/v1/subscriptions/council-a-status", json={
        **subscription, "enabled": False, "credentials": {"bearer_token": API_TOKEN}})
    assert response.status_code == 200, response.text
    source = engineer.get("/api/v1/sources/trust-a").json()
    response = engineer.put("/api/v1/sources/trust-a",
                            json={**source, "code_map": {"XX": "03"}})
    assert response.status_code == 200, response.text


def _assert_api_changes_stand(hub: Hub) -> None:
    subscription = _subscription(hub, "council-a-status")
    assert subscription.enabled is False
    assert subscription.credentials.bearer_token == API_TOKEN
    assert _source(hub, "trust-a").code_map == {"XX": "03"}


def test_api_changes_survive_serve_worker_and_import_csv(
        config: Path, hub: Hub, engineer: TestClient, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve"]) == 0  # first start: the file's entries are applied
    assert _subscription(hub, "council-a-status").enabled is True
    _change_through_the_api(engineer)
    export = tmp_path / "export.csv"
    export.write_text("type,nhs_number,date,council_code\n"
                      f"ordinary-residence.changed,{make_synthetic(7)},2020-01-01,E10000034\n")
    for command in (["serve"], ["worker"], ["mllp"],
                    ["import-csv", str(export), "--source", "council-a", "--no-progress"]):
        assert main(command) == 0, command
        _assert_api_changes_stand(hub)
    err = capsys.readouterr().err
    assert "unchanged since last applied, stored definition kept: council-a-status" in err
    assert FILE_TOKEN not in err and API_TOKEN not in err


def test_a_code_map_fixed_through_the_api_is_the_one_replay_uses(
        config: Path, hub: Hub, engineer: TestClient,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker"]) == 0
    box = Messages(hub)
    failed = box.receive(_message("A-1", 21))  # local code XX: not in the file's code map
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
    assert box.statuses()[failed] == "failed"
    _change_through_the_api(engineer)
    assert main(["replay", "--source", "trust-a"]) == 0
    assert "applied 1, failed 0" in capsys.readouterr().out
    assert box.statuses()[failed] == "applied"


def test_a_changed_file_entry_is_applied_and_logs_the_overwritten_fields_only(
        config: Path, hub: Hub, engineer: TestClient,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve"]) == 0
    _change_through_the_api(engineer)
    capsys.readouterr()
    # The file's entry for the subscription is edited (a new name and token); trust-a's not.
    config.write_text(TRUST_A + COUNCIL_A + SUBSCRIPTION.format(token="file-token-two")
                      .replace("County council case system", "County council (new system)"))
    assert main(["worker"]) == 0
    subscription = _subscription(hub, "council-a-status")
    assert subscription.enabled is True  # the file's definition, whole
    assert subscription.credentials.bearer_token == "file-token-two"
    assert subscription.display_name == "County council (new system)"
    assert _source(hub, "trust-a").code_map == {"XX": "03"}  # unchanged entry: API fix kept
    err = capsys.readouterr().err
    # The fields the API had changed, by name; display_name changed in the file only.
    assert ("subscription 'council-a-status' changed in the file; its entry overwrites "
            "changes made through the API to credentials, enabled") in err
    for value in (API_TOKEN, "file-token-two", FILE_TOKEN, "case-system.council.example"):
        assert value not in err
    assert "2 source(s); applied (new or changed in the file): none;" in err
    assert "1 subscription(s); applied (new or changed in the file): council-a-status;" in err


def test_a_fresh_database_gets_every_entry_and_a_reformatted_file_changes_nothing(
        config: Path, hub: Hub, engineer: TestClient) -> None:
    assert main(["worker"]) == 0
    assert [s.source_id for s in SourceRegistry(hub.engine).list()] == ["council-a", "trust-a"]
    assert _subscription(hub, "council-a-status").credentials.bearer_token == FILE_TOKEN
    with hub.engine.connect() as conn:
        seeds = conn.execute(select(config_seeds.c.kind, config_seeds.c.id)).all()
    assert sorted(map(tuple, seeds)) == [("source", "council-a"), ("source", "trust-a"),
                                         ("subscription", "council-a-status")]
    _change_through_the_api(engineer)
    # Same entries, another order and layout, council-a removed from the file.
    config.write_text("# reordered\n" + SUBSCRIPTION.format(token=FILE_TOKEN) + "\n\n"
                      + "\n".join(reversed(TRUST_A.strip().splitlines()[1:]))
                      .join(["[[sources]]\n", "\n"]))
    assert main(["serve"]) == 0
    _assert_api_changes_stand(hub)
    assert _source(hub, "council-a") is not None  # removing an entry deletes nothing stored


def test_a_definition_deleted_through_the_api_stays_deleted_until_its_entry_changes(
        config: Path, hub: Hub, engineer: TestClient) -> None:
    assert main(["serve"]) == 0
    assert engineer.delete("/api/v1/subscriptions/council-a-status").status_code == 204
    assert main(["serve"]) == 0
    assert _subscription(hub, "council-a-status") is None
    config.write_text(TRUST_A + COUNCIL_A + SUBSCRIPTION.format(token="file-token-two"))
    assert main(["serve"]) == 0
    assert _subscription(hub, "council-a-status").credentials.bearer_token == "file-token-two"


def test_a_definition_stored_before_the_file_named_it_is_replaced_once_and_logged(
        config: Path, hub: Hub, engineer: TestClient,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Created through the API (or by a version that re-applied the file at every start)
    before the file's entry appeared: the first appearance wins, and says which fields."""
    config.write_text(TRUST_A)
    assert main(["serve"]) == 0
    created = engineer.post("/api/v1/subscriptions", json={
        "subscription_id": "council-a-status", "kind": "council-rest",
        "display_name": "County council case system",
        "endpoint": "https://case-system.council.example/s117/status",
        "changes": {"fields": ["entitlement.status"]}, "enabled": False,
        "credentials": {"bearer_token": API_TOKEN}})
    assert created.status_code == 201, created.text
    capsys.readouterr()
    config.write_text(TRUST_A + SUBSCRIPTION.format(token=FILE_TOKEN))
    assert main(["serve"]) == 0
    assert _subscription(hub, "council-a-status").enabled is True
    err = capsys.readouterr().err
    assert ("subscription 'council-a-status' is new in the file and replaces the stored "
            "definition's credentials, enabled") in err
    assert API_TOKEN not in err and FILE_TOKEN not in err


def test_the_demo_kept_with_keep_keeps_its_code_map_fix(tmp_path: Path) -> None:
    """``./hub run --keep`` rebuilds the hub from a rewritten config file: the code-map fix
    the demo's banner asks for (PUT, then replay) stays."""
    settings = Settings(http="127.0.0.1:0", mllp="127.0.0.1:0")
    fix = {UNMAPPED_HL7_CODE: UNMAPPED_HL7_CODE_MEANS}
    for attempt in ("first run", "run again with --keep"):
        run = DemoRun(settings, tmp_path / "demo", keep=True, http=None, mllp=None)
        try:
            hub = run.build_hub()
            trust = hub.sources.get(TRUST_HL7)
            assert trust is not None
            if attempt == "first run":
                assert UNMAPPED_HL7_CODE not in trust.code_map
                hub.sources.save(trust.model_copy(update={"code_map": {
                    **trust.code_map, **fix}}), hub.clock.now())  # what the PUT route does
                (run.dir / SEEDED_MARK).write_text("played\n")
            else:
                assert trust.code_map.items() >= fix.items()
            hub.close()
        finally:
            run.partners.stop()


def test_processes_starting_together_on_a_fresh_database_seed_once(hub: Hub) -> None:
    """serve and its workers start at once: each seeds, none fails on the other's rows."""
    entries = [{"subscription_id": f"council-{n}", "kind": "council-rest",
                "endpoint": f"https://council-{n}.example/s117"} for n in range(5)]
    failures: list[BaseException] = []

    def start() -> None:
        try:
            SubscriptionRegistry(hub.engine).preload(entries, hub.clock.now())
        except BaseException as exc:  # reported below, with the thread's own error
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(SubscriptionRegistry(hub.engine).list()) == 5

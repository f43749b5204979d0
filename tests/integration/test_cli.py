"""The ``s117hub`` command line against a real SQLite file, and the serve seam over a socket."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from register_core.adapters.database import alembic_config, make_engine
from register_core.adapters.security import Role, TokenStore
from register_core.adapters.sources import SourceDefinition, SourceRegistry
from s117hub.bootstrap import Hub
from s117hub.cli import main
from s117hub.serve import http_server, run_servers


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the root logger; give the other tests theirs back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'var' / 'cli.sqlite3'}"
    monkeypatch.setenv("S117HUB_DATABASE_URL", url)
    monkeypatch.delenv("S117HUB_CONFIG_FILE", raising=False)
    return url


@pytest.fixture
def migrated(db_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["migrate"]) == 0
    capsys.readouterr()
    return db_url


def _store(url: str) -> Iterator[TokenStore]:
    engine = make_engine(url)
    yield TokenStore(engine)
    engine.dispose()


@pytest.fixture
def store(migrated: str) -> Iterator[TokenStore]:
    yield from _store(migrated)


def test_migrate_creates_the_schema_and_prints_the_revision(
        db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    assert capsys.readouterr().out == f"{head}\n"
    engine = make_engine(db_url)
    assert {"persons", "api_tokens", "audit_log"} <= set(inspect(engine).get_table_names())
    engine.dispose()
    assert main(["migrate"]) == 0  # idempotent
    assert capsys.readouterr().out == f"{head}\n"


def test_token_create_prints_only_a_token_that_verifies(
        store: TokenStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--role", "register-owner", "--label", "ops desk"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    plaintext = out.strip()
    assert plaintext.startswith("s117_")
    principal = store.verify(plaintext)
    assert principal is not None and principal.roles == {Role.REGISTER_OWNER}
    assert principal.source is None


def test_token_create_with_two_roles_gives_one_token_both(
        store: TokenStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--role", "register-owner",
                 "--role", "integration-engineer"]) == 0
    principal = store.verify(capsys.readouterr().out.strip())
    assert principal is not None
    assert principal.roles == {Role.REGISTER_OWNER, Role.INTEGRATION_ENGINEER}
    assert principal.role_names == "integration-engineer,register-owner"
    assert "integration-engineer,register-owner" in [t.role for t in store.list()]


def test_source_system_token_is_bound_to_its_source(
        store: TokenStore, capsys: pytest.CaptureFixture[str]) -> None:
    SourceRegistry(store.engine).save(SourceDefinition.model_validate(
        {"source_id": "trust-a", "kind": "hl7v2-mllp"}), datetime.now(UTC))
    assert main(["token", "create", "--role", "source-system", "--source", "trust-a"]) == 0
    captured = capsys.readouterr()
    principal = store.verify(captured.out.strip())
    assert principal is not None and principal.source == "trust-a"
    assert captured.err == ""


def test_a_token_for_a_source_not_configured_is_issued_with_a_warning(
        store: TokenStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--role", "source-system", "--source", "trsut-a"]) == 0
    captured = capsys.readouterr()
    assert store.verify(captured.out.strip()) is not None
    assert "warning: no source 'trsut-a' is configured yet" in captured.err


def test_source_system_token_without_source_fails_with_usage_code(
        store: TokenStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--role", "source-system"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "source" in captured.err
    assert store.list() == []


@pytest.mark.parametrize("argv", [
    ["token", "create", "--role", "auditor", "--source", "trust-a"],
    ["token", "create", "--role", "superuser"],
    ["token", "create"],
    ["token"],
    [],
    ["frobnicate"],
])
def test_usage_errors_exit_2_and_issue_nothing(
        store: TokenStore, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err
    assert store.list() == []


def test_token_list_and_revoke(store: TokenStore, capsys: pytest.CaptureFixture[str]) -> None:
    token_id, plaintext = store.create("auditor", label="board auditor")
    assert main(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert token_id in listing and "auditor" in listing and "board auditor" in listing
    assert plaintext not in listing and plaintext.removeprefix("s117_") not in listing

    assert main(["token", "revoke", token_id]) == 0
    assert token_id in capsys.readouterr().out
    assert store.verify(plaintext) is None
    assert main(["token", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if token_id in line)
    assert not row.endswith("\t-")  # revoked_at is shown

    assert main(["token", "revoke", "no-such-token"]) == 1
    assert "no-such-token" in capsys.readouterr().err


def test_help_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("migrate", "serve", "token"):
        assert command in out


def test_serve_runs_the_api_on_a_real_socket(hub: Hub) -> None:
    """The seam ``s117hub serve`` uses: uvicorn on an asyncio loop other servers can join."""
    server = http_server(hub, host="127.0.0.1", port=0)
    thread = threading.Thread(target=asyncio.run, args=(run_servers(hub, server, with_mllp=False),),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    _token_id, token = TokenStore(hub.engine).create("integration-engineer")
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz").status_code == 401
        ready = httpx.get(f"{base}/readyz", headers={"Authorization": f"Bearer {token}"})
        assert ready.json() == {"status": "ready"}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()

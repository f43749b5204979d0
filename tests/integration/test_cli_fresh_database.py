"""The quick start on a fresh machine: ``token create`` before the first ``serve`` works (the
database is migrated first, as ``serve`` does), and prints the token alone on stdout."""

from __future__ import annotations

from pathlib import Path

import pytest

from s117hub.cli import EXIT_OK, main


def test_a_token_is_issued_on_a_database_never_served(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "new" / "hub.sqlite3"
    monkeypatch.setenv("S117HUB_DATABASE_URL", f"sqlite:///{database}")
    assert main(["token", "create", "--role", "register-owner"]) == EXIT_OK
    token = capsys.readouterr().out.strip()
    assert token.startswith("s117_") and "\n" not in token
    assert main(["token", "list"]) == EXIT_OK
    assert "register-owner" in capsys.readouterr().out

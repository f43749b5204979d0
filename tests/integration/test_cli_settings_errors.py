"""``s117hub`` with bad settings or a bad config file: one line saying what and where, exit 2,
no traceback, and never the value given (a database URL carries a password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from s117hub.cli import EXIT_USAGE, main


@pytest.fixture(autouse=True)
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S117HUB_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")


@pytest.mark.parametrize(("content", "suffix", "said"), [
    ("not = [toml", ".toml", "not valid TOML"),
    ("[identity]\nlink_threshold = 7\n", ".toml", "identity.link_threshold: Input should be "
                                                  "less than 1"),
    ('{"sources": 5}', ".json", "sources: Input should be a valid list"),
    ("{", ".json", "not valid JSON"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        content: str, suffix: str, said: str) -> None:
    config = tmp_path / f"hub{suffix}"
    config.write_text(content)
    monkeypatch.setenv("S117HUB_CONFIG_FILE", str(config))
    assert main(["token", "list"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"s117hub: config file {config}: ") and said in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_a_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.toml"
    monkeypatch.setenv("S117HUB_CONFIG_FILE", str(missing))
    assert main(["import-csv", str(missing), "--source", "council-a"]) == EXIT_USAGE
    assert capsys.readouterr().err == (f"s117hub: config file {missing}: cannot be read "
                                       "(No such file or directory)\n")


@pytest.mark.parametrize(("name", "value", "said"), [
    ("S117HUB_MLLP_MAX_CONNECTIONS", "many", "bad setting S117HUB_MLLP_MAX_CONNECTIONS: "),
    ("S117HUB_HTTP", "127.0.0.1:http", "HOST:PORT with a numeric port"),
    ("S117HUB_DATABASE_URL", "postgresql+psycopg://hub:changeme-s3cret@db/hub",
     "bad setting S117HUB_DATABASE_URL: Value error, S117HUB_DATABASE_URL still holds a "
     "placeholder password"),
])
def test_a_bad_environment_variable_is_named_without_its_value(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str,
        value: str, said: str) -> None:
    monkeypatch.setenv(name, value)
    assert main(["token", "list"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert said in err and value not in err and "Traceback" not in err

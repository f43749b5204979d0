"""``s117hub serve`` / ``s117hub mllp`` on a port another program holds: one line naming the
server and the address, exit 1, and nothing left running (no traceback from inside the event
loop, no worker or pollers started first)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from s117hub.cli import EXIT_FAILED, main


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        yield holder.getsockname()[1]


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("command", "server"), [(["serve"], "HTTP"), (["serve"], "MLLP"),
                                                 (["mllp"], "MLLP")])
def test_a_port_in_use_is_one_line_and_exit_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        taken_port: int, command: list[str], server: str) -> None:
    monkeypatch.setenv("S117HUB_DATABASE_URL", f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    http, mllp = (taken_port, _free_port()) if server == "HTTP" else (_free_port(), taken_port)
    monkeypatch.setenv("S117HUB_HTTP", f"127.0.0.1:{http}")
    monkeypatch.setenv("S117HUB_MLLP", f"127.0.0.1:{mllp}")
    threads_before = threading.active_count()
    assert main([*command]) == EXIT_FAILED
    err = capsys.readouterr().err  # the log's JSON lines (migrations), then the one line
    said = [line for line in err.splitlines() if not line.startswith("{")]
    assert len(said) == 1 and "Traceback" not in err
    assert said[0].startswith(f"s117hub: cannot serve {server} on 127.0.0.1:{taken_port}: ")
    assert threading.active_count() == threads_before  # no worker, sweeper or poller left

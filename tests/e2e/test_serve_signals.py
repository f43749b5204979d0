"""``s117hub serve`` stops gracefully on SIGTERM (``docker stop``) and SIGINT (Ctrl-C): the
listeners close, the in-process worker and sweepers stop, the process exits 0 without a
traceback. With the HTTP API off (the shape of ``s117hub mllp``) no uvicorn catches the
signals: SIGTERM used to kill the listener on the spot and Ctrl-C ended in a traceback."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from s117hub.harness import HubProcess

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("args", [(), ("--no-http",)], ids=["http+mllp", "mllp-only"])
def test_serve_stops_cleanly_on_a_signal(database_url: str, tmp_path: Path,
                                         stop_signal: signal.Signals,
                                         args: tuple[str, ...]) -> None:
    hub = HubProcess(database_url, tmp_path, args=args,
                     extra_env={"S117HUB_LOG_LEVEL": "INFO"})
    hub.start()
    assert hub.process is not None
    try:
        hub.process.send_signal(stop_signal)
        assert hub.process.wait(20) == 0
    finally:
        hub.kill()
    log = (tmp_path / "hub.log").read_text()
    assert "Traceback" not in log
    assert "stopping: signal received" in log
    with pytest.raises(OSError):  # the listener is closed
        socket.create_connection(("127.0.0.1", hub.mllp_port), timeout=1).close()

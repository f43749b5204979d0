"""Run the real ``s117hub serve`` in a child process for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SOURCES_TOML = """
[[sources]]
source_id = "trust-a"
kind = "hl7v2-mllp"
display_name = "Trust A EPR"
hl7_sending_application = "EPR"
hl7_sending_facility = "RX1"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HubProcess:
    database_url: str
    workdir: Path
    broker_url: str = "stub://"
    extra_env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    http_port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        config = self.workdir / "hub.toml"
        config.write_text(SOURCES_TOML)
        return {**os.environ, "S117HUB_DATABASE_URL": self.database_url,
                "S117HUB_BROKER_URL": self.broker_url,
                "S117HUB_HTTP": f"127.0.0.1:{self.http_port}",
                "S117HUB_MLLP": f"127.0.0.1:{self.mllp_port}",
                "S117HUB_CONFIG_FILE": str(config), "S117HUB_LOG_LEVEL": "WARNING",
                **self.extra_env}

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.workdir / "hub.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "s117hub.cli", "serve", *self.args], env=self.env(),
            stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited: {(self.workdir / 'hub.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.mllp_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("hub did not start listening")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

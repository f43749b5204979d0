"""Run the real ``s117hub serve`` in a child process: for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# The partner systems a harnessed hub knows (TOML config file, architecture section 3).
SOURCES_TOML = """
[[sources]]
source_id = "trust-a"
kind = "hl7v2-mllp"
display_name = "Trust A EPR"
hl7_sending_application = "EPR"
hl7_sending_facility = "RX1"
"""


# The checkout this code runs from. Children start there: ``python -m``/``-c`` put the working
# directory first on sys.path, so a child started elsewhere (a benchmark of a git worktree run
# from the main checkout, PYTHONPATH=<worktree>) imported the main checkout's code instead.
CODE_ROOT = Path(__file__).resolve().parents[1]


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
    command: str = "serve"  # or "mllp": the listener alone
    http_port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    config_toml: str = SOURCES_TOML

    def env(self) -> dict[str, str]:
        config = self.workdir / "hub.toml"
        config.write_text(self.config_toml)
        return {**os.environ, "S117HUB_DATABASE_URL": self.database_url,
                "S117HUB_BROKER_URL": self.broker_url,
                "S117HUB_HTTP": f"127.0.0.1:{self.http_port}",
                "S117HUB_MLLP": f"127.0.0.1:{self.mllp_port}",
                "S117HUB_CONFIG_FILE": str(config), "S117HUB_LOG_LEVEL": "WARNING",
                **self.extra_env}

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.workdir / "hub.log", "ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "s117hub.cli", self.command, *self.args], env=self.env(),
            stdout=log, stderr=log, cwd=CODE_ROOT)
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

    def peak_rss_kib(self) -> int:
        """VmHWM of the running hub: the most resident memory it has held."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def synthetic_adt(trigger: str, control_id: str, nhs: str, local_id: str, when: str) -> bytes:
    """A synthetic ADT A01 (admit under s3) or A03 (discharge) in the default ZLS layout."""
    zls = ("ZLS|03|20260105093000" if trigger == "A01"
           else "ZLS|03|20260105093000|" + when)
    pv1_45 = when if trigger == "A03" else ""
    return ("\r".join([
        f"MSH|^~\\&|EPR|RX1|S117HUB|HUB|{when}||ADT^{trigger}^ADT_A01|{control_id}|P|2.4",
        f"EVN|{trigger}|{when}",
        f"PID|1||{nhs}^^^NHS^NH~{local_id}^^^RX1^MR||Testperson^Sam||19800202|F|||"
        "1 Test Street^^Worcester^^WR1 2AB",
        f"PV1|1|I|WARD1^^^RX1||||||||||||||||V{local_id}|||||||||||||||||||||||||"
        f"20260105093000|{pv1_45}",
        zls]) + "\r").encode()


def synthetic_adt_stream(messages: int, first_person: int = 10_000
                         ) -> list[tuple[int, str, bytes]]:
    """Admit then discharge ``messages // 2`` synthetic people: (person, control id, ER7)."""
    from register_core.domain.nhs_number import make_synthetic

    out = []
    for n in range(messages // 2):
        nhs, local = make_synthetic(first_person + n), f"RX1-{n:07d}"
        out.append((n, f"C{n:07d}A", synthetic_adt("A01", f"C{n:07d}A", nhs, local,
                                                   "20260105093000")))
        out.append((n, f"C{n:07d}D", synthetic_adt("A03", f"C{n:07d}D", nhs, local,
                                                   "20260301100000")))
    return out

"""``s117hub demo`` as a child process: it seeds a synthetic partnership through the real
paths, prints a token, answers through the public API, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

READY = re.compile(r"^s117hub demo ready in [\d.]+ s: (http://127\.0\.0\.1:\d+)/ui/")
TOKEN = re.compile(r"export S117HUB_DEMO_TOKEN=(\S+)")
AUDITOR = re.compile(r"export S117HUB_DEMO_AUDITOR_TOKEN=(\S+)")
WESTMERE = re.compile(r"Westmere County Council\s+(http://127\.0\.0\.1:\d+)/")
STARTUP_SECONDS = 60


@dataclass
class Demo:
    process: subprocess.Popen[str]
    lines: queue.Queue[str | None]
    output: list[str]
    api: str
    token: str
    auditor: str
    westmere: str

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=30, headers={
            "Authorization": f"Bearer {token or self.token}"})

    def rest_of_output(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.output.append(line)
        return "".join(self.output)


def _pump(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)
    lines.put(None)


def _find(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    assert match, f"{pattern.pattern} not in the demo's output:\n{text[-3000:]}"
    return match.group(1)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    log = open(tmp_path / "demo.log", "w")  # closed in the finally below
    process = subprocess.Popen(
        [sys.executable, "-m", "s117hub.cli", "demo", "--dir", str(tmp_path / "demo"),
         "--http", "127.0.0.1:0", "--mllp", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=tmp_path)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    output: list[str] = []
    started = time.monotonic()
    api = None
    try:
        while api is None and time.monotonic() - started < STARTUP_SECONDS:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            output.append(line)
            if match := READY.match(line):
                api = match.group(1)
        text = "".join(output)
        assert api, f"no ready line within {STARTUP_SECONDS} s:\n{text[-3000:]}\n" + \
            (tmp_path / "demo.log").read_text()[-3000:]
        yield Demo(process, lines, output, api, _find(TOKEN, text), _find(AUDITOR, text),
                   _find(WESTMERE, text))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


def test_the_demo_seeds_a_partnership_then_stops_cleanly_on_ctrl_c(demo: Demo) -> None:
    with demo.client() as api:
        people = api.get("/api/v1/people", params={"limit": 500}).json()
        assert people["total"] >= 10
        active = api.get("/api/v1/entitlements", params={"status": "active"}).json()
        assert active["total"] >= 1
        kinds = {e["kind"] for e in api.get("/api/v1/exceptions", params={
            "status": "open", "limit": 500}).json()["items"]}
        assert {"source-conflict", "missed-entitlement", "review-overdue"} <= kinds
        delivered = api.get("/api/v1/deliveries", params={
            "status": "delivered", "subscription_id": "council-west-status"}).json()
        assert delivered["total"] >= 1
        [failed] = api.get("/api/v1/messages", params={
            "status": "failed", "source": "trust-hl7"}).json()["items"]
        detail = api.get(f"/api/v1/messages/{failed['id']}").json()
        assert "MSA|AE|" in detail["ack"].replace("\n", "\r")
        assert api.get("/api/v1/disputes").json()["total"] == 1
    partner = httpx.get(demo.westmere + "/", timeout=10).json()
    assert partner["received"] >= delivered["total"]
    with demo.client(demo.auditor) as auditor:
        assert auditor.get("/api/v1/audit").status_code == 200
        assert auditor.get("/api/v1/messages").status_code == 200

    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(30) == 0
    assert "s117hub demo stopped" in demo.rest_of_output(5)

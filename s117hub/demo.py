"""``s117hub demo``: the whole hub on the embedded default, with a synthetic partnership
talking to it through the real paths, so an engineer can look around at once.

It recreates a demo directory (SQLite database and the partnership's config file), starts
fake partner receivers, serves the hub (HTTP, MLLP, in-process worker) exactly as
``s117hub serve`` does, plays the scenario (``demo_scenario``) in a background thread, prints
the addresses, a login token and what to try, and serves until Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from register_core.adapters.database import migrate
from register_core.adapters.security import TokenStore

from .bootstrap import Hub, bootstrap
from .config import Settings
from .demo_partners import DemoPartners
from .demo_people import (
    COUNCIL_CSV,
    COUNCIL_EAST_GSS,
    COUNCIL_REST,
    COUNCIL_WEST_GSS,
    ICB_EAST,
    ICB_WEST,
    PEOPLE,
    PRACTICE_EAST,
    PRACTICE_WEST,
    SOURCES,
    SUBSCRIBER_EAST,
    SUBSCRIBER_TRUST,
    SUBSCRIBER_WEST,
    TRUST_FHIR,
)
from .demo_player import DemoError, ScenarioPlayer, Tokens, TravellingClock
from .demo_report import banner
from .demo_scenario import build_scenario
from .logs import configure_logging, redact
from .serve import serve

log = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DATABASE_FILE = "s117hub.sqlite3"
SEEDED_MARK = "seeded"
TRUST_DOWN_SECONDS = 75.0  # long enough to see retries in the console, short enough to recover
DEMO_RETRY = {"max_attempts": 30, "min_backoff_seconds": 2.0, "max_backoff_seconds": 15.0,
              "timeout_seconds": 5.0}


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host, int(port)) if host else (value, default_port)


def _bind(value: str, default_port: int) -> str:
    """``host:port`` that is free now; port 0 picks one."""
    host, port = _host_port(value, default_port)
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise DemoError(f"cannot listen on {host}:{port} ({exc.strerror}); "
                            "choose another with --http / --mllp") from exc
        return f"{host}:{sock.getsockname()[1]}"


def partnership_config(partners: DemoPartners) -> dict[str, Any]:
    """The config file a real partnership would write: policy, sources, subscribers."""
    def subscriber(sid: str, kind: str, name: str, endpoint: str,
                   changes: dict[str, list[str]], **extra: Any) -> dict[str, Any]:
        return {"subscription_id": sid, "kind": kind, "display_name": name,
                "endpoint": endpoint, "changes": changes, "retry": DEMO_RETRY, **extra}

    return {
        "policy": {"s17_leave_starts_entitlement": True,
                   "practice_to_icb": {PRACTICE_WEST: ICB_WEST, PRACTICE_EAST: ICB_EAST}},
        "sources": list(SOURCES),
        "subscriptions": [
            subscriber(SUBSCRIBER_WEST, "council-rest", "Westmere County Council (REST)",
                       partners.council_west.url, {"councils": [COUNCIL_WEST_GSS]}),
            subscriber(SUBSCRIBER_EAST, "council-rest", "Eastbrook City Council (REST)",
                       partners.council_east.url, {"councils": [COUNCIL_EAST_GSS]}),
            subscriber(SUBSCRIBER_TRUST, "fhir-r4", "Riverside trust FHIR server",
                       partners.trust_fhir.url, {"fields": ["entitlement.status",
                                                            "entitlement.start",
                                                            "entitlement.ended"]},
                       credentials={"bearer_token": "demo-riverside-partner-token"}),
        ],
    }


def issue_tokens(hub: Hub) -> Tokens:
    store = TokenStore(hub.engine)
    _, operator = store.create(["register-owner", "integration-engineer"],
                               label="demo operator")
    _, auditor = store.create("auditor", label="demo auditor")
    sources = {sid: store.create("source-system", source=sid, label=f"demo {sid}")[1]
               for sid in (TRUST_FHIR, COUNCIL_REST, COUNCIL_CSV)}
    return Tokens(operator=operator, auditor=auditor, sources=sources)


def _say(line: str) -> None:
    print(line, flush=True)


class DemoRun:
    """Everything one ``s117hub demo`` owns, and the seeding thread's outcome."""

    def __init__(self, settings: Settings, directory: Path, *, keep: bool, http: str | None,
                 mllp: str | None) -> None:
        self.started = time.monotonic()
        self.dir = directory
        self.replay = not (keep and (self.dir / SEEDED_MARK).exists())
        if self.replay and self.dir.exists():
            if any(self.dir.iterdir()) and not (self.dir / "hub.json").exists():
                # Never delete a directory the demo did not make.
                raise DemoError(f"{self.dir} exists and is not a demo directory; "
                                "choose another --dir")
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.http = _bind(http or settings.http, 8117)
        self.mllp = _bind(mllp or settings.mllp, 2575)
        self.partners = DemoPartners.start()
        config = self.dir / "hub.json"
        config.write_text(json.dumps(partnership_config(self.partners), indent=2) + "\n")
        # The embedded default, whatever the environment says: the demo recreates its
        # database, which must never be someone's real one.
        self.settings = settings.model_copy(update={
            "database_url": f"sqlite:///{self.dir / DATABASE_FILE}", "broker_url": "stub://",
            "http": self.http, "mllp": self.mllp, "config_file": config})
        self.clock = TravellingClock()
        self.stop = threading.Event()
        self.failed: BaseException | None = None
        self.trust_back_at: float | None = None  # when the trust's FHIR server recovers

    def build_hub(self) -> Hub:
        migrate(self.settings.database_url)
        hub = bootstrap(self.settings, clock=self.clock)
        # Seeded: with --keep, a code-map fix made through the API (the banner's step) stays.
        hub.sources.preload(hub.file_config.sources, hub.clock.now())
        hub.subscriptions.preload(hub.file_config.subscriptions, hub.clock.now())
        return hub

    def seed(self, hub: Hub, tokens: Tokens) -> None:
        """The seeding thread: play the scenario, sweep, print what to try."""
        api = f"http://{self.http}"
        host, port = _host_port(self.mllp, 2575)
        player = ScenarioPlayer(hub, self.clock, api, (host, port), tokens, _say, self.stop)
        try:
            player.wait_until_listening()
            if self.replay:
                _say("Playing 16 weeks of a synthetic partnership through the hub "
                     "(the hub's clock follows the story; today at the real time):")
                player.play(build_scenario(self.clock.today()), self._misbehave)
                player.nightly_sweep()
                player.settle()
                (self.dir / SEEDED_MARK).write_text("the scenario was played into this "
                                                    "register\n")
            if self.stop.is_set():
                return
            _say(banner(player, api=api, mllp=self.mllp, directory=self.dir,
                        partners=self.partners, tokens=tokens,
                        trust_back_at=self.trust_back_at))
            _say(f"s117hub demo ready in {time.monotonic() - self.started:.1f} s: "
                 f"{api}/ui/ (Ctrl-C to stop)")
        except BaseException as exc:  # report it, then stop the hub: a half demo misleads
            self.failed = exc
            print(f"s117hub demo: seeding failed: {redact(str(exc))}", file=sys.stderr,
                  flush=True)
            log.exception("demo seeding failed")
            os.kill(os.getpid(), signal.SIGINT)
        finally:
            player.close()

    def _misbehave(self) -> None:
        """Before today's messages: the trust's FHIR server goes down for a while and
        Westmere does not know the person discharged today yet."""
        self.partners.trust_fhir.go_down(TRUST_DOWN_SECONDS)
        self.trust_back_at = time.time() + TRUST_DOWN_SECONDS
        self.partners.council_west.refuse_first_document_for(PEOPLE["drew"].nhs_number)


def run_demo(settings: Settings, *, directory: Path, keep: bool = False,
             http: str | None = None, mllp: str | None = None) -> int:
    """``s117hub demo``: returns the exit status once stopped (Ctrl-C or SIGTERM)."""
    if "S117HUB_LOG_LEVEL" not in os.environ:  # the terminal is for the demo's own output
        configure_logging("WARNING", settings.log_json)
    # httpx logs each request line at INFO, and the player's look-ups carry NHS numbers in
    # the query (redacted, but noise): the hub logs its own deliveries by id.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        run = DemoRun(settings, directory, keep=keep, http=http, mllp=mllp)
    except DemoError as exc:
        print(f"s117hub: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        hub = run.build_hub()
        tokens = issue_tokens(hub)
        seeder = threading.Thread(target=run.seed, args=(hub, tokens), name="demo-seeder",
                                  daemon=True)
        seeder.start()
        try:
            serve(hub, with_pollers=False)  # returns on Ctrl-C or SIGTERM; closes the hub
        finally:
            run.stop.set()
            seeder.join(10)
    except KeyboardInterrupt:  # Ctrl-C before the servers were up
        pass
    finally:
        run.partners.stop()
    print("s117hub demo stopped", flush=True)
    return EXIT_FAILED if run.failed is not None else EXIT_OK

"""``s117hub replay`` over the test database (SQLite and PostgreSQL).

Messages enter as HL7 v2 text through ``Hl7Receiver.handle`` and fail for a local legal-status
code the source's code map does not hold yet; the command runs in this process through
``s117hub.cli_replay.run`` with ``S117HUB_DATABASE_URL`` pointing at the test database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.inbound_mapper import make_mapper
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import audit_log, inbox_messages
from register_core.domain.nhs_number import make_synthetic
from register_core.services.inbound import drain
from s117hub.bootstrap import Hub
from s117hub.cli_replay import run
from tests.e2e.test_mllp_inbound import adt

TRUST_A = SourceDefinition(source_id="trust-a", kind="hl7v2-mllp",
                           hl7_sending_application="EPR", hl7_sending_facility="RX1")
TRUST_B = SourceDefinition(source_id="trust-b", kind="hl7v2-mllp",
                           hl7_sending_application="PAS", hl7_sending_facility="RX2")


def _message(control_id: str, serial: int, *, sender: str = "|EPR|RX1|",
             code: str = "XX") -> str:
    """A synthetic admission of person ``serial`` under local legal-status ``code``."""
    text = adt("A01", control_id, nhs=make_synthetic(serial), zls=f"ZLS|{code}|20260105")
    return (text.replace("|EPR|RX1|", sender).replace("RX1-000123", f"LOC-{serial:04d}")
            .replace("Testperson^Alex", f"Invented^Person{serial}"))


@dataclass
class Messages:
    hub: Hub

    def receive(self, message: str) -> int:
        Hl7Receiver(self.hub.engine, self.hub.sources, self.hub.clock,
                    self.hub.notify).handle(message.encode())
        with self.hub.engine.connect() as conn:
            return int(conn.execute(select(inbox_messages.c.id)
                                    .order_by(inbox_messages.c.id.desc())).scalars().first())

    def statuses(self) -> dict[int, str]:
        with self.hub.engine.connect() as conn:
            rows = conn.execute(select(inbox_messages.c.id, inbox_messages.c.status)).all()
        return {r.id: r.status for r in rows}

    def fix_code_map(self, source: SourceDefinition) -> None:
        fixed = source.model_copy(update={"code_map": {"XX": "03"}})
        self.hub.sources.save(fixed, self.hub.clock.now())


@dataclass
class World:
    box: Messages
    a1: int  # trust-a, failed
    a2: int  # trust-a, failed
    b1: int  # trust-b, failed
    good: int  # trust-a, applied
    rejected: int  # unknown sender


@pytest.fixture
def world(hub: Hub, database_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("S117HUB_DATABASE_URL", database_url)
    monkeypatch.delenv("S117HUB_CONFIG_FILE", raising=False)
    monkeypatch.setenv("S117HUB_LOG_JSON", "false")
    hub.sources.save(TRUST_A, hub.clock.now())
    hub.sources.save(TRUST_B, hub.clock.now())
    box = Messages(hub)
    a1 = box.receive(_message("A-1", 21))
    a2 = box.receive(_message("A-2", 22))
    b1 = box.receive(_message("B-1", 23, sender="|PAS|RX2|"))
    good = box.receive(_message("A-OK", 24, code="03"))
    rejected = box.receive(_message("Z-1", 25, sender="|OTHER|ZZZ|"))
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
    assert box.statuses() == {a1: "failed", a2: "failed", b1: "failed", good: "applied",
                              rejected: "rejected"}
    return World(box, a1, a2, b1, good, rejected)


def test_dry_run_lists_and_changes_nothing(world: World,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    before = world.box.statuses()
    assert run(["--dry-run"]) == 0
    out = capsys.readouterr().out
    listed = [line.split("\t")[0] for line in out.splitlines()[1:-1]]
    assert listed == [str(world.a1), str(world.a2), str(world.b1)]  # failed only, by default
    assert "unknown-code" in out and out.splitlines()[-1] == "would replay 3 message(s)"
    assert world.box.statuses() == before


def test_replay_by_source_after_the_fix_applies_only_that_source(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.box.fix_code_map(TRUST_A)
    world.box.fix_code_map(TRUST_B)
    assert run(["--source", "trust-a", "--status", "failed"]) == 0
    out = capsys.readouterr().out
    assert "requeued 2 message(s)" in out and "applied 2, failed 0" in out
    statuses = world.box.statuses()
    assert (statuses[world.a1], statuses[world.a2]) == ("applied", "applied")
    assert statuses[world.b1] == "failed"  # another source: untouched
    assert statuses[world.rejected] == "rejected"


def test_replay_by_id(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.box.fix_code_map(TRUST_A)
    assert run(["--id", str(world.a2)]) == 0
    assert "requeued 1 message(s)" in capsys.readouterr().out
    statuses = world.box.statuses()
    assert (statuses[world.a1], statuses[world.a2]) == ("failed", "applied")


def test_a_replay_from_the_command_line_is_audited(world: World, hub: Hub,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Architecture 6: every write of a person's record is audited, from the CLI too: who
    (the operating-system account), what (each message), the command without its arguments;
    a dry run writes nothing."""
    assert run(["--dry-run"]) == 0
    assert _audit_rows(hub) == []
    world.box.fix_code_map(TRUST_A)
    assert run(["--id", str(world.a1), str(world.a2)]) == 0
    capsys.readouterr()
    rows = _audit_rows(hub)
    assert [(r.action, r.resource, r.resource_id, r.request) for r in rows] == [
        ("write", "inbound-message", str(world.a1), "CLI s117hub replay"),
        ("write", "inbound-message", str(world.a2), "CLI s117hub replay")]
    assert {r.actor.split(":")[0] for r in rows} == {"cli"}
    assert {r.role for r in rows} == {"integration-engineer"}


def _audit_rows(hub: Hub) -> list[Any]:
    with hub.engine.connect() as conn:
        return list(conn.execute(select(audit_log).order_by(audit_log.c.id)))


def test_still_failing_is_exit_1_and_listed(world: World,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--source", "trust-b"]) == 1  # no fix yet
    out = capsys.readouterr().out
    assert "applied 0, failed 1" in out and f"\n{world.b1}\ttrust-b\tB-1" in out
    assert world.box.statuses()[world.b1] == "failed"


def test_no_apply_only_requeues(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--id", str(world.a1), str(world.b1), "--no-apply"]) == 0
    assert "requeued 2 message(s)" in capsys.readouterr().out
    statuses = world.box.statuses()
    assert (statuses[world.a1], statuses[world.b1]) == ("received", "received")


def test_applied_needs_force(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--id", str(world.good)]) == 2
    assert "--force" in capsys.readouterr().err
    assert run(["--status", "applied"]) == 2
    assert world.box.statuses()[world.good] == "applied"
    assert run(["--status", "applied", "--force", "--dry-run"]) == 0
    assert "would replay 1 message(s)" in capsys.readouterr().out
    assert run(["--id", str(world.good), "--force"]) == 0
    assert "applied 1, failed 0" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--status", "rejected"], ["--id", "REJECTED"],
                                  ["--id", "999999"], ["--since", "yesterday"],
                                  ["--since", "2026-06-02", "--until", "2026-06-01"],
                                  ["--status", "lost"], ["--frobnicate"]])
def test_usage_errors_are_exit_2_and_change_nothing(world: World, argv: list[str],
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    before = world.box.statuses()
    argv = [str(world.rejected) if a == "REJECTED" else a for a in argv]
    assert run(argv) == 2
    assert capsys.readouterr().err
    assert world.box.statuses() == before


def test_since_and_until_bound_received_at(world: World,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--since", "2026-06-01T09:00:00Z", "--until", "2026-06-01T09:00:01Z",
                "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "would replay 3 message(s)"
    assert run(["--since", "2026-06-02", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "would replay 0 message(s)"


def test_two_replays_at_once_apply_the_message_once(world: World) -> None:
    """Each replay puts back only a message still as its caller saw it: the second replay
    of a failed message, arriving after the first was applied, leaves it alone (it would
    have appended its facts again; concurrency audit, from reading the code)."""
    failed, box = world.a1, world.box
    box.fix_code_map(TRUST_A)
    hub = box.hub
    assert hub.inbox.requeue({failed: "failed"}) == [failed]  # the first replay
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
    assert box.statuses()[failed] == "applied"
    assert hub.inbox.requeue({failed: "failed"}) == []  # the second, as it saw the message
    assert box.statuses()[failed] == "applied"

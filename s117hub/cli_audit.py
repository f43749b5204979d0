"""Audit rows for what the command line does to people's records (architecture section 6:
every read or write of a person's record is audited — who, what, when, why).

Who is the operating-system account that ran the command, as an integration engineer (the
role whose work replay and imports are); the request is the command, never its arguments
(a filter may hold an NHS number)."""

from __future__ import annotations

import getpass
from collections.abc import Iterable

from sqlalchemy import Engine

from register_core.adapters.security import AuditLog, Principal, Role
from register_core.ports import Clock


def cli_principal() -> Principal:
    try:
        account = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container running as a bare uid)
        account = "unknown"
    return Principal(token_id=f"cli:{account}", roles=frozenset({Role.INTEGRATION_ENGINEER}))


def audit_cli_writes(engine: Engine, clock: Clock, command: str, resource: str,
                     writes: Iterable[tuple[str, str | None]]) -> None:
    """One ``write`` row per (resource id, person id or None), in one transaction."""
    principal, log = cli_principal(), AuditLog(clock)
    with engine.begin() as conn:
        for resource_id, person_id in writes:
            log.record(conn, principal, "write", resource, resource_id, person_id,
                       purpose=None, request=f"CLI s117hub {command}")

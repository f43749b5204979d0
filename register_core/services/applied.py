"""What recording a command (or a merge) did to one person: the register values that changed
and the position now. Partners are told of a status change (outbound, issue 5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from register_core.domain.position import Position

STATUS_FIELDS = frozenset({
    "entitlement.status", "entitlement.start", "entitlement.responsible_council",
    "entitlement.responsible_icb", "entitlement.ended", "entitlement.on_cto",
})


@dataclass
class Applied:
    person_id: str
    fact_seq: int
    created: bool
    changes: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    position: Position | None = None
    # How the person was found: exact (NHS number or the source's id) | probabilistic | new
    identity: str = "exact"
    identity_exception: str | None = None  # an identity-uncertain exception opened now
    # People a merge emptied (ADT A40): their register values changed too.
    also: list[Applied] = field(default_factory=list)

    @property
    def status_changed(self) -> bool:
        """Whether the change is one partners must be told of (outbound, issue 5)."""
        return any(name in STATUS_FIELDS for name, _, _ in self.changes)

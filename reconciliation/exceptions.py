"""The exceptions workflow rules (pure): which findings open, stay, close or stay closed.

    open ──assign──▶ assigned ──resolve──▶ resolved      (decision + reason, by a person)
      │                 │
      ├─────────────────┴──dismiss──▶ dismissed          (reason, by a person)
      └── finding gone ──▶ resolved by "system", "condition no longer holds"

Sync rules, per person, on every detection:

- One live (open or assigned) exception per fingerprint: a finding with no live row opens one.
- A live exception whose finding is gone is resolved by ``system``.
- A live exception whose finding is still there keeps its status; its summary and detail are
  refreshed when they changed.
- Kinds no detector raises are left alone: only a person's decision closes them.
  ``identity-uncertain`` is opened by identity matching, ``identity-demographics-conflict``
  by a record linked by NHS number whose birth date differs; ``delivery-sla-breach`` by the
  outbound SLA clock, and a missed five-working-day deadline stays a fact however the
  delivery ends (delivered late, superseded, cancelled), so no detector run may close it.
- A person's decision sticks until the facts change: a dismissed exception, or one a person
  resolved, is not reopened for the same fingerprint; a new fingerprint (the facts behind it
  changed) opens a new exception. An exception the system resolved does not hold anything
  back: if the same finding returns, a new exception opens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from register_core.domain.errors import ConcurrentChange, InvalidValue
from register_core.domain.precedence import Question, question_of

from .findings import Finding

STATUSES: tuple[str, ...] = ("open", "assigned", "resolved", "dismissed")
LIVE: frozenset[str] = frozenset({"open", "assigned"})
SYSTEM = "system"
AUTO_RESOLVE_DECISION = "resolved"
AUTO_RESOLVE_REASON = "condition no longer holds"
DUPLICATE_REASON = "duplicate of another open exception for the same finding"

# Decisions a person may record when resolving (``accept-source:<source id>`` besides, on a
# source-conflict only, naming one of the sources in the conflict).
DECISIONS: tuple[str, ...] = ("resolved", "corrected", "dismiss")
# On an identity-uncertain exception only: merge the two records, or keep them apart (and
# remember the pair, so the same two are not asked about again).
SAME_PERSON, DIFFERENT_PEOPLE = "same-person", "different-people"
IDENTITY_DECISIONS: tuple[str, ...] = (SAME_PERSON, DIFFERENT_PEOPLE)
IDENTITY_KIND = "identity-uncertain"
# A record linked by its NHS number gave a demographic (the birth date) otherwise than the
# register: the link stands; a person settles the value (accept-source), resolves or dismisses.
DEMOGRAPHICS_KIND = "identity-demographics-conflict"
ACCEPT_SOURCE = "accept-source:"
SOURCE_CONFLICT_KIND = "source-conflict"
# Kinds settled by accepting one of the sources they name.
ACCEPTS_SOURCE: frozenset[str] = frozenset({SOURCE_CONFLICT_KIND, DEMOGRAPHICS_KIND})
BREACH_KIND = "delivery-sla-breach"
MAX_REASON = 2000
# Raised outside the detectors (identity matching in the write path; the outbound SLA clock):
# the sync neither closes them (no detector finds them, so "gone" means nothing) nor counts
# them; a register owner's decision closes them.
NOT_FROM_DETECTORS: frozenset[str] = frozenset({IDENTITY_KIND, DEMOGRAPHICS_KIND,
                                                BREACH_KIND})


class ExceptionClosed(InvalidValue):
    """The exception was resolved or dismissed already: closed exceptions do not change."""

    code = "exception-closed"


class PersonMergedSince(ConcurrentChange):
    """A person an identity exception names was merged into someone else after it was raised:
    the question is about a record that is now empty, so deciding it would change nothing
    (409: the register moved on; the exception stays open for a person to dismiss or
    re-ask about the survivor)."""

    code = "person-merged"


@dataclass(frozen=True, kw_only=True)
class StoredException:
    id: str
    kind: str
    status: str
    fingerprint: str
    summary: str
    detail: dict[str, Any]
    closed_by: str | None = None

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def closed_by_person(self) -> bool:
        return not self.live and self.closed_by not in (None, SYSTEM)


@dataclass(kw_only=True)
class SyncPlan:
    open: list[Finding] = field(default_factory=list)
    auto_resolve: list[StoredException] = field(default_factory=list)
    duplicates: list[StoredException] = field(default_factory=list)
    refresh: list[tuple[StoredException, Finding]] = field(default_factory=list)
    held_closed: list[tuple[StoredException, Finding]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.open or self.auto_resolve or self.duplicates or self.refresh)


def plan_sync(existing: Sequence[StoredException], findings: Sequence[Finding]) -> SyncPlan:
    """What to write so the person's exceptions match today's findings (rules above).

    ``existing`` is every stored exception of the person, oldest first.
    """
    plan = SyncPlan()
    wanted = {f.fingerprint: f for f in findings}
    live: dict[str, StoredException] = {}
    existing = [row for row in existing if row.kind not in NOT_FROM_DETECTORS]
    for row in existing:
        if not row.live:
            continue
        if row.fingerprint in live:
            plan.duplicates.append(row)  # a race left two: keep the oldest
        elif row.fingerprint in wanted:
            live[row.fingerprint] = row
        else:
            plan.auto_resolve.append(row)
    decided = {row.fingerprint: row for row in existing if row.closed_by_person}
    for fp, found in wanted.items():
        if fp in live:
            row = live[fp]
            if row.summary != found.summary or row.detail != found.detail:
                plan.refresh.append((row, found))
        elif fp in decided:
            plan.held_closed.append((decided[fp], found))
        else:
            plan.open.append(found)
    return plan


def check_reopenable(kind: str | None, decision: str | None) -> None:
    """Only a pair a person kept apart (``different-people``, or an un-merge) may be asked
    again: every other closed exception stays closed until its facts change."""
    if kind != IDENTITY_KIND or decision != DIFFERENT_PEOPLE:
        raise InvalidValue(f"only an {IDENTITY_KIND} exception decided {DIFFERENT_PEOPLE!r} "
                           "can be asked again", field="exception_id", rule="exception-reopen")


def require_live(row_status: str) -> None:
    if row_status not in LIVE:
        raise ExceptionClosed(f"the exception is {row_status} already; closed exceptions do not "
                              "change (a new one opens if the facts behind it change)",
                              field="status", rule="exception-live")


def check_assignee(assignee: str) -> str:
    text = assignee.strip()
    if not text or len(text) > 100:
        raise InvalidValue("an assignee is 1 to 100 characters", field="assignee",
                           rule="exception-assignee")
    return text


def check_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise InvalidValue("a decision needs its reason", field="reason",
                           rule="exception-decision-reason")
    if len(text) > MAX_REASON:
        raise InvalidValue(f"a reason is at most {MAX_REASON} characters", field="reason",
                           rule="exception-decision-reason")
    return text


def conflict_sources(detail: Mapping[str, Any] | None) -> set[str]:
    """The sources a source-conflict names: every ``source`` value in its detail (the
    competing ``values``, the ending or death tellers…), wherever the finding put them."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "source" and isinstance(value, str):
                    found.add(value)
                else:
                    walk(value)
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item)

    walk(detail)
    return found


def closing_status(decision: str, *, correcting: bool, kind: str | None = None,
                   detail: Mapping[str, Any] | None = None) -> str:
    """The status a decision closes with; refuses decisions the workflow does not know.

    ``resolved``: dealt with (outside the hub, or by the correction given);
    ``corrected``: the register was corrected here (a correction is required);
    ``accept-source:<source>``: a source conflict settled in that source's favour (only on a
    ``source-conflict`` or an ``identity-demographics-conflict``, naming one of the sources
    its ``detail`` names when it is given);
    ``dismiss``: not a real problem (no correction allowed);
    ``same-person`` / ``different-people`` (identity-uncertain only): the two records are
    merged (resolved) / kept apart (dismissed); neither takes a correction. An
    ``identity-demographics-conflict`` takes no ``corrected``: no correction sets a birth
    date; accepting a source's value does.
    """
    if decision in IDENTITY_DECISIONS:
        if kind != IDENTITY_KIND:
            raise InvalidValue(f"{decision!r} decides an {IDENTITY_KIND} exception only",
                               field="decision", rule="exception-decision")
        if correcting:
            raise InvalidValue("an identity decision applies no correction: drop 'apply'",
                               field="apply", rule="exception-correction")
        return "resolved" if decision == SAME_PERSON else "dismissed"
    if decision.startswith(ACCEPT_SOURCE):
        _check_accepted_source(decision.removeprefix(ACCEPT_SOURCE).strip(), kind, detail)
        return "resolved"
    if decision not in DECISIONS:
        raise InvalidValue(f"unknown decision {decision!r}; use one of "
                           f"{', '.join(DECISIONS + IDENTITY_DECISIONS)} or "
                           f"{ACCEPT_SOURCE}<source>",
                           field="decision", rule="exception-decision")
    if kind == IDENTITY_KIND and decision != "dismiss":
        # "resolved" would close the question with neither a merge nor a recorded pair
        # decision: the duplicate stays, and the exception never comes back.
        raise InvalidValue(f"an {IDENTITY_KIND} exception is decided {SAME_PERSON} or "
                           f"{DIFFERENT_PEOPLE}, or dismissed",
                           field="decision", rule="exception-decision")
    if kind == DEMOGRAPHICS_KIND and decision == "corrected":
        raise InvalidValue(f"an {DEMOGRAPHICS_KIND} exception is settled by "
                           f"{ACCEPT_SOURCE}<source> (the register takes that source's "
                           "value), resolved or dismissed: no correction sets the value",
                           field="decision", rule="exception-decision")
    if decision == "corrected" and not correcting:
        raise InvalidValue("a 'corrected' decision needs the correction to apply",
                           field="apply", rule="exception-correction")
    if decision == "dismiss":
        if correcting:
            raise InvalidValue("a dismissal changes nothing on the register: drop 'apply' "
                               "or resolve instead", field="apply", rule="exception-correction")
        return "dismissed"
    return "resolved"


def _check_accepted_source(source: str, kind: str | None,
                           detail: Mapping[str, Any] | None) -> None:
    """``accept-source`` settles a disagreement between sources: on any other kind it would
    record a decision that means nothing (the audit found one accepted on a breach)."""
    if not source:
        raise InvalidValue("accept-source needs a source id, e.g. accept-source:trust-a",
                           field="decision", rule="exception-decision")
    if kind not in ACCEPTS_SOURCE:
        raise InvalidValue(f"accept-source settles a {SOURCE_CONFLICT_KIND} exception only "
                           f"(or an {DEMOGRAPHICS_KIND}); this one is "
                           f"{kind or 'of another kind'}: resolve or dismiss it",
                           field="decision", rule="exception-decision")
    if detail is None:
        return  # the caller did not give the conflict: the kind is all that can be checked
    named = conflict_sources(detail)
    if source not in named:
        choices = ", ".join(f"{ACCEPT_SOURCE}{s}" for s in sorted(named)) or "none"
        raise InvalidValue(f"source {source!r} is not in this conflict; accept one of "
                           f"the sources in it: {choices}",
                           field="decision", rule="exception-decision")
    if kind == SOURCE_CONFLICT_KIND:
        # Accepting a source applies its value (``accept_source_question``): a conflict with
        # no value a source's word settles would be closed with nothing changed.
        accept_source_question(source, detail)


def accept_source_question(source: str, detail: Mapping[str, Any] | None) -> Question:
    """The question a source-conflict's ``accept-source:<source>`` answers (the register then
    takes ``source``'s value, as a precedence rule for that source would); refused where the
    conflict is not between sources' values of one field (eligibility, an ending, events
    after a death) or ``source`` told none of them."""
    question = question_of(detail)
    if question is None:
        raise InvalidValue("this conflict has no source value the register could take: "
                           "resolve it (with a correction where the register is wrong) or "
                           "dismiss it", field="decision", rule="exception-decision")
    if source not in question.sources:
        choices = ", ".join(f"{ACCEPT_SOURCE}{s}" for s in sorted(question.sources))
        raise InvalidValue(f"source {source!r} told none of the competing values; accept one "
                           f"of: {choices}", field="decision", rule="exception-decision")
    return question

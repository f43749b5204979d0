"""One FHIR submission → a stored inbox row and the FHIR answer, stored *before* answering.

    POST [base]            transaction | batch Bundle → 200 transaction-/batch-response Bundle
    POST [base]/{type}     Patient | Encounter | EpisodeOfCare → 201, resource echoed, Location
    PUT  [base]/{type}/{id}                                      → 200, resource echoed, Location

Every submission from an authenticated source is kept: JSON that is not a FHIR resource, a
body holding a NUL character, and a submission the endpoint refuses whatever the code maps say
(another resource type than the URL's, a PUT whose body id is not the URL's, a resource POSTed
to the base, a Bundle of another type or over ``MAX_BUNDLE_ENTRIES`` entries) are ``rejected``
(Intake.reject: replay answers 409, as the stored body alone no longer carries the URL it was
refused for; the sender must send it again, to the right endpoint); a resource that cannot be
mapped is ``failed`` with its error (replayable after a code-map fix); a mapped one is
``received`` for a worker to apply. A stored refused body never holds a NUL (it is kept with
each NUL as U+FFFD). The answer is stored with the row (the
``ack`` column), so a duplicate (same source + message id) gets the very same answer.

Message ids: a Bundle's ``identifier.value`` or ``id``; a single resource's
``<type>/<id>/_history/<meta.versionId or meta.lastUpdated or body hash>`` (so a changed
resource PUT again under the same id is a new message, and an identical re-post a duplicate);
``sha256:<hex of the body>`` when there is nothing better. A refusal is keyed by the body's hash
(and, when the endpoint refused it, the endpoint's too), so the corrected resource sent again
under the same id and version is not taken for a duplicate of the refused one.

A batch is stored and applied as one message, like a transaction: one bad entry refuses the
whole Bundle (with the entry's location), it is never half-applied. The hub never answers
``201``/``200`` for what it will not apply:

* an entry of a resource type the hub does not map (an Observation; anything but Patient,
  Encounter, EpisodeOfCare and Organization, which is read only for the ODS code other
  entries refer to) refuses the Bundle: 422 ``not-supported`` at
  ``Bundle.entry[i].resource.resourceType``, stored ``rejected`` (no code-map fix makes it
  apply: send the Bundle again without it); a POST/PUT entry without a resource, 400
  ``required`` at ``Bundle.entry[i].resource``, the same way;
* an Encounter/EpisodeOfCare whose patient is not in the Bundle, not an NHS number, and not a
  record the register holds for this source (``connectors.fhir.patients``) refuses the
  submission, Bundle or single resource: 422 ``not-found`` at ``….subject.reference`` (or
  ``….patient.reference``), stored ``failed`` and replayable once the patient is on the
  register — applied now, it would have started a person known by nothing but that id;
* an Organization entry is answered ``200 OK`` with an informational outcome, no location:
  nothing is created for it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from mapping.errors import MappingError
from mapping.fhir_r4 import (
    BUNDLE_ENTRY_TYPES,
    CONTEXT_TYPES,
    MAPPED_TYPES,
    OutsideReference,
    UnresolvedReference,
)
from mapping.fhir_support import known_type, precheck_bundle
from register_core.adapters.inbox import InboxEntry, Stored
from register_core.adapters.sources import SourceDefinition
from register_core.domain.commands import Command
from register_core.ports import Clock

from ..inbound_mapper import map_fhir, may_hold_nul, nul_error, nul_location, without_nul
from ..intake import Intake
from .outcome import operation_outcome, outcome_for_error, status_for_error
from .patients import PatientDirectory

CHANNEL = "fhir-r4"
SUPPORTED_TYPES = MAPPED_TYPES  # POST/PUT [base]/{type}
BUNDLE_TYPES = ("transaction", "batch")
OTHER_BUNDLE_TYPES = frozenset({"document", "message", "history", "searchset", "collection",
                                "transaction-response", "batch-response"})
_ID_NAMESPACE = uuid.UUID("6b1f1c0e-117a-4c5e-9d1e-5f4b1171a117")
_MAX_MESSAGE_ID = 200  # inbox_messages.message_id
MAX_BUNDLE_ENTRIES = 1000  # as a council REST request takes at most 1,000 events

Interaction = Literal["bundle", "create", "update"]


@dataclass(frozen=True)
class FhirAnswer:
    """What the REST edge sends back: status, FHIR JSON body, and a Location relative to base."""

    status: int
    body: dict[str, Any]
    location: str | None = None

    def to_ack(self) -> str:
        return json.dumps({"status": self.status, "location": self.location, "body": self.body},
                          separators=(",", ":"))

    @classmethod
    def from_ack(cls, ack: str | None) -> FhirAnswer | None:
        try:
            stored = json.loads(ack or "")
            return cls(status=int(stored["status"]), body=stored["body"],
                       location=stored.get("location"))
        except (ValueError, TypeError, KeyError):
            return None  # stored by another channel (a poll) or before answers were kept


@dataclass(frozen=True)
class Submission:
    answer: FhirAnswer
    inbox_id: int
    status: str  # received | failed | rejected (of the first time, for a duplicate)
    duplicate: bool


class _Refused(Exception):
    """A refusal the edge decides before mapping (wrong endpoint for the content, ids)."""

    def __init__(self, status: int, error: MappingError, *,
                 issue_code: str | None = None) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.issue_code = issue_code  # the OperationOutcome's, when not the error's own

    def outcome(self) -> dict[str, Any]:
        outcome = outcome_for_error(self.error)
        if self.issue_code:
            outcome["issue"][0]["code"] = self.issue_code
        return outcome


def body_hash(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass
class FhirSubmissions:
    intake: Intake
    clock: Clock
    patients: PatientDirectory  # vouches for ``Patient/<id>`` references outside the message

    def submit(self, source: SourceDefinition, raw: bytes, *, interaction: Interaction,
               resource_type: str | None = None, resource_id: str | None = None
               ) -> Submission:
        received_at = self.clock.now()
        try:
            text = raw.decode("utf-8-sig")
            resource = json.loads(text)
        except UnicodeDecodeError:
            return self.reject(source, raw, "the body is not UTF-8 text",
                               received_at=received_at)
        except json.JSONDecodeError as exc:
            return self.reject(source, raw, f"not JSON: {exc.msg} (line {exc.lineno} column "
                               f"{exc.colno})", text=text, received_at=received_at)
        except RecursionError:  # json gives up on arrays or objects nested ~1,000 deep
            return self.reject(source, raw, "not JSON the hub can read: arrays or objects "
                               "nested too deeply", text=text, received_at=received_at)
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            return self.reject(source, raw, "expected a FHIR resource: a JSON object with "
                               "resourceType", text=text, received_at=received_at)
        kind = resource["resourceType"]
        if may_hold_nul(text):
            location = nul_location(resource, kind)
            if location is not None:  # before the ids: they may hold it too
                refusal = nul_error(location)
                return self.reject(source, raw, refusal.message, error=refusal, text=text,
                                   received_at=received_at)
        try:
            _check_endpoint(resource, interaction, resource_type, resource_id)
        except _Refused as refused:
            return self.reject(source, raw, refused.error.message, error=refused.error,
                               status=refused.status, outcome=refused.outcome(), text=text,
                               received_at=received_at,
                               message_id=_refusal_id(raw, interaction, resource_type,
                                                      resource_id))
        message_id = _message_id(resource, raw, interaction, resource_type, resource_id)
        message_type = f"Bundle/{resource.get('type')}"[:60] if kind == "Bundle" else kind[:60]
        commands: list[Command] = []
        error: MappingError | None = None
        try:
            outside: list[OutsideReference] = []
            commands = map_fhir(_as_entry(source, message_id, text, received_at), source,
                                outside=outside)
            self._check_patients(source, outside)
            answer = _success(resource, interaction, message_id, source.source_id)
        except MappingError as exc:
            error = exc
            status = status_for_error(exc, structural=structurally_invalid(resource))
            answer = FhirAnswer(status, outcome_for_error(exc))
        stored = self.intake.accept(
            source=source.source_id, channel=CHANNEL, message_id=message_id,
            message_type=message_type, payload=text, received_at=received_at,
            commands=commands, error=error, ack=answer.to_ack())
        return _submission(stored, answer)

    def _check_patients(self, source: SourceDefinition,
                        outside: list[OutsideReference]) -> None:
        """Refuse (``UnresolvedReference``) a patient reference the worker would turn into a
        new person known by that id alone; the first is named, with how many more."""
        known: dict[str, bool] = {}  # one look-up per record id, however often named
        for ref in outside:
            if ref.local_id not in known:
                known[ref.local_id] = self.patients.knows(source, ref.local_id)
        unknown = [ref for ref in outside if not known[ref.local_id]]
        if not unknown:
            return
        first = unknown[0]
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise UnresolvedReference(
            f"{first.reference!r} is not in this submission and the register holds no "
            f"patient with {source.source_id}'s record id {first.local_id!r}{more}: include "
            "the Patient in the same transaction, send it first, or name the patient by NHS "
            "number (identifier); the message is kept and can be replayed once the patient "
            "is on the register", location=first.location)

    def reject(self, source: SourceDefinition, raw: bytes, message: str, *, status: int = 400,
               outcome: dict[str, Any] | None = None, text: str | None = None,
               received_at: datetime | None = None, error: MappingError | None = None,
               message_id: str | None = None) -> Submission:
        """Keep what is not a FHIR resource at all, or is refused whatever the code maps say
        (``rejected``: never replayed), and answer ``status``. The stored text is the body
        with any NUL as U+FFFD (PostgreSQL text cannot hold NUL); the bytes as received are
        kept beside it where that text does not give them back."""
        error = error or MappingError("unparseable", message)
        answer = FhirAnswer(status, outcome or outcome_for_error(error))
        payload = raw.decode("utf-8", "replace") if text is None else text
        stored = self.intake.reject(
            source=source.source_id, channel=CHANNEL, message_id=message_id or body_hash(raw),
            payload=without_nul(payload), received_at=received_at or self.clock.now(),
            error=error, ack=answer.to_ack(), received=raw)
        return _submission(stored, answer)


def _submission(stored: Stored, answer: FhirAnswer) -> Submission:
    if stored.duplicate:
        answer = FhirAnswer.from_ack(stored.ack) or answer
    return Submission(answer=answer, inbox_id=stored.id, status=stored.status,
                      duplicate=stored.duplicate)


def _as_entry(source: SourceDefinition, message_id: str, text: str,
              received_at: datetime) -> InboxEntry:
    """The row as a worker will see it, so the edge maps exactly as the worker will."""
    return InboxEntry(id=0, source=source.source_id, message_id=message_id, channel=CHANNEL,
                      message_type=None, payload=text, received_at=received_at,
                      status="received", attempts=0, partition=0)


# --- ids ------------------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    return None


def _bounded(message_id: str, raw: bytes) -> str:
    return message_id if len(message_id) <= _MAX_MESSAGE_ID else body_hash(raw)


def resource_version(resource: dict[str, Any], raw: bytes) -> str:
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    return _text(meta.get("versionId")) or _text(meta.get("lastUpdated")) or body_hash(raw)


def _refusal_id(raw: bytes, interaction: Interaction, resource_type: str | None,
                resource_id: str | None) -> str:
    """The key of a submission the endpoint refused: its endpoint and body, hashed."""
    endpoint = f"{interaction} {resource_type or ''}/{resource_id or ''}\n".encode()
    return "sha256:" + hashlib.sha256(endpoint + raw).hexdigest()


def _message_id(resource: dict[str, Any], raw: bytes, interaction: Interaction,
                resource_type: str | None, resource_id: str | None) -> str:
    if interaction == "bundle":
        identifier = resource.get("identifier")
        value = _text(identifier.get("value")) if isinstance(identifier, dict) else None
        return _bounded(value or _text(resource.get("id")) or body_hash(raw), raw)
    kind = resource_type or str(resource["resourceType"])
    logical = resource_id if interaction == "update" else _text(resource.get("id"))
    if not logical:
        return _bounded(f"{kind}/{body_hash(raw)}", raw)
    return _bounded(f"{kind}/{logical}/_history/{resource_version(resource, raw)}", raw)


def _assigned_id(message_id: str, index: int | None = None) -> str:
    name = message_id if index is None else f"{message_id}#{index}"
    return str(uuid.uuid5(_ID_NAMESPACE, name))


# --- checks and answers ---------------------------------------------------------------------

def _check_endpoint(resource: dict[str, Any], interaction: Interaction,
                    resource_type: str | None, resource_id: str | None) -> None:
    kind = resource["resourceType"]
    if interaction == "bundle":
        if kind != "Bundle":
            raise _Refused(400, MappingError(
                "unsupported-message-type", f"POST to the base takes a transaction or batch "
                f"Bundle, not a {kind}", location=f"{kind}.resourceType"))
        entries = resource.get("entry")
        if isinstance(entries, list) and len(entries) > MAX_BUNDLE_ENTRIES:
            raise _Refused(413, MappingError(
                "invalid-value", f"a Bundle may hold at most {MAX_BUNDLE_ENTRIES} entries; "
                f"this one has {len(entries)}: send them in several Bundles",
                location="Bundle.entry"), issue_code="too-costly")
        bundle_type = resource.get("type")
        if bundle_type in OTHER_BUNDLE_TYPES:
            raise _Refused(422, MappingError(
                "unsupported-message-type", f"a {bundle_type} Bundle is not taken here; send a "
                "transaction or batch", location="Bundle.type"))
        if bundle_type in BUNDLE_TYPES:
            _check_requests(resource)
        return
    if resource_type not in SUPPORTED_TYPES:
        raise _Refused(404, MappingError(
            "unsupported-message-type", f"resource type {resource_type!r} is not supported; "
            f"one of {', '.join(SUPPORTED_TYPES)}", location="resourceType"))
    if kind != resource_type:
        raise _Refused(400, MappingError(
            "invalid-value", f"the body is a {kind}, the URL says {resource_type}",
            location=f"{kind}.resourceType"))
    if interaction == "update" and _text(resource.get("id")) != resource_id:
        raise _Refused(400, MappingError(
            "invalid-value", "the resource id must be present and match the id in the URL",
            location=f"{kind}.id"))


def _check_requests(bundle: dict[str, Any]) -> None:
    """Each entry asks for something the hub does: refused as sent otherwise (a Bundle is
    all or nothing, so one such entry refuses it whole; the first is named)."""
    entries = bundle.get("entry")
    entries = entries if isinstance(entries, list) else []
    for index, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, dict) else None
        method = request.get("method") if isinstance(request, dict) else None
        if method is not None and method not in ("POST", "PUT"):
            raise _Refused(422, MappingError(
                "unsupported-event", f"request.method {method!r} is not supported; "
                "entries are created (POST) or updated (PUT)",
                location=f"Bundle.entry[{index}].request.method"))
        if isinstance(entry, dict) and entry.get("resource") is None:
            # Nothing to create or update: it would have been answered 201 for nothing.
            raise _Refused(400, MappingError(
                "missing-field", f"a {method or 'POST'} entry needs a resource",
                location=f"Bundle.entry[{index}].resource"))
        kind = _untaken_type(entry)
        if kind is not None:
            more = sum(1 for later in entries[index + 1:] if _untaken_type(later))
            raise _Refused(422, MappingError(
                "unsupported-message-type", f"a {kind} is not taken here"
                + (f" (and {more} more entries the hub does not take)" if more else "")
                + f"; a Bundle may hold {', '.join(MAPPED_TYPES)}, and Organization for "
                "the ODS code other entries refer to: send it again without them",
                location=f"Bundle.entry[{index}].resource.resourceType"))


def _untaken_type(entry: Any) -> str | None:
    """The entry's resource type when it is an R4 type the hub does not take. A type R4
    does not know, or a malformed entry, is the mapping's to refuse (400, its location)."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if isinstance(kind, str) and kind not in BUNDLE_ENTRY_TYPES and known_type(kind):
        return kind
    return None


def _success(resource: dict[str, Any], interaction: Interaction, message_id: str,
             source_id: str) -> FhirAnswer:
    kind = resource["resourceType"]
    if interaction == "bundle":
        return FhirAnswer(200, _response_bundle(resource, message_id, source_id))
    echoed = dict(resource)
    echoed.setdefault("id", _assigned_id(f"{source_id}|{message_id}"))
    return FhirAnswer(201 if interaction == "create" else 200, echoed,
                      location=f"{kind}/{echoed['id']}")


def _response_bundle(bundle: dict[str, Any], message_id: str,
                     source_id: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for index, entry in enumerate(bundle.get("entry") or []):
        resource = entry.get("resource") or {}
        request = entry.get("request") or {}
        method = request.get("method") or "POST"
        kind = resource.get("resourceType", "Resource")
        if kind in CONTEXT_TYPES:
            # Read for the ODS code other entries refer to; nothing is created for it.
            entries.append({"response": {"status": "200 OK", "outcome": operation_outcome(
                "informational", f"not stored: the hub keeps no {kind}; the entries that "
                "refer to it carry its ODS code", severity="information")}})
            continue
        if method == "PUT" and _text(request.get("url")):
            location = str(request["url"]).split("?", 1)[0]
        else:
            logical = _text(resource.get("id")) or _assigned_id(
                f"{source_id}|{message_id}", index)
            location = f"{kind}/{logical}"
        entries.append({"response": {"status": "200 OK" if method == "PUT" else "201 Created",
                                     "location": location}})
    return {"resourceType": "Bundle", "id": _assigned_id(f"{source_id}|{message_id}"),
            "type": f"{bundle['type']}-response", "entry": entries}


def structurally_invalid(resource: dict[str, Any]) -> bool:
    """Whether fhir.resources itself refuses the JSON (a 400), as against our rules (422)."""
    try:
        if resource.get("resourceType") == "Bundle":
            precheck_bundle(resource)
            Bundle.model_validate(resource)
        else:
            get_fhir_model_class(str(resource.get("resourceType"))).model_validate(resource)
    except (MappingError, ValidationError, ValueError, KeyError, TypeError):
        return True
    return False

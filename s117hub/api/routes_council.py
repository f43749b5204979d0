"""Council inbound over HTTP (architecture section 4): JSON events and CSV exports.

Only a ``source-system`` token bound to ``{source}`` may post (403 otherwise); the source must
exist with the right kind (404 otherwise). Everything that arrives is stored in the inbox
before the answer, valid or not, so nothing a council sent is lost and every refusal can be
looked up and replayed. Routes only translate: the work is in ``connectors.council``.

Events — ``POST /api/v1/sources/{source}/events`` takes ONE event object or a JSON ARRAY of
events (1 to 1,000), stored one inbox row per event (channel ``council-rest``):
* 202 ``{"accepted": [{"event_id", "message_id", "duplicate"}]}`` when every event is taken
  (``message_id`` is the inbox id; a repeat of an ``event_id`` is ``duplicate``: true and is
  applied once);
* 422 for a single invalid event: ``{"error": "invalid-event", "event_id", "code", "message",
  "location", "message_id", "duplicate"}`` — it is still stored, as ``failed``;
* 422 for an array with any invalid event: ``{"error": "invalid-events", "message",
  "accepted": n, "invalid": n, "results": [{"index", "status": "accepted" | "invalid", ...}]}``.
  The valid events of that array ARE stored and will be applied (events are independent, not
  a transaction); resending the whole array after fixing the bad ones is safe.
* An event with a NUL character (U+0000) in any string is invalid (``invalid-value``, its
  ``location`` names the field, e.g. ``person.family_name``) and stored ``rejected`` — keyed by
  its digest, so the corrected event may keep its ``event_id`` — exactly (as ``\\u0000``).
* A body that is not JSON (or nests arrays or objects too deeply to read) is 422 ``unparseable``
  and stored ``rejected``, with any NUL as U+FFFD.

CSV — ``POST /api/v1/sources/{source}/csv`` takes ``text/csv`` (name it with ``?file_name=``)
or a ``multipart/form-data`` upload in a ``file`` part; 202 with the summary when every row
was taken, 422 with the same summary (``error``: ``invalid-rows``) when some rows failed (the
others are stored), 422 ``invalid-csv`` when the header is unusable (nothing stored). A row is
known by its event id, else by its content, never by the file's name (the same rule as
``s117hub import-csv``): a row sent before, in any file or by either route, is a duplicate.
"""

from __future__ import annotations

import json
import tempfile
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from connectors.council.csv_import import CsvFileError, file_digest, import_csv
from connectors.council.events import EventOutcome, reject_body, take_event
from connectors.council.schema import csv_request_body, events_request_body
from connectors.inbound_mapper import without_nul
from connectors.intake import Intake
from mapping.errors import MappingError
from register_core.adapters.database import write_transaction
from register_core.adapters.security import Principal, Role
from register_core.adapters.sources import SourceDefinition
from s117hub.bootstrap import Hub

from .auth import audit_write, get_hub, require_roles
from .errors import HttpProblem
from .routes_register import Problem

MAX_EVENTS = 1000
MAX_EVENTS_BYTES = 10 * 1024 * 1024
MAX_CSV_BYTES = 1024 * 1024 * 1024
CSV_MEDIA_TYPES = ("text/csv", "application/csv", "text/plain", "application/octet-stream")

# -- models and the published schema -----------------------------------------------------


class AcceptedEvent(BaseModel):
    event_id: str | None
    message_id: int = Field(description="The inbox id of the stored message.")
    duplicate: bool = Field(description="This event_id was received before; applied once.")


class EventsAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"accepted": [{"event_id": "evt-000001", "message_id": 41, "duplicate": False}]}]})
    accepted: list[AcceptedEvent]


class InvalidEvent(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "error": "invalid-event", "event_id": "evt-000002", "code": "invalid-value",
        "message": "a date must be a string YYYY-MM-DD", "location": "data.start",
        "message_id": 42, "duplicate": False}]})
    error: Literal["invalid-event"]
    event_id: str | None
    code: str = Field(description="A mapping error code: unparseable, missing-field, "
                      "invalid-value, unknown-code, unsupported-event.")
    message: str
    location: str | None = Field(description="Where in the event: `data.start`, `type`.")
    message_id: int | None = Field(description="The inbox id (the event is kept as failed).")
    duplicate: bool = False


class EventResult(BaseModel):
    index: int
    status: Literal["accepted", "invalid"]
    event_id: str | None
    message_id: int
    duplicate: bool
    code: str | None = None
    message: str | None = None
    location: str | None = None


class EventResults(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "error": "invalid-events", "message": "1 of 2 events invalid; the others are stored",
        "accepted": 1, "invalid": 1, "results": [
            {"index": 0, "status": "accepted", "event_id": "ev-1001", "message_id": 7,
             "duplicate": False},
            {"index": 1, "status": "invalid", "event_id": "ev-1002", "message_id": 8,
             "duplicate": False, "code": "invalid-value",
             "message": "NHS number fails the modulus-11 check digit",
             "location": "person.nhs_number"}]}]})
    error: Literal["invalid-events"]
    message: str
    accepted: int
    invalid: int
    results: list[EventResult]


class CsvRowFailure(BaseModel):
    line: int
    code: str
    message: str
    location: str | None = Field(examples=["line 4, column NHS No"])
    duplicate: bool


class CsvImportOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "file": "export-2026-06-01.csv", "rows": 3, "accepted": 2, "duplicates": 0,
        "failed": 1, "failures_truncated": False, "failures": [{
            "line": 4, "code": "invalid-value", "message": "NHS number fails the modulus-11 "
            "check digit", "location": "line 4, column NHS No", "duplicate": False}]}]})
    error: Literal["invalid-rows"] | None = None
    message: str | None = None
    file: str = Field(description="The file ref: the file's name, else sha256:<digest>.")
    rows: int = Field(description="Non-blank data rows read.")
    accepted: int
    duplicates: int
    failed: int
    failures: list[CsvRowFailure] = Field(description="By line; the first 1,000.")
    failures_truncated: bool
    notices: list[str] | None = Field(None, description="Present only when there is "
                                      "something to say about the file as a whole: which "
                                      "lines of a file that is not UTF-8 throughout were "
                                      "read as Windows-1252.")


class InvalidCsv(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "error": "invalid-csv", "code": "no-type-column",
        "message": "the header has no event-type column", "location": "line 1"}]})
    error: Literal["invalid-csv"]
    code: str
    message: str
    location: str | None


EVENTS_OPENAPI: dict[str, Any] = {"requestBody": events_request_body(MAX_EVENTS)}
CSV_OPENAPI: dict[str, Any] = {"requestBody": csv_request_body()}

_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, unknown or revoked token"},
    403: {"model": Problem, "description": "Not a source-system token bound to this source"},
    404: {"model": Problem, "description": "No such source of this kind"},
    413: {"model": Problem, "description": "The body is too large"},
}

HubDep = Annotated[Hub, Depends(get_hub)]
SourceSystem = Annotated[Principal, Depends(require_roles(Role.SOURCE_SYSTEM))]
SourcePath = Annotated[str, Path(max_length=64, description="The source id.")]

router = APIRouter(prefix="/api/v1", tags=["council"])

# -- helpers ------------------------------------------------------------------------------


def _source(hub: Hub, principal: Principal, source_id: str, kind: str) -> SourceDefinition:
    if principal.source != source_id:
        raise HttpProblem(403, "forbidden", "this token may submit only as its own source")
    source = hub.sources.get(source_id)
    if source is None or source.kind != kind:
        raise HttpProblem(404, "not-found", f"no {kind} source with this id")
    if not source.enabled:
        raise HttpProblem(403, "forbidden", "this source is disabled")
    return source


def _too_large(limit: int) -> HttpProblem:
    return HttpProblem(413, "payload-too-large", f"the body is over {limit} bytes")


def _declared_too_large(request: Request, limit: int) -> bool:
    declared = request.headers.get("content-length", "")
    return declared.isdigit() and int(declared) > limit


async def _read_body(request: Request, limit: int) -> bytes:
    if _declared_too_large(request, limit):
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


async def _spool_body(request: Request, limit: int) -> IO[bytes]:
    """The raw body in a temporary file (memory up to 1 MiB, then disk)."""
    if _declared_too_large(request, limit):
        raise _too_large(limit)
    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # the caller closes it
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            spool.close()
            raise _too_large(limit)
        spool.write(chunk)
    spool.seek(0)
    return spool  # type: ignore[return-value]


def _audit(hub: Hub, request: Request, principal: Principal, resource: str,
           ids: list[str]) -> None:
    with write_transaction(hub.engine) as conn:
        for resource_id in ids:
            audit_write(conn, request, principal, resource, resource_id, None)


def _invalid(outcome: EventOutcome) -> dict[str, Any]:
    return {"error": "invalid-event", **outcome.error_dict()}


def _result(index: int, outcome: EventOutcome) -> dict[str, Any]:
    if outcome.accepted:
        return {"index": index, "status": "accepted", **outcome.accepted_dict()}
    return {"index": index, "status": "invalid", **outcome.error_dict()}


# -- events -------------------------------------------------------------------------------


def _take_events(request: Request, hub: Hub, principal: Principal, source: SourceDefinition,
                 raw: bytes) -> JSONResponse:
    intake: Intake = request.app.state.intake
    received_at = hub.clock.now()
    common = {"source_id": source.source_id, "channel": "council-rest"}
    try:
        text = raw.decode("utf-8-sig")
        body = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        text = without_nul(raw.decode("utf-8", errors="replace"))
        why = ("arrays or objects nested too deeply" if isinstance(exc, RecursionError)
               else type(exc).__name__)
        error = MappingError("unparseable", f"the body is not JSON ({why})",
                             location="body")
        outcome = reject_body(intake, text=text, received_at=received_at, error=error,
                              received=raw, **common)
        _audit(hub, request, principal, "inbound-message", [str(outcome.message_id)])
        return JSONResponse(_invalid(outcome), status_code=422)
    if isinstance(body, list) and not body:
        return JSONResponse({"error": "invalid-event", "event_id": None,
                             "code": "missing-field", "message": "the array holds no events",
                             "location": "body", "message_id": None, "duplicate": False},
                            status_code=422)
    if isinstance(body, list) and len(body) > MAX_EVENTS:
        raise HttpProblem(413, "payload-too-large", f"at most {MAX_EVENTS} events a request")
    config = source.mapping_config()
    events = body if isinstance(body, list) else [body]
    outcomes = [take_event(intake, config=config, event=event, received_at=received_at,
                           payload=None if isinstance(body, list) else text, **common)
                for event in events]
    _audit(hub, request, principal, "inbound-message", [str(o.message_id) for o in outcomes])
    if all(o.accepted for o in outcomes):
        return JSONResponse({"accepted": [o.accepted_dict() for o in outcomes]},
                            status_code=202)
    if not isinstance(body, list):
        return JSONResponse(_invalid(outcomes[0]), status_code=422)
    invalid = sum(not o.accepted for o in outcomes)
    return JSONResponse({
        "error": "invalid-events",
        "message": f"{invalid} of {len(outcomes)} events are invalid; the others are stored",
        "accepted": len(outcomes) - invalid, "invalid": invalid,
        "results": [_result(i, o) for i, o in enumerate(outcomes)]}, status_code=422)


@router.post(
    "/sources/{source}/events", status_code=202, response_model=EventsAccepted,
    summary="Submit council events (one event or an array)",
    description="Stores each event durably, then answers. 202: all taken (a repeated "
    "`event_id` comes back with `duplicate`: true and is applied once). 422: a single "
    "invalid event (`invalid-event`, still stored as failed), or an array with invalid "
    "events (`invalid-events` with each event's outcome; its valid events are stored).",
    openapi_extra=EVENTS_OPENAPI,
    responses={**_AUTH_RESPONSES, 422: {
        "model": InvalidEvent | EventResults | Problem,
        "description": "Invalid event (single) or per-event outcomes (array)"}})
async def post_events(request: Request, hub: HubDep, principal: SourceSystem,
                      source: SourcePath) -> JSONResponse:
    definition = await run_in_threadpool(_source, hub, principal, source, "council-rest")
    raw = await _read_body(request, MAX_EVENTS_BYTES)
    return await run_in_threadpool(_take_events, request, hub, principal, definition, raw)


# -- CSV ----------------------------------------------------------------------------------


def _clean_name(name: str | None) -> str | None:
    base = without_nul(name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:100] or None


def _import(request: Request, hub: Hub, principal: Principal, source: SourceDefinition,
            stream: IO[bytes], name: str | None) -> JSONResponse:
    file_ref = _clean_name(name) or file_digest(stream)
    try:
        summary = import_csv(stream, engine=hub.engine, source=source, file_ref=file_ref,
                             received_at=hub.clock.now(), notify=hub.notify)
    except CsvFileError as exc:
        error = exc.error
        return JSONResponse({"error": "invalid-csv", "code": error.code,
                             "message": error.message, "location": error.location},
                            status_code=422)
    _audit(hub, request, principal, "inbound-file", [file_ref[:100]])
    body = summary.as_dict()
    if summary.failed:
        return JSONResponse({"error": "invalid-rows", "message": f"{summary.failed} of "
                             f"{summary.rows} rows failed; the others are stored", **body},
                            status_code=422)
    return JSONResponse(body, status_code=202)


@router.post(
    "/sources/{source}/csv", status_code=202, response_model=CsvImportOut,
    summary="Import a council CSV export (text/csv body or multipart `file`)",
    description="Each data row is stored as its own message; a bad row is stored as failed, "
    "reported by line number and reason, and does not stop the file. A row is known by its "
    "event id, else by its content (never the file's name): one sent before is counted as a "
    "duplicate and applied once. 202: every row taken; "
    "422 `invalid-rows`: the same summary when some rows failed; 422 `invalid-csv`: the "
    "header has no event-type column (nothing stored).",
    openapi_extra=CSV_OPENAPI,
    responses={**_AUTH_RESPONSES,
               415: {"model": Problem, "description": "Not text/csv or multipart"},
               422: {"model": CsvImportOut | InvalidCsv | Problem,
                     "description": "Some rows failed, or the file is not an export"}})
async def post_csv(
    request: Request, hub: HubDep, principal: SourceSystem, source: SourcePath,
    file_name: Annotated[str | None, Query(
        max_length=200, description="The export's file name (text/csv bodies), for the "
        "summary and provenance; without it the file is known by its SHA-256. It plays no "
        "part in recognising duplicates.")] = None,
) -> JSONResponse:
    definition = await run_in_threadpool(_source, hub, principal, source, "council-csv")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=5) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HttpProblem(422, "invalid-request",
                                  "a multipart upload needs the CSV in a `file` part")
            return await run_in_threadpool(_import, request, hub, principal, definition,
                                           upload.file, upload.filename or file_name)
    if media_type not in CSV_MEDIA_TYPES:
        raise HttpProblem(415, "unsupported-media-type",
                          "send text/csv, or multipart/form-data with a `file` part")
    spool = await _spool_body(request, MAX_CSV_BYTES)
    try:
        return await run_in_threadpool(_import, request, hub, principal, definition, spool,
                                       file_name)
    finally:
        spool.close()

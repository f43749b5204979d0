"""HL7 v2 ACK building with hl7apy (slower than python-hl7, but it escapes and knows ERR).

The ACK swaps sending and receiving application/facility, says ``ACK^<trigger>^ACK``, gets its
own MSH-10 and echoes the inbound MSH-10 in MSA-2 and the inbound version in MSH-12. The
segments follow the v2.5 structure whatever the inbound version, so an error carries the v2.5
ERR fields (ERR-2 location ``PID^1^3``, ERR-3 code from HL7 table 0357, ERR-4 severity ``E``,
ERR-8 text). For a v2.3/v2.4 sender the same error is also put in ERR-1 (ELD), the only ERR
field those versions have; HL7 receivers ignore fields beyond their version's end. When the
inbound message cannot be parsed we salvage what we can from its MSH line; with no MSH-10 to
echo, MSA-2 stays empty.

The sender's MSH-3..6 are HD values (namespace id ^ universal id ^ universal id type, e.g.
``EPR^1.2.3^ISO``): each component is echoed, unescaped when read and escaped again here with
the type hl7apy's HD structure expects (IS, ST, ID). HD components are primitive, so of a
component that carries sub-components only the first is read, as HL7 tells a receiver to
ignore parts it does not expect (the same reading the sender matching uses). Characters the
sender escaped as hex (``\\X0D\\``) come back as hex escapes: a raw CR or an MLLP framing byte
must never reach the ACK. ``fallback_ack`` is the last resort when the ACK cannot be built from
the sender's header: the same ACK without the sender's MSH-3..6.

A sender that names a character set the hub decodes (MSH-18, ``HL7_CHARSETS``) is answered in
it: the ACK echoes MSH-18 and ``ack_bytes`` encodes it so. Otherwise (MSH-18 empty, unknown,
or the message unparseable) the ACK has no MSH-18 and goes out as UTF-8, as it always did.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.factories import datatype_factory

from .errors import MappingError, MappingErrorCode
from .hl7v2_parse import HL7_CHARSETS, ParsedAdt, normalise_line_endings, parse_adt

AckCode = Literal["AA", "AE", "AR", "CA", "CE", "CR"]
ACK_CODES: frozenset[str] = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})

# HL7 table 0357 (message error condition codes) for each MappingError code.
HL7_ERROR_CODES: dict[str, tuple[str, str]] = {
    "unparseable": ("100", "Segment sequence error"),
    "missing-field": ("101", "Required field missing"),
    "invalid-value": ("102", "Data type error"),
    "unknown-code": ("103", "Table value not found"),
    "unsupported-message-type": ("200", "Unsupported message type"),
    "unsupported-event": ("201", "Unsupported event code"),
}
INTERNAL_ERROR = ("207", "Application internal error")
UNSUPPORTED_VERSION = ("203", "Unsupported version id")
DUPLICATE_KEY = ("205", "Duplicate key identifier")


class Hl7Condition(MappingError):
    """A MappingError answered with a table 0357 condition of its own in ERR-3, one the
    mapping error codes do not name (203 unsupported version id, 205 duplicate key
    identifier); stored, like any mapping error, under its ``code``."""

    def __init__(self, condition: tuple[str, str], message: str, *,
                 location: str | None = None, code: MappingErrorCode = "invalid-value") -> None:
        super().__init__(code, message, location=location)
        self.condition = condition


def _condition(error: BaseException) -> tuple[str, str]:
    if isinstance(error, Hl7Condition):
        return error.condition
    return HL7_ERROR_CODES[error.code] if isinstance(error, MappingError) else INTERNAL_ERROR

_STRUCTURE_VERSION = "2.5"
_TOLERANT = VALIDATION_LEVEL.TOLERANT
_LOCATION = re.compile(
    r"^([A-Z][A-Z0-9]{2})(?:-(\d+)(?:\[(\d+)\])?(?:\.(\d+))?(?:\.(\d+))?)?$")


@dataclass(frozen=True, slots=True)
class _Header:
    sending_application: tuple[str, ...] = ()
    sending_facility: tuple[str, ...] = ()
    receiving_application: tuple[str, ...] = ()
    receiving_facility: tuple[str, ...] = ()
    trigger: str = ""
    control_id: str = ""
    version: str = ""
    processing_id: str = ""
    charset: str = ""  # MSH-18 to echo: a value of HL7_CHARSETS, else ""


def build_ack(inbound: str | ParsedAdt | None, code: AckCode,
              error: BaseException | None = None, text: str | None = None, *,
              control_id: str | None = None, now: datetime | None = None,
              default_version: str = "2.4") -> str:
    """ER7 ACK (segments separated by CR, no MLLP framing) for ``inbound``.

    ``error`` adds an ERR segment: a MappingError maps to its table 0357 code and location;
    anything else is 207 application internal error. ``text`` goes to MSA-3 (80 characters).
    """
    if code not in ACK_CODES:
        raise ValueError(f"ACK code must be one of {sorted(ACK_CODES)}, not {code!r}")
    return _build(_header(inbound), code, error, text, control_id=control_id, now=now,
                  default_version=default_version)


def success_ack(inbound: ParsedAdt, code: AckCode, *, control_id: str,
                now: datetime | None = None) -> str:
    """``build_ack(inbound, code, control_id=…, now=…)`` for an ACK without ERR, on the hot
    path: hl7apy builds one template per header (senders, trigger, version, processing id)
    and each ACK fills in its time and the two control ids. Building the message tree each
    time cost as much as mapping. A control id that would need escaping takes the full
    path, so the result is always what ``build_ack`` makes."""
    if code not in ACK_CODES:
        raise ValueError(f"ACK code must be one of {sorted(ACK_CODES)}, not {code!r}")
    if not (_PLAIN_ID.fullmatch(inbound.control_id) and _PLAIN_ID.fullmatch(control_id)):
        return build_ack(inbound, code, control_id=control_id, now=now)
    header = replace(_header(inbound), control_id="")  # the key: all but the control id
    key = (code, header)
    template = _TEMPLATES.get(key)
    if template is None:
        template = _template(header, code)
        if len(_TEMPLATES) < _MAX_TEMPLATES:  # one per sender and event kind: a handful
            _TEMPLATES[key] = template
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    return (template.replace(_TIME, stamp).replace(_OWN_ID, control_id)
            .replace(_ECHO_ID, inbound.control_id))


def fallback_ack(inbound: str | ParsedAdt | None, code: AckCode,
                 error: BaseException | None = None, *, control_id: str | None = None,
                 now: datetime | None = None, default_version: str = "2.4") -> str:
    """The answer when ``build_ack`` / ``success_ack`` failed (a bug, an input nobody foresaw):
    the same code, MSA-2 echo and ERR, without the sender's MSH-3..6 (the ACK's own parties),
    written by hand without hl7apy, so it cannot fail in turn. A sender is never left without
    a reply because its header was odd."""
    if code not in ACK_CODES:
        raise ValueError(f"ACK code must be one of {sorted(ACK_CODES)}, not {code!r}")
    try:
        header = _header(inbound)
    except Exception:
        header = _Header()
    bare = _Header(trigger=header.trigger, control_id=header.control_id,
                   version=header.version, processing_id=header.processing_id,
                   charset=header.charset)
    return _by_hand(bare, code, error, control_id=control_id or uuid.uuid4().hex[:20],
                    now=now, default_version=default_version)


def oversized_answer(head: bytes, size: int, limit: int) -> tuple[str, str | None]:
    """The answer to an MLLP frame over the size limit, of which only the first bytes were
    kept, and the MSH-10 it echoes (None when the head does not show it).

    ``AR`` (``CR`` when MSH-15 asks for enhanced mode) with an ERR naming the limit. MSA-2
    echoes MSH-10 only when the head holds the whole MSH line (a line cut short may have cut
    MSH-10); otherwise the answer is ``fallback_ack``'s, as for any unreadable header."""
    error = MappingError("invalid-value", f"the message is {size} bytes, over the "
                         f"{limit}-byte limit of this listener; it was not stored")
    text = head.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    ends = [i for i in (text.find("\r"), text.find("\n")) if i >= 0]
    if not ends:
        return fallback_ack(None, "AR", error), None
    line = text[:min(ends)] + "\r"
    inbound: str | ParsedAdt = line
    with contextlib.suppress(MappingError):
        # answered as UTF-8 without MSH-18: the head was not decoded by its MSH-18
        inbound = replace(parse_adt(line), charset="")
    code: AckCode = ("CR" if isinstance(inbound, ParsedAdt) and inbound.accept_ack_type
                     else "AR")
    try:
        header = _header(inbound)
        return build_ack(inbound, code, error), header.control_id or None
    except Exception:
        return fallback_ack(inbound, code, error), None


def _by_hand(header: _Header, code: AckCode, error: BaseException | None, *, control_id: str,
             now: datetime | None, default_version: str = "2.4") -> str:
    """What ``_build`` makes of a header without parties, as plain string joins (a test holds
    the two equal)."""
    version = _plain(header.version) or default_version
    trigger = _plain(header.trigger)

    def join(*fields: str) -> str:
        return "|".join(fields).rstrip("|")

    msh = "MSH|^~\\&|" + join("", "", "", "", (now or datetime.now(UTC)).strftime(
        "%Y%m%d%H%M%S"), "", f"ACK^{trigger}^ACK" if trigger else "ACK",
        _escaped(control_id), _plain(header.processing_id) or "P", version,
        "", "", "", "", "", header.charset)
    message_text = _message_of(error) if error is not None else ""
    segments = [msh, join("MSA", code, _escaped(header.control_id),
                          _escaped(message_text[:80]))]
    if error is not None:
        hl7_code, hl7_text = _condition(error)
        parts = _location_parts(error.location if isinstance(error, MappingError) else None)
        eld = [*parts[:3], "", "", ""][:3]  # segment^sequence^field^code&text&table
        legacy = ("^".join([*eld, f"{hl7_code}&{hl7_text}&HL70357"])
                  if _before_v25(version) else "")
        segments.append(join("ERR", legacy, "^".join(parts),
                             f"{hl7_code}^{hl7_text}^HL70357", "E", "", "", "",
                             _escaped(message_text)))
    return "\r".join(segments)


def _escaped(value: str) -> str:
    """ER7 escaping of a text value (the ACK's delimiters are always ``|^~\\&``)."""
    for char, escape in (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"),
                         ("~", "\\R\\")):
        value = value.replace(char, escape)
    return _CONTROL.sub(lambda m: f"\\X{ord(m.group()):02X}\\", value)


# Control ids that hl7apy writes unchanged (no separators or escape character to escape).
_PLAIN_ID = re.compile(r"[A-Za-z0-9._-]{1,199}")
_TIME, _OWN_ID, _ECHO_ID = "\x00T\x00", "\x00O\x00", "\x00E\x00"  # never in ER7 text
_TEMPLATES: dict[tuple[str, _Header], str] = {}
_MAX_TEMPLATES = 1024


def _template(header: _Header, code: AckCode) -> str:
    """The ACK hl7apy builds for this header, with markers where the time and the control
    ids go (placed by field position, so a marker can never be escaped by hl7apy)."""
    built = _build(replace(header, control_id="ECHO"), code, None, None,
                   control_id="OWN", now=datetime(2000, 1, 1, tzinfo=UTC))
    segments = built.split("\r")
    msh = segments[0]
    fs = msh[3]
    fields = msh.split(fs)
    fields[6], fields[9] = _TIME, _OWN_ID  # MSH-7, MSH-10 (MSH-1 is the separator itself)
    segments[0] = fs.join(fields)
    for index, segment in enumerate(segments):
        if segment.startswith("MSA" + fs):
            msa = segment.split(fs)
            msa[2] = _ECHO_ID  # MSA-2
            segments[index] = fs.join(msa)
    return "\r".join(segments)


def _build(header: _Header, code: AckCode, error: BaseException | None, text: str | None, *,
           control_id: str | None, now: datetime | None, default_version: str = "2.4") -> str:
    version = header.version or default_version
    msg = Message("ACK", version=_STRUCTURE_VERSION, validation_level=_TOLERANT)
    msh = msg.msh
    _hd(msh.msh_3, header.receiving_application)
    _hd(msh.msh_4, header.receiving_facility)
    _hd(msh.msh_5, header.sending_application)
    _hd(msh.msh_6, header.sending_facility)
    msh.msh_7 = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    msh.msh_9 = f"ACK^{_plain(header.trigger)}^ACK" if header.trigger else "ACK"
    msh.msh_10 = _st(control_id or uuid.uuid4().hex[:20])
    msh.msh_11 = _plain(header.processing_id) or "P"
    msh.msh_12 = _plain(version)
    if header.charset:
        msh.msh_18 = header.charset
    msg.msa.msa_1 = code
    if header.control_id:
        msg.msa.msa_2 = _st(header.control_id)
    message_text = text if text is not None else (_message_of(error) if error else None)
    if message_text:
        msg.msa.msa_3 = _st(message_text[:80])
    if error is not None:
        _add_err(msg, error, legacy=_before_v25(version))
    return _unmark(msg.to_er7())


def _add_err(msg: Message, error: BaseException, *, legacy: bool) -> None:
    hl7_code, hl7_text = _condition(error)
    location = error.location if isinstance(error, MappingError) else None
    parts = _location_parts(location)
    err = msg.add_segment("ERR")
    if legacy:  # v2.3/v2.4 ELD: segment^sequence^field^code&text&table
        for index, value in enumerate(parts[:3], start=1):
            setattr(err.err_1, f"eld_{index}", value)
        err.err_1.eld_4 = f"{hl7_code}&{hl7_text}&HL70357"
    for index, value in enumerate(parts, start=1):
        setattr(err.err_2, f"erl_{index}", value)
    err.err_3 = f"{hl7_code}^{hl7_text}^HL70357"
    err.err_4 = "E"
    message_text = _message_of(error)
    if message_text:
        err.err_8 = _st(message_text, "TX")


def _location_parts(location: str | None) -> list[str]:
    """``PID-3`` → [PID, 1, 3]; ``PID-3[2].1`` → [PID, 1, 3, 2, 1]; others → []."""
    match = _LOCATION.match(location or "")
    if not match:
        return []
    segment, field_no, rep, comp, sub = match.groups()
    parts = [segment, "1"]
    if field_no:
        parts.append(field_no)
        if comp or rep:
            parts += [rep or "1"] + ([comp] if comp else []) + ([sub] if sub else [])
    return parts


def _message_of(error: BaseException | None) -> str:
    if isinstance(error, MappingError):
        return error.message
    return "application internal error" if error is not None else ""


def _before_v25(version: str) -> bool:
    return version.startswith(("2.1", "2.2", "2.3", "2.4"))


def _header(inbound: str | ParsedAdt | None) -> _Header:
    if isinstance(inbound, str):
        try:
            inbound = parse_adt(inbound)
        except MappingError:
            return _salvage(inbound)
    if inbound is None:
        return _Header()
    p = inbound
    msh = p.segment("MSH")

    def hd(field_no: int) -> tuple[str, ...]:
        return tuple(p.value(msh, field_no, 1, c) for c in (1, 2, 3))

    return _Header(hd(3), hd(4), hd(5), hd(6), p.trigger_event, p.control_id, p.version,
                   p.processing_id, p.charset if p.charset in HL7_CHARSETS else "")


def ack_bytes(ack: str, inbound: ParsedAdt | None) -> bytes:
    """An ACK built for ``inbound``, as bytes: in the charset its MSH-18 echoes, else UTF-8.
    A character the charset cannot hold (an ASCII sender told of a value it did not send)
    becomes ``?`` rather than cost the sender its answer."""
    codec = HL7_CHARSETS.get(inbound.charset) if inbound is not None else None
    return ack.encode(codec or "utf-8", "replace")


def _salvage(raw: str) -> _Header:
    """Best effort on a message python-hl7 refused: split the MSH line by hand, each value
    read as a parsed message's would be (first repetition and sub-component, unescaped)."""
    text = normalise_line_endings(raw)
    if not text.startswith("MSH") or len(text) < 5 or text[3].isalnum() or text[3].isspace():
        return _Header()
    field_separator = text[3]
    fields = text.split("\r", 1)[0].split(field_separator)
    encoding = fields[1] if len(fields) > 1 else ""
    component, repetition, escape, subcomponent = (
        encoding[i] if i < len(encoding) else default for i, default in enumerate("^~\\&"))
    try:
        unescaper: hl7.Message | None = hl7.Message(
            "\r", esc=escape,
            separators="\r" + field_separator + repetition + component + subcomponent)
    except Exception:
        unescaper = None

    def get(n: int, comp: int = 1) -> str:
        value = fields[n - 1] if 2 <= n <= len(fields) else ""
        pieces = value.split(repetition)[0].split(component)
        value = pieces[comp - 1].split(subcomponent)[0] if comp <= len(pieces) else ""
        if unescaper is not None and escape in value:
            with contextlib.suppress(Exception):  # kept as it is, as ``Er7.read`` does
                value = unescaper.unescape(value)
        return value.strip()

    def hd(n: int) -> tuple[str, ...]:
        return tuple(get(n, c) for c in (1, 2, 3))

    return _Header(hd(3), hd(4), hd(5), hd(6), get(9, 2), get(10), get(12), get(11))


# The HD components' types in hl7apy's structure: namespace id, universal id, its type. A value
# of another type is refused (ChildNotValid), so each component gets exactly its own.
_HD_TYPES = ("IS", "ST", "ID")


def _hd(target: Any, parts: tuple[str, ...]) -> None:
    for index, (value, datatype) in enumerate(zip(parts, _HD_TYPES, strict=False), start=1):
        if value:
            setattr(target, f"hd_{index}", _st(value, datatype))


# Control characters (a CR or an MLLP framing byte a sender escaped as \X0D\ or \X1C\, a
# \.br\) never go into the ACK as they are: ``_st`` marks each (NUL, its hex code, NUL: hl7apy
# leaves NUL alone and no value keeps a NUL of its own) and ``_unmark`` turns the marks into
# HL7 hex escapes once hl7apy has escaped everything else.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MARKED = re.compile(r"\x00([0-9A-F]{2})\x00")


def _st(value: str, datatype: str = "ST") -> Any:
    """An escaped text value: hl7apy escapes |^&~ only through its datatype objects, and
    leaves a backslash alone when it looks like part of an escape (``\\E\\``), so we escape
    backslashes ourselves first."""
    text = _CONTROL.sub(lambda m: f"\x00{ord(m.group()):02X}\x00", value.replace("\\", "\\E\\"))
    return datatype_factory(datatype, text, version=_STRUCTURE_VERSION,
                            validation_level=_TOLERANT)


def _unmark(er7: str) -> str:
    return _MARKED.sub(lambda m: f"\\X{m.group(1)}\\", er7)


def _plain(value: str) -> str:
    """Codes we echo (trigger, version, processing id) are short tokens: drop separators and
    control characters."""
    return re.sub(r"[|^~\\&\x00-\x1f\x7f]", "", value)

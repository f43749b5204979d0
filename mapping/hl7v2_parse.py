"""ER7 HL7 v2 parsing on the hot path: python-hl7's delimiters and escapes, fields split lazily.

python-hl7 parses ~25x faster than hl7apy (../shared/design/dependencies.md), but its full
tree (message, segments, fields, repetitions, components, each a Python object) still cost a
fifth of the hub's Python time while the mapping reads a few dozen fields. So python-hl7
decides what the message's delimiters and escape character are (``create_parse_plan``, the
same rules and errors as ``hl7.parse``) and unescapes (``Message.unescape``); the message is
split into segments and each segment into fields (C-level ``str.split``), and a field is split
into repetitions, components and sub-components only when the mapping reads it. A property
test holds every value equal to what ``hl7.parse`` gives (tests/unit/mapping/test_hl7v2_parse.py).
Line endings are normalised first (python-hl7 sees one segment given LF separators) and
``value()`` never raises.

Bytes become text before any of this, in the MLLP receiver, by the character set MSH-18
names (``HL7_CHARSETS``; ``declared_charset`` reads MSH-18 from the bytes). Every charset the
hub decodes is a superset of ASCII, so the MSH line, MSH-18 included, reads the same before
decoding as after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import hl7
import hl7.parser

from .errors import MappingError

_FRAMING = "\x0b\x1c"  # MLLP start/end bytes, in case a caller hands us a framed block
_HEADER_SEGMENTS = ("MSH", "BHS", "FHS")

Segment = list[str]
"""A segment's fields, as python-hl7 numbers them: [0] the segment id, [n] field n (for MSH,
[1] is MSH-1, the field separator, and [2] MSH-2, the encoding characters)."""


@dataclass(frozen=True, slots=True)
class Er7:
    """An ER7 message split into segments of fields; a field splits further when read."""

    segments: list[Segment]
    repetition: str
    component: str
    subcomponent: str
    escape: str
    unescaper: hl7.Message  # an empty python-hl7 message with this message's delimiters

    def leaf(self, segment: Segment | None, field_no: int, rep: int, comp: int,
             sub: int) -> str:
        """The raw text at SEG-field[rep].comp.sub, "" when absent."""
        if segment is None or field_no >= len(segment):
            return ""
        text = segment[field_no]
        if field_no <= 2 and segment[0] in _HEADER_SEGMENTS:
            return text if rep == comp == sub == 1 else ""  # MSH-1/-2 are never split
        for separator, index in ((self.repetition, rep), (self.component, comp),
                                 (self.subcomponent, sub)):
            if separator in text:
                parts = text.split(separator)
                if index > len(parts):
                    return ""
                text = parts[index - 1]
            elif index != 1:
                return ""
        return text

    def repetitions(self, segment: Segment | None, field_no: int) -> int:
        if segment is None or field_no >= len(segment):
            return 0
        text = segment[field_no]
        if not text:
            return 0
        if field_no <= 2 and segment[0] in _HEADER_SEGMENTS:
            return 1
        return text.count(self.repetition) + 1

    def read(self, segment: Segment | None, field_no: int, rep: int = 1, comp: int = 1,
             sub: int = 1) -> str:
        """Unescaped, stripped value at SEG-field[rep].comp.sub; "" when absent."""
        raw = self.leaf(segment, field_no, rep, comp, sub)
        if raw and self.escape in raw:
            try:
                raw = self.unescaper.unescape(raw)
            except Exception:
                return raw.strip()
        return raw.strip()


def split_er7(text: str) -> Er7:
    """Split a CR-separated message as ``hl7.parse`` would, fields deep; ``hl7.ParseException``
    (or another error) for what python-hl7 refuses."""
    text = text.strip()  # as hl7.parse does
    plan = hl7.parser.create_parse_plan(text)
    separators: str = plan.separators  # segment, field, repetition, component, sub-component
    field_separator = separators[1]
    delimiters = separators[1:]
    segments: list[Segment] = []
    for line in text.split(separators[0]):
        if line[:3] in _HEADER_SEGMENTS and any(d in line for d in delimiters):
            # python-hl7's reading of a header: MSH-1 is the character after the id, MSH-2
            # runs to that character's next occurrence
            end = line.find(line[3], 4)
            segments.append([line[:3], line[3], line[4:end], *line[end + 1:].split(
                field_separator)] if line[end + 1:] else [line[:3], line[3], line[4:end]])
        else:
            segments.append(line.split(field_separator))
    return Er7(segments, separators[2], separators[3], separators[4], plan.esc,
               hl7.Message(separators[0], esc=plan.esc, separators=separators))


@dataclass(frozen=True, slots=True)
class ParsedAdt:
    """The MSH facts the connector needs (sender, ids, ack modes) and the split message."""

    control_id: str  # MSH-10
    sending_application: str  # MSH-3.1
    sending_facility: str  # MSH-4.1
    receiving_application: str  # MSH-5.1
    receiving_facility: str  # MSH-6.1
    message_type: str  # MSH-9.1
    trigger_event: str  # MSH-9.2
    version: str  # MSH-12.1
    processing_id: str  # MSH-11.1
    accept_ack_type: str  # MSH-15 (AL, NE, ER, SU; empty: original acknowledgement mode)
    application_ack_type: str  # MSH-16
    message_datetime: str  # MSH-7.1, raw TS
    er7: Er7 = field(repr=False, compare=False)
    index: dict[str, list[Segment]] = field(repr=False, compare=False)
    charset: str = ""  # MSH-18 (first repetition), upper-cased; empty: not said

    def segment(self, segment_id: str) -> Segment | None:
        found = self.index.get(segment_id)
        return found[0] if found else None

    def segments(self, segment_id: str) -> list[Segment]:
        return self.index.get(segment_id, [])

    def all_segments(self) -> list[Segment]:
        return self.er7.segments

    def value(self, segment: Segment | None, field_no: int, rep: int = 1, comp: int = 1,
              sub: int = 1) -> str:
        """Unescaped, stripped value at SEG-field[rep].comp.sub; "" when absent."""
        return self.er7.read(segment, field_no, rep, comp, sub)

    def field_of(self, segment_id: str, field_no: int, rep: int = 1, comp: int = 1,
                 sub: int = 1) -> str:
        return self.value(self.segment(segment_id), field_no, rep, comp, sub)

    def repetitions(self, segment: Segment | None, field_no: int) -> int:
        return self.er7.repetitions(segment, field_no)


# MSH-12 versions the hub reads (the contract's v2.3–2.5.1); others are refused (AR, ERR 203).
SUPPORTED_VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1"})

# MSH-18 values (HL7 table 0211) the hub decodes, and their Python codecs. Each is a superset of
# ASCII, so the delimiters and the MSH line mean the same in every one. Left out on purpose:
# UTF-16/32 (MLLP framing and MSH would not be ASCII), the multi-byte Asian sets (a trail byte
# may be ``|`` or ``^``), ISO 2022 sets (switched by escape sequences) and the deprecated
# ``UNICODE`` (it names no encoding). A value not here is refused (ERR 103 at MSH-18).
HL7_CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",  # table 0211's other name for ASCII
    "8859/1": "latin-1",
    **{f"8859/{n}": f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 15)},
    "UNICODE UTF-8": "utf-8",
}


def declared_charset(payload: bytes) -> str:
    """MSH-18 as the bytes of a frame say it, before any decoding: the first repetition's
    first component, stripped and upper-cased; "" when the message does not say (or does not
    start with MSH). Only the MSH line is looked at (a find and a bounded split: the hot path
    pays this for every frame)."""
    if not payload.startswith(b"MSH"):
        payload = payload.lstrip(b"\x0b\x1c\r\n\t ")  # rare: leading blank lines
        if not payload.startswith(b"MSH"):
            return ""
    separator = payload[3:4]
    if not separator or separator in b"\r\n":
        return ""
    end = payload.find(b"\r")
    newline = payload.find(b"\n", 0, end if end >= 0 else len(payload))
    if newline >= 0:
        end = newline
    if end < 0:
        end = len(payload)
    if payload.count(separator, 0, end) < 17:  # the usual case: no MSH-18, nothing split
        return ""
    fields = payload[:end].split(separator, 18)
    value = fields[17]  # [0] "MSH", [1] MSH-2, [n - 1] MSH-n
    for delimiter in fields[1][:2] + fields[1][3:4]:  # component, repetition, sub-component
        cut = value.find(delimiter)
        if cut >= 0:
            value = value[:cut]
    return value.decode("ascii", "replace").strip().upper()


def comparable(raw: str) -> str:
    """A message as two sendings of it compare: line endings normalised and MSH-7 (date/time
    of message, which a sender may renew when it resends) emptied. Cheap string work, for the
    rare resend; no parse."""
    text = normalise_line_endings(raw)
    if not text.startswith("MSH") or len(text) < 4:
        return text
    end = text.find("\r")
    first, rest = (text, "") if end < 0 else (text[:end], text[end:])
    fields = first.split(text[3])  # [MSH, MSH-2, MSH-3, …]: MSH-7 is [6]
    if len(fields) > 6:
        fields[6] = ""
    return text[3].join(fields) + rest


def normalise_line_endings(raw: str) -> str:
    """CRLF and LF to CR (the only segment separator python-hl7 and hl7apy accept)."""
    return raw.strip(_FRAMING).replace("\r\n", "\r").replace("\n", "\r").strip()


def parse_adt(raw: str) -> ParsedAdt:
    """Parse an ER7 message and read its header; MappingError("unparseable"…) otherwise."""
    if not isinstance(raw, str):
        raise MappingError("unparseable", "an HL7 v2 message must be text", location="MSH")
    text = normalise_line_endings(raw)
    if not text.startswith("MSH") or len(text) < 8 or text[3] in "\r ^~\\&":
        raise MappingError("unparseable", "the message does not start with an MSH segment",
                           location="MSH")
    try:
        er7 = split_er7(text)
    except Exception as exc:
        raise MappingError("unparseable", f"not parseable as HL7 v2: {exc}",
                           location="MSH") from exc
    index: dict[str, list[Segment]] = {}
    for seg in er7.segments:
        index.setdefault(seg[0].strip().upper(), []).append(seg)
    msh = index["MSH"][0]
    read = er7.read
    header = {n: read(msh, n) for n in (3, 4, 5, 6, 7, 10, 11, 12, 15, 16, 18)}
    parsed = ParsedAdt(
        control_id=header[10], sending_application=header[3], sending_facility=header[4],
        receiving_application=header[5], receiving_facility=header[6],
        message_type=read(msh, 9, 1, 1).upper(),
        # some v2.3 senders leave MSH-9.2 empty and say the trigger in EVN-1 only
        trigger_event=(read(msh, 9, 1, 2)
                       or read((index.get("EVN") or [None])[0], 1)).upper(),
        version=header[12], processing_id=header[11], accept_ack_type=header[15].upper(),
        application_ack_type=header[16].upper(), message_datetime=header[7],
        er7=er7, index=index, charset=header[18].upper())
    for value, where, what in ((parsed.message_type, "MSH-9.1", "message type"),
                               (parsed.trigger_event, "MSH-9.2", "trigger event"),
                               (parsed.control_id, "MSH-10", "message control id"),
                               (parsed.version, "MSH-12", "version id")):
        if not value:
            raise MappingError("missing-field", f"MSH has no {what}", location=where)
    return parsed


def hl7_date(value: str, location: str) -> date | None:
    """HL7 TS/DTM (YYYYMMDD[HHMM[SS[.S]]][+ZZZZ]) to the sender's calendar date; "" → None."""
    text = value.strip()
    if not text:
        return None
    digits = text[:8]
    if len(digits) == 8 and digits.isdigit():
        try:
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
        except ValueError:
            pass
    raise MappingError("invalid-value", f"{value!r} is not an HL7 date (YYYYMMDD…)",
                       location=location)

"""The hot-path ER7 reader (mapping/hl7v2_parse.py) against python-hl7's full tree.

The reader splits lazily where ``hl7.parse`` builds every object; these properties hold that it
reads the same value at every SEG-field[rep].comp.sub, counts the same repetitions, refuses
what python-hl7 refuses, and that the ADT header and mapping see the same message.
"""

from __future__ import annotations

from typing import Any

import hl7
import hl7.containers
import hl7.util
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.hl7v2_parse import parse_adt, split_er7

SEGMENT_IDS = ["PID", "PV1", "PV2", "EVN", "ZLS", "MRG", "PD1", "NK1", "MSH"]
# text that exercises every delimiter and the escape character, plus plain letters
_TEXT = st.text(alphabet="AB1 |^~&\\#FSTREX.0a", max_size=24)


def _oracle_leaf(segment: Any, field_no: int, rep: int, comp: int, sub: int) -> str:
    """The reader this module replaced, over python-hl7's tree (kept here as the oracle), with
    one correction: a leaf reached early (a field with no components) is there only if every
    deeper index is 1 — the old reader checked the next index alone, so "Smith" answered for
    PID-5.1.2 (a sub-component the mapping never reads)."""
    if segment is None or field_no >= len(segment):
        return ""
    node: Any = segment[field_no]
    indices = (rep, comp, sub)
    for depth, index in enumerate(indices):
        if isinstance(node, str):
            return node if all(i == 1 for i in indices[depth:]) else ""
        if index > len(node):
            return ""
        node = node[index - 1]
    return node if isinstance(node, str) else str(node)


def _oracle_read(message: hl7.Message, segment: Any, *at: int) -> str:
    raw = _oracle_leaf(segment, *at)
    if raw and message.esc in raw:
        try:
            raw = message.unescape(raw)
        except Exception:
            return raw.strip()
    return raw.strip()


def _oracle_repetitions(segment: Any, field_no: int) -> int:
    if segment is None or field_no >= len(segment):
        return 0
    node = segment[field_no]
    if node and not isinstance(node[0], str):
        return len(node)
    return 1 if str(node) else 0


@st.composite
def er7_messages(draw: st.DrawFn) -> str:
    encoding = draw(st.sampled_from(["^~\\&", "^~\\&#", "^~\\", "^~", "^", "^~\\&", "$%\\*"]))
    header = "MSH|" + encoding + "|" + "|".join(draw(st.lists(_TEXT, max_size=14)))
    lines = [header]
    for _ in range(draw(st.integers(0, 5))):
        segment_id = draw(st.sampled_from(SEGMENT_IDS))
        body = "|".join(draw(st.lists(_TEXT, max_size=10)))
        lines.append(f"{segment_id}|{body}" if body or draw(st.booleans()) else segment_id)
    return "\r".join(lines)


def _positions(fields: int) -> list[tuple[int, int, int, int]]:
    return [(f, r, c, s) for f in range(fields + 2) for r in (1, 2, 3) for c in (1, 2, 3)
            for s in (1, 2)]


@settings(max_examples=400, deadline=None)
@given(er7_messages())
def test_every_value_and_repetition_count_equals_python_hl7(text: str) -> None:
    try:
        tree = hl7.parse(text)
    except Exception:
        with pytest.raises(Exception):
            split_er7(text)
        return
    er7 = split_er7(text)
    assert len(er7.segments) == len(tree)
    for segment, oracle_segment in zip(er7.segments, tree, strict=True):
        assert segment[0] == str(oracle_segment[0])
        for at in _positions(len(oracle_segment)):
            assert er7.read(segment, *at) == _oracle_read(tree, oracle_segment, *at), at
        for field_no in range(len(oracle_segment) + 2):
            assert er7.repetitions(segment, field_no) == _oracle_repetitions(
                oracle_segment, field_no), field_no


def test_a_real_adt_reads_field_by_field_as_python_hl7_does() -> None:
    text = ("MSH|^~\\&|EPR|RXX|S117HUB|HUB|20240102||ADT^A01^ADT_A01|C1\\T\\2|P|2.4|||AL|NE\r"
            "EVN|A01|20240102\r"
            "PID|1||9990000018^^^NHS^NH~L123^^^RXX^MR||O'Brien\\S\\Jr^Ann^Marie||19800101|F"
            "|||1 Road^^Town^^AB1 2CD\r"
            "PV1|1|I|WARD^^^RXX||||||||||||||||EP1\r"
            "ZLS|03|20240102")
    parsed = parse_adt(text)
    tree = hl7.parse(text)
    assert parsed.control_id == "C1&2"
    assert (parsed.message_type, parsed.trigger_event, parsed.accept_ack_type) == (
        "ADT", "A01", "AL")
    pid = parsed.segment("PID")
    assert parsed.value(pid, 5, 1, 1) == "O'Brien^Jr"
    assert parsed.repetitions(pid, 3) == 2
    assert parsed.value(pid, 3, 2, 4) == "RXX"
    assert parsed.value(pid, 11, 1, 5) == "AB1 2CD"
    for segment, oracle_segment in zip(parsed.all_segments(), tree, strict=True):
        for at in _positions(len(oracle_segment)):
            assert parsed.value(segment, *at) == _oracle_read(tree, oracle_segment, *at)


def test_a_field_python_hl7_cannot_unescape_is_kept_raw_and_never_logged(
        capfd: pytest.CaptureFixture[str]) -> None:
    import logging

    from s117hub.logs import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger(hl7.util.__file__).level
    configure_logging("DEBUG")
    try:
        parsed = parse_adt("MSH|^~\\&|EPR|RXX|HUB|HUB|20240102||ADT^A08|C1|P|2.4\r"
                           "PID|1||L1^^^RXX^MR||Zebedee\\Xq\\^Ann")
        family = parsed.field_of("PID", 5)
    finally:
        root.handlers[:], level, hl7_level = saved
        root.setLevel(level)
        for module in (hl7.util, hl7.containers):
            logging.getLogger(module.__file__).setLevel(hl7_level)
    assert family.startswith("Zebedee")
    assert "Zebedee" not in capfd.readouterr().err

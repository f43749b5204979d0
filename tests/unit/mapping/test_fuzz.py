"""Random input at every mapper: only MappingError may come out (never a library exception),
and an ACK can always be built."""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.config import SourceMappingConfig
from mapping.council import CsvColumnMap, map_council_event, map_csv_text
from mapping.council_models import EVENT_TYPES
from mapping.errors import MappingError
from mapping.fhir_r4 import map_bundle
from mapping.hl7v2 import build_ack, map_adt, parse_adt

from . import samples as s
from .conftest import RECEIVED

# S117HUB_FUZZ_EXAMPLES=5000 for a longer hunt
FUZZ = settings(max_examples=int(os.environ.get("S117HUB_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CONFIG = SourceMappingConfig(source_id="fuzz", kind="hl7v2-mllp", code_map={"S3": "03"})

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)
HL7_CHARS = st.sampled_from(list("|^~\\&\r\n 0123456789ANZHTEFSR.-+"))
FIELD = st.text(alphabet=HL7_CHARS, max_size=16) | st.sampled_from(
    ["03", "CTO", "CD", "S3", "20260105", "2026", "9990000018^^^NHS^NH", "X^^^NHS", "NSTS01",
     "\\X41\\", "\\E\\", "\\"])


def hl7_or_mapping_error(raw: str) -> None:
    try:
        map_adt(parse_adt(raw), CONFIG, RECEIVED)
    except MappingError:
        pass
    for code in ("AA", "AE", "AR"):  # whatever came in, the sender gets an answer
        ack = build_ack(raw, code, MappingError("unparseable", "x", location="MSH"))
        assert ack.startswith("MSH|^~\\&|") and "\rMSA|" + code in ack


@FUZZ
@given(st.text(max_size=300))
def test_random_text_at_parse_adt(raw: str) -> None:
    hl7_or_mapping_error(raw)


@FUZZ
@given(trigger=st.sampled_from(["A01", "A02", "A03", "A04", "A08", "A11", "A13", "A21", "A22",
                                "A28", "A31", "A40", "A99", ""]),
       version=st.sampled_from(["2.3", "2.4", "2.5", "2.5.1", "", "x"]),
       segments=st.lists(st.tuples(st.sampled_from(["EVN", "PID", "PD1", "PV1", "PV2", "ZLS",
                                                    "MRG", "ZU1", "OBX"]),
                                   st.lists(FIELD, max_size=46)), max_size=6),
       separator=st.sampled_from(["\r", "\n", "\r\n"]))
def test_message_shaped_text_at_parse_adt(trigger: str, version: str,
                                          segments: list[tuple[str, list[str]]],
                                          separator: str) -> None:
    lines = [f"MSH|^~\\&|EPR|RX1|HUB|HUB|20260105||ADT^{trigger}|C1|P|{version}"]
    lines += ["|".join([name, *fields]) for name, fields in segments]
    hl7_or_mapping_error(separator.join(lines))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(sample: Any, data: st.DataObject) -> Any:
    """The sample with one node (anywhere, possibly the root) replaced by random JSON."""
    mutated = copy.deepcopy(sample)
    path = data.draw(st.sampled_from(_paths(mutated)[1:]))
    target = mutated
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = data.draw(JSON)
    return mutated


def only_mapping_errors(call: Any, payload: Any) -> None:
    try:
        call(payload, CONFIG, RECEIVED)
    except MappingError:
        pass


@FUZZ
@given(JSON)
def test_random_json_at_the_json_mappers(payload: Any) -> None:
    only_mapping_errors(map_council_event, payload)
    only_mapping_errors(map_bundle, payload)


@FUZZ
@given(st.data(), st.sampled_from(EVENT_TYPES))
def test_mutated_council_events(data: st.DataObject, event_type: str) -> None:
    only_mapping_errors(map_council_event, _mutate(s.council_event(event_type), data))


@FUZZ
@given(st.data(), st.sampled_from([
    s.ADMISSION_BUNDLE, s.bundle(s.EPISODE_S117),
    s.bundle(s.PATIENT, {**s.ENCOUNTER_S2_TO_S3, "status": "entered-in-error"})]))
def test_mutated_fhir_bundles(data: st.DataObject, bundle: dict[str, Any]) -> None:
    only_mapping_errors(map_bundle, _mutate(bundle, data))


@FUZZ
@given(st.text(max_size=400))
def test_random_csv_text(text: str) -> None:
    result = map_csv_text("type,nhs_number,start,date,section\n" + text, CsvColumnMap(),
                          CONFIG, RECEIVED)
    assert all(isinstance(error, MappingError) for error in result.errors)

"""Every library error is mapped at the edge; responses and ACKs become Attempts."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from connectors.outbound.transports import (
    HTTP_ERRORS,
    classify_ack,
    classify_response,
    map_http_error,
    retry_after_seconds,
)


def _all_subclasses(cls: type) -> list[type]:
    out = [cls]
    for child in cls.__subclasses__():
        out += _all_subclasses(child)
    return out


HTTPX_ERRORS = sorted({c for base in (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict,
                                      httpx.StreamError) for c in _all_subclasses(base)
                       if c.__module__.startswith("httpx")}, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", HTTPX_ERRORS, ids=lambda c: c.__name__)
def test_every_httpx_error_is_mapped(cls: type[Exception]) -> None:
    assert any(issubclass(cls, mapped) for mapped, _, _ in HTTP_ERRORS)
    exc = cls.__new__(cls)
    Exception.__init__(exc, "boom")
    attempt = map_http_error(exc)
    assert attempt.kind in ("transient", "permanent") and attempt.error


@pytest.mark.parametrize("exc, kind", [
    (httpx.ReadTimeout("slow"), "transient"), (httpx.ConnectError("refused"), "transient"),
    (httpx.RemoteProtocolError("hung up"), "transient"),
    (httpx.UnsupportedProtocol("gopher"), "permanent"),
])
def test_transient_and_permanent_errors(exc: Exception, kind: str) -> None:
    assert map_http_error(exc).kind == kind


@pytest.mark.parametrize("status, kind", [(200, "delivered"), (201, "delivered"),
                                          (204, "delivered"), (400, "permanent"),
                                          (401, "permanent"), (404, "permanent"),
                                          (409, "permanent"), (412, "permanent"),
                                          (408, "transient"), (429, "transient"),
                                          (500, "transient"), (503, "transient"),
                                          (302, "permanent")])
def test_status_codes(status: int, kind: str) -> None:
    attempt = classify_response(httpx.Response(status, text="why"))
    assert attempt.kind == kind and attempt.status_code == status
    if kind != "delivered":
        assert attempt.body == "why"


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Mon, 01 Jun 2026 09:00:30 GMT", now) == 30.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    response = httpx.Response(429, headers={"Retry-After": "12"})
    assert classify_response(response).retry_after == 12.0


@pytest.mark.parametrize("code, kind", [("AA", "delivered"), ("CA", "delivered"),
                                        ("AE", "transient"), ("CE", "transient"),
                                        ("AR", "permanent"), ("CR", "permanent")])
def test_ack_codes(code: str, kind: str) -> None:
    raw = f"MSH|^~\\&|PAS|RX2|||2026||ACK|1|P|2.4\rMSA|{code}|K1|text"
    assert classify_ack(raw, "K1").kind == kind


def test_an_ack_for_another_message_or_none_at_all_is_retried() -> None:
    assert classify_ack("MSH|^~\\&|PAS|RX2|||2026||ACK|1|P|2.4\rMSA|AA|K2", "K1").kind == \
        "transient"
    assert classify_ack("garbage", "K1").kind == "transient"

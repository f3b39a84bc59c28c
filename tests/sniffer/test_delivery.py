"""Tests for sniffer/delivery.py: one POST against the real endpoint of tests/endpoint.py and
how its answer is classified, Retry-After, the backoff, the body encoding, destination_state."""
from __future__ import annotations

import socket
import zlib

import pytest

from sniffer import __version__
from sniffer.compression import deflate
from sniffer.delivery import (backoff_s, destination_state, open_session,
                              parse_retry_after, post_bundle, timeouts_within)
from tests.endpoint import CaptureEndpoint

MESSAGE = (b'[["request_method","GET"],["request_url","http://api.test/x"],'
           b'["response_code","200"],["now","1700000000000"]]\n')


@pytest.fixture(scope="module")
def capture_url():
    """One endpoint for the module; each case sets a one-shot fault."""
    endpoint = CaptureEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.stop()


# (fault, set_fault arguments, expected (kind, counter, status, maybe_delivered))
ANSWERS = [
    (None, {}, ("ok", "http_204", 204, False)),
    ("status", {"status": 500}, ("retry", "http_5xx", 500, False)),
    ("status", {"status": 503}, ("retry", "http_5xx", 503, False)),
    ("429", {"retry_after": "2"}, ("retry", "http_429", 429, False)),
    ("status", {"status": 403}, ("rejected", "http_4xx", 403, False)),
    ("status", {"status": 302}, ("rejected", "http_other", 302, False)),
    ("drop", {}, ("retry", "conn_errors", 0, True)),
    ("accept_lose", {}, ("retry", "conn_errors", 0, True)),
]  # a read timeout ("timeouts", maybe delivered) is test_shipper's read-timeout case


@pytest.mark.parametrize("fault,kwargs,expected", ANSWERS,
                         ids=[f"{a[0]}-{a[1]}" for a in ANSWERS])
def test_post_bundle_classifies_the_answer(capture_url, fault, kwargs, expected):
    capture_url.set_fault(fault, times=1, **kwargs)
    with open_session(deflated=True) as session:
        outcome = post_bundle(session, capture_url.url, deflate(MESSAGE, 6), (1.0, 1.0))
    assert (outcome.kind, outcome.counter, outcome.status, outcome.maybe_delivered) == expected
    assert outcome.retry_after_s == (2.0 if fault == "429" else None)
    if outcome.kind == "rejected":
        assert outcome.detail == f"fault {outcome.status}"  # the start of the body, for the log


@pytest.mark.parametrize("deflated", [True, False])
def test_session_headers_and_body_are_what_the_endpoint_accepts(capture_url, deflated):
    capture_url.set_fault(None)
    body = deflate(MESSAGE, 6) if deflated else MESSAGE
    with open_session(deflated=deflated) as session:
        assert session.headers["User-Agent"].startswith(f"network-sniffer/{__version__} ")
        assert ("Content-Encoding" in session.headers) is deflated
        assert post_bundle(session, capture_url.url, body, (1.0, 1.0)).kind == "ok"
    assert zlib.decompress(deflate(MESSAGE, 1)) == MESSAGE


def test_refused_connections_are_not_possible_duplicates():
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/message"
        with open_session(deflated=True) as session:
            outcome = post_bundle(session, url, deflate(MESSAGE, 6), (0.5, 0.5))
    assert (outcome.kind, outcome.counter, outcome.maybe_delivered) == ("retry", "conn_errors",
                                                                        False)


@pytest.mark.parametrize("attempt,low_s,high_s", [
    (1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (7, 15.0, 30.0), (100, 15.0, 30.0),
])
def test_backoff_doubles_with_jitter_up_to_the_cap(attempt, low_s, high_s):
    waits = [backoff_s(attempt, 0.5, 30.0) for _ in range(200)]
    assert all(low_s <= w <= high_s for w in waits)
    assert len(set(waits)) > 1  # jittered


@pytest.mark.parametrize("left_s,expected", [
    (None, (5.0, 15.0)), (60.0, (5.0, 15.0)), (8.0, (5.0, 8.0)), (2.0, (2.0, 2.0)),
    (0.0, (0.05, 0.05)), (-3.0, (0.05, 0.05)),
])
def test_timeouts_are_cut_to_the_close_deadline(left_s, expected):
    assert timeouts_within(5.0, 15.0, left_s) == expected


@pytest.mark.parametrize("value, expected", [
    ("7", 7.0), (" 0 ", 0.0), ("", None), (None, None), ("soon", None), ("-3", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 5.0),
])
def test_parse_retry_after(value, expected):
    now_s = 1445412480.0 - 5.0  # 5 s before the date above
    assert parse_retry_after(value, now_s=now_s) == expected


@pytest.mark.parametrize("url, allow_http, disable, enabled, says", [
    ("https://cap.example/message", False, None, True, "enabled"),
    ("http://worker:7701/message", True, None, True, "enabled: sending to http://worker:7701"),
    ("http://worker:7701/message", False, None, False, "allow_http_url"),
    ("https://u:secret@cap.example/m", False, None, True, "https://cap.example/m"),
    ("", True, None, False, "no capture URL"),
    (None, True, None, False, "no capture URL"),
    ("ftp://cap.example/m", True, None, False, "not an http/https URL"),
    ("https:///nohost", True, None, False, "not an http/https URL"),
    ("http://host:99999/m", True, None, False, "does not parse"),
    ("https://cap.example/m", False, "true", False, "USAGE_LOGGERS_DISABLE=true"),
    ("https://cap.example/m", False, "1", False, "disabled"),
    ("https://cap.example/m", False, "T", False, "disabled"),
    ("https://cap.example/m", False, "True", False, "disabled"),
    ("https://cap.example/m", False, "TRUE", False, "disabled"),
    ("https://cap.example/m", False, "false", True, "enabled"),
    ("https://cap.example/m", False, "0", True, "enabled"),
    ("https://cap.example/m", False, "yes", True, "not a boolean, ignored"),
    ("https://cap.example/m", False, "", True, "enabled"),
])
def test_destination_state(url, allow_http, disable, enabled, says):
    state, reason = destination_state(url, allow_http, disable)
    assert state is enabled
    assert says in reason
    assert "secret" not in reason

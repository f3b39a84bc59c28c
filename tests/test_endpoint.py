"""The test capture endpoint itself: it accepts the protocol strictly and its faults behave."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import zlib

import json

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.endpoint import (CANONICAL_BODY, EXTENSION_KEYS, KNOWN_KEYS, KNOWN_PREFIXES,
                            CaptureEndpoint, check_body, check_message)

GOOD = b'[["request_method","GET"],["request_header:accept","*/*"],["now","1700000000000"]]'
NDJSON = {"Content-Type": "application/ndjson; charset=UTF-8"}


@pytest.fixture
def endpoint(tmp_path):
    ep = CaptureEndpoint(store_dir=tmp_path)
    yield ep
    ep.stop()


@pytest.mark.parametrize("line, reason", [
    (GOOD, None),
    (b'[["custom_field:x","1"],["session_field:s","2"],["response_header:a","b"]]', None),
    (b'[["interval","1.5"],["host","h"],["request_param:q","1"],["response_body",""]]', None),
    (b"not json", "not JSON"),
    (b"{}", "not a non-empty JSON array"),
    (b"[]", "not a non-empty JSON array"),
    (b'[["request_method"]]', "2-element"),
    (b'[["request_method", 1]]', "2-element"),
    (b'[["request_header:", "x"]]', "unknown key"),
    (b'[["request_address", "x"]]', "unknown key"),
    (b'[["now", "12.5"]]', "integer"),
])
def test_check_message(line, reason):
    found = check_message(line)
    assert (found is None) if reason is None else (reason in found)


_KNOWN = st.sampled_from(sorted(KNOWN_KEYS | EXTENSION_KEYS))
_KEYS = st.one_of(  # mostly valid, so that many bundles reach the fast path
    _KNOWN, _KNOWN, _KNOWN, _KNOWN, _KNOWN, _KNOWN,
    st.builds(lambda p, t: p + t, st.sampled_from(KNOWN_PREFIXES), st.text(max_size=6)),
    st.sampled_from(["request_body_base6", "hos", "request_header", "now ", "request\\u005furl",
                     "request_header:\\u00e9", "custom_field:a\\\"b"]),
    st.text(max_size=8),
)
_ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=127), max_size=12)
_VALUES = st.one_of(st.from_regex(r"[0-9]{1,13}", fullmatch=True), _ASCII, _ASCII, _ASCII,
                    st.text(max_size=12),
                    st.sampled_from(["", "\\n", "\\u00e9", "\\ud800", "a\\\"b", "\\x", "\\u12",
                                     "12\\u0033", "1 2", "\u00e9", "\x7f", "\x1f"]))


def _detail(key: str, value: str, raw: bool, space: str) -> str:
    """One detail, its strings written raw (may be invalid JSON) or JSON-escaped."""
    quote = (lambda t: f'"{t}"') if raw else json.dumps
    return f"[{quote(key)},{space}{quote(value)}]"


_LINES = st.builds(
    lambda details, space, cut: ("[" + ",".join(details) + "]")[:cut],
    st.lists(st.builds(_detail, _KEYS, _VALUES, st.sampled_from([False, False, False, True]),
                       st.sampled_from(["", "", "", " "])), min_size=1, max_size=4),
    st.sampled_from(["", " "]),
    st.one_of(st.none(), st.none(), st.none(), st.none(), st.integers(0, 40)),
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_LINES, min_size=1, max_size=3), st.booleans())
def test_the_canonical_fast_path_accepts_only_what_the_line_checks_accept(lines, key_now):
    """check_body's one-regex path for the sniffer's canonical form never accepts a bundle
    the line-by-line JSON checks reject, and both give the same messages."""
    if key_now:
        lines = [line.replace('"host"', '"now"') for line in lines]
    body = "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")
    slow = [check_message(line) for line in body.split(b"\n")[:-1]]
    reason, got = check_body(body)
    if CANONICAL_BODY.fullmatch(body):
        assert slow == [None] * len(lines)
    assert (reason is None) == all(r is None for r in slow)
    assert got == (body.split(b"\n")[:-1] if reason is None else [])


@pytest.mark.parametrize("line", [
    GOOD,
    b'[["request_body","{\\"a\\":\\"caf\\u00e9\\\\n\\"}"],["response_code","200"],'
    b'["request_body_base64","AAE="],["custom_field:sniffer-note","x, y [z]"]]',
])
def test_sniffer_lines_take_the_fast_path(line):
    assert CANONICAL_BODY.fullmatch(line + b"\n") and check_message(line) is None
    assert CANONICAL_BODY.fullmatch(line + b"\n" + line + b"\n")
    assert not CANONICAL_BODY.fullmatch(line)  # the last message needs its newline here


@pytest.mark.parametrize("compress", [False, True])
def test_good_bundles_get_204_and_are_stored(endpoint, tmp_path, compress):
    body = GOOD + b"\n" + GOOD  # Go style: no newline after the last message
    headers = dict(NDJSON, **({"Content-Encoding": "deflated"} if compress else {}))
    answer = requests.post(endpoint.url, data=zlib.compress(body) if compress else body,
                           headers=headers, timeout=5)
    assert answer.status_code == 204
    assert len(endpoint.messages) == 2 and endpoint.messages[0][0] == ["request_method", "GET"]
    assert (tmp_path / "messages.ndjson").read_bytes() == GOOD + b"\n" + GOOD + b"\n"


@pytest.mark.parametrize("path, headers, body, status, reason", [
    ("/message", {"Content-Type": "application/json"}, GOOD, 400, "content-type"),
    ("/message", {"Content-Type": "application/ndjson"}, GOOD, 400, "content-type"),
    ("/message", dict(NDJSON, **{"Content-Encoding": "deflated"}), GOOD, 400, "deflate"),
    ("/message", dict(NDJSON, **{"Content-Encoding": "gzip"}), GOOD, 400, "content-encoding"),
    ("/message", NDJSON, b"", 400, "empty"),
    ("/message", NDJSON, GOOD + b"\n\n" + GOOD, 400, "message: not JSON"),
    ("/other", NDJSON, GOOD, 404, "path"),
])
def test_bad_requests_are_refused_with_a_reason(endpoint, path, headers, body, status, reason):
    answer = requests.post(endpoint.url.replace("/message", path), data=body, headers=headers,
                           timeout=5)
    assert answer.status_code == status and answer.text == reason
    assert endpoint.rejections[reason] == 1 and endpoint.messages == []


def test_get_is_refused(endpoint):
    assert requests.get(endpoint.url, timeout=5).status_code == 405
    assert endpoint.rejections["method"] == 1


def test_status_and_429_faults_last_for_the_given_number_of_requests(endpoint):
    endpoint.set_fault("429", retry_after="3", times=1)
    first = requests.post(endpoint.url, data=GOOD, headers=NDJSON, timeout=5)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "3")
    endpoint.set_fault("status", status=503, times=2)
    codes = [requests.post(endpoint.url, data=GOOD, headers=NDJSON, timeout=5).status_code
             for _ in range(3)]
    assert codes == [503, 503, 204] and len(endpoint.messages) == 1


@pytest.mark.parametrize("fault, stored", [("drop", 0), ("accept_lose", 1)])
def test_connection_faults_answer_nothing(endpoint, fault, stored):
    endpoint.set_fault(fault, times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(endpoint.url, data=GOOD, headers=NDJSON, timeout=5)
    assert len(endpoint.messages) == stored


def test_slow_fault_delays_the_answer(endpoint):
    endpoint.set_fault("slow", delay_s=0.5, times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(endpoint.url, data=GOOD, headers=NDJSON, timeout=(1, 0.1))
    assert endpoint.wait_for(1, 5)  # stored anyway


def test_down_refuses_connections_and_comes_back(endpoint):
    with requests.Session() as session:  # a kept-alive connection must be cut too
        assert session.post(endpoint.url, data=GOOD, headers=NDJSON, timeout=5).status_code == 204
        endpoint.set_fault("down", down_s=0.5)
        with pytest.raises(requests.exceptions.ConnectionError):
            session.post(endpoint.url, data=GOOD, headers=NDJSON, timeout=5)
        time.sleep(0.8)
        assert session.post(endpoint.url, data=GOOD, headers=NDJSON, timeout=5).status_code == 204
    assert len(endpoint.messages) == 2


def test_unknown_fault_is_an_error(endpoint):
    with pytest.raises(ValueError):
        endpoint.set_fault("explode")


def test_runs_as_a_module(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with subprocess.Popen([sys.executable, "-m", "tests.endpoint", "--port", str(port),
                           "--store", str(tmp_path), "--fault", "503", "--fault-times", "1"],
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert "listening on http://127.0.0.1:%d/message" % port in proc.stdout.readline()
            url = f"http://127.0.0.1:{port}/message"
            assert requests.post(url, data=GOOD, headers=NDJSON, timeout=5).status_code == 503
            assert requests.post(url, data=GOOD, headers=NDJSON, timeout=5).status_code == 204
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert (tmp_path / "messages.ndjson").read_bytes() == GOOD + b"\n"

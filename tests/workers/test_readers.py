"""Body readers: Content-Length, chunked, until close, gaps, and a 204/304's possible body.

Table-driven like ``test_http1.py``: each scenario is fed whole, byte by byte and in random
segments, and must give the same calls each time.
"""
from __future__ import annotations

import pytest

from tests.helpers import C2S, S2C, conversation, run_core, summary
from tests.workers.test_http1 import CL, WAYS, Case, get, ok, run_case
from workers.core import WorkerCore
from workers.limits import CoreLimits

CASES = [
    # RFC 9110 8.6: a 304 may describe its representation's length without a body; only
    # bytes that follow and are not a status line are its body (browsers read them)
    Case("304-with-content-length-and-a-body",
         [(C2S, get()), (S2C, b"HTTP/1.1 304 ok\r\n" + CL + b"4\r\nConnection: close\r\n\r\n"
                         b"X5O!")],
         [(b"GET", b"/", b"", 304, b"X5O!", (), ())]),
    Case("304-with-content-length-then-blank-line-and-next-response",
         [(C2S, get(b"/a") + get(b"/b")),
          (S2C, b"HTTP/1.1 304 Not Modified\r\n" + CL + b"9\r\n\r\n\r\n" + ok(b"b"))],
         [(b"GET", b"/a", b"", 304, b"", (), ()), (b"GET", b"/b", b"", 200, b"b", (), ())]),
    Case("204-with-content-length-at-eof-has-no-body",
         [(C2S, get()), (S2C, b"HTTP/1.1 204 No Content\r\n" + CL + b"12\r\n\r\n")],
         [(b"GET", b"/", b"", 204, b"", (), ())]),
    Case("head-304-never-has-a-body",
         [(C2S, get(method=b"HEAD")), (S2C, b"HTTP/1.1 304 NM\r\n" + CL + b"3\r\n\r\nabc")],
         [(b"HEAD", b"/", b"", 304, b"", (), ())]),
    Case("chunked-with-extensions-and-empty-trailers",
         [(C2S, get()), (S2C, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3;a=b\r\nabc\r\n000\r\n\r\n" + ok(b"x"))],
         [(b"GET", b"/", b"", 200, b"abc", (), ()),
          (None, None, None, 200, b"x", (), ("request-missing",))]),
    Case("chunk-data-without-its-crlf-is-read-as-the-next-size",
         [(C2S, get()), (S2C, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"2\r\nab2\r\ncd\r\n0\r\n\r\n")],
         [(b"GET", b"/", b"", 200, b"abcd", (), ())]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("way", WAYS)
def test_body_case(case: Case, way: str) -> None:
    """Each body scenario yields the expected calls however the bytes are segmented."""
    run_case(case, way)


@pytest.mark.parametrize("lost, body, notes", [
    # a lost segment inside a Content-Length body: the body reads on, marked incomplete
    (1, b"aaaabbbbccccdddd", ("response-incomplete",)),
], ids=["gap-inside-length-body"])
@pytest.mark.parametrize("mss", [4, 6])
def test_gap_inside_a_body_keeps_reading(lost: int, body: bytes, notes: tuple, mss: int) -> None:
    """Bytes lost in a counted body are accounted for; the next exchange parses normally."""
    head = b"HTTP/1.1 200 OK\r\n" + CL + str(len(body)).encode() + b"\r\n\r\n"
    packets = conversation([(C2S, get(b"/1")), (S2C, head), (S2C, body), (C2S, get(b"/2")),
                            (S2C, ok(b"two"))], mss=mss)
    body_packets = [p for p in packets if p.seg.payload and p.seg.payload in body]
    packets.remove(body_packets[lost])
    core = WorkerCore()
    calls = run_core(packets, core)
    first, second = summary(calls)
    missing = body_packets[lost].seg.payload
    assert first[:4] == (b"GET", b"/1", b"", 200) and first[6] == notes
    assert first[4] == body.replace(missing, b"", 1) and calls[0].response.body_size == len(body)
    assert second == (b"GET", b"/2", b"", 200, b"two", (), ())


def _bodies_case() -> list[tuple[str, bytes]]:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    return [(C2S, get(b"/a", CL + b"4\r\n") + b"ping"), (S2C, ok(b"x" * 3000)),
            (C2S, get(b"/b")), (S2C, chunked),
            (C2S, get(b"/c")), (S2C, ok(b"y" * 50))]


@pytest.mark.parametrize("mss", [1460, 7])
def test_response_bodies_the_rules_remove_are_counted_not_stored(mss: int) -> None:
    """keep_response_bodies=False: the same calls, sizes, truncation and anomalies, but no
    response body bytes held (request bodies stay: form fields come from them)."""
    limits = CoreLimits(max_body_bytes=1000)
    kept_core = WorkerCore(limits)
    kept = run_core(conversation(_bodies_case(), mss=mss), kept_core)
    lean_core = WorkerCore(limits, keep_response_bodies=False)
    lean = run_core(conversation(_bodies_case(), mss=mss), lean_core)
    assert len(lean) == len(kept) == 3
    for a, b in zip(kept, lean):
        assert a.request == b.request  # request bodies are kept either way
        assert a.response is not None and b.response is not None
        assert b.response.body == b""
        assert (b.response.body_size, b.response.body_truncated, b.response.headers) == (
            a.response.body_size, a.response.body_truncated, a.response.headers)
    assert [c.response.body_size for c in kept] == [3000, 5, 50]
    assert kept[0].response.body_truncated and kept[0].request.body == b"ping"
    assert dict(lean_core.anomalies) == dict(kept_core.anomalies)

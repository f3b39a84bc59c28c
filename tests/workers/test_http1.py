"""HTTP/1.x parsing and pairing, one table of scenarios run three ways.

Every case is fed whole (one segment per message), one byte per segment, and with random
segment sizes; the calls must be identical each time (chunking makes no difference).
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import pytest

from tests.helpers import C2S, S2C, conversation, run_core, summary
from workers.core import WorkerCore
from workers.limits import CoreLimits

CL = b"Content-Length: "


@dataclass
class Case:
    name: str
    exchanges: list[tuple[str, bytes]]
    expected: list[tuple]
    close: str = "fin"
    limits: CoreLimits | None = None


def get(path: bytes = b"/", extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return method + b" " + path + b" HTTP/1.1\r\nHost: api.test\r\n" + extra + b"\r\n"


def ok(body: bytes = b"{}", status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\n" + CL + str(len(body)).encode() + b"\r\n" + extra
            + b"\r\n" + body)


CASES = [
    Case("simple-get", [(C2S, get()), (S2C, ok(b'{"a":1}'))],
         [(b"GET", b"/", b"", 200, b'{"a":1}', (), ())]),
    Case("keepalive-3",
         [(C2S, get(b"/1")), (S2C, ok(b"one")), (C2S, get(b"/2")), (S2C, ok(b"two")),
          (C2S, get(b"/3")), (S2C, ok(b"three"))],
         [(b"GET", b"/1", b"", 200, b"one", (), ()), (b"GET", b"/2", b"", 200, b"two", (), ()),
          (b"GET", b"/3", b"", 200, b"three", (), ())]),
    Case("pipelined-requests",
         [(C2S, get(b"/a") + get(b"/b") + get(b"/c")), (S2C, ok(b"A") + ok(b"B") + ok(b"C"))],
         [(b"GET", b"/a", b"", 200, b"A", (), ()), (b"GET", b"/b", b"", 200, b"B", (), ()),
          (b"GET", b"/c", b"", 200, b"C", (), ())]),
    Case("chunked-response-with-trailers",
         [(C2S, get()), (S2C, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")],
         [(b"GET", b"/", b"", 200, b"hello world", (), ())]),
    Case("chunked-request",
         [(C2S, b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\n\r\n"), (S2C, ok(b"k"))],
         [(b"POST", b"/up", b"abc", 200, b"k", (), ())]),
    Case("100-continue",
         [(C2S, b"POST /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n" + CL + b"4\r\n\r\n"),
          (S2C, b"HTTP/1.1 100 Continue\r\n\r\n"), (C2S, b"data"), (S2C, ok(b"done"))],
         [(b"POST", b"/p", b"data", 200, b"done", (100,), ())]),
    Case("head-request",
         [(C2S, get(method=b"HEAD")), (S2C, b"HTTP/1.1 200 OK\r\n" + CL + b"1000\r\n\r\n"),
          (C2S, get(b"/next")), (S2C, ok(b"n"))],
         [(b"HEAD", b"/", b"", 200, b"", (), ()), (b"GET", b"/next", b"", 200, b"n", (), ())]),
    Case("204-304-no-body",
         [(C2S, get(b"/a")), (S2C, b"HTTP/1.1 204 No Content\r\n\r\n"),
          (C2S, get(b"/b")), (S2C, b"HTTP/1.1 304 Not Modified\r\n" + CL + b"50\r\n\r\n"),
          (C2S, get(b"/c")), (S2C, ok(b"c"))],
         [(b"GET", b"/a", b"", 204, b"", (), ()), (b"GET", b"/b", b"", 304, b"", (), ()),
          (b"GET", b"/c", b"", 200, b"c", (), ())]),
    Case("body-until-close",
         [(C2S, b"GET /old HTTP/1.0\r\n\r\n"), (S2C, b"HTTP/1.0 200 OK\r\n\r\nall of it")],
         [(b"GET", b"/old", b"", 200, b"all of it", (), ())]),
    Case("connect-then-tls",
         [(C2S, b"CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n"),
          (S2C, b"HTTP/1.1 200 Connection Established\r\n\r\n"),
          (C2S, b"\x16\x03\x01\x02\x00GET / HTTP/1.1\r\n\r\n"), (S2C, b"\x16\x03\x03\x00\x10")],
         [(b"CONNECT", b"api.test:443", b"", 200, b"", (), ())]),
    Case("connect-then-plain-http",
         [(C2S, b"CONNECT api.test:80 HTTP/1.1\r\n\r\n"), (S2C, b"HTTP/1.1 200 OK\r\n\r\n"),
          (C2S, get(b"/inside")), (S2C, ok(b"in"))],
         [(b"CONNECT", b"api.test:80", b"", 200, b"", (), ()),
          (b"GET", b"/inside", b"", 200, b"in", (), ())]),
    Case("websocket-upgrade",
         [(C2S, get(b"/ws", b"Upgrade: websocket\r\nConnection: Upgrade\r\n")),
          (S2C, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
          (C2S, b"\x81\x85abcdGET / HTTP/1.1\r\n\r\n"), (S2C, b"\x81\x02hi")],
         [(b"GET", b"/ws", b"", 101, b"", (), ())]),
    Case("unsolicited-101-has-a-body",
         [(C2S, get()), (S2C, ok(b"file", b"101 Switching"))],
         [(b"GET", b"/", b"", 101, b"file", (), ())]),
    Case("obs-fold-and-odd-whitespace",
         [(C2S, b"GET  /x  HTTP/1.1\r\nHost : h\r\nX-Long: a\r\n  b\r\n\r\n"),
          (S2C, b"HTTP/1.1 200\r\nContent-Length:   2  \r\n\r\nok")],
         [(b"GET", b"/x", b"", 200, b"ok", (), ())]),
    Case("any-token-method",
         [(C2S, get(b"/doc", method=b"PROPFIND")), (S2C, ok(b"p")),
          (C2S, get(b"/q", CL + b"2\r\n", method=b"QUERY") + b"{}"), (S2C, ok(b"q"))],
         [(b"PROPFIND", b"/doc", b"", 200, b"p", (), ()),
          (b"QUERY", b"/q", b"{}", 200, b"q", (), ())]),
    Case("http09",
         [(C2S, b"GET /legacy\r\n"), (S2C, b"<html>old</html>")],
         [(b"GET", b"/legacy", b"", b"", b"<html>old</html>", (), ())]),
    Case("bare-lf-and-lowercase-version",
         [(C2S, b"GET /lf HTTP/1.1\nHost: h\n\n"), (S2C, b"http/1.1 200 OK\n" + CL + b"2\n\nok")],
         [(b"GET", b"/lf", b"", 200, b"ok", (), ())]),
    Case("response-missing",
         [(C2S, get(b"/lost"))],
         [(b"GET", b"/lost", b"", None, None, (), ("response-missing",))]),
    Case("body-over-limit",
         [(C2S, get()), (S2C, ok(b"x" * 100))],
         [(b"GET", b"/", b"", 200, b"x" * 10, (), ())],
         limits=CoreLimits(max_body_bytes=10)),
    Case("excessive-pipelining",
         [(C2S, get(b"/1") + get(b"/2") + get(b"/3")), (S2C, ok(b"2") + ok(b"3"))],
         [(b"GET", b"/1", b"", None, None, (), ("response-missing",)),
          (b"GET", b"/2", b"", 200, b"2", (), ()), (b"GET", b"/3", b"", 200, b"3", (), ())],
         limits=CoreLimits(max_pending_requests=2)),
    Case("not-http-at-all",
         [(C2S, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(64))),
          (S2C, b"\x16\x03\x03\x00\x5a\x02" + bytes(range(90)))],
         []),
    Case("bad-chunk-size-then-smuggled-request",
         [(C2S, b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"10000000000000000\r\n\r\n" + get(b"/smuggled"))],
         [(b"POST", b"/", b"", None, None, (), ("request-incomplete", "response-missing")),
          (b"GET", b"/smuggled", b"", None, None, (), ("response-missing",))]),
]


def _split_randomly(exchanges: list[tuple[str, bytes]], rng: random.Random) -> list:
    out = []
    for d, data in exchanges:
        i = 0
        while i < len(data):
            n = rng.randint(1, 7)
            out.append((d, data[i : i + n]))
            i += n
    return out


WAYS = ["whole", "byte-at-a-time", "random-segments"]


def run_case(case: Case, way: str) -> None:
    """Feed ``case`` one of the three ways and compare the calls with its expectation."""
    if way == "whole":
        packets = conversation(case.exchanges, close=case.close)
    elif way == "byte-at-a-time":
        packets = conversation(case.exchanges, close=case.close, mss=1)
    else:
        packets = conversation(_split_randomly(case.exchanges, random.Random(case.name)),
                               close=case.close)
    calls = run_core(packets, WorkerCore(case.limits))
    assert summary(calls) == case.expected


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("way", WAYS)
def test_http_case(case: Case, way: str) -> None:
    """Each scenario yields the expected calls however the bytes are segmented."""
    run_case(case, way)


def test_pairing_uses_packet_times() -> None:
    """now/interval inputs: request first byte and response last byte packet times."""
    packets = conversation([(C2S, get()), (S2C, ok(b"x" * 3000))], step_ns=1_000)
    calls = run_core(packets)
    assert len(calls) == 1
    rq, rs = calls[0].request, calls[0].response
    assert rq is not None and rs is not None
    data_packets = [p for p in packets if p.seg.payload]
    assert rq.ts_first_ns == data_packets[0].ts_ns
    assert rs.ts_last_ns == data_packets[-1].ts_ns
    assert calls[0].client == (b"\x0a\x00\x00\x01", 40000)


def test_headers_keep_wire_order_and_repeats() -> None:
    """Repeated headers stay separate and in order; trailers follow the headers."""
    packets = conversation([
        (C2S, get(b"/", b"X-A: 1\r\nX-A: 2\r\n")),
        (S2C, b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: end\r\n\r\n"),
    ])
    (call,) = run_core(packets)
    assert call.request is not None and call.response is not None
    assert call.request.headers == [(b"Host", b"api.test"), (b"X-A", b"1"), (b"X-A", b"2")]
    assert call.response.headers == [(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"),
                                     (b"Transfer-Encoding", b"chunked"), (b"X-T", b"end")]


# Heads the one-chunk fast path (``HalfParser._whole_head``) must hand to the general path, or
# handle exactly as it would: stray CRs, lines without a colon, leading blank lines, bodies
# split or followed by more bytes, interim responses, 204 with a length, list-valued framing.
FAST_PATH_EDGES = [
    [(C2S, b"GET /a HTTP/1.1\r\nHost: h\r\r\nX: y\r\n\r\n"), (S2C, ok(b"1"))],
    [(C2S, b"GET /a HTTP/1.1\r\nNoColon\r\nHost: h\r\n\r\n"), (S2C, ok(b"1"))],
    [(C2S, b"\r\nGET /a HTTP/1.1\r\n\r\n"), (S2C, b"\r\n" + ok(b"1"))],
    [(C2S, get(extra=CL + b"5\r\n") + b"abc"), (C2S, b"de"), (S2C, ok(b"1") + b"\r\n")],
    [(C2S, get(extra=CL + b"2\r\n") + b"abcd" + get(b"/2")), (S2C, ok(b"1") + ok(b"2"))],
    [(C2S, get()), (S2C, b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"x"))],
    [(C2S, get()), (S2C, b"HTTP/1.1 2x0 Weird\r\n" + CL + b"1\r\n\r\nz")],
    [(C2S, get(b"/a")), (S2C, b"HTTP/1.1 204 No Content\r\n" + CL + b"3\r\n\r\n"),
     (C2S, get(b"/b")), (S2C, ok(b"2"))],
    [(C2S, b"POST /x HTTP/1.1\r\nContent-Length: 1, 1\r\nTransfer-Encoding: gzip, chunked\r\n"
           b"\r\n1\r\nz\r\n0\r\n\r\n"), (S2C, ok(b"k"))],
    [(C2S, b"POST /x HTTP/1.1\r\ncontent-length: 2\r\nCONTENT-LENGTH: 3\r\n\r\nab"),
     (S2C, ok(b"k"))],
    [(C2S, b"HTTP/1.1 200 OK\r\n\r\n"), (S2C, get())],
    [(C2S, b"GET /a HTTP/1.1\r\nX: a\r\n\tfolded\r\n\r\n"), (S2C, ok(b"f"))],
]


def _comparable(calls: list) -> list:
    """Calls with their packet times dropped (segmenting changes which packet ends what)."""
    out = []
    for c in calls:
        sides = []
        for m in (c.request, c.response):
            d = {} if m is None else {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}
            sides.append({k: v for k, v in d.items() if not k.startswith("ts_")})
        out.append((sides, c.client, c.server, sorted(c.notes)))
    return out


@pytest.mark.parametrize("exchanges", FAST_PATH_EDGES,
                         ids=[str(i) for i in range(len(FAST_PATH_EDGES))])
def test_whole_chunks_parse_like_single_bytes(exchanges: list[tuple[str, bytes]]) -> None:
    """One chunk per message (fast path) and one byte per segment give the same calls,
    headers and anomalies."""
    results = []
    for mss in (1460, 1):
        core = WorkerCore()
        calls = run_core(conversation(exchanges, mss=mss), core)
        results.append((_comparable(calls), dict(core.anomalies)))
    assert results[0] == results[1]
    assert results[0][0] or results[0][1], "every edge case yields calls or anomalies"

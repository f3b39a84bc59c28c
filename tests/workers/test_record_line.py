"""The one-pass line builder gives byte for byte what details -> Rules.apply -> json gives."""
from __future__ import annotations

import gzip
import json
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import C2S, S2C, conversation
from workers.limits import CoreLimits
from workers.core import WorkerCore
from workers.message import ApiCall, FlowMemo, HttpRequest, HttpResponse
from workers.record import RecordBuilder
from workers.record_plan import Replacer
from workers.rules import Rule, Rules, parse

RULE_SETS = [
    "", "allow_http_url\ninclude default", "include debug", "include standard",
    "include strict\n/response_body/ stop_if_found /x/",
    "include debug\n/client_.*/ remove\n/request_url/ stop_if_found /admin/",
    "include debug\n/request_header:.*/ replace /a/, /\u00e9\\n\"/\n"
    "/response_body/ remove_if_found /3/",
    "include strict\n/response_header:date/ stop_unless_found /GMT/\nsample 50",
    "/request_header:x-.*/ stop_unless /.*1.*/\n/request_header:user-agent/ stop_unless_found /u/",
    "include debug\n/request_param:.*/ remove_unless /[0-9]+/\n/server_port/ remove_if /80/",
    "include debug\n/request_param:id/ stop_if /1.*/\n/response_reason/ replace /.*/, //",
    "/(request|response)_body/ replace /^(.{0,3}).*$/, /$1/\n/now|interval/ remove",
    "sample 30", "/.*/ remove", "/request_method/ stop", "include strict\n/response_code/ remove",
    "copy_session_field /s.*/\n/session_field:.*/ replace /a/, /b/\n/request_url/ remove",
]
KWARGS = [{}, {"host": "box \u2603\"", "realip_header": "X-Real-IP"},
          {"capture_details": False, "realip_header": "User-Agent"}]
PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0"


def same_bytes(rules: str | Rules, calls: list[ApiCall], **kw: object) -> list[bytes | None]:
    """Build every call both ways (fresh, identically seeded builders); assert equality of
    lines, counters and anomalies; return the lines."""
    def builder() -> RecordBuilder:
        parsed = parse(rules, random_source=random.Random(3)) if isinstance(rules, str) else \
            Rules(list(rules.rules), rules.text, random.Random(3))
        limits = CoreLimits(max_body_bytes=4096)
        return RecordBuilder(parsed, limits, **kw)  # type: ignore[arg-type]
    fast, general = builder(), builder()
    lines = [fast.build(c) for c in calls]
    assert lines == [general.build_reference(c) for c in calls]
    assert (fast.built, fast.dropped_by_rules) == (general.built, general.dropped_by_rules)
    assert dict(fast.anomalies) == dict(general.anomalies)
    assert dict(fast.rules.anomalies) == dict(general.rules.anomalies)
    return lines


def call(target: bytes = b"/a?id=1&x=%C3%A9", req_headers: list | None = None,
         req_body: bytes = b"", rsp_headers: list | None = None, rsp_body: bytes = b'{"a":1}',
         **kw: object) -> ApiCall:
    rq = HttpRequest(b"POST", target, b"HTTP/1.1", req_headers if req_headers is not None else [
        (b"Host", b"h"), (b"Cookie", b"sid=abc; theme=dark"), (b"User-Agent", b"ua")],
        body=req_body, body_size=len(req_body), ts_first_ns=2_000_000_000)
    rs = HttpResponse(200, b"200", b"OK", b"HTTP/1.0", rsp_headers if rsp_headers is not None
                      else [(b"Content-Type", b"application/json")], body=rsp_body,
                      body_size=len(rsp_body), ts_first_ns=2_001_000_000,
                      ts_last_ns=2_002_500_000)
    return ApiCall(rq, rs, (b"\x0a\x00\x00\x01", 5555), (b"\x0a\x00\x00\x02", 80), ["note"])


def table_calls() -> list[ApiCall]:
    form = [(b"Host", b"h"), (b"Content-Type", b"application/x-www-form-urlencoded"),
            (b"Content-Encoding", b"gzip"), (b"X-Real-IP", b"203.0.113.9")]
    controls = [(b"Host", b"h\x01\x1f"), (b"X-1", b"tab\there \"quoted\" back\\slash"),
                (b"X-Bin", b"\xff\xfe latin-1"), (b"User-Agent", "\u2603 \u2028".encode()),
                (b"\xe9-Name", b"")]
    one_sided = call()
    one_sided.response = None
    response_only = call(rsp_body=b"\0\1\2 binary", rsp_headers=[
        (b"Content-Type", b"application/octet-stream")])
    response_only.request = None
    return [
        call(), call(b"http://abs/x?q=1", rsp_body=PNG,
                     rsp_headers=[(b"Content-Type", b"image/png")]),
        call(b"/f", form, gzip.compress(b"a=1&b=two&id=17")),
        call(b"/c\x00 \xff?x", controls, "caf\u00e9 \x00\x1b".encode(), controls,
             b"\x1f\x8b corrupt gzip"),
        call(rsp_body=b"x" * 5000), call(b"/admin"), one_sided, response_only,
        ApiCall(None, None, (b"\0" * 15 + b"\1", 1), (b"\0" * 16, 8080), []),
    ]


@pytest.mark.parametrize("kw", KWARGS)
@pytest.mark.parametrize("rules", RULE_SETS)
def test_table_of_calls_and_rule_sets_gives_the_same_bytes(rules: str, kw: dict) -> None:
    lines = same_bytes(rules, table_calls() * 2, **kw)  # twice: the second time from caches
    for line in lines:
        if line is not None:
            assert isinstance(json.loads(line), list)


def test_strict_default_keeps_what_it_should() -> None:
    line = same_bytes("", [call()], host="vm")[0]
    assert line is not None
    assert json.loads(line) == [
        ["request_method", "POST"], ["request_url", "http://h/a"],
        ["request_header:user-agent", "ua"], ["response_code", "200"],
        ["response_header:content-type", "application/json"], ["now", "2000"],
        ["interval", "2.500"], ["request_version", "HTTP/1.1"],
        ["response_version", "HTTP/1.0"], ["response_reason", "OK"],
        ["client_ip", "10.0.0.1"], ["client_port", "5555"], ["server_ip", "10.0.0.2"],
        ["server_port", "80"], ["custom_field:sniffer-note", "note"], ["host", "vm"]]


def test_a_failing_replacement_drops_the_call_and_counts_it_on_both_paths() -> None:
    def boom(match: re.Match[str]) -> str:
        raise IndexError("no such group")
    rules = Rules([Rule("replace", re.compile("request_method"), re.compile("P"), boom)], "")
    assert same_bytes(rules, [call()]) == [None]


def test_replacer_memoises_short_values_only() -> None:
    plan = parse("/k/ replace /a/, /b/").plan("k")
    replacer = Replacer(plan, '["k",')
    assert replacer.fragment("aa") == '["k","bb"]' and "aa" in replacer.memo
    assert replacer.fragment("a" * 600) == '["k","' + "b" * 600 + '"]'
    assert len(replacer.memo) == 1
    assert Replacer(parse("/k/ replace /.*/, //").plan("k"), '["k",').fragment("x") is None


HEADER_NAMES = st.sampled_from([b"Host", b"Content-Type", b"Content-Encoding", b"User-Agent",
                                b"Cookie", b"X-Real-IP", b"X-Id", b"content-length", b"\xc3\xa9"])
TEXT = st.text(st.characters(codec="utf-8"), max_size=12).map(str.encode)
VALUES = st.one_of(TEXT, st.binary(max_size=12), st.sampled_from([
    b"application/x-www-form-urlencoded", b"text/plain; charset=latin-1", b"gzip", b"image/png",
    b"sid=1; sx=\"q\"", b"GMT"]))


@st.composite
def api_calls(draw: st.DrawFn) -> ApiCall:
    def message_headers() -> list[tuple[bytes, bytes]]:
        return draw(st.lists(st.tuples(HEADER_NAMES, VALUES), max_size=6))
    request = response = None
    if draw(st.booleans()) or draw(st.booleans()):
        target = b"/" + draw(st.binary(max_size=10)) + draw(st.sampled_from([b"", b"?id=1&a=b"]))
        request = HttpRequest(draw(st.sampled_from([b"GET", b"POST", b"CONNECT", b""])), target,
                              draw(st.sampled_from([b"HTTP/1.1", b""])), message_headers(),
                              body=draw(VALUES), ts_first_ns=draw(st.sampled_from([0, 10**9])))
    if draw(st.booleans()) or request is None and draw(st.booleans()):
        response = HttpResponse(draw(st.sampled_from([200, None])), draw(st.sampled_from(
            [b"", b"2x"])), draw(TEXT), b"HTTP/1.1", message_headers(), body=draw(VALUES),
            ts_first_ns=10**9 + 5, ts_last_ns=draw(st.sampled_from([0, 10**9 + 10**6])))
    ips = st.sampled_from([b"\x7f\0\0\1", b"\0" * 16, b"\xfe\x80" + b"\0" * 13 + b"\1"])
    return ApiCall(request, response, (draw(ips), 1), (draw(ips), 80),
                   draw(st.lists(st.sampled_from(["n", "\u00e9\n"]), max_size=2)))


@settings(max_examples=60, deadline=None)
@given(st.lists(api_calls(), min_size=1, max_size=6), st.sampled_from(RULE_SETS),
       st.sampled_from(KWARGS))
def test_random_calls_give_the_same_bytes_on_both_paths(calls: list[ApiCall], rules: str,
                                                        kw: dict) -> None:
    flows: dict[object, FlowMemo] = {}  # calls of one (client, server) share a memo, as calls
    for c in calls:  # of one connection do; their versions and reasons differ
        c.flow = flows.setdefault((c.client, c.server), FlowMemo())
    same_bytes(rules, calls, **kw)
    same_bytes(RULE_SETS[2], calls * 2)  # memos filled by another builder, then by this one


def test_calls_of_a_connection_share_its_memo_and_their_lines_stay_exact() -> None:
    """Real connections (one learning its roles from content): each call's capture details
    come from its connection's memo when versions and reason repeat, and are remade when
    they change; every line equals the general path's."""
    def exchange(reason: bytes, version: bytes = b"HTTP/1.1") -> list[tuple[str, bytes]]:
        return [(C2S, b"GET /r HTTP/1.1\r\nHost: h\r\n\r\n"),
                (S2C, version + b" 200 " + reason + b"\r\nContent-Length: 1\r\n\r\nx")]
    core = WorkerCore()
    calls: list[ApiCall] = []
    first = exchange(b"OK") + exchange(b"OK") + exchange(b"Fine") + exchange(b"OK", b"HTTP/1.0")
    for packets in (conversation(first),
                    conversation(exchange(b"OK") * 2, handshake=False,
                                 client=(b"\x0a\x00\x00\x07", 41000))):
        for p in packets:
            calls += core.feed(p.ts_ns, p.seg)
    calls += core.close()
    assert len(calls) == 6
    assert len({id(c.flow) for c in calls[:4]}) == 1 and calls[4].flow is calls[5].flow
    assert calls[4].flow is not calls[0].flow
    lines = same_bytes("include debug", calls)
    assert [json.loads(line)[-6:-2] for line in lines if line] == [  # type: ignore[arg-type]
        [["response_version", v], ["response_reason", r], ["client_ip", ip], ["client_port", p]]
        for v, r, ip, p in [("HTTP/1.1", "OK", "10.0.0.1", "40000")] * 2 + [
            ("HTTP/1.1", "Fine", "10.0.0.1", "40000"), ("HTTP/1.0", "OK", "10.0.0.1", "40000")]
        + [("HTTP/1.1", "OK", "10.0.0.7", "41000")] * 2]


def test_kept_header_values_are_memoised_within_a_bound() -> None:
    """Repeated values of kept headers reuse their JSON text; long values are not held; past
    the bound every entry is forgotten; the bytes equal the general path throughout."""
    values = [b"v%d" % (i % 30) for i in range(120)] + [b"x" * 200, b"x" * 200]
    calls = [call(req_headers=[(b"Host", b"h"), (b"User-Agent", v)]) for v in values]
    fresh = [call(req_headers=[(b"Host", b"h"), (b"User-Agent", b"w%d" % i)]) for i in range(20)]
    rules = "include debug"
    assert len(set(same_bytes(rules, calls + fresh))) == 51  # one line per distinct value
    builder = RecordBuilder(parse(rules), CoreLimits(max_body_bytes=4096))
    lines = builder._lines
    for c in calls:
        builder.build(c)
    assert sorted(lines._names[0][b"User-Agent"].texts) == sorted({b"v%d" % i for i in range(30)})
    assert lines._memo_values == 32  # and "h" (Host), "application/json" (Content-Type)
    lines.memo_values_max = 40
    for c in fresh:
        builder.build(c)
    held = lines._names[0][b"User-Agent"].texts
    assert 0 < lines._memo_values < 40 and b"v0" not in held and b"w19" in held


def test_method_and_status_texts_are_held_within_a_bound() -> None:
    """Under a plain keep the JSON text of each method and status code is built once; past 64
    methods the held ones are forgotten; non-ASCII and empty methods take the general put;
    the bytes equal the general path throughout, and under rules that judge the method too."""
    methods = [b"M%d" % (i % 80) for i in range(200)] + [b"G\xc3\xa9T", b"G\xe9T", b""]
    calls = []
    for i, method in enumerate(methods):
        c = call()
        assert c.request is not None and c.response is not None
        c.request.method = method
        c.response.status = 100 + i * 7 % 900
        calls.append(c)
    for rules in ("include debug", "/request_method/ replace /M1/, /X/", "/request_method/ stop"):
        same_bytes(rules, calls)
    builder = RecordBuilder(parse("include debug"), CoreLimits(max_body_bytes=4096))
    for c in calls:
        builder.build(c)
    held = builder._lines._method_texts
    assert 0 < len(held) <= 64 and b"G\xc3\xa9T" not in held and held[b""] == ""
    assert builder._lines._code_texts[107] == '["response_code","107"]'

"""ApiCall -> Resurface message details."""
from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.anomalies import REGISTRY, Anomalies
from workers.apicall import (ANOMALIES, NOTE_KEY, REQUEST_BODY_KEY, RESPONSE_BODY_KEY,
                             server_address, to_details, unquote_plus)
from workers.message import ApiCall, HttpRequest, HttpResponse

CLIENT = (bytes([10, 0, 0, 7]), 40000)
SERVER = (bytes([10, 0, 0, 1]), 8080)
T0_NS = 1_700_000_000_123_456_789


def request(target: bytes = b"/", headers: list | None = None, body: bytes = b"",
            method: bytes = b"GET", **kw: object) -> HttpRequest:
    if headers is None:
        headers = [(b"Host", b"api.example.com")]
    kw.setdefault("ts_first_ns", T0_NS)
    kw.setdefault("ts_last_ns", T0_NS)
    return HttpRequest(method, target, b"HTTP/1.1", headers, body, len(body), **kw)


def response(status: int | None = 200, headers: list | None = None, body: bytes = b"",
             status_raw: bytes = b"200", **kw: object) -> HttpResponse:
    kw.setdefault("ts_first_ns", T0_NS + 5_000_000)
    kw.setdefault("ts_last_ns", T0_NS + 12_345_000)
    return HttpResponse(status, status_raw, b"OK", b"HTTP/1.1", headers or [], body,
                        len(body), **kw)


def details(req: HttpRequest | None = None, resp: HttpResponse | None = None,
            server: tuple[bytes, int] = SERVER, notes: list[str] | None = None,
            **kw: object) -> list[list[str]]:
    return to_details(ApiCall(req, resp, CLIENT, server, notes or []), **kw)


def values(found: list[list[str]], key: str) -> list[str]:
    return [v for k, v in found if k == key]


def test_typical_json_call_in_format_order() -> None:
    req = request(b"/v1/items?id=42", [(b"Host", b"api.example.com"),
                                       (b"Content-Type", b"application/json")],
                  b'{"qty": 3}', method=b"POST")
    resp = response(201, [(b"Content-Type", b"application/json")], b'{"id": 42}')
    assert details(req, resp, host="node-1") == [
        ["request_method", "POST"],
        ["request_url", "http://api.example.com/v1/items?id=42"],
        ["request_header:host", "api.example.com"],
        ["request_header:content-type", "application/json"],
        ["request_param:id", "42"],
        ["request_body", '{"qty": 3}'],
        ["response_code", "201"],
        ["response_header:content-type", "application/json"],
        ["response_body", '{"id": 42}'],
        ["now", "1700000000123"],
        ["interval", "12.345"],
        ["host", "node-1"],
    ]


V6 = bytes.fromhex("20010db8000000000000000000000001")


@pytest.mark.parametrize("method, target, headers, server, url", [
    (b"GET", b"/a/b?x=1&y=2", [(b"Host", b"example.com:8443")], SERVER,
     "http://example.com:8443/a/b?x=1&y=2"),
    (b"GET", b"/", [(b"Host", b"first"), (b"HOST", b"second")], SERVER, "http://first/"),
    (b"GET", b"/p", [], (bytes([192, 0, 2, 1]), 80), "http://192.0.2.1/p"),
    (b"GET", b"/p", [], (bytes([192, 0, 2, 1]), 8080), "http://192.0.2.1:8080/p"),
    (b"GET", b"/p", [(b"Host", b"")], (bytes([192, 0, 2, 1]), 8080), "http://192.0.2.1:8080/p"),
    (b"GET", b"/p", [], (V6, 80), "http://[2001:db8::1]/p"),
    (b"GET", b"/p", [], (V6, 3000), "http://[2001:db8::1]:3000/p"),
    (b"GET", b"http://proxy.test/x?q=1", [(b"Host", b"ignored")], SERVER,
     "http://proxy.test/x?q=1"),
    (b"GET", b"HTTPS://Proxy.Test/x", [], SERVER, "HTTPS://Proxy.Test/x"),
    (b"CONNECT", b"tunnel.example.com:443", [(b"Host", b"tunnel.example.com:443")], SERVER,
     "tunnel.example.com:443"),
    (b"OPTIONS", b"*", [(b"Host", b"h")], SERVER, "http://h/*"),
    (b"GET", b"/a b?c d", [(b"Host", b"h")], SERVER, "http://h/a%20b?c%20d"),
    (b"GET", b"/caf\xc3\xa9/\xff\x7f\x01", [(b"Host", b"h")], SERVER,
     "http://h/caf%C3%A9/%FF%7F%01"),
    (b"GET", b"/ok", [(b"Host", b"b\xc3\xa4d host")], SERVER, "http://b%C3%A4d%20host/ok"),
    (b"GET", b"", [(b"Host", b"h")], SERVER, "http://h/"),
    (b"GET", b"?only=query", [(b"Host", b"h")], SERVER, "http://h/?only=query"),
])
def test_request_url(method: bytes, target: bytes, headers: list, server: tuple[bytes, int],
                     url: str) -> None:
    found = details(request(target, headers, method=method), server=server)
    assert values(found, "request_url") == [url]


@pytest.mark.parametrize("server, text", [
    ((bytes([1, 2, 3, 4]), 80), "1.2.3.4"), ((bytes([1, 2, 3, 4]), 443), "1.2.3.4:443"),
    ((bytes(15) + b"\x01", 80), "[::1]"), ((b"\x01\x02", 99), "?:99"),
])
def test_server_address(server: tuple[bytes, int], text: str) -> None:
    assert server_address(server) == text


@pytest.mark.parametrize("raw, decoded", [
    (b"a+b", b"a b"), (b"%41%6a%6A", b"Ajj"), (b"100%", b"100%"), (b"%zz%4", b"%zz%4"),
    (b"%2B+", b"+ "), (b"%25%32%35", b"%25"), (b"", b""),
])
def test_unquote_plus(raw: bytes, decoded: bytes) -> None:
    assert unquote_plus(raw) == decoded


@pytest.mark.parametrize("target, params", [
    (b"/s?tag=a&tag=b&Tag=c", [["request_param:tag", "a"], ["request_param:tag", "b"],
                               ["request_param:tag", "c"]]),
    (b"/s?empty=&flag&=nameless&&", [["request_param:empty", ""], ["request_param:flag", ""]]),
    (b"/s?q=hello+world&e=%C3%A9t%C3%A9&raw=caf%E9", [
        ["request_param:q", "hello world"], ["request_param:e", "été"],
        ["request_param:raw", "café"]]),
    (b"/s?a=1=2&b=%zz", [["request_param:a", "1=2"], ["request_param:b", "%zz"]]),
    (b"/s?x=1#frag=2", [["request_param:x", "1"]]),
    (b"/s?", []),
    (b"/no-query", []),
    (b"http://h/abs?k=v", [["request_param:k", "v"]]),
])
def test_query_params(target: bytes, params: list[list[str]]) -> None:
    found = details(request(target))
    assert [d for d in found if d[0].startswith("request_param:")] == params


FORM = b"application/x-www-form-urlencoded"


@pytest.mark.parametrize("content_type, body, params", [
    (FORM, b"user=ann&pw=s%26cret&note=a+b", [
        ["request_param:user", "ann"], ["request_param:pw", "s&cret"],
        ["request_param:note", "a b"]]),
    (FORM + b"; charset=ISO-8859-1", b"name=Fran%E7ois&city=K\xf6ln", [
        ["request_param:name", "François"], ["request_param:city", "Köln"]]),
    (FORM + b"; charset=utf-8", b"name=Fran%C3%A7ois", [["request_param:name", "François"]]),
    (b"application/json", b'{"user": "ann"}', []),
    (FORM, b"", []),
])
def test_form_body_params_follow_query_params(content_type: bytes, body: bytes,
                                              params: list[list[str]]) -> None:
    req = request(b"/login?next=home", [(b"Content-Type", content_type)], body, b"POST")
    found = details(req)
    assert [d for d in found if d[0].startswith("request_param:")] == [
        ["request_param:next", "home"]] + params
    assert values(found, "request_body") == ([body.decode("latin-1")] if body else [])


def test_gzipped_form_body_is_decoded_before_params() -> None:
    req = request(b"/f", [(b"Content-Type", FORM), (b"Content-Encoding", b"gzip")],
                  gzip.compress(b"a=1&b=2"), b"POST")
    found = details(req)
    assert values(found, "request_param:a") == ["1"] and values(found, "request_param:b") == ["2"]
    assert values(found, "request_body") == ["a=1&b=2"]


def test_params_are_bounded() -> None:
    anomalies = Anomalies()
    query = b"&".join(b"k%d=v" % i for i in range(10))
    req = request(b"/?" + query, [(b"Content-Type", FORM)], b"f=1&g=2", b"POST")
    found = details(req, max_params=12, anomalies=anomalies)  # exactly fits
    assert len([d for d in found if d[0].startswith("request_param:")]) == 12
    assert anomalies == {}
    found = details(req, max_params=11, anomalies=anomalies)
    assert values(found, "request_param:f") == ["1"] and values(found, "request_param:g") == []
    assert anomalies == {"request_params_limit": 1}
    found = details(request(b"/?" + query), max_params=10, anomalies=anomalies)
    assert len([d for d in found if d[0].startswith("request_param:")]) == 10
    assert anomalies == {"request_params_limit": 1}
    assert REGISTRY["request_params_limit"] == ANOMALIES["request_params_limit"]


def test_headers_in_wire_order_with_lowercase_names_and_repeats() -> None:
    req = request(b"/", [(b"X-B", b"2"), (b"Host", b"h"), (b"x-a", b"1"), (b"X-B", b"3"),
                         (b"X-Utf8", b"caf\xc3\xa9"), (b"X-Latin1", b"caf\xe9"),
                         (b"X-\xc4", b"odd name")])
    resp = response(200, [(b"Set-Cookie", b"a=1"), (b"SET-COOKIE", b"b=2"),
                          (b"Transfer-Encoding", b"chunked"), (b"X-Trailer", b"t")])
    found = details(req, resp)
    assert [d for d in found if d[0].startswith("request_header:")] == [
        ["request_header:x-b", "2"], ["request_header:host", "h"], ["request_header:x-a", "1"],
        ["request_header:x-b", "3"], ["request_header:x-utf8", "café"],
        ["request_header:x-latin1", "café"], ["request_header:x-\xc4", "odd name"]]
    assert [d for d in found if d[0].startswith("response_header:")] == [
        ["response_header:set-cookie", "a=1"], ["response_header:set-cookie", "b=2"],
        ["response_header:transfer-encoding", "chunked"], ["response_header:x-trailer", "t"]]


@pytest.mark.parametrize("req_kw, resp_kw, now, interval", [
    ({}, {}, "1700000000123", "12.345"),
    ({}, {"ts_last_ns": T0_NS}, "1700000000123", "0.001"),                  # zero
    ({}, {"ts_first_ns": T0_NS - 10**6, "ts_last_ns": T0_NS - 1}, "1700000000123", "0.001"),
    ({}, {"ts_last_ns": T0_NS + 1_999}, "1700000000123", "0.001"),
    ({}, {"ts_last_ns": T0_NS + 3_000_999_999}, "1700000000123", "3000.999"),
    ({}, {"ts_last_ns": 0, "ts_first_ns": T0_NS + 7_000_000}, "1700000000123", "7.000"),
    ({"ts_first_ns": 0}, {}, None, None),                                  # unknown times
])
def test_now_and_interval(req_kw: dict, resp_kw: dict, now: str | None,
                          interval: str | None) -> None:
    found = details(request(**req_kw), response(**resp_kw))
    assert values(found, "now") == ([now] if now else [])
    assert values(found, "interval") == ([interval] if interval else [])


def test_missing_response_keeps_request_and_notes() -> None:
    found = details(request(b"/x"), None, notes=["response-missing"])
    assert found == [["request_method", "GET"], ["request_url", "http://api.example.com/x"],
                     ["request_header:host", "api.example.com"], ["now", "1700000000123"],
                     [NOTE_KEY, "response-missing"]]


def test_missing_request_keeps_response() -> None:
    resp = response(404, [(b"Content-Type", b"text/plain")], b"nope",
                    ts_first_ns=T0_NS + 2_000_000)
    found = details(None, resp, notes=["request-missing", "response-incomplete"])
    assert found == [["response_code", "404"], ["response_header:content-type", "text/plain"],
                     ["response_body", "nope"], ["now", "1700000000125"],
                     [NOTE_KEY, "request-missing"], [NOTE_KEY, "response-incomplete"]]


@pytest.mark.parametrize("status, raw, code", [
    (200, b"200", ["200"]), (None, b"2x0", ["2x0"]), (None, b"\xff", ["\xff"]), (None, b"", []),
])
def test_response_code(status: int | None, raw: bytes, code: list[str]) -> None:
    assert values(details(None, response(status, status_raw=raw)), "response_code") == code


def test_bodies_decoded_and_markers() -> None:
    anomalies = Anomalies()
    req = request(b"/up", [(b"Content-Type", b"image/png")], b"\x89PNG\r\n\x1a\n", b"PUT")
    big = b'{"k": "' + b"v" * 5000 + b'"}'
    resp = response(200, [(b"Content-Type", b"application/json"), (b"Content-Encoding", b"gzip")],
                    gzip.compress(big))
    found = details(req, resp, anomalies=anomalies)
    assert values(found, "request_body") == []
    assert values(found, REQUEST_BODY_KEY) == ["binary body omitted (image/png, 8 bytes)"]
    assert values(found, "response_body") == [big.decode()]
    assert values(found, RESPONSE_BODY_KEY) == []
    found = details(req, resp, binary_policy="base64", max_body_bytes=100, anomalies=anomalies)
    assert values(found, "request_body") == ["iVBORw0KGgo="]
    assert values(found, REQUEST_BODY_KEY) == ["base64"]
    assert values(found, "response_body") == [big[:100].decode()]
    assert values(found, RESPONSE_BODY_KEY) == [
        "content-encoding gzip decodes to more than the limit; cut at 100 bytes"]
    assert anomalies == {"body_bomb_limit": 1}


def test_truncated_bodies_are_marked_not_counted_twice() -> None:
    anomalies = Anomalies()
    packed = gzip.compress(bytes(range(256)) * 400)
    resp = response(200, [(b"Content-Encoding", b"gzip"), (b"Content-Type", b"text/plain")],
                    packed[:500], body_truncated=True)
    resp.body_size = len(packed)
    found = details(None, resp, anomalies=anomalies)
    assert values(found, RESPONSE_BODY_KEY)[0] == f"truncated: captured 500 of {len(packed)} bytes"
    assert values(found, RESPONSE_BODY_KEY)[1].startswith(
        "content-encoding gzip stream ends early; kept ")
    assert anomalies == {}  # the truncation explains the short stream
    resp.body_truncated = False
    details(None, resp, anomalies=anomalies)
    assert anomalies == {"body_decode_truncated": 1}


def test_identity_body_over_limit_is_cut() -> None:
    found = details(None, response(200, [(b"Content-Type", b"text/plain")], b"x" * 50),
                    max_body_bytes=10)
    assert values(found, "response_body") == ["x" * 10]
    assert values(found, RESPONSE_BODY_KEY) == ["cut at 10 bytes"]


OCTETS = st.binary(max_size=40)
HEADERS = st.lists(st.tuples(st.one_of(OCTETS, st.sampled_from(
    [b"Host", b"Content-Type", b"Content-Encoding"])), st.one_of(OCTETS, st.sampled_from(
        [b"gzip", b"br, deflate", FORM + b"; charset=\xff", b"image/png"]))), max_size=6)
TIMES = st.integers(0, 2**63)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.builds(HttpRequest, OCTETS, OCTETS, OCTETS, HEADERS, OCTETS,
                                      st.integers(0, 10**9), st.booleans(), st.booleans(),
                                      TIMES, TIMES)),
       st.one_of(st.none(), st.builds(HttpResponse, st.one_of(st.none(), st.integers(0, 999)),
                                      OCTETS, OCTETS, OCTETS, HEADERS, OCTETS,
                                      st.integers(0, 10**9), st.booleans(), st.booleans(),
                                      TIMES, TIMES)),
       st.tuples(OCTETS, st.integers(0, 65535)), st.lists(st.text(max_size=10), max_size=3),
       st.sampled_from(["skip", "base64", "lossy"]), st.integers(0, 64))
def test_arbitrary_bytes_never_raise(req: HttpRequest | None, resp: HttpResponse | None,
                                     server: tuple[bytes, int], notes: list[str], policy: str,
                                     limit: int) -> None:
    found = to_details(ApiCall(req, resp, CLIENT, server, notes), binary_policy=policy,
                       max_body_bytes=limit, max_params=5, anomalies=Anomalies())
    assert all(len(d) == 2 and isinstance(d[0], str) and isinstance(d[1], str) for d in found)
    json.dumps(found, ensure_ascii=False).encode("utf-8")  # valid JSON text, no lone surrogates
    for url in values(found, "request_url"):
        assert url.isascii() and url.isprintable() and " " not in url
    for body in values(found, "request_body") + values(found, "response_body"):
        assert len(body) <= max(limit, 4 * -(-limit // 3))


def test_body_labelled_gzip_but_plain_is_kept_with_a_marker() -> None:
    """A POST body that says gzip but is plain JSON keeps its text (and says why)."""
    anomalies = Anomalies()
    body = b'{"sdk_version":"2.1","app_package":"x"}'
    req = request(b"/init", [(b"Content-Encoding", b"gzip"),
                             (b"Content-Type", b"application/json")], body, b"POST")
    found = details(req, None, anomalies=anomalies)
    assert values(found, "request_body") == [body.decode()]
    assert values(found, REQUEST_BODY_KEY) == [
        f"content-encoding gzip does not apply; {len(body)} bytes kept as sent"]
    assert anomalies == {"body_not_encoded": 1}

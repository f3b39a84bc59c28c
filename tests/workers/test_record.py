"""RecordBuilder: details -> rules -> markers -> JSON, in the loggers' order."""
from __future__ import annotations

import json

import pytest

from workers.limits import CoreLimits
from workers.message import ApiCall, HttpRequest, HttpResponse
from workers.record import CAPTURE_DETAIL_KEYS, RecordBuilder
from workers.rules import parse

PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0"


def call(body: bytes = b'{"a":1}', ctype: bytes = b"application/json") -> ApiCall:
    rq = HttpRequest(b"GET", b"/img?x=1", b"HTTP/1.1",
                     [(b"Host", b"h"), (b"Cookie", b"sid=abc; theme=dark"),
                      (b"User-Agent", b"ua")], ts_first_ns=2_000_000_000)
    rs = HttpResponse(200, b"200", b"OK", b"HTTP/1.0", [(b"Content-Type", ctype)], body=body,
                      body_size=len(body), ts_first_ns=2_001_000_000, ts_last_ns=2_002_500_000)
    return ApiCall(rq, rs, (b"\x0a\x00\x00\x01", 5555), (b"\x0a\x00\x00\x02", 80),
                   ["response-incomplete"])


def build(rules: str, c: ApiCall, **kw) -> list[list[str]] | None:
    b = RecordBuilder(parse(rules), CoreLimits(), **kw)
    line = b.build(c)
    return None if line is None else json.loads(line)


def test_debug_keeps_everything_and_adds_capture_details_and_markers_last() -> None:
    d = build("include debug", call(), host="box")
    keys = [k for k, _ in d]
    assert set(CAPTURE_DETAIL_KEYS) <= set(keys)
    assert dict(d)["response_version"] == "HTTP/1.0" and dict(d)["client_port"] == "5555"
    assert dict(d)["interval"] == "2.500" and dict(d)["now"] == "2000"
    assert keys[-2:] == ["custom_field:sniffer-note", "host"] and d[-1][1] == "box"
    assert ["session_field:sid", "abc"] in d and ["session_field:theme", "dark"] in d


def test_strict_default_drops_cookie_body_params_and_query() -> None:
    d = dict(build("", call()))
    assert d["request_url"] == "http://h/img"
    assert "request_header:cookie" not in d and "response_body" not in d
    assert "request_param:x" not in d and d["request_header:user-agent"] == "ua"
    assert d["custom_field:sniffer-note"] == "response-incomplete"  # markers survive rules


def test_binary_body_goes_to_body_base64_when_the_rules_keep_it() -> None:
    d = dict(build("include debug", call(PNG, b"image/png")))
    assert "response_body" not in d
    assert d["response_body_base64"] == "iVBORw0KGgoAAAANSUhEUgAA"
    assert d["custom_field:sniffer-response-body"] == "base64"


def test_binary_body_is_removed_by_strict_like_any_body() -> None:
    d = dict(build("", call(PNG, b"image/png")))
    assert "response_body_base64" not in d and "response_body" not in d


def test_rules_can_drop_a_call_and_hide_capture_details() -> None:
    assert build("include debug\n/request_url/ stop_if_found /img/", call()) is None
    d = dict(build("include debug\n/client_.*/ remove", call()))
    assert "client_ip" not in d and "server_ip" in d
    assert "client_ip" not in dict(build("include debug", call(), capture_details=False))


@pytest.mark.parametrize("rules", [
    "", "include standard", "include debug", "include strict\n/response_body/ stop_if_found /x/",
    "/request_header:cookie|request_body/ remove", "include debug\n/response_body/ remove",
])
@pytest.mark.parametrize("variant", ["json", "png", "gzip-form"])
def test_skipping_what_the_rules_drop_changes_nothing_they_keep(rules: str, variant: str) -> None:
    """Details the rules remove anyway are not built (drops=...): the kept ones are the same."""
    import gzip as gz

    from workers.apicall import to_details
    c = call()
    if variant == "png":
        c = call(PNG, b"image/png")
    elif variant == "gzip-form":
        c.request.headers += [(b"Content-Type", b"application/x-www-form-urlencoded"),
                              (b"Content-Encoding", b"gzip")]
        c.request.body = gz.compress(b"a=1&b=two")
    parsed = parse(rules)
    markers = ("custom_field:sniffer-request-body", "custom_field:sniffer-response-body")

    def kept(**kw: object) -> list:
        out = parsed.apply([d for d in to_details(c, binary_policy="base64", **kw)
                            if not d[0].startswith("custom_field:")])
        return [d for d in out or [] if d[0] not in markers]

    assert kept(drops=parsed.drops) == kept()


def test_realip_header_is_added_to_requests_that_lack_it() -> None:
    d = build("include debug", call(), realip_header="X-Real-IP")
    assert ["request_header:x-real-ip", "10.0.0.1"] in d
    c = call()
    c.request.headers.append((b"X-Real-IP", b"203.0.113.9"))
    d = build("include debug", c, realip_header="X-Real-IP")
    assert [v for k, v in d if k == "request_header:x-real-ip"] == ["203.0.113.9"]

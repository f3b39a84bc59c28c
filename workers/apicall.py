"""ApiCall -> Resurface message details (``[[key, value], ...]``, all values strings).

Strategy: one pass over each side of the call, in the order of the Resurface message format
(reference/resurface.md section 3): request_method, request_url, request_header:*,
request_param:*, request_body, response_code, response_header:*, response_body, now,
interval, then our markers as ``custom_field:*`` and optionally ``host`` last. Logging rules
apply to everything before the first ``custom_field:`` detail (the loggers append custom
fields and host after the rules), so callers may split there.

Rules:
- Header names become lowercase keys, one detail per field in wire order, chunked trailers
  included; values are UTF-8, or latin-1 when not valid UTF-8 (never fails).
- ``request_url`` is ``http://`` + Host (or the server address) + the target as sent (query
  kept); absolute-form targets are used as is, CONNECT's authority-form target
  (``host:port``) is used as sent, ``*`` gives ``http://host/*``. Bytes that cannot appear
  in a URL (controls, space, DEL, non-ASCII) are percent-encoded, so the URL is always
  printable ASCII (RFC 3986 section 2.1).
- ``request_param:<lowercase name>``: one per query value and per field of an
  ``application/x-www-form-urlencoded`` body (``+`` and ``%xx`` decoded, WHATWG URL
  section 5.1), at most ``max_params`` per call.
- ``now`` = epoch ms of the request's first packet (the response's when there is no request);
  ``interval`` = request first packet -> response last packet in ms with 3 decimals, at least
  ``0.001`` (the Resurface importer stores whole ms and maps 0.x to 1); omitted when a side
  is missing.
- Hot path: key strings are cached per header name (bounded), no regexes, no per-header
  lowercasing once a name has been seen.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Final

from workers.anomalies import Anomalies, register
from workers.bodies import body_text, content_type_info, decode_content
from workers.message import ApiCall, Headers, HttpRequest, HttpResponse

ANOMALIES = register({
    "request_params_limit": "a request had more parameters than max_params; the rest were dropped",
})

Drops = Callable[[str], bool]
"""Whether the logging rules would remove a detail with this key whatever its value."""

NOTE_KEY: Final = "custom_field:sniffer-note"
"""One detail per ``ApiCall.notes`` entry, e.g. ``response-missing``."""
REQUEST_BODY_KEY: Final = "custom_field:sniffer-request-body"
"""What happened to the request body: truncated, not decodable, binary omitted, base64."""
RESPONSE_BODY_KEY: Final = "custom_field:sniffer-response-body"
"""The same for the response body."""

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_PARAMS = 1000

_FORM: Final = b"application/x-www-form-urlencoded"
_HOST: Final = 1
_CONTENT_TYPE: Final = 2
_CONTENT_ENCODING: Final = 3
_SPECIAL: Final = {b"host": _HOST, b"content-type": _CONTENT_TYPE,
                   b"content-encoding": _CONTENT_ENCODING}
_MAX_CACHED_NAMES: Final = 2048
_REQUEST_KEYS: Final[dict[bytes, tuple[str, int]]] = {}
_RESPONSE_KEYS: Final[dict[bytes, tuple[str, int]]] = {}
_HEX = "0123456789abcdefABCDEF"
_UNHEX: Final = {(a + b).encode(): bytes((int(a + b, 16),)) for a in _HEX for b in _HEX}
_DECODE_MARKERS: Final = {
    "body_decode_error": "content-encoding {} is corrupt; kept {} decoded bytes",
    "body_decode_truncated": "content-encoding {} stream ends early; kept {} decoded bytes",
    "body_bomb_limit": "content-encoding {} decodes to more than the limit; cut at {} bytes",
    "body_unknown_encoding": "content-encoding {} not decoded; {} bytes as sent",
    "body_not_encoded": "content-encoding {} does not apply; {} bytes kept as sent",
}


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _key(name: bytes, prefix: str, cache: dict[bytes, tuple[str, int]]) -> tuple[str, int]:
    lower = name.lower()
    entry = (prefix + _text(lower), _SPECIAL.get(lower, 0))
    if len(cache) < _MAX_CACHED_NAMES:
        cache[name] = entry
    return entry


SpecialHeaders = tuple[bytes | None, bytes | None, bytes | None]
"""(host, content-type, content-encoding) of one message."""


def note_special(found: SpecialHeaders, kind: int, value: bytes) -> SpecialHeaders:
    """``found`` after a header of ``kind`` (``_SPECIAL``): the first Host and the first
    Content-Type count; Content-Encoding values are joined with commas."""
    host, ctype, cenc = found
    if kind == _HOST:
        return found if host is not None else (value, ctype, cenc)
    if kind == _CONTENT_TYPE:
        return found if ctype is not None else (host, value, cenc)
    return host, ctype, value if cenc is None else cenc + b"," + value


def call_timing(call: ApiCall) -> tuple[str | None, str | None]:
    """The ``now`` (first byte of the call, ms since the epoch) and ``interval`` (request's
    first byte to response's last, ms with three decimals, at least 0.001) texts, or None."""
    first_ns = call_first_ns(call)
    return (str(first_ns // 1_000_000) if first_ns > 0 else None), interval_text(call)


def call_first_ns(call: ApiCall) -> int:
    """The packet time of the call's first byte (the request's, else the response's), or 0."""
    request = call.request
    if request is not None:
        return request.ts_first_ns
    return call.response.ts_first_ns if call.response is not None else 0


_THREE_DIGITS: Final = tuple(str(1000 + i)[1:] for i in range(1000))  # "000" ... "999"


def interval_text(call: ApiCall, before: str = "", after: str = "") -> str | None:
    """``interval``: request's first byte to response's last, ms with three decimals (at least
    0.001), between ``before`` and ``after`` (one string built: the record builder's JSON
    around it); None without both sides or a request time."""
    request, response = call.request, call.response
    if request is None or response is None or request.ts_first_ns <= 0:
        return None
    elapsed_ns = (response.ts_last_ns or response.ts_first_ns) - request.ts_first_ns
    if elapsed_ns < 1000:
        elapsed_ns = 1000
    ms, rest = elapsed_ns // 1_000_000, _THREE_DIGITS[elapsed_ns % 1_000_000 // 1000]
    return f"{before}{ms}.{rest}{after}"


def _headers(headers: Headers, prefix: str, cache: dict[bytes, tuple[str, int]],
             out: list[list[str]], drops: Drops | None = None,
             ) -> tuple[bytes | None, bytes | None, bytes | None]:
    """Append one detail per field (but those ``drops`` says the rules remove anyway);
    return (host, content-type, content-encoding)."""
    found: SpecialHeaders = (None, None, None)
    for name, value in headers:
        key, kind = cache.get(name) or _key(name, prefix, cache)
        if drops is None or not drops(key):
            try:  # _text() inlined: this loop runs for every header of every call
                out.append([key, value.decode()])
            except UnicodeDecodeError:
                out.append([key, value.decode("latin-1")])
        if kind:
            found = note_special(found, kind, value)
    return found


def _url_text(raw: bytes) -> str:
    if raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable() and " " not in text:
            return text
    return "".join(chr(b) if 0x20 < b < 0x7F else f"%{b:02X}" for b in raw)


def server_address(server: tuple[bytes, int]) -> str:
    """``1.2.3.4``, ``[::1]`` or ``?`` for other lengths, plus ``:port`` unless 80."""
    ip, port = server
    if len(ip) == 4:
        name = ".".join(map(str, ip))
    elif len(ip) == 16:
        name = f"[{ipaddress.IPv6Address(ip).compressed}]"
    else:
        name = "?"
    return name if port == 80 else f"{name}:{port}"


def request_url(request: HttpRequest, host: bytes | None, server: tuple[bytes, int]) -> str:
    """Absolute ``request_url`` for a request with Host value ``host`` (see module rules)."""
    target = request.target
    if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
        return _url_text(target)
    if request.method == b"CONNECT" and target:
        return _url_text(target)  # authority-form (host:port), used as sent like absolute-form
    if not target.startswith(b"/"):
        target = b"/" + target
    authority = _url_text(host) if host else server_address(server)
    return "http://" + authority + _url_text(target)


def unquote_plus(raw: bytes) -> bytes:
    """Form/query decoding: ``+`` is a space, ``%xx`` a byte; a bad escape stays as is."""
    if 43 in raw:  # "+" (a byte as an int: a one-byte string costs 7x more)
        raw = raw.replace(b"+", b" ")
    if 37 not in raw:  # "%"
        return raw
    parts = raw.split(b"%")
    out = [parts[0]]
    for part in parts[1:]:
        byte = _UNHEX.get(part[:2])
        if byte is None:
            out += (b"%", part)
        else:
            out += (byte, part[2:])
    return b"".join(out)


def _params(encoded: bytes, codec: str | None, budget: int, out: list[list[str]]) -> int:
    """Append ``request_param`` details; return the budget left (-1 when it ran out)."""
    for field in encoded.split(b"&"):
        name, _, value = field.partition(b"=")
        name = unquote_plus(name)
        if not name:
            continue
        if budget <= 0:
            return -1
        budget -= 1
        value = unquote_plus(value)
        if codec is None:
            out.append(["request_param:" + _text(name).lower(), _text(value)])
        else:
            out.append(["request_param:" + name.decode(codec, "replace").lower(),
                        value.decode(codec, "replace")])
    return budget


def _body(message: HttpRequest | HttpResponse, ctype: bytes | None, cenc: bytes | None,
          limit: int, policy: str, markers: list[str],
          anomalies: Anomalies | None) -> tuple[bytes, str | None]:
    """Decoded body bytes and its detail text (None to omit); markers appended."""
    data = message.body
    if message.body_truncated:
        markers.append(f"truncated: captured {len(data)} of {message.body_size} bytes")
    if not data:
        return data, None
    if cenc:
        data, anomaly = decode_content(data, cenc, max_decoded_bytes=limit)
        if anomaly is not None:
            markers.append(_DECODE_MARKERS[anomaly].format(_text(cenc), len(data)))
            if anomalies is not None and not (
                    anomaly == "body_decode_truncated" and message.body_truncated):
                anomalies.hit(anomaly)
    if len(data) > limit:
        data = data[:limit]
        markers.append(f"cut at {limit} bytes")
    text, marker = body_text(data, ctype, policy)
    if marker is not None:
        markers.append(marker)
    return data, text


def to_details(call: ApiCall, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               max_params: int = DEFAULT_MAX_PARAMS, binary_policy: str = "skip",
               anomalies: Anomalies | None = None, host: str | None = None,
               drops: Drops | None = None) -> list[list[str]]:
    """Resurface details for one call; see the module docstring for every rule.

    ``drops(key)`` (optional, from the logging rules) says a detail would be removed anyway:
    such headers are not built and such bodies are not decoded, which is most of the work
    under the strict default. A form body is still decoded when its fields may be kept.
    """
    out: list[list[str]] = []
    request, response = call.request, call.response
    request_markers: list[str] = []
    response_markers: list[str] = []
    if request is not None:
        out.append(["request_method", _text(request.method)])
        url_at = len(out)
        out.append(["request_url", ""])
        req_host, ctype, cenc = _headers(request.headers, "request_header:", _REQUEST_KEYS, out,
                                         drops)
        out[url_at][1] = request_url(request, req_host, call.server)
        budget = max_params
        _, _, query = request.target.partition(b"?")
        if query:
            budget = _params(query.partition(b"#")[0], None, budget, out)
        form = ctype is not None and content_type_info(ctype).media == _FORM
        if drops is None or form or not drops("request_body"):
            data, text = _body(request, ctype, cenc, max_body_bytes, binary_policy,
                               request_markers, anomalies)
        else:
            data, text = b"", None
        if data and budget >= 0 and ctype:
            info = content_type_info(ctype)
            if info.media == _FORM:
                budget = _params(data, info.codec if info.charset else None, budget, out)
        if budget < 0 and anomalies is not None:
            anomalies.hit("request_params_limit")
        if text:
            out.append(["request_body", text])
    if response is not None:
        code = str(response.status) if response.status is not None else _text(response.status_raw)
        if code:
            out.append(["response_code", code])
        _, ctype, cenc = _headers(response.headers, "response_header:", _RESPONSE_KEYS, out,
                                  drops)
        text = None
        if drops is None or not drops("response_body"):
            _, text = _body(response, ctype, cenc, max_body_bytes, binary_policy,
                            response_markers, anomalies)
        if text:
            out.append(["response_body", text])
    now, interval = call_timing(call)
    if now is not None:
        out.append(["now", now])
    if interval is not None:
        out.append(["interval", interval])
    out += [[NOTE_KEY, note] for note in call.notes]
    out += [[REQUEST_BODY_KEY, m] for m in request_markers]
    out += [[RESPONSE_BODY_KEY, m] for m in response_markers]
    if host:
        out.append(["host", host])
    return out

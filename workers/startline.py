"""Start lines of HTTP/1.x messages: the request line and the status line (RFC 9112 sections
3 and 4).

Strategy: the regexes are the definition, lenient the way real servers and browsers are:
several spaces or tabs may separate the parts; a request line without a version is HTTP/0.9
(RFC 9112 appendix C.1); the version token is matched case-insensitively. Most traffic uses
one plain form (a common method, single spaces, HTTP/1.0 or 1.1, a three-digit status), which
``split_request_line`` and ``split_status_line`` take apart with one split each, returning
exactly the regexes' groups (property-tested in ``tests/workers/test_startline.py``) or None for
anything else, which then goes to the regexes. ``request_parts`` and ``status_parts`` give the
parts either way and hold recent lines in bounded memos: start lines repeat far more than
their heads do, and a repeat then costs one look-up.
"""
from __future__ import annotations

import re
from typing import Any, Final

# A request line: method token, target, optional version. Targets may hold any byte except
# CR/LF; white space runs are tolerated between the parts.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
REQUEST_LINE: Final = re.compile(
    rb"(" + _TOKEN + rb")[ \t]+([^ \t\r\n]+(?:[ \t]+[^ \t\r\n]+)*?)"
    rb"(?:[ \t]+([Hh][Tt][Tt][Pp]/\d+(?:\.\d+)?))?[ \t]*\r?$"
)
STATUS_LINE: Final = re.compile(
    rb"([Hh][Tt][Tt][Pp]/\d+(?:\.\d+)?)(?:[ \t]+([^ \t\r\n]*))?(?:[ \t]+([^\r\n]*))?\r?$"
)
# Where a message may start when resynchronising: a request line with an HTTP/1.x version,
# or a status line. Anchored at a line start by the callers.
RESYNC_REQUEST: Final = re.compile(rb"(?:^|\n)(" + _TOKEN + rb") [^ \r\n]+ HTTP/1\.[01]\r?\n")
RESYNC_STATUS: Final = re.compile(rb"(?:^|\n)(HTTP/1\.[01] \d{3})[ \r\n]")
# The plain start lines most traffic uses, split without a regex (split_request_line,
# split_status_line); anything else goes to REQUEST_LINE / STATUS_LINE.
# Tuples, most common first: ``in`` compares (length, then bytes) and never hashes, and a
# fresh bytes object's first hash (a set look-up) costs more than those few comparisons.
_PLAIN_METHODS: Final = (b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS")
_PLAIN_VERSIONS: Final = (b"HTTP/1.1", b"HTTP/1.0")
# Start lines seen recently -> request_parts() / status_parts(): a server sends few distinct
# status lines, and clients repeat their requests (polling, health checks, the same endpoint
# for another user only when its target is the same). Bounded: lines up to 128 (status) or
# 256 (request) bytes, 1,024 of each, cleared when full. Typed Any: see framing._LINES.
_STATUS_HELD: Final[dict[bytes, Any]] = {}
_REQUESTS_HELD: Final[dict[bytes, Any]] = {}
_HELD_MAX: Final = 1024
_STATUS_HELD_BYTES: Final = 128
_REQUEST_HELD_BYTES: Final = 256


def split_request_line(line: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(method, target, version) of a plain request line, exactly ``REQUEST_LINE``'s groups:
    a common method, one space each side of the target, ``HTTP/1.0`` or ``HTTP/1.1``. None
    for any other line (the caller then uses ``REQUEST_LINE``)."""
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if method not in _PLAIN_METHODS or version not in _PLAIN_VERSIONS or not target \
            or 9 in target or 13 in target:  # TAB, CR (an int: a byte string costs 7x more)
        return None
    return method, target, version


def split_status_line(line: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(version, 3-digit status, reason) of a plain status line, exactly ``STATUS_LINE``'s
    groups (a missing reason is ``b""``): ``HTTP/1.0`` or ``HTTP/1.1``, one space, three
    digits, then a space and a reason not starting with white space, or nothing. None for any
    other line (the caller then uses ``STATUS_LINE``)."""
    version, _, rest = line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in _PLAIN_VERSIONS or len(code) != 3 or not code.isdigit() \
            or (reason and reason[0] in (32, 9)) or 13 in reason:
        return None
    return version, code, reason


def status_parts(line: bytes) -> tuple[bytes, bytes, bytes, int | None] | None:
    """(version, status as sent, reason, status as a number or None) of a status line, what
    ``STATUS_LINE``'s groups give (a missing part is ``b""``; the number only for three
    digits); None when it does not match. Repeated lines come from a bounded memo."""
    held = _STATUS_HELD.get(line)
    if held is not None:
        return held
    plain = split_status_line(line)
    if plain is not None:
        version, raw, reason = plain
    else:
        m = STATUS_LINE.match(line)
        if m is None:
            return None
        version, raw, reason = m.group(1), m.group(2) or b"", m.group(3) or b""
    held = (version, raw, reason, int(raw) if len(raw) == 3 and raw.isdigit() else None)
    if len(line) <= _STATUS_HELD_BYTES:
        if len(_STATUS_HELD) >= _HELD_MAX:
            _STATUS_HELD.clear()
        _STATUS_HELD[line] = held
    return held


def request_parts(line: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(method, target, version) of a request line with a version, ``REQUEST_LINE``'s groups;
    None when it does not match or has no version (HTTP/0.9). Repeated lines come from a
    bounded memo."""
    held = _REQUESTS_HELD.get(line)
    if held is not None:
        return held
    held = split_request_line(line)
    if held is None:
        # a status line never matches REQUEST_LINE: "/" is not a method token character
        m = REQUEST_LINE.match(line)
        if m is None or not m.group(3):
            return None
        held = (m.group(1), m.group(2), m.group(3))
    if len(line) <= _REQUEST_HELD_BYTES:
        if len(_REQUESTS_HELD) >= _HELD_MAX:
            _REQUESTS_HELD.clear()
        _REQUESTS_HELD[line] = held
    return held

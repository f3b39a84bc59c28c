"""startline: the plain start-line splits equal the regexes' groups wherever they accept a
line; a status line never matches REQUEST_LINE (http1 relies on it)."""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from workers import startline
from workers.startline import (
    REQUEST_LINE, STATUS_LINE, request_parts, split_request_line, split_status_line,
    status_parts,
)


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from([b"HTTP/", b"http/", b"HtTp/"]), st.binary(max_size=30))
def test_a_status_line_never_matches_the_request_line(start: bytes, rest: bytes) -> None:
    # http1 relies on it: "/" is not a method token character, so no check for "HTTP/"
    assert REQUEST_LINE.match(start + rest) is None


_START_PIECES = [b"GET", b"POST", b"OPTIONS", b"BREW", b"get", b"HTTP/1.1", b"HTTP/1.0",
                 b"http/1.1", b"HTTP/2", b"200", b"404", b"20", b"2000", b"OK", b"Not Found",
                 b"/a", b"/a?b=c", b"*", b" ", b"  ", b"\t", b"\r", b"\x0b", b"\x0c", b"x"]
_start_line = st.lists(st.sampled_from(_START_PIECES), max_size=7).map(b"".join)


@settings(max_examples=4000, deadline=None)
@given(_start_line)
@example(b"GET /a HTTP/1.1")
@example(b"HTTP/1.1 200 OK")
@example(b"HTTP/1.1 200")
@example(b"HTTP/1.1 200 ")
def test_the_plain_start_line_splits_equal_the_regexes(line: bytes) -> None:
    """Whenever the split accepts a line, the regex matches it with the same groups."""
    request = split_request_line(line)
    if request is not None:
        m = REQUEST_LINE.match(line)
        assert m is not None and m.groups() == request
    status = split_status_line(line)
    if status is not None:
        m = STATUS_LINE.match(line)
        assert m is not None
        version, code, reason = m.groups()
        assert (version, code, reason or b"") == status


def test_the_plain_start_lines_and_what_goes_to_the_regexes() -> None:
    assert split_request_line(b"GET /a?b HTTP/1.1") == (b"GET", b"/a?b", b"HTTP/1.1")
    assert split_status_line(b"HTTP/1.0 404 Not Found") == (b"HTTP/1.0", b"404", b"Not Found")
    assert split_status_line(b"HTTP/1.1 204") == (b"HTTP/1.1", b"204", b"")
    for line in (b"GET  /a HTTP/1.1", b"GET /a\tb HTTP/1.1", b"BREW /pot HTTP/1.1",
                 b"GET /a HTTP/2", b"GET /a", b"get /a HTTP/1.1", b"GET /a HTTP/1.1 "):
        assert split_request_line(line) is None, line
    for line in (b"HTTP/1.1 2000 OK", b"HTTP/1.1  200 OK", b"HTTP/1.1 200  OK",
                 b"HTTP/1.1 200 O\rK", b"http/1.1 200 OK", b"HTTP/1.1 20x OK"):
        assert split_status_line(line) is None, line



@settings(max_examples=3000, deadline=None)
@given(_start_line)
@example(b"HTTP/1.1 200 OK")
@example(b"HTTP/1.1  404  Not Found")  # the regex's looser spacing
@example(b"HTTP/1.1 abc")
def test_status_parts_are_the_regex_groups_with_the_number_first_time_and_held(line: bytes,
                                                                              ) -> None:
    m = STATUS_LINE.match(line)
    expected = None
    if m is not None:
        version, raw, reason = m.group(1), m.group(2) or b"", m.group(3) or b""
        number = int(raw) if len(raw) == 3 and raw.isdigit() else None
        expected = (version, raw, reason, number)
    assert status_parts(line) == expected
    assert status_parts(line) == expected  # the second time from the memo when it is held


def test_start_lines_are_held_within_a_bound() -> None:
    startline._STATUS_HELD.clear()
    status_parts(b"HTTP/1.1 200 OK")
    assert status_parts(b"HTTP/1.1 200 OK") is status_parts(b"HTTP/1.1 200 OK")  # held
    assert status_parts(b"HTTP/1.1 200 " + b"k" * 200) is not status_parts(
        b"HTTP/1.1 200 " + b"k" * 200)  # a long line is split every time
    for i in range(startline._HELD_MAX + 10):
        status_parts(b"HTTP/1.1 200 reason %d" % i)
        assert len(startline._STATUS_HELD) <= startline._HELD_MAX
    assert status_parts(b"HTTP/1.1 404 Not Found") == (b"HTTP/1.1", b"404", b"Not Found", 404)
    for i in range(startline._HELD_MAX + 10):  # a fresh target each time
        assert request_parts(b"GET /item/%d HTTP/1.1" % i) == (b"GET", b"/item/%d" % i,
                                                              b"HTTP/1.1")
        assert len(startline._REQUESTS_HELD) <= startline._HELD_MAX


@settings(max_examples=3000, deadline=None)
@given(_start_line)
@example(b"GET /a HTTP/1.1")
@example(b"GET  /a  HTTP/1.1")  # the regex's looser spacing
@example(b"GET /a")  # HTTP/0.9: not a request_parts line
def test_request_parts_are_the_regex_groups_with_a_version_and_held(line: bytes) -> None:
    m = REQUEST_LINE.match(line)
    expected = m.groups() if m is not None and m.group(3) else None
    assert request_parts(line) == expected
    assert request_parts(line) == expected  # the second time from the memo when it is held
    if expected is not None and len(line) <= 256:
        assert request_parts(line) is request_parts(line)

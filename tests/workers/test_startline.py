"""startline: the plain start-line splits equal the regexes' groups wherever they accept a
line; a status line never matches REQUEST_LINE (http1 relies on it)."""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from workers.startline import REQUEST_LINE, STATUS_LINE, split_request_line, split_status_line


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


"""framing.plain_head, the fast head split, against the general rules it must equal.

Heads are drawn from an alphabet rich in what the rules treat specially (white space of every
kind ``bytes.strip`` removes, CR, LF, colons): whenever ``plain_head`` accepts a head, its
start line, headers and body offset must be exactly what the general path computes from the
same bytes (``find_head_end`` + ``parse_header_lines``).
"""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from workers import framing
from workers.anomalies import Anomalies
from workers.framing import find_head_end, parse_header_lines, plain_head

_ALPHABET = b"ab: \t\x0b\x0c\r\n:"
_line = st.binary(max_size=12).map(lambda b: bytes(_ALPHABET[x % len(_ALPHABET)] for x in b))


@settings(max_examples=3000, deadline=None)
@given(st.lists(_line, min_size=1, max_size=6), st.binary(max_size=4))
@example([b"GET / HTTP/1.1", b"Host:  h ", b"X:\x0bv", b"Y : 1", b"Z:"], b"")
@example([b"HTTP/1.1 200 OK", b"A: \t", b"B: b\x0c", b"C:  c"], b"body")
@example([b"GET / HTTP/1.1", b"no colon", b"X: a\n"], b"b")  # a bare LF after a general line
def test_plain_head_equals_the_general_rules(lines: list[bytes], body: bytes) -> None:
    chunk = b"\r\n".join(lines) + b"\r\n\r\n" + body
    found = plain_head(chunk)
    assert plain_head(chunk) == found  # the second time from the memos
    if found is None:
        return
    line, headers, body_start = found
    end, start = find_head_end(chunk)  # type: ignore[misc]
    assert body_start == start
    general = bytes(chunk[:end]).split(b"\n")
    assert line.removesuffix(b"\r") == general[0].removesuffix(b"\r")
    if headers is not None:
        assert headers == parse_header_lines(general[1:], Anomalies())


def test_the_usual_shape_and_its_edges() -> None:
    got = plain_head(b"GET / HTTP/1.1\r\nHost: h\r\nA:  b \r\nC:d\r\nE :\x0bf\r\n\r\nrest")
    assert got == (b"GET / HTTP/1.1",
                   [(b"Host", b"h"), (b"A", b"b"), (b"C", b"d"), (b"E", b"f")], 47)
    assert plain_head(b"GET / HTTP/1.1\nHost: h\r\n\r\n") is None  # bare LF: general path
    assert plain_head(b"GET / HTTP/1.1\r\nHost: h\r\n") is None  # no blank line yet
    assert plain_head(b"GET / HTTP/1.1\r\n folded\r\n\r\n") == (b"GET / HTTP/1.1", None, 27)


def test_repeated_header_lines_come_from_the_bounded_memo() -> None:
    framing._LINES.clear()
    head = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nX-Long: " + b"v" * 300 + b"\r\n\r\n"
    first, second = plain_head(head), plain_head(head)
    assert first == second == (b"HTTP/1.1 200 OK",
                               [(b"Server", b"nginx"), (b"X-Long", b"v" * 300)], len(head))
    assert first is not None and second is not None and first[1] is not None
    assert second[1] is not None and second[1][0][1] is first[1][0][1]  # the memo's objects
    assert second[1][1][1] is not first[1][1][1]  # a line over 256 bytes is parsed every time
    assert list(framing._LINES) == [b"Server: nginx"]
    for i in range(framing._LINES_MAX + 10):  # unique lines: the memo clears, never grows past
        plain_head(b"GET / HTTP/1.1\r\nX-Id: %d\r\n\r\n" % i)
        assert len(framing._LINES) <= framing._LINES_MAX
    assert plain_head(b"GET / HTTP/1.1\r\nX-Id: 7\r\n\r\n") == (
        b"GET / HTTP/1.1", [(b"X-Id", b"7")], 27)


def test_a_repeated_header_block_is_held_whole_and_each_head_gets_its_own_list() -> None:
    framing._LINES.clear()
    framing._BLOCKS.clear()
    head = b"GET /a HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
    first = plain_head(head)
    assert not framing._BLOCKS  # lines seen for the first time: the block is not held yet
    second, third = plain_head(head), plain_head(b"POST /b HTTP/1.1" + head[15:] + b"body")
    assert list(framing._BLOCKS) == [b"Host: h\r\nAccept: */*"]
    pairs = [(b"Host", b"h"), (b"Accept", b"*/*")]
    assert first == second == (b"GET /a HTTP/1.1", pairs, len(head))
    assert third == (b"POST /b HTTP/1.1", pairs, len(head) + 1)
    assert first is not None and second is not None and third is not None
    assert second[1] is not third[1]  # its own list: chunked trailers extend one in place
    assert second[1] is not None and second[1][0] is first[1][0]  # type: ignore[index]
    for i in range(framing._BLOCKS_MAX + 10):  # distinct blocks: cleared, never past the bound
        block_head = b"GET / HTTP/1.1\r\nX-Id: %d\r\n\r\n" % (i % 3000)
        plain_head(block_head)
        plain_head(block_head)
        assert len(framing._BLOCKS) <= framing._BLOCKS_MAX
    big = b"GET / HTTP/1.1\r\nX: " + b"v" * 200 + (b"\r\nA: b" * 200) + b"\r\n\r\n"
    assert plain_head(big) == plain_head(big)
    assert big[16:-4] not in framing._BLOCKS  # over 1 KiB: split every time

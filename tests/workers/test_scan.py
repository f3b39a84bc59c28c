"""scan.head_bounds: the C helper against its definition in Python, and the definition
against the plain meaning (two ``bytes.find`` calls) on inputs rich in CR and LF."""
from __future__ import annotations

import os

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from workers import scan

PURE = os.environ.get("NETWORK_SNIFFER_PURE", "") not in ("", "0")
_ALPHABET = b"\r\n\r\nab :"
_chunks = st.binary(max_size=40).map(lambda b: bytes(_ALPHABET[x % len(_ALPHABET)] for x in b))


def _by_finds(chunk: bytes) -> tuple[int, int]:
    """What framing.plain_head used before: the blank line, then the first CRLF before it;
    a chunk whose first line feed is bare counts as (-1, -1) (the general rules take it)."""
    lf = chunk.find(b"\n")
    end = chunk.find(b"\r\n\r\n")
    if lf <= 0 or chunk[lf - 1] != 13 or end < 0:
        return -1, -1
    return chunk.find(b"\r\n", 0, end), end


@settings(max_examples=5000, deadline=None)
@given(_chunks)
@example(b"GET / HTTP/1.1\r\n\r\n")  # a start line alone
@example(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nbody\r\n\r\n")
@example(b"\r\n\r\n")
@example(b"\n\r\n\r\n")
@example(b"a\nb\r\n\r\n")  # a bare LF first
@example(b"a\r\nb\r\n\r")  # not yet complete
def test_the_definition_is_two_finds(chunk: bytes) -> None:
    assert scan.head_bounds_py(chunk) == _by_finds(chunk)


@pytest.mark.skipif(PURE, reason="pure-Python install (NETWORK_SNIFFER_PURE): no C helper")
def test_the_c_helper_is_what_runs() -> None:
    assert scan.ACCELERATED
    assert scan.head_bounds is not scan.head_bounds_py


@pytest.mark.skipif(not scan.ACCELERATED, reason="no C helper in this install")
@settings(max_examples=5000, deadline=None)
@given(_chunks)
@example(b"")
@example(b"\n")
@example(b"\r\n\r\n")
@example(b"x\r\n\r\n")
@example(b"x\r\n\r")
def test_the_c_helper_agrees_with_the_definition(chunk: bytes) -> None:
    assert scan.head_bounds(chunk) == scan.head_bounds_py(chunk)


@pytest.mark.skipif(not scan.ACCELERATED, reason="no C helper in this install")
def test_the_c_helper_takes_bytes_only() -> None:
    with pytest.raises(TypeError, match="takes bytes, not bytearray"):
        scan.head_bounds(bytearray(b"a\r\n\r\n"))  # type: ignore[arg-type]
    long_head = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 10_000 + b"\r\nbody"
    assert scan.head_bounds(long_head) == (14, len(long_head) - 8)

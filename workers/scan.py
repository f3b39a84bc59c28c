"""Where an HTTP/1.x head ends: the first CRLF and the first CRLFCRLF of a message's bytes.

Strategy: ``head_bounds_py`` is the definition. ``head_bounds`` is the C helper of the same
name (``workers/_scan.c``, built with the compiled hot path, see setup.py) when it is
installed, else the definition itself (a pure install, ``NETWORK_SNIFFER_PURE=1``).
``tests/workers/test_scan.py`` checks that the two agree on every input. The C helper exists
for one reason: the two ``bytes.find`` calls here cost about 2,800 instructions per head on
CPython 3.11, compiled or not (the method call, not the search), and it costs about 370.
"""
from __future__ import annotations

from typing import Final

from workers.native import native_or


def head_bounds_py(chunk: bytes) -> tuple[int, int]:
    """(eol, end): ``end`` is where the first CRLFCRLF starts; ``eol`` is where the first
    CRLF before it starts, or -1 when that CRLF is the start of ``end`` itself (a start line
    alone). (-1, -1) when there is no CRLFCRLF, or when the first line feed is not preceded by
    CR (a head with a bare LF, which takes the general rules anyway)."""
    lf = chunk.find(b"\n")
    if lf <= 0 or chunk[lf - 1] != 13:
        return -1, -1
    end = chunk.find(b"\r\n\r\n", lf - 1)  # its line feed is at lf or after
    if end < 0:
        return -1, -1
    return (-1 if end == lf - 1 else lf - 1), end


_LOADED = native_or("workers._scan", "head_bounds", head_bounds_py)
#: the C helper, or ``head_bounds_py`` in a pure install
head_bounds: Final = _LOADED[0]
#: whether ``head_bounds`` is the C helper
ACCELERATED: Final = _LOADED[1]

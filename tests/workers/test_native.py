"""native_or: the C helper when its module imports, the Python definition otherwise."""
from __future__ import annotations

import os

from workers import scan
from workers.native import native_or

PURE = os.environ.get("NETWORK_SNIFFER_PURE", "") not in ("", "0")


def _definition(chunk: bytes) -> tuple[int, int]:
    return -1, -1


def test_a_missing_helper_module_gives_the_definition() -> None:
    assert native_or("workers._no_such_helper", "head_bounds", _definition) == (_definition,
                                                                               False)


def test_an_installed_helper_is_taken_over_the_definition() -> None:
    got, native = native_or("workers._scan", "head_bounds", _definition)
    assert native is scan.ACCELERATED
    assert (got is _definition) is not native
    if native:
        assert got(b"GET / HTTP/1.1\r\nA: b\r\n\r\n") == (14, 20)
    assert native or PURE  # a compiled install always has its helpers

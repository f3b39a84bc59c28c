"""The interface every output implements (capture URL, rotating files, one file, stdout).

Rules for implementers: ``write`` is called from one thread at tens of thousands of calls per
second, so it only appends to a bounded buffer and never waits for the network; ``write_many``
takes a batch with C-level work per line (``fill_cuts`` finds where the buffer would fill, so
chunks and bundles are cut exactly where line-by-line writes would cut them); ``close`` flushes
everything and says whether anything was left undelivered; losses are counted in ``counters()``
and logged, never silent.
"""
from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate
from typing import Protocol, runtime_checkable


@runtime_checkable
class Sink(Protocol):
    """Where serialised Resurface messages go."""

    def write(self, line: bytes) -> None:
        """Accept one message: a JSON array already serialised, without a trailing newline."""

    def write_many(self, lines: list[bytes]) -> None:
        """Accept messages in order, exactly as ``write`` of each would (buffer limits too)."""

    def flush(self) -> None:
        """Push buffered messages towards their destination (does not wait for delivery)."""

    def close(self, deadline_s: float | None = None) -> bool:
        """Flush everything within ``deadline_s`` seconds; True when nothing is undelivered."""

    def counters(self) -> dict[str, int]:
        """A snapshot of named counters (calls written, sent, dropped, ...)."""


def cumulative_sizes(lines: list[bytes]) -> list[int]:
    """Bytes of the first ``j + 1`` lines, each with its newline, for every ``j``."""
    return list(accumulate(map((1).__add__, map(len, lines))))


def fill_index(sizes: list[int], start: int, used_bytes: int, room_bytes: int,
               room_lines: int) -> int:
    """The first line ``j >= start`` whose addition brings a buffer to ``room_bytes`` more
    bytes or ``room_lines`` more lines (``len(sizes)`` when none does); ``sizes`` is
    ``cumulative_sizes(lines)`` and ``used_bytes`` what lines before ``start`` took of it."""
    j = min(bisect_left(sizes, used_bytes + room_bytes, start), start + max(room_lines, 1) - 1)
    return j if j < len(sizes) else len(sizes)

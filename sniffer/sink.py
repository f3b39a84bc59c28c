"""The interface every output implements (capture URL, rotating files, one file, stdout).

Rules for implementers: ``write`` is called from one thread at tens of thousands of calls per
second, so it only appends to a bounded buffer and never waits for the network; ``close`` flushes
everything and says whether anything was left undelivered; losses are counted in ``counters()``
and logged, never silent.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Sink(Protocol):
    """Where serialised Resurface messages go."""

    def write(self, line: bytes) -> None:
        """Accept one message: a JSON array already serialised, without a trailing newline."""

    def flush(self) -> None:
        """Push buffered messages towards their destination (does not wait for delivery)."""

    def close(self, deadline_s: float | None = None) -> bool:
        """Flush everything within ``deadline_s`` seconds; True when nothing is undelivered."""

    def counters(self) -> dict[str, int]:
        """A snapshot of named counters (calls written, sent, dropped, ...)."""

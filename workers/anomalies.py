"""Named anomaly counters: malformed or unusual traffic is counted, never raised.

Strategy: every module of the core that can meet bad input declares the names it may count
in a module-level ``ANOMALIES`` dict (name -> one-line meaning) and registers it here with
``register()``. Counting is a plain ``collections.Counter`` keyed by those names, so it is
cheap on hot paths and easy to merge across processes. ``tests`` check that every name a
module counts is registered, so the list below each module stays the documentation.
"""
from __future__ import annotations

from collections import Counter

#: Every known anomaly name -> its meaning, filled by the modules that count them.
REGISTRY: dict[str, str] = {}


def register(names: dict[str, str]) -> dict[str, str]:
    """Add a module's anomaly names to the registry; returns ``names`` for assignment."""
    for name, meaning in names.items():
        if REGISTRY.get(name, meaning) != meaning:
            raise ValueError(f"anomaly {name!r} registered twice with different meanings")
        REGISTRY[name] = meaning
    return names


class Anomalies(Counter[str]):
    """A counter of anomaly names (and other named events) for one component."""

    def hit(self, name: str, n: int = 1) -> None:
        """Count ``n`` occurrences of ``name``."""
        self[name] += n

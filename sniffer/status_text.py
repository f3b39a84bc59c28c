"""Fallback status line until the metrics module lands (replaced by sniffer/metrics)."""
from __future__ import annotations


def status_line(totals: dict[str, int], per_process: dict[str, dict[str, int]]) -> str:
    """One line: packets, calls, drops, worker load."""
    loads = " ".join(f"{n} {c.get('busy_permille', 0) / 10:.0f}%"
                     for n, c in sorted(per_process.items()) if n.startswith("worker"))
    return (f"packets={totals.get('packets', 0)} calls={totals.get('calls_out', 0)} "
            f"kernel_dropped={totals.get('kernel_dropped', 0)} "
            f"ring_dropped={totals.get('ring_segments_dropped', 0)} | {loads}")

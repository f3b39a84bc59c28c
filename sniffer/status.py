"""What the running sniffer tells people: the stderr status line and the exit summary.

Strategy: ``status_line``, ``final_summary`` and ``health_of`` are pure functions of a
``metrics.Snapshot`` (and rates, loads, liveness) that the supervisor passes in. The HTTP
endpoint serving ``/metrics`` and ``/healthz`` is ``sniffer/status_server.py``, imported
only when a metrics port is configured (``http.server`` is a sixth of the supervisor's
start-up imports).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from sniffer.metrics import Snapshot, WorkerStatus, worker_order

_CAPTURE = ("packets", "segments", "segments_sent", "kernel_received", "kernel_dropped",
            "kernel_drops", "interface_dropped", "interface_drops", "ring_frames_dropped",
            "ring_segments_dropped")
_CALLS = ("calls", "calls_dropped_by_rules", "calls_out")
#: Status-line fields and the counter names they read (the first one present wins).
_CALLS_NAMES = ("calls", "calls_out")
_KERNEL_DROP_NAMES = ("kernel_dropped", "kernel_drops")

Load = float | WorkerStatus | None


def compact(value: float) -> str:
    """A short human number: ``850``, ``0.5``, ``12.3k``, ``4.1M``, ``2.0G``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{suffix}"
    if isinstance(value, int) or value >= 10 or value == int(value):
        return str(int(round(value)))
    return f"{value:.1f}"


def _load_text(load: Load) -> str:
    if isinstance(load, WorkerStatus):
        load = load.load if load.alive else None
    if load is None:
        return "down"
    return f"{round(min(max(load, 0.0), 1.0) * 100)}%"


def top_anomalies(totals: Snapshot, n: int) -> list[tuple[str, int]]:
    """The ``n`` most frequent non-zero anomalies, most frequent first, then by name."""
    hits = [(name, count) for name, count in totals.anomalies.items() if count > 0]
    return sorted(hits, key=lambda item: (-item[1], item[0]))[: max(n, 0)]


def status_line(
    totals: Snapshot,
    rates: Mapping[str, float],
    per_worker_load: Mapping[int, Load] | Sequence[Load] = (),
    anomalies_top_n: int = 5,
) -> str:
    """One compact stderr line: rates, drops, worker loads and the top anomalies.

    Example: ``pkts 12.3k/s calls 3.1k/s kdrop 0 ringdrop 0 | w0 45% w1 38% | tcp_gap=3``.
    A rate not known yet (first line) shows as ``-/s``; a worker that is not alive as ``down``.
    """

    def rate(*names: str) -> str:
        name = next((n for n in names if n in rates), None)
        return f"{compact(rates[name])}/s" if name is not None else "-/s"

    counters = totals.counters
    kernel_drops = next((counters[n] for n in _KERNEL_DROP_NAMES if n in counters), 0)
    head = [f"pkts {rate('packets')}", f"calls {rate(*_CALLS_NAMES)}",
            f"kdrop {compact(kernel_drops)}",
            f"ringdrop {compact(counters.get('ring_frames_dropped', 0))}"]
    output_lost = sum(v for k, v in counters.items() if k.startswith("output_")
                      and k.endswith(("dropped_calls", "rejected_calls")))
    if output_lost:
        head.append(f"outdrop {compact(output_lost)}")
    parts = [" ".join(head)]
    loads = per_worker_load if isinstance(per_worker_load, Mapping) \
        else dict(enumerate(per_worker_load))
    if loads:
        parts.append(" ".join(f"w{i} {_load_text(loads[i])}" for i in worker_order(loads)))
    top = top_anomalies(totals, anomalies_top_n)
    if top:
        more = sum(1 for v in totals.anomalies.values() if v > 0) - len(top)
        text = " ".join(f"{name}={count}" for name, count in top)
        parts.append(text + (f" +{more} more" if more > 0 else ""))
    return " | ".join(parts)


def final_summary(totals: Snapshot) -> list[str]:
    """Lines for stderr at exit: capture, calls, output, other counters, anomalies."""
    counters = totals.counters

    def pairs(names: Sequence[str]) -> str:
        return " ".join(f"{name}={counters[name]}" for name in names)

    lines = []
    capture = [n for n in _CAPTURE if n in counters]
    calls = [n for n in _CALLS if n in counters]
    output = sorted(n for n, v in counters.items() if n.startswith("output_") and v)
    other = sorted(n for n, v in counters.items()
                   if v and n not in _CAPTURE and n not in _CALLS and not n.startswith("output_"))
    for title, names in (("capture", capture), ("calls", calls), ("output", output),
                         ("other", other)):
        if names:
            lines.append(f"{title}: {pairs(names)}")
    anomalies = top_anomalies(totals, len(totals.anomalies))
    lines.append("anomalies: " + (" ".join(f"{n}={c}" for n, c in anomalies) or "none"))
    return lines


def health_of(alive: Mapping[str, bool]) -> tuple[bool, str]:
    """``(True, "ok")`` when every named process is alive, else ``(False, "not running: ...")``."""
    down = [name for name, up in alive.items() if not up]
    return (True, "ok") if not down else (False, "not running: " + ", ".join(down))

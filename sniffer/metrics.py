"""Counter totals over all processes, per-second rates, and the Prometheus text exposition.

Strategy: every process of the live pipeline reports plain ``dict[str, int]`` snapshots of
its counters. ``Totals`` folds them into one view with three kinds of value:

- *counters* only grow. Each process's previous report is kept, so a total is the sum of
  increments: when a restarted process starts again from zero, the total does not go back
  (a value lower than the last one is a reset and counts in full). ``forget(process)`` drops
  a process that is gone, so its successor under the same name counts from zero.
- *anomalies* are counters whose name is a registered anomaly (``workers.anomalies``); they
  form one labelled family, so the metric set does not change with each new anomaly name.
- *gauges* are point-in-time values (``connections_open``, ``output_queued_calls``, ...):
  names with an ``open``, ``queued``, ``pending``, ``buffered`` or ``in_use`` word, plus any
  listed in ``gauge_names``. The total of a gauge is the sum of the latest value per process.

``Totals.snapshot(at_s)`` freezes the view at a monotonic time the caller passes in (no clock
is read here); ``rates()`` of two snapshots gives per-second rates. Bad input never raises: it
is counted in ``metrics_bad_values`` / ``metrics_names_over_limit`` (``max_names`` cap).
``prometheus_text()`` renders text format 0.0.4 (prometheus.io/docs/instrumenting/
exposition_formats): ``# HELP``/``# TYPE`` before each family's samples, names sanitised to
``[a-zA-Z_:][a-zA-Z0-9_:]*`` (labels ``[a-zA-Z_][a-zA-Z0-9_]*``), label values escaped.
"""
from __future__ import annotations

import math
import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from workers.anomalies import REGISTRY

PREFIX = "network_sniffer_"
_Key = TypeVar("_Key", int, str)

_GAUGE_WORD = re.compile(r"(?:^|_)(?:open|queued|pending|buffered|in_use)(?:_|$)")
_BAD_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_BAD_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")

#: Per-process values that are not totals: the worker's load goes to ``worker_loads()``.
SKIPPED_NAMES = frozenset({"busy_permille"})

#: Help text of the counters and gauges the pipeline is known to report.
HELP: dict[str, str] = {
    "packets": "Packets read from the capture source.",
    "segments": "TCP segments handed to the workers.",
    "calls": "API calls (request and response pairs) built by the workers.",
    "calls_dropped_by_rules": "API calls dropped by the logging rules.",
    "calls_out": "API calls the aggregator handed to the output.",
    "kernel_received": "Packets the kernel saw for the capture (pcap_stats).",
    "kernel_dropped": "Packets the kernel dropped before the capture read them (pcap_stats).",
    "interface_dropped": "Packets the interface dropped (pcap_stats if_dropped).",
    "ring_frames_dropped": "Frames dropped because a shared-memory ring was full.",
    "ring_segments_dropped": "Segments lost in frames dropped because a ring was full.",
    "worker_restarts": "Worker processes restarted after they died.",
    "connections_open": "TCP connections tracked now.",
    "output_calls_sent": "API calls delivered to the output.",
    "output_dropped_calls": "API calls the output dropped (queue full or undeliverable).",
    "output_spool_dropped_calls": "API calls dropped from the disk spool (size cap).",
    "output_queued_calls": "API calls waiting in the output queue now.",
}


def is_gauge_name(name: str) -> bool:
    """True for names of point-in-time values (``connections_open``, ``*_queued_*``, ...)."""
    return _GAUGE_WORD.search(name) is not None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Totals over all processes at one monotonic instant ``at_s`` (seconds)."""

    at_s: float
    counters: Mapping[str, int] = field(default_factory=dict)
    anomalies: Mapping[str, int] = field(default_factory=dict)
    gauges: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What the supervisor knows about one worker: busy fraction (0..1), liveness, restarts."""

    load: float = 0.0
    alive: bool = True
    restarts: int = 0


class Totals:
    """Running totals of the counters that every process reports (see the module docstring)."""

    def __init__(
        self,
        anomaly_names: Container[str] | None = None,
        gauge_names: Iterable[str] = (),
        max_names: int = 1000,
        skipped_names: Container[str] = SKIPPED_NAMES,
    ) -> None:
        """``anomaly_names`` defaults to the live registry of ``workers.anomalies``."""
        self.skipped_names = skipped_names
        self.anomaly_names: Container[str] = REGISTRY if anomaly_names is None else anomaly_names
        self.gauge_names = frozenset(gauge_names)
        self.max_names = max_names
        self._sums: dict[str, int] = {"metrics_bad_values": 0, "metrics_names_over_limit": 0}
        self._last: dict[str, dict[str, int]] = {}
        self._gauges: dict[str, dict[str, float]] = {}

    def _is_gauge(self, name: str) -> bool:
        return name in self.gauge_names or is_gauge_name(name)

    def _known(self, name: str) -> bool:
        if name in self._sums or len(self._sums) < self.max_names:
            return True
        self._sums["metrics_names_over_limit"] += 1
        return False

    def update(self, process: str, counts: Mapping[str, object]) -> None:
        """Take the latest counters of ``process`` (its values since it started)."""
        last = self._last.setdefault(process, {})
        gauges: dict[str, float] = {}
        for name, value in counts.items():
            if name in self.skipped_names:
                pass
            elif not isinstance(name, str) or isinstance(value, bool):
                self._sums["metrics_bad_values"] += 1
            elif self._is_gauge(name) and isinstance(value, (int, float)) \
                    and not math.isnan(value):
                if self._known(name):
                    self._sums.setdefault(name, 0)  # reserves the name under max_names
                    gauges[name] = value
            elif isinstance(value, int) and value >= 0:
                if self._known(name):  # a value below the last one is a restart from zero
                    previous = last.get(name, 0)
                    increment = value - previous if value >= previous else value
                    self._sums[name] = self._sums.get(name, 0) + increment
                    last[name] = value
            else:
                self._sums["metrics_bad_values"] += 1
        self._gauges[process] = gauges

    def forget(self, process: str) -> None:
        """Drop a process that ended: its gauges go, its counted increments stay."""
        self._last.pop(process, None)
        self._gauges.pop(process, None)

    def snapshot(self, at_s: float) -> Snapshot:
        """Freeze the totals at monotonic time ``at_s`` (seconds, from the caller's clock)."""
        counters: dict[str, int] = {}
        anomalies: dict[str, int] = {}
        gauge_totals: dict[str, float] = {}
        for per_process in self._gauges.values():
            for name, value in per_process.items():
                gauge_totals[name] = gauge_totals.get(name, 0) + value
        for name, value in self._sums.items():
            if self._is_gauge(name):
                gauge_totals.setdefault(name, 0)
            elif name in self.anomaly_names:
                anomalies[name] = value
            else:
                counters[name] = value
        if isinstance(self.anomaly_names, Iterable):  # export zeros too: rate() works at once
            for name in self.anomaly_names:
                anomalies.setdefault(name, 0)
        return Snapshot(at_s, counters, anomalies, gauge_totals)


def worker_loads(
    per_process: Mapping[str, Mapping[str, object]], prefix: str = "worker-"
) -> dict[int, float]:
    """Busy fraction (0..1) of each ``<prefix><n>`` process from its ``busy_permille``."""
    loads: dict[int, float] = {}
    for name, counts in per_process.items():
        number = name[len(prefix):]
        permille = counts.get("busy_permille")
        if name.startswith(prefix) and number.isdigit() and isinstance(permille, (int, float)):
            loads[int(number)] = min(max(permille / 1000, 0.0), 1.0)
    return loads


def rates(previous: Snapshot, current: Snapshot) -> dict[str, float]:
    """Per-second rate of every counter between two snapshots; {} when no time passed."""
    elapsed_s = current.at_s - previous.at_s
    if not elapsed_s > 0:
        return {}
    return {
        name: max(value - previous.counters.get(name, 0), 0) / elapsed_s
        for name, value in current.counters.items()
    }


class RateMeter:
    """Keeps the previous snapshot so each new one yields the rates since the last."""

    def __init__(self) -> None:
        """Start with no previous snapshot (the first ``update`` returns {})."""
        self.previous: Snapshot | None = None
        self.last_rates: dict[str, float] = {}

    def update(self, current: Snapshot) -> dict[str, float]:
        """Rates since the previous snapshot; a snapshot no newer than it is ignored."""
        if self.previous is not None and not current.at_s > self.previous.at_s:
            return self.last_rates
        if self.previous is not None:
            self.last_rates = rates(self.previous, current)
        self.previous = current
        return self.last_rates


def worker_order(keys: Iterable[_Key]) -> list[_Key]:
    """Worker keys in numeric order (``2`` before ``10``), other keys after, by text."""
    return sorted(keys, key=lambda k: (0, k, "") if isinstance(k, int) else (1, 0, str(k)))


def metric_name(name: str) -> str:
    """``name`` made valid for ``[a-zA-Z_:][a-zA-Z0-9_:]*`` (bad characters become ``_``)."""
    name = _BAD_NAME_CHARS.sub("_", name)
    return name if name and not name[0].isdigit() else "_" + name


def label_name(name: str) -> str:
    """``name`` made valid for ``[a-zA-Z_][a-zA-Z0-9_]*``; the reserved ``__`` start is avoided."""
    name = _BAD_LABEL_CHARS.sub("_", name)
    if not name or name[0].isdigit():
        name = "_" + name
    return "x" + name if name.startswith("__") else name


def escape_label_value(value: str) -> str:
    """Escape backslash, double quote and line feed as the text format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Escape backslash and line feed in ``# HELP`` text."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers exactly, floats by repr, and ``NaN``/``+Inf``/``-Inf``."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


Sample = tuple[Mapping[str, str], float]


class _Exposition:
    """Families in insertion order; a name already used by another family is skipped."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: set[str] = set()

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> None:
        name = metric_name(name)
        if name in self.names:
            return
        self.names.add(name)
        self.lines.append(f"# HELP {name} {escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            pairs = ",".join(
                f'{label_name(k)}="{escape_label_value(str(v))}"' for k, v in labels.items()
            )
            self.lines.append(f"{name}{{{pairs}}} {format_value(value)}" if pairs
                              else f"{name} {format_value(value)}")


def prometheus_text(
    totals: Snapshot,
    per_worker: Mapping[int, WorkerStatus] | Iterable[WorkerStatus] = (),
    info: Mapping[str, str] | None = None,
) -> str:
    """The text exposition (format 0.0.4) of a snapshot, worker states and build info."""
    out = _Exposition()
    out.family(PREFIX + "info", "gauge", "Build information of the sniffer; always 1.",
               [(dict(info or {}), 1)])
    for name in sorted(totals.counters):
        base = metric_name(PREFIX + name)
        help_text = HELP.get(name, f"Count of {name} summed over all processes.")
        family = base if base.endswith("_total") else base + "_total"
        out.family(family, "counter", help_text, [({}, totals.counters[name])])
    out.family(PREFIX + "anomalies_total", "counter",
               "Anomalies met in the traffic or while processing it, by name.",
               [({"name": n}, totals.anomalies[n]) for n in sorted(totals.anomalies)])
    for name in sorted(totals.gauges):
        help_text = HELP.get(name, f"Current {name} summed over all processes.")
        out.family(PREFIX + name, "gauge", help_text, [({}, totals.gauges[name])])
    workers = per_worker if isinstance(per_worker, Mapping) else dict(enumerate(per_worker))
    order = worker_order(workers)
    out.family(PREFIX + "worker_load", "gauge",
               "Busy fraction of each worker process over the last interval (0..1).",
               [({"worker": str(i)}, min(max(float(workers[i].load), 0.0), 1.0)) for i in order])
    out.family(PREFIX + "worker_up", "gauge", "1 when the worker process is alive, else 0.",
               [({"worker": str(i)}, int(workers[i].alive)) for i in order])
    out.family(PREFIX + "worker_restarts_total", "counter",
               "Times the worker process was restarted.",
               [({"worker": str(i)}, workers[i].restarts) for i in order])
    return "\n".join(out.lines) + "\n"

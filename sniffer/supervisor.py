"""Supervisor: rings and processes up, status while running, orderly shutdown, cleanup.

Shell strategy (uvicorn's supervisor, faster-fifo's rings):
- It alone creates the shared-memory rings (capture -> worker i, worker i -> aggregator) and
  alone unlinks them, in a ``finally``; children attach by name. If the supervisor itself is
  killed, Python's resource tracker removes the segments, and the children notice they are
  orphaned and wind down.
- Children start in dependency order (aggregator, workers, capture), forked by the fork
  server (``start_method: forkserver``, see ``sniffer/pipeline.py``) or spawned.
- Signal handlers only set a flag. On SIGTERM/SIGINT the capture stops reading, flushes and
  sends END; each worker flushes every connection and sends END; the aggregator writes
  everything and closes the output (within the output deadline). Nothing complete on the
  wire is lost on a normal stop.
- A worker that dies is restarted on the same rings; its connections are counted as lost
  (``connections_lost``) and the others go on. The capture or aggregator dying is fatal.
- Counters arrive once a second from every process; a one-line status goes to stderr every
  ``status.interval_s`` and a summary at exit. The exit code is non-zero when anything failed.
"""
from __future__ import annotations

import logging
import multiprocessing.connection as mp_connection
import queue
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import workers.connection  # noqa: F401 - registers anomaly names for the metrics
import workers.core  # noqa: F401
import workers.decode  # noqa: F401
from sniffer import __version__, codec
from sniffer.config import Config
from sniffer.metrics import RateMeter, Totals, WorkerStatus, prometheus_text, worker_loads
from sniffer.pipeline import Wiring, child_entry, start_context, stop_start_server
from sniffer.ring import Ring
from sniffer.status import final_summary, health_of, status_line

if TYPE_CHECKING:
    from sniffer.status_server import MetricsServer

log = logging.getLogger("network-sniffer")


@dataclass
class Outcome:
    """How a pipeline run ended."""

    code: int
    totals: dict[str, int]
    errors: list[str] = field(default_factory=list)


class Supervisor:
    """Runs one pipeline: a capture, N workers and an aggregator."""

    def __init__(self, cfg: Config, source: str | None, deadline_s: float) -> None:
        self.cfg = cfg
        self.ctx = start_context(cfg.start_method)
        self.n = max(1, int(cfg.workers))
        self.deadline_s = deadline_s
        self.rings: list[Ring] = []
        inputs = [self._ring(cfg.capture.ring_bytes) for _ in range(self.n)]
        outputs = [self._ring(cfg.output.ring_bytes) for _ in range(self.n)]
        self.wiring = Wiring(inputs, outputs, self.ctx.Event(), self.ctx.Queue(1000),
                             source=source, ordered=source is not None,
                             lossless=source is not None)
        self.procs: dict[str, Any] = {}
        self.per_process: dict[str, dict[str, int]] = {}
        self.errors: list[str] = []
        self.signals: list[int] = []
        self.failed = False
        self.extra = {"worker_restarts": 0, "connections_lost": 0}
        self.restarts = [0] * self.n
        self.metrics = Totals(gauge_names=("output_all_delivered",))
        self.meter = RateMeter()
        self.exposition = ""
        self.server: MetricsServer | None = None

    def _ring(self, size: int) -> Ring:
        ring = Ring.create(size)
        self.rings.append(ring)
        return ring

    def _start(self, name: str, target: str, *args: Any) -> None:
        proc = self.ctx.Process(target=child_entry, args=(target, self.cfg, self.wiring, *args),
                                name=name, daemon=False)
        proc.start()
        self.procs[name] = proc
        log.info("started %s (pid %d)", name, proc.pid)

    def run(self) -> Outcome:
        """Start everything, supervise until the aggregator is done, clean up."""
        old = {s: signal.signal(s, lambda sig, _f: self.signals.append(sig))
               for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._start("aggregator", "sniffer.aggregator_proc:main", self.deadline_s)
            for i in range(self.n):
                self._start(f"worker-{i}", "sniffer.worker_proc:main", i)
            self._start("capture", "sniffer.capture_proc:main")
            self._start_metrics()
            self._supervise()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            self._shutdown()
            if self.server is not None:
                self.server.stop()
        for line in final_summary(self._snapshot()):
            print(f"network-sniffer: {line}", file=sys.stderr)
        return Outcome(1 if self.failed else 0, self.totals(), self.errors)

    def _start_metrics(self) -> None:
        port = self.cfg.status.metrics_port
        if port is None or self.wiring.source:
            return
        from sniffer.status_server import MetricsServer  # only with a metrics port

        self.server = MetricsServer(self.cfg.status.metrics_address, port,
                                    lambda: self.exposition, health=self._health)
        self.server.start()
        log.info("metrics on http://%s:%d/metrics, health on /healthz",
                 self.cfg.status.metrics_address, self.server.port)

    def _health(self) -> tuple[bool, str]:
        return health_of({n: p.is_alive() for n, p in self.procs.items()})

    def _snapshot(self):  # noqa: ANN202 - metrics.Snapshot
        self.metrics.update("supervisor", self.extra)
        return self.metrics.snapshot(time.monotonic())

    def _refresh_metrics(self, print_status: bool) -> None:
        snap = self._snapshot()
        rates = self.meter.update(snap)
        loads = worker_loads(self.per_process)
        statuses = {i: WorkerStatus(loads.get(i, 0.0), self.procs[f"worker-{i}"].is_alive(),
                                    self.restarts[i]) for i in range(self.n)}
        self.exposition = prometheus_text(snap, statuses, {"version": __version__})
        if print_status:
            print(status_line(snap, rates, loads), file=sys.stderr, flush=True)

    def _supervise(self) -> None:
        interval = self.cfg.status.interval_s
        next_status = time.monotonic() + interval if interval else float("inf")
        stop_at: float | None = None
        aggregator = self.procs["aggregator"]
        while aggregator.is_alive():
            # wakes as soon as the aggregator exits (the end of a `read`), else every 0.2 s
            mp_connection.wait([aggregator.sentinel], 0.2)
            self._drain_stats()
            if self.signals and stop_at is None:
                log.info("stopping (signal %d): flushing everything in flight", self.signals[0])
                self.wiring.stop.set()
                stop_at = time.monotonic() + self.deadline_s + 30
            if stop_at is not None and time.monotonic() > stop_at:
                log.error("shutdown took too long; stopping the processes")
                self.failed = True
                return
            self._check_children()
            due = time.monotonic() >= next_status
            if due:
                next_status = time.monotonic() + interval
            if due or self.server is not None:
                self._refresh_metrics(print_status=due)
        self._drain_stats()
        code = self.procs["aggregator"].exitcode
        if code == 3:
            self.errors.append("some calls were not delivered before the deadline "
                               "(they are in the spool)")
            self.failed = True
        elif code != 0:
            self.errors.append(f"the aggregator exited with code {code}")
            self.failed = True

    def _check_children(self) -> None:
        cap = self.procs["capture"]
        if not cap.is_alive() and cap.exitcode not in (0, None):
            self.failed = True
        for i in range(self.n):
            name = f"worker-{i}"
            proc = self.procs[name]
            if proc.is_alive() or proc.exitcode == 0:
                continue
            lost = self.per_process.get(name, {}).get("connections_open", 0)
            log.error("%s died (exit code %s); restarting it, %d connections lost",
                      name, proc.exitcode, lost)
            self.extra["worker_restarts"] += 1
            self.extra["connections_lost"] += lost
            self.restarts[i] += 1
            self.per_process.pop(name, None)
            self.metrics.forget(name)
            self._start(name, "sniffer.worker_proc:main", i)
            if not cap.is_alive():  # its END may have died with it
                count = self.per_process.get("capture", {}).get("packets", 0)
                self.wiring.inputs[i].put(codec.encode_control(f"END {count}"))

    def _drain_stats(self) -> None:
        try:
            while True:
                name, counters = self.wiring.stats.get_nowait()
                if name == "capture-error":
                    self.errors.append(str(counters.get("message")))
                else:
                    self.per_process[name] = counters
                    self.metrics.update(name, {k: v for k, v in counters.items()
                                               if k != "busy_permille"})
        except queue.Empty:
            pass

    def totals(self) -> dict[str, int]:
        """Counters summed over every process, plus the supervisor's own."""
        out: dict[str, int] = dict(self.extra)
        for counters in self.per_process.values():
            for k, v in counters.items():
                if k != "busy_permille":
                    out[k] = out.get(k, 0) + v
        return out

    def _shutdown(self) -> None:
        self.wiring.stop.set()
        end = time.monotonic() + 10
        for proc in self.procs.values():
            proc.join(max(0.1, end - time.monotonic()))
        for proc in self.procs.values():
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self._drain_stats()
        for ring in self.rings:
            ring.close()
            ring.unlink()
        if not any(proc.is_alive() for proc in self.procs.values()):
            stop_start_server(self.cfg.start_method)


def run_pipeline(cfg: Config, source: str | None, deadline_s: float) -> Outcome:
    """Run the pipeline on a capture file (``source``) or live (None)."""
    return Supervisor(cfg, source, deadline_s).run()

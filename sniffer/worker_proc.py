"""Worker process: segments from its ring in, serialised calls to the aggregator out.

Shell strategy: the work is ``WorkerLoop`` (the pure core plus the record builder); this
module only moves frames. Output lines travel with their order keys (KEYED_LINES); after a
``TICK`` (and after a ``SYNC``, which expires nothing) the worker reports ``MARK <index>`` so
an ordered aggregator knows how far this worker's calls are complete. Output frames wait
for ring space rather than drop: the
aggregator only moves bytes, so a full ring means a short stall, and calls are what the
whole pipeline exists for.
"""
from __future__ import annotations

import logging
import time

from sniffer import codec
from sniffer.config import Config
from sniffer.pipeline import (
    StatsReporter, Wiring, child_setup, orphaned, put_waiting, release_rings, tune_worker_malloc,
)
from sniffer.worker_loop import Line, WorkerLoop, load_rules

log = logging.getLogger(__name__)
MAX_LINES_PER_FRAME = 512


class WorkerShell:
    """Moves frames between the rings and one WorkerLoop."""

    def __init__(self, cfg: Config, wiring: Wiring, number: int) -> None:
        self.loop = WorkerLoop(cfg, load_rules(cfg))
        self.wiring = wiring
        self.inp = wiring.inputs[number]
        self.out = wiring.outputs[number]
        self.pending: list[Line] = []
        self.busy_s = 0.0
        self.started_s = time.monotonic()
        self.stats = StatsReporter(f"worker-{number}", wiring)

    def run(self) -> None:
        """Process frames until END (or the supervisor disappears)."""
        while True:
            frames = self.inp.get_many(64, timeout_s=0.2)
            t0 = time.monotonic()
            for frame in frames:
                if codec.frame_kind(frame) is codec.Kind.PACKETS:
                    lines = self.loop.feed_frame(frame)
                    if lines:
                        self.pending += lines
                    continue
                word, *args = codec.decode_control(frame).split()
                if word in ("TICK", "SYNC"):  # SYNC: how far this worker got, nothing expired
                    if word == "TICK":
                        self.pending += self.loop.tick(int(args[0]), int(args[1]))
                    self._send_lines()
                    self._put(codec.encode_control(f"MARK {int(args[0])}"))
                elif word == "END":
                    self.pending += self.loop.close(int(args[0]))
                    self._send_lines()
                    self._put(codec.encode_control("END"))
                    self._report(force=True)
                    return
            self._send_lines()
            self.busy_s += time.monotonic() - t0
            self._report()
            if not frames and orphaned(self.wiring):
                return

    def _send_lines(self) -> None:
        pending = self.pending
        if not pending:
            return
        self.pending = []
        for i in range(0, len(pending), MAX_LINES_PER_FRAME):
            keys, lines = zip(*pending[i:i + MAX_LINES_PER_FRAME])
            self._put(codec.encode_keyed_lines(keys, lines))

    def _put(self, frame: bytes) -> None:
        if not put_waiting(self.out, frame, self.wiring):
            self.loop.core.anomalies.hit("worker_output_lost_frames")

    def _report(self, force: bool = False) -> None:
        counters = self.loop.counters()
        elapsed = max(time.monotonic() - self.started_s, 1e-9)
        counters["busy_permille"] = int(1000 * self.busy_s / elapsed)
        self.stats.maybe_send(counters, force)
        if not force and time.monotonic() - self.started_s > 10:
            self.started_s, self.busy_s = time.monotonic(), 0.0  # load over the last ~10 s


def main(cfg: Config, wiring: Wiring, number: int) -> int:
    """Process entry point (forked by the fork server, or spawned)."""
    tune_worker_malloc()
    child_setup(cfg.debug.log_level)
    try:
        WorkerShell(cfg, wiring, number).run()
    finally:
        release_rings(wiring)
    return 0

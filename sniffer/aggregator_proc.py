"""Aggregator process: the workers' finished calls in, one output out.

Shell strategy: workers already paired requests with responses and serialised each call
(pairing needs the request method to frame the response, so it happens where both
directions of a connection meet: in the worker its flow hash picked), so the aggregator's
work per call is a few byte moves; it cannot become the serial bottleneck.
In ordered mode (``read``) calls are merged back into capture order: each line carries its
order key and each worker reports how far it has got (``MARK``); a line is written once no
worker can still produce an earlier one. The merge heap is bounded; past the bound the
oldest line is written anyway and counted (``order_relaxed``).
"""
from __future__ import annotations

import heapq
import logging
import time

from sniffer import codec
from sniffer.config import Config
from sniffer.outputs import open_output
from sniffer.pipeline import StatsReporter, Wiring, child_setup, orphaned, release_rings
from sniffer.sink import Sink
from sniffer.worker_loop import load_rules
from sniffer.worker_proc import KEY

log = logging.getLogger(__name__)
MAX_HELD_LINES = 200_000


class Merger:
    """Writes lines to the sink, in key order when ``ordered``."""

    def __init__(self, sink: Sink, workers: int, ordered: bool) -> None:
        self.sink = sink
        self.ordered = ordered
        self.marks = [-1] * workers
        self.ended = [False] * workers
        self.heap: list[tuple[int, int, bytes]] = []
        self.seq = 0
        self.counters = {"calls_out": 0, "order_relaxed": 0}

    def lines(self, worker: int, frame: bytes) -> None:
        """A LINES frame from ``worker``."""
        items = codec.decode_lines(frame)
        if not self.ordered:
            for item in items:
                self.sink.write(item[8:])
            self.counters["calls_out"] += len(items)
            return
        for item in items:
            self.seq += 1
            heapq.heappush(self.heap, (KEY.unpack_from(item)[0], self.seq, item[8:]))
        while len(self.heap) > MAX_HELD_LINES:
            self.counters["order_relaxed"] += 1
            self._write(heapq.heappop(self.heap)[2])

    def control(self, worker: int, word: str) -> None:
        """A control word from ``worker``: MARK or END."""
        parts = word.split()
        if parts[0] == "MARK":
            self.marks[worker] = int(parts[1])
        elif parts[0] == "END":
            self.ended[worker] = True
        self.release()

    def release(self) -> None:
        """Write every held line that no worker can still precede."""
        if not self.heap:
            return
        if all(self.ended):
            limit = None
        else:
            limit = min(m for m, e in zip(self.marks, self.ended) if not e)
        heap = self.heap
        while heap and (limit is None or heap[0][0] >> 16 <= limit):
            self._write(heapq.heappop(heap)[2])

    def _write(self, line: bytes) -> None:
        self.sink.write(line)
        self.counters["calls_out"] += 1


def run_loop(merger: Merger, wiring: Wiring, stats: StatsReporter) -> None:
    """Poll every worker ring until every worker has ended."""
    rings = wiring.outputs
    n = len(rings)
    next_flush = time.monotonic() + 1.0
    while not all(merger.ended):
        got = False
        for w in range(n):
            for frame in rings[w].get_many(64, timeout_s=0):
                got = True
                if codec.frame_kind(frame) is codec.Kind.LINES:
                    merger.lines(w, frame)
                else:
                    merger.control(w, codec.decode_control(frame))
        if not got:
            if orphaned(wiring):
                break
            time.sleep(0.002)  # idle: a short nap instead of spinning over the rings
        now = time.monotonic()
        if now >= next_flush:
            next_flush = now + 1.0
            merger.sink.flush()
            stats.maybe_send(merger_counters(merger))
    merger.release()


def merger_counters(merger: Merger) -> dict[str, int]:
    """The aggregator's counters, with the output's prefixed ``output_``."""
    out = dict(merger.counters)
    out.update({f"output_{k}": v for k, v in merger.sink.counters().items()})
    return out


def main(cfg: Config, wiring: Wiring, deadline_s: float) -> int:
    """Process entry point (spawned)."""
    child_setup(cfg.debug.log_level)
    rules = load_rules(cfg)
    dest = open_output(cfg, rules)
    log.info("%s", dest.description)
    merger = Merger(dest.sink, len(wiring.outputs), wiring.ordered)
    stats = StatsReporter("aggregator", wiring)
    try:
        run_loop(merger, wiring, stats)
    finally:
        delivered = dest.sink.close(deadline_s)
        counters = merger_counters(merger)
        counters["output_all_delivered"] = int(delivered)
        stats.maybe_send(counters, force=True)
        release_rings(wiring)
    return 0 if delivered else 3

"""Aggregator process: the workers' finished calls in, one output out.

Shell strategy: workers already paired requests with responses and serialised each call
(pairing needs the request method to frame the response, so it happens where both
directions of a connection meet: in the worker its flow hash picked), so the aggregator's
work per call is a few byte moves; it cannot become the serial bottleneck.
The merge itself (ordered mode: back into capture order by the lines' keys) is
``sniffer/merger.py``.
"""
from __future__ import annotations

import logging
import time

from sniffer import codec
from sniffer.config import Config
from sniffer.outputs import open_output
from sniffer.merger import Merger
from sniffer.pipeline import StatsReporter, Wiring, child_setup, orphaned, release_rings
from sniffer.worker_loop import load_rules

log = logging.getLogger(__name__)


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
                if codec.frame_kind(frame) is codec.Kind.KEYED_LINES:
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
    """Process entry point (forked by the fork server, or spawned)."""
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

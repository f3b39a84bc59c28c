"""``network-sniffer read FILE``: a capture file through the same core as live capture.

Shell strategy: packets stream from the pure-Python pcap/pcapng reader, are decoded, kept
when they match the configured ports (what the kernel filter does live), and go through
the workers' code. With one worker (the default for files of modest size) that code runs
in this process; with more, the multiprocess pipeline shards flows over worker processes
and merges their calls back into capture order, so the output is the same for any count.
Damage in a file ends the read at that point: calls completed before it are still written,
then the error names the file and the byte offset.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator

from sniffer.config import Config
from sniffer.pcapfile import PcapError, iter_packets
from sniffer.sink import Sink
from sniffer.worker_loop import TICK_NS, WorkerLoop
from workers.decode import Decoder
from workers.rules import Rules
from workers.segment import Segment

log = logging.getLogger(__name__)


def make_decoder(cfg: Config) -> Decoder:
    """A packet decoder set up from the capture configuration."""
    cap = cfg.capture
    return Decoder(
        vxlan_ports=tuple(cap.vxlan_ports),
        geneve_ports=tuple(cap.geneve_ports),
        vni_allow=frozenset(cap.vni_allow) or None,
    )


def segments(
    path: str, cfg: Config, decoder: Decoder, progress: Callable[[int, int], None] | None = None
) -> Iterator[tuple[int, int, Segment | None]]:
    """(index, ts_ns, segment or None) for every packet of ``path``, filtered by port."""
    ports = frozenset(cfg.capture.ports)
    reader = iter_packets(path)
    last_shown = 0.0
    with reader:
        for index, (ts_ns, linktype, frame) in enumerate(reader):
            seg = decoder.decode(linktype, frame)
            if seg is not None and ports and seg.sport not in ports and seg.dport not in ports:
                seg = None
            yield index, ts_ns, seg
            if progress is not None and index & 0x3FF == 0:
                now = time.monotonic()
                if now - last_shown > 0.5:
                    last_shown = now
                    progress(reader.offset, reader.size)


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.active = sys.stderr.isatty()

    def __call__(self, offset: int, size: int) -> None:
        if self.active and size:
            pct = 100.0 * offset / size
            bar = "#" * int(pct / 4)
            sys.stderr.write(f"\r{self.path}: [{bar:<25}] {pct:5.1f}%")
            sys.stderr.flush()

    def done(self) -> None:
        """Clear the bar."""
        if self.active:
            sys.stderr.write("\r" + " " * (len(self.path) + 40) + "\r")


def read_file(
    path: str, cfg: Config, sink: Sink, rules: Rules
) -> tuple[dict[str, int], PcapError | None]:
    """Read ``path``; returns the counters and the damage found in the file, if any."""
    return read_inline(path, cfg, sink, rules)


def read_inline(
    path: str, cfg: Config, sink: Sink, rules: Rules
) -> tuple[dict[str, int], PcapError | None]:
    """Read ``path`` in this process; returns the counters and the damage, if any."""
    decoder = make_decoder(cfg)
    loop = WorkerLoop(cfg, rules)
    progress = Progress(path)
    error: PcapError | None = None
    next_tick = 0
    index = -1
    packets = 0
    try:
        for index, ts_ns, seg in segments(path, cfg, decoder, progress):
            packets += 1
            if seg is not None:
                for _, line in loop.feed(index, ts_ns, seg):
                    sink.write(line)
            if ts_ns >= next_tick:
                if next_tick:
                    for _, line in loop.tick(index, ts_ns):
                        sink.write(line)
                next_tick = ts_ns + TICK_NS
    except PcapError as exc:
        error = exc
    for _, line in loop.close(index + 1):
        sink.write(line)
    progress.done()
    counters = loop.counters()
    counters.update(decoder.anomalies)
    counters["packets"] = packets
    return counters, error

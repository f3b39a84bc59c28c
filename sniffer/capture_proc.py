"""Capture process: packets in (libpcap or a file), decoded segments out to the workers.

Shell strategy:
- Live: one pypcap handle per interface (snaplen, promiscuous mode, kernel buffer,
  immediate delivery, nanosecond timestamps, the BPF filter from the configuration), in
  non-blocking mode behind ``select`` with a short timeout: pypcap's blocking iteration
  never returns on a quiet interface, and this loop must see the stop flag and flush
  partial batches. Each readiness drains one kernel buffer with ``readpkts()``.
- Files: the streaming pcap/pcapng reader; the port filter the kernel applies live is
  applied here.
- Every packet gets a global index. Its TCP 4-tuple is hashed symmetrically to pick a
  worker; segments are batched per worker and each batch is one ring frame. A full ring
  drops the frame and counts it (live) or waits for space (files: nothing is lost).
- ``TICK`` goes to every worker once per second (packet time for files, wall time live) so
  idle connections expire everywhere at the same points; ``END`` closes the input.
"""
from __future__ import annotations

import logging
import select
import time
from collections.abc import Iterable

from sniffer import codec
from sniffer.config import Config, build_bpf
from sniffer.flowhash import flow_hash, worker_for
from sniffer.pcapfile import PcapError, iter_packets
from sniffer.progress import Progress
from sniffer.pipeline import (
    StatsReporter, Wiring, child_setup, orphaned, put_waiting, release_rings,
)
from sniffer.worker_loop import TICK_NS
from workers.decode import Decoder
from workers.segment import Segment

log = logging.getLogger(__name__)
BATCH_SEGMENTS = 256


class Sharder:
    """Decodes, hashes and batches packets for the workers; owns the capture counters."""

    def __init__(self, cfg: Config, wiring: Wiring) -> None:
        cap = cfg.capture
        self.decoder = Decoder(vxlan_ports=tuple(cap.vxlan_ports),
                               geneve_ports=tuple(cap.geneve_ports),
                               vni_allow=frozenset(cap.vni_allow) or None)
        self.ports = frozenset(cap.ports) if wiring.source else frozenset()
        self.wiring = wiring
        self.n = len(wiring.inputs)
        self.batches: list[list[tuple[int, int, Segment]]] = [[] for _ in range(self.n)]
        self.index = 0
        self.counters = {"packets": 0, "segments_sent": 0, "ring_frames_dropped": 0,
                         "ring_segments_dropped": 0}
        self.next_tick_ns = 0
        self.last_ts_ns = 0

    def packets(self, linktype: int, batch: Iterable[tuple[int, bytes]]) -> None:
        """Take packets ``(ts_ns, frame)`` of one link type."""
        decode = self.decoder.decode
        ports, n, batches = self.ports, self.n, self.batches
        index = start = self.index
        for ts_ns, frame in batch:
            seg = decode(linktype, frame)
            if seg is not None and not (ports and seg.sport not in ports
                                        and seg.dport not in ports):
                w = worker_for(flow_hash(seg.src, seg.sport, seg.dst, seg.dport), n) if n > 1 else 0
                b = batches[w]
                b.append((index, ts_ns, seg))
                if len(b) >= BATCH_SEGMENTS:
                    self._send(w)
            index += 1
            self.last_ts_ns = ts_ns
            if self.wiring.source and ts_ns >= self.next_tick_ns:
                self.index = index
                self.tick(ts_ns)
        self.counters["packets"] += index - start
        self.index = index

    def tick(self, ts_ns: int) -> None:
        """Flush every batch and tell every worker that time reached ``ts_ns``."""
        if self.next_tick_ns:
            self.flush()
            word = codec.encode_control(f"TICK {self.index - 1} {ts_ns}")
            for ring in self.wiring.inputs:
                put_waiting(ring, word, self.wiring)
        self.next_tick_ns = ts_ns + TICK_NS

    def flush(self) -> None:
        """Send every non-empty batch."""
        for w in range(self.n):
            if self.batches[w]:
                self._send(w)

    def end(self) -> None:
        """No more input: flush, then END to every worker."""
        self.flush()
        word = codec.encode_control(f"END {self.index}")
        for ring in self.wiring.inputs:
            put_waiting(ring, word, self.wiring)

    def _send(self, w: int) -> None:
        batch = self.batches[w]
        self.batches[w] = []
        frame = codec.encode_packets(batch)
        ring = self.wiring.inputs[w]
        ok = put_waiting(ring, frame, self.wiring) if self.wiring.lossless else ring.put(frame)
        if ok:
            self.counters["segments_sent"] += len(batch)
        else:
            self.counters["ring_frames_dropped"] += 1
            self.counters["ring_segments_dropped"] += len(batch)

    def all_counters(self) -> dict[str, int]:
        """Capture counters plus the decoder's anomalies."""
        out = dict(self.counters)
        out.update(self.decoder.anomalies)
        return out


def read_source(path: str, sharder: Sharder, wiring: Wiring, stats: StatsReporter) -> None:
    """Feed a capture file; damage ends the input (reported as ``file_error``)."""
    reader = iter_packets(path)
    progress = Progress(path)
    chunk: list[tuple[int, bytes]] = []
    linktype = -1
    try:
        with reader:
            for ts_ns, lt, frame in reader:
                if lt != linktype and chunk:
                    sharder.packets(linktype, chunk)
                    chunk = []
                linktype = lt
                chunk.append((ts_ns, frame))
                if len(chunk) >= 1024:
                    sharder.packets(linktype, chunk)
                    chunk = []
                    stats.maybe_send(sharder.all_counters())
                    progress.update(reader.offset, reader.size)
                    if wiring.stop.is_set() or orphaned(wiring):
                        return
    except PcapError as exc:
        sharder.counters["file_error"] = 1
        stats.queue.put(("capture-error", {"message": str(exc)}))  # type: ignore[dict-item]
    finally:
        if chunk:
            sharder.packets(linktype, chunk)
        progress.done()


def open_handles(cfg: Config) -> list:  # noqa: ANN201 - list[pcap.pcap]
    """One non-blocking pypcap handle per configured interface, filter applied."""
    import pcap

    cap = cfg.capture
    bpf = build_bpf(cap)
    handles = []
    for name in cap.interfaces:
        h = pcap.pcap(name=name, snaplen=cap.snaplen, promisc=cap.promisc,
                      timeout_ms=cap.timeout_ms, immediate=True, timestamp_in_ns=True,
                      buffer_size=cap.buffer_bytes)
        if bpf:
            h.setfilter(bpf)
        h.setnonblock(True)
        handles.append(h)
        log.info("capturing on %s (link type %d) with filter %r", name, h.datalink(), bpf)
    return handles


def capture_live(cfg: Config, sharder: Sharder, wiring: Wiring, stats: StatsReporter) -> None:
    """Read every interface until the stop flag is set."""
    handles = open_handles(cfg)
    links = [h.datalink() for h in handles]
    fds = {h.fileno(): i for i, h in enumerate(handles)}
    while not wiring.stop.is_set() and not orphaned(wiring):
        ready, _, _ = select.select(list(fds), [], [], 0.05)
        for fd in ready:
            i = fds[fd]
            pkts = handles[i].readpkts()
            if pkts:
                sharder.packets(links[i], pkts)
        now_ns = time.time_ns()
        if now_ns >= sharder.next_tick_ns:
            sharder.tick(max(now_ns, sharder.last_ts_ns))
            kernel = {"kernel_received": 0, "kernel_dropped": 0, "interface_dropped": 0}
            for h in handles:
                recv, drop, ifdrop = h.stats()
                kernel["kernel_received"] += recv
                kernel["kernel_dropped"] += drop
                kernel["interface_dropped"] += ifdrop
            sharder.counters.update(kernel)
        elif not ready:
            sharder.flush()  # quiet moment: do not hold a partial batch back
        stats.maybe_send(sharder.all_counters())
    for h in handles:
        for _ in range(64):  # drain what the kernel still holds
            pkts = h.readpkts()
            if not pkts:
                break
            sharder.packets(h.datalink(), pkts)
        h.close()


def main(cfg: Config, wiring: Wiring) -> int:
    """Process entry point (spawned)."""
    child_setup(cfg.debug.log_level)
    sharder = Sharder(cfg, wiring)
    stats = StatsReporter("capture", wiring)
    code = 0
    try:
        if wiring.source:
            read_source(wiring.source, sharder, wiring, stats)
        else:
            capture_live(cfg, sharder, wiring, stats)
    except OSError as exc:
        log.error("capture failed: %s", exc)
        stats.queue.put(("capture-error", {"message": f"capture failed: {exc}"}))
        code = 1
    finally:
        sharder.end()
        stats.maybe_send(sharder.all_counters(), force=True)
        release_rings(wiring)
    return code

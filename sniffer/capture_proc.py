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
import struct
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

log = logging.getLogger(__name__)
BATCH_SEGMENTS = 256
GATHER_PACKETS = 64  # a live read smaller than this: nap GATHER_S before the next one
GATHER_S = 0.001
HOUSEKEEPING_S = 0.05
BATCH_BYTES = 1 << 20  # at most 1 MiB of payload per frame (and 1/8 of the smallest ring)
READ_BATCH_PACKETS = 1024
MAX_CACHED_FLOWS = 1 << 16  # flow -> worker entries (both directions) before the cache clears


class Sharder:
    """Decodes, hashes and batches packets for the workers; owns the capture counters.

    Per packet: one ``Decoder.decode`` (a single ``unpack_from`` for the common frame), the
    owning worker from a bounded flow cache (``flow_hash`` on a miss), one ``struct.pack``
    of the item header appended with the payload to that worker's parts list; a batch is
    joined into one ring frame only when it is sent.
    """

    def __init__(self, cfg: Config, wiring: Wiring) -> None:
        cap = cfg.capture
        self.decoder = Decoder(vxlan_ports=tuple(cap.vxlan_ports),
                               geneve_ports=tuple(cap.geneve_ports),
                               vni_allow=frozenset(cap.vni_allow) or None)
        self.ports = frozenset(cap.ports) if wiring.source else frozenset()
        self.wiring = wiring
        self.n = len(wiring.inputs)
        # per worker: [item header, payload, item header, payload, ...] of the open batch
        self.parts: list[list[bytes]] = [[] for _ in range(self.n)]
        self.sizes = [0] * self.n  # payload bytes per batch
        # a frame must fit its ring with room to spare: batches also end at a byte bound
        self.batch_bytes = min(BATCH_BYTES, min((r.capacity_bytes for r in wiring.inputs),
                                                default=BATCH_BYTES) // 8)
        self.owners: dict[tuple[bytes, int, bytes, int], int] = {}  # flow -> worker
        self.index = 0
        self.counters = {"packets": 0, "segments_sent": 0, "ring_frames_dropped": 0,
                         "ring_segments_dropped": 0}
        self.next_tick_ns = 0
        self.last_ts_ns = 0

    def packets(self, linktype: int, batch: Iterable[tuple[int, bytes]]) -> None:
        """Take packets ``(ts_ns, frame)`` of one link type."""
        decode = self.decoder.decode
        ports, n, all_parts, owners = self.ports, self.n, self.parts, self.owners
        pack4, pack6 = codec.PACKET_V4.pack, codec.PACKET_V6.pack
        limit = 2 * BATCH_SEGMENTS
        sizes, batch_bytes = self.sizes, self.batch_bytes
        ticking = bool(self.wiring.source)
        next_tick_ns = self.next_tick_ns
        index = start = self.index
        ts_ns = self.last_ts_ns
        try:
            for ts_ns, frame in batch:
                seg = decode(linktype, frame)
                if seg is not None:
                    src, sport, dst, dport, seq, ack, flags, payload = seg
                    if not ports or sport in ports or dport in ports:
                        if n == 1:
                            w = 0
                        else:
                            flow = (src, sport, dst, dport)
                            w = owners.get(flow, -1)
                            if w < 0:
                                w = self._owner(flow)
                        parts = all_parts[w]
                        parts.append(pack4(4, index, ts_ns, src, dst, sport, dport, seq, ack,
                                           flags, len(payload)) if len(src) == 4 else
                                     pack6(6, index, ts_ns, src, dst, sport, dport, seq, ack,
                                           flags, len(payload)))
                        parts.append(payload)
                        sizes[w] += len(payload)
                        if len(parts) >= limit or sizes[w] >= batch_bytes:
                            self._send(w)
                index += 1
                if ticking and ts_ns >= next_tick_ns:
                    self.index = index
                    self.tick(ts_ns)
                    next_tick_ns = self.next_tick_ns
        except struct.error as exc:  # a timestamp outside u64: a bug upstream, not traffic
            raise codec.CodecError(f"packet field out of range: {exc}") from None
        finally:
            self.last_ts_ns = ts_ns
            self.counters["packets"] += index - start
            self.index = index

    def _owner(self, flow: tuple[bytes, int, bytes, int]) -> int:
        """The worker of a flow not in the cache (which is cleared when full: bounded)."""
        if len(self.owners) + 2 > MAX_CACHED_FLOWS:
            self.owners.clear()
        w = worker_for(flow_hash(*flow), self.n)
        self.owners[flow] = self.owners[(flow[2], flow[3], flow[0], flow[1])] = w
        return w

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
            if self.parts[w]:
                self._send(w)

    def end(self) -> None:
        """No more input: flush, then END to every worker."""
        self.flush()
        word = codec.encode_control(f"END {self.index}")
        for ring in self.wiring.inputs:
            put_waiting(ring, word, self.wiring)

    def _send(self, w: int) -> None:
        parts = self.parts[w]
        self.parts[w] = []
        self.sizes[w] = 0
        count = len(parts) >> 1
        frame = codec.packets_frame(count, parts)
        ring = self.wiring.inputs[w]
        ok = put_waiting(ring, frame, self.wiring) if self.wiring.lossless else ring.put(frame)
        if ok:
            self.counters["segments_sent"] += count
        else:
            self.counters["ring_frames_dropped"] += 1
            self.counters["ring_segments_dropped"] += count

    def all_counters(self) -> dict[str, int]:
        """Capture counters plus the decoder's anomalies."""
        out = dict(self.counters)
        out.update(self.decoder.anomalies)
        return out


def read_source(path: str, sharder: Sharder, wiring: Wiring, stats: StatsReporter) -> None:
    """Feed a capture file; damage ends the input (reported as ``file_error``)."""
    reader = iter_packets(path)
    progress = Progress(path)
    try:
        with reader:
            for linktype, batch in reader.batches(READ_BATCH_PACKETS):
                sharder.packets(linktype, batch)
                if len(batch) >= READ_BATCH_PACKETS:
                    stats.maybe_send(sharder.all_counters())
                    progress.update(reader.offset, reader.size)
                    if wiring.stop.is_set() or orphaned(wiring):
                        return
    except PcapError as exc:
        sharder.counters["file_error"] = 1
        stats.queue.put(("capture-error", {"message": str(exc)}))
    finally:
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


def kernel_stats(handles: list) -> dict[str, int]:
    """Packets the kernel received and dropped, summed over the handles (pcap_stats)."""
    kernel = {"kernel_received": 0, "kernel_dropped": 0, "interface_dropped": 0}
    for h in handles:
        recv, drop, ifdrop = h.stats()
        kernel["kernel_received"] += recv
        kernel["kernel_dropped"] += drop
        kernel["interface_dropped"] += ifdrop
    return kernel


def capture_live(cfg: Config, sharder: Sharder, wiring: Wiring, stats: StatsReporter) -> None:
    """Read every interface until the stop flag is set.

    Immediate mode hands over packets as they come, so a fast loop would read them one or
    two at a time and pay the per-read cost (select, readpkts, a batch) for each. When a read
    brings fewer than GATHER_PACKETS, the loop naps GATHER_S so the next read takes a batch
    (latency +1 ms; the kernel buffer holds far more). Housekeeping (stop flag, ticks,
    kernel statistics, counters) runs every HOUSEKEEPING_S, not per read.
    """
    handles = open_handles(cfg)
    links = [h.datalink() for h in handles]
    fds = {h.fileno(): i for i, h in enumerate(handles)}
    fd_list = list(fds)
    next_housekeeping_s = 0.0
    while True:
        ready, _, _ = select.select(fd_list, [], [], 0.05)
        got = 0
        for fd in ready:
            i = fds[fd]
            pkts = handles[i].readpkts()
            if pkts:
                got += len(pkts)
                sharder.packets(links[i], pkts)
        now_s = time.monotonic()
        if now_s >= next_housekeeping_s:
            next_housekeeping_s = now_s + HOUSEKEEPING_S
            if wiring.stop.is_set() or orphaned(wiring):
                break
            now_ns = time.time_ns()
            if now_ns >= sharder.next_tick_ns:
                sharder.tick(max(now_ns, sharder.last_ts_ns))
                sharder.counters.update(kernel_stats(handles))
            stats.maybe_send(sharder.all_counters())
        if not ready:
            sharder.flush()  # quiet moment: do not hold a partial batch back
        elif got < GATHER_PACKETS:
            time.sleep(GATHER_S)
    for h in handles:
        for _ in range(64):  # drain what the kernel still holds
            pkts = h.readpkts()
            if not pkts:
                break
            sharder.packets(h.datalink(), pkts)
    sharder.counters.update(kernel_stats(handles))  # the final word on kernel drops
    for h in handles:
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

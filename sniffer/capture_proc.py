"""Capture process: packets in (libpcap or a file), decoded segments out to the workers.

Shell strategy:
- Live: one pypcap handle per interface (snaplen, promiscuous mode, kernel buffer,
  nanosecond timestamps, the BPF filter from the configuration), in non-blocking mode
  behind ``select`` with a short timeout: pypcap's blocking iteration never returns on a
  quiet interface, and this loop must see the stop flag and flush partial batches. Each
  readiness drains one kernel buffer with ``readpkts()``.
- Not immediate mode: libpcap then uses TPACKET_V3, whose buffer blocks pack packets
  back to back and are handed over when full or ``timeout_ms`` old (the longest a packet
  waits). Immediate mode makes libpcap fall back to TPACKET_V2, a ring of fixed slots each
  sized for the largest packet, so the same 32 MiB held only hundreds of small packets and a
  capture process kept off the CPU for a few milliseconds lost some (measured: 5,729 kernel
  drops at 100k packets/s with immediate mode, none without; bench/README.md).
- Files: the streaming pcap/pcapng reader; the port filter the kernel applies live is
  applied here.
- Every packet gets a global index. Its TCP 4-tuple is hashed symmetrically to pick a
  worker; segments are batched per worker and each batch is one ring frame
  (``sniffer/sharder.py``). A full ring drops the frame and counts it (live) or waits for
  space (files: nothing is lost).
- ``TICK`` goes to every worker once per second (packet time for files, wall time live) so
  idle connections expire everywhere at the same points; ``END`` closes the input.
"""
from __future__ import annotations

import logging
import select
import time

from sniffer.config import Config, build_bpf
from sniffer.pcapfile import PcapError, iter_packets
from sniffer.pipeline import StatsReporter, Wiring, child_setup, orphaned, release_rings
from sniffer.progress import Progress
from sniffer.sharder import Sharder

log = logging.getLogger(__name__)
GATHER_PACKETS = 64  # a live read smaller than this: nap GATHER_S before the next one
GATHER_S = 0.001
HOUSEKEEPING_S = 0.05
READ_BATCH_PACKETS = 1024


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
                      timeout_ms=cap.timeout_ms, immediate=False, timestamp_in_ns=True,
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

    A loop that read whatever is there the moment it is there would read a few packets at a
    time and pay the per-read cost (select, readpkts, a batch) for each. When a read brings
    fewer than GATHER_PACKETS, the loop naps GATHER_S so the next read takes a batch
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
    """Process entry point (forked by the fork server, or spawned)."""
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

"""Sharder: decoded TCP segments batched per worker, each flow always to the same worker.

Strategy (the per-packet half of the capture process, compiled with mypyc; see setup.py):
- Per packet of the common frame (Ethernet or SLL, plain IPv4, TCP: ``plain_tcp4``, byte
  reads only): the owning worker from a bounded flow cache keyed by the frame's 12 bytes of
  addresses and ports (the symmetric ``flow_hash`` on a miss, so both directions of a
  connection meet in one worker), then one ``struct.pack`` of the item header around the
  frame's own 22 header bytes (``codec.PACKET_V4_RAW``: nothing is decoded here that the
  worker decodes again), appended with the payload to that worker's parts list. Any other
  frame goes through ``Decoder.decode`` and its fields are packed (``PACKET_V4``/``_V6``);
  its cache key is the same bytes built from the fields. A batch is joined into one ring
  frame only when it is sent: at ``BATCH_SEGMENTS`` segments or ``BATCH_BYTES`` of payload
  (at most an eighth of the smallest ring, so a frame always fits).
- A full ring drops the frame and counts it (live) or waits for space (files: lossless).
- ``tick`` flushes every batch and sends ``TICK`` to every worker once per second of packet
  time (files) or wall time (live); ``end`` sends ``END``. Files also get a ``SYNC`` every
  ``SYNC_PACKETS`` packets between ticks: the workers answer ``MARK`` as for a tick but expire
  nothing, so the ordered output streams (the first calls of a busy second used to wait for
  its end) and expiry, hence the output, is exactly what ticks alone give.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from sniffer import codec
from sniffer.codec import item_v4
from sniffer.config import Config
from sniffer.flowhash import flow_hash, worker_for
from sniffer.pipeline import Wiring, put_waiting
from sniffer.worker_loop import TICK_NS
from workers.decode import Decoder, plain_tcp4

_PORTS: Final = struct.Struct("!HH").pack

BATCH_SEGMENTS: Final = 256
BATCH_BYTES: Final = 1 << 20  # at most 1 MiB of payload per frame (and 1/8 of the smallest ring)
SYNC_PACKETS = 16384  # files: a SYNC to every worker after this many packets without a TICK
MAX_CACHED_FLOWS = 1 << 16  # flow -> worker entries (both directions) before the cache clears


class Sharder:
    """Decodes, hashes and batches packets for the workers (the module strategy says how);
    owns the capture counters."""

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
        # addresses and ports as the frame has them (src, dst, sport, dport) -> worker
        self.owners: dict[bytes, int] = {}
        self.index = 0
        self.counters = {"packets": 0, "segments_sent": 0, "ring_frames_dropped": 0,
                         "ring_segments_dropped": 0}
        self.next_tick_ns = 0
        self.synced_index = 0  # packet index of the last TICK or SYNC (files)
        self.sync_packets = SYNC_PACKETS
        self.last_ts_ns = 0

    def packets(self, linktype: int, batch: Iterable[tuple[int, bytes]]) -> None:
        """Take packets ``(ts_ns, frame)`` of one link type."""
        decode = self.decoder.decode
        ports, n, all_parts = self.ports, self.n, self.parts
        pack4, pack6 = codec.PACKET_V4.pack, codec.PACKET_V6.pack
        limit = 2 * BATCH_SEGMENTS
        sizes, batch_bytes = self.sizes, self.batch_bytes
        ticking = bool(self.wiring.source)
        next_tick_ns = self.next_tick_ns
        index = first = self.index
        ts_ns = self.last_ts_ns
        try:
            for ts_ns, frame in batch:
                ip, body, end = plain_tcp4(linktype, frame)
                w = -1
                if ip >= 0:
                    if not ports or (frame[ip + 20] << 8 | frame[ip + 21]) in ports \
                            or (frame[ip + 22] << 8 | frame[ip + 23]) in ports:
                        w = 0 if n == 1 else self._worker_of(frame[ip + 12:ip + 24])
                        header = item_v4(index, ts_ns, frame, ip + 12, end - body)
                        payload = frame[body:end]
                else:
                    seg = decode(linktype, frame)
                    if seg is not None:
                        src, sport, dst, dport, seq, ack, flags, payload = seg
                        if not ports or sport in ports or dport in ports:
                            w = 0 if n == 1 else self._worker_of(src + dst + _PORTS(sport, dport))
                            header = (pack4(4, index, ts_ns, src, dst, sport, dport, seq, ack,
                                            flags, len(payload)) if len(src) == 4 else
                                      pack6(6, index, ts_ns, src, dst, sport, dport, seq, ack,
                                            flags, len(payload)))
                if w >= 0:
                    parts = all_parts[w]
                    parts.append(header)
                    parts.append(payload)
                    size = sizes[w] + len(payload)  # not "+=": compiled, that is generic
                    sizes[w] = size
                    if len(parts) >= limit or size >= batch_bytes:
                        self._send(w)
                index += 1
                if ticking:
                    if ts_ns >= next_tick_ns:
                        self.index = index
                        self.tick(ts_ns)
                        next_tick_ns = self.next_tick_ns
                    elif index - self.synced_index >= self.sync_packets:
                        self.index = index
                        self.sync()
        except (struct.error, OverflowError) as exc:  # a time outside u64: a bug upstream
            raise codec.CodecError(f"packet field out of range: {exc}") from None
        finally:
            self.last_ts_ns = ts_ns
            self.counters["packets"] += index - first
            self.index = index

    def _worker_of(self, key: bytes) -> int:
        """The worker of the flow ``key``: src, dst, sport, dport as the frame has them (4 or
        16 byte addresses, 2 byte ports), from the cache or else from ``flow_hash``."""
        w = self.owners.get(key, -1)
        return w if w >= 0 else self._owner(key)

    def _owner(self, key: bytes) -> int:
        """The worker of a flow not in the cache (which is cleared when full: bounded)."""
        if len(self.owners) + 2 > MAX_CACHED_FLOWS:
            self.owners.clear()
        a = (len(key) - 4) >> 1
        src, dst, ports = key[:a], key[a:2 * a], key[2 * a:]
        w = worker_for(flow_hash(src, ports[0] << 8 | ports[1], dst, ports[2] << 8 | ports[3]),
                       self.n)
        self.owners[key] = self.owners[dst + src + ports[2:] + ports[:2]] = w
        return w

    def sync(self) -> None:
        """Flush every batch and ask every worker to report how far it got (``SYNC``: a
        ``MARK`` back, no expiry), so an ordered aggregator releases calls as it goes rather
        than once per second of packet time."""
        self._broadcast(f"SYNC {self.index - 1}")

    def tick(self, ts_ns: int) -> None:
        """Flush every batch and tell every worker that time reached ``ts_ns``."""
        if self.next_tick_ns:
            self._broadcast(f"TICK {self.index - 1} {ts_ns}")
        self.next_tick_ns = ts_ns + TICK_NS

    def flush(self) -> None:
        """Send every non-empty batch."""
        for w in range(self.n):
            if self.parts[w]:
                self._send(w)

    def end(self) -> None:
        """No more input: flush, then END to every worker."""
        self._broadcast(f"END {self.index}")

    def _broadcast(self, text: str) -> None:
        """Flush every batch, then send the control word ``text`` to every worker (after
        the packets before it, so a worker's answer covers them)."""
        self.flush()
        word = codec.encode_control(text)
        for ring in self.wiring.inputs:
            put_waiting(ring, word, self.wiring)
        self.synced_index = self.index

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

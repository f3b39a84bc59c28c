"""WorkerCore: the connection table in front of reassembly, parsing and pairing.

Strategy:
- ``feed(ts_ns, segment)`` routes a decoded TCP segment to its connection (both directions
  of a connection are stored under their own flow key, the 4-tuple packed as one bytes
  object (``Key``), so one dict lookup finds it) and
  returns the API calls that became complete. ``tick(ts_ns)`` expires connections idle for
  ``idle_timeout_s`` of *packet* time, so reading a capture file gives the same result as
  capturing live. ``close()`` flushes everything.
- A connection is created by a SYN or by a segment with payload (mid-stream pickup); pure
  ACKs, FINs and RSTs of unknown connections are ignored. A RST ends the connection at once;
  its acknowledgement number is noted first, and the reassemblers drop held bytes the
  receiver never acknowledged (``tcp.py``). A new SYN on a tuple whose
  connection has already carried data starts a fresh connection (port reuse).
- The table is bounded: past ``max_connections`` the least recently active connection is
  flushed and evicted (counted). Out-of-order bytes of all connections share one budget.
- ``server_ports`` (optional) tells which side is the server when no SYN was seen; without
  it the content decides (the side that sends a request line is the client).
- ``keep_response_bodies=False`` (the logging rules remove every response body) makes the
  parsers count response bodies without storing them: same calls, less memory.
"""
from __future__ import annotations

from collections.abc import Iterable

from workers.anomalies import Anomalies, register
from workers.connection import Connection
from workers.limits import CoreLimits
from workers.message import ApiCall
from workers.segment import ACK, FIN, RST, SYN, Segment
from workers.tcp import Budget

ANOMALIES = register(
    {
        "conn_evicted": "the connection table was full; the least recently active was flushed",
        "conn_expired": "a connection was idle past idle_timeout_s (packet time) and flushed",
        "conn_port_reuse": "a new SYN on a tuple that had carried data: a new connection",
    }
)

Key = bytes
"""A flow key: source address, destination address, source port, destination port (two bytes
each, big-endian), the layout of the ring frame's items (``sniffer/codec.py``), so the worker
takes it as one slice; one hash and one compare of a dozen bytes, where a tuple of four
hashed and compared each field of a freshly built tuple."""


def flow_key(src: bytes, sport: int, dst: bytes, dport: int) -> Key:
    """The flow key of a segment from ``src``:``sport`` to ``dst``:``dport``."""
    return src + dst + bytes((sport >> 8, sport & 255, dport >> 8, dport & 255))


class WorkerCore:
    """Turns decoded TCP segments into API calls (reassembly + HTTP/1.x + pairing)."""

    def __init__(
        self,
        limits: CoreLimits | None = None,
        server_ports: Iterable[int] = (),
        keep_response_bodies: bool = True,
    ) -> None:
        self.limits = limits or CoreLimits()
        self.server_ports = frozenset(server_ports)
        self.anomalies = Anomalies()
        self.budget = Budget(self.limits.max_buffered_bytes_total)
        self.conns: dict[Key, Connection] = {}
        self.out: list[ApiCall] = []
        self.idle_ns = int(self.limits.idle_timeout_s * 1e9)
        self.segments = 0
        self.keep_response_bodies = keep_response_bodies

    @property
    def connection_count(self) -> int:
        """Connections currently tracked."""
        return len(self.conns) // 2

    def feed(self, ts_ns: int, seg: Segment, index: int = 0) -> list[ApiCall]:
        """Take one TCP segment; return the calls it completed (usually none).

        ``index`` (the packet's position in the capture) is remembered by the connection the
        segment opens, to order the calls flushed by ``close_by_connection()``.
        """
        src, sport, dst, dport, seq, ack, flags, payload = seg
        return self.feed_parts(ts_ns, index, flow_key(src, sport, dst, dport), sport, dport,
                               seq, ack, flags, payload)

    def feed_parts(self, ts_ns: int, index: int, key: Key, sport: int, dport: int,
                   seq: int, ack: int, flags: int, payload: bytes) -> list[ApiCall]:
        """``feed`` with the segment's fields as arguments, its addresses and ports as the flow
        ``key``: the worker's per-packet loop calls this straight from the ring frame,
        without building a ``Segment``."""
        self.segments += 1
        conn = self.conns.get(key)
        if conn is not None and flags & SYN and not flags & ACK and conn.finished is False:
            side = conn.ra if key == conn.key_a else conn.rb
            if side.next_off > 0 and side.next_seq32 != (seq + 1) & 0xFFFFFFFF:
                self.anomalies.hit("conn_port_reuse")
                self._drop(conn, ts_ns)
                conn = None
        if conn is None:
            if not (flags & SYN or payload) or flags & RST:
                return self._take()
            conn = self._open(key, sport, dport, flags, ts_ns)
            conn.first_index = index
        conn.last_ts = ts_ns
        if key == conn.key_a:
            fwd, rev = conn.ra, conn.rb
        else:
            fwd, rev = conn.rb, conn.ra
        if flags & RST:
            fwd.segment(seq, flags & ~FIN, payload, ts_ns)
            if flags & ACK:  # the last word of the resetting side on what it received
                rev.note_ack(ack, ts_ns)
            self._drop(conn, ts_ns, reset=True)
            return self._take()
        fwd.segment(seq, flags, payload, ts_ns)
        if flags & ACK:
            rev.note_ack(ack, ts_ns)
        if fwd.ended and rev.ended:
            self._drop(conn, ts_ns)
        return self._take()

    def tick(self, ts_ns: int) -> list[ApiCall]:
        """Expire connections idle for longer than the idle timeout (packet time)."""
        limit = ts_ns - self.idle_ns
        stale = {id(c): c for c in self.conns.values() if c.last_ts < limit}
        for conn in stale.values():
            self.anomalies.hit("conn_expired")
            self._drop(conn, ts_ns)
        return self._take()

    def close(self, ts_ns: int | None = None) -> list[ApiCall]:
        """Flush every connection (end of input or shutdown)."""
        return [c for _, calls in self.close_by_connection(ts_ns) for c in calls]

    def close_by_connection(self, ts_ns: int | None = None) -> list[tuple[int, list[ApiCall]]]:
        """Flush every connection; per connection, its first packet index and its calls."""
        out = []
        for conn in sorted({id(c): c for c in self.conns.values()}.values(),
                           key=lambda c: c.first_index):
            self._drop(conn, ts_ns if ts_ns is not None else conn.last_ts)
            calls = self._take()
            if calls:
                out.append((conn.first_index, calls))
        return out

    # -- internals -------------------------------------------------------------------------------
    def _open(self, key: Key, sport: int, dport: int, flags: int, ts_ns: int) -> Connection:
        if len(self.conns) // 2 >= self.limits.max_connections:
            oldest = min(self.conns.values(), key=lambda c: c.last_ts)
            self.anomalies.hit("conn_evicted")
            self._drop(oldest, ts_ns)
        alen = (len(key) - 4) >> 1
        src, dst = key[:alen], key[alen:2 * alen]
        client_is_a: bool | None = None
        if flags & SYN:
            client_is_a = not flags & ACK
        elif self.server_ports:
            if dport in self.server_ports and sport not in self.server_ports:
                client_is_a = True
            elif sport in self.server_ports and dport not in self.server_ports:
                client_is_a = False
        conn = Connection(
            (src, sport), (dst, dport), client_is_a, bool(flags & SYN),
            self.limits, self.anomalies, self.budget, self.out, self.keep_response_bodies,
        )
        conn.key_a, conn.key_b = key, dst + src + key[-2:] + key[-4:-2]
        self.conns[key] = conn
        self.conns[conn.key_b] = conn
        return conn

    def _drop(self, conn: Connection, ts_ns: int, reset: bool = False) -> None:
        conn.finish(ts_ns, reset)
        for key in (conn.key_a, conn.key_b):
            if self.conns.get(key) is conn:
                del self.conns[key]

    def _take(self) -> list[ApiCall]:
        if not self.out:
            return []
        out = self.out[:]
        self.out.clear()
        return out

"""TCP stream reassembly for one direction of a connection (RFC 9293).

Strategy:
- Sequence numbers are lifted once into a 64-bit relative offset space: each segment's
  distance from the next expected 32-bit sequence number is taken modulo 2^32 as a signed
  value, so wraparound needs no special case anywhere else (as Zeek does).
- The fast path is an in-order segment with nothing buffered: its payload goes straight to
  the consumer without a copy. Anything ahead of the next expected byte waits in a small
  offset -> bytes table; anything behind it is a retransmission and is trimmed.
- Overlaps: the first copy wins. When a later copy of the same bytes differs (retransmission
  with other data, an evasion attempt), that is counted (``tcp_overlap_mismatch``).
- Gaps (bytes the capture never saw) are declared, never zero-filled: when the receiver
  has acknowledged past the hole (so no retransmission will come), when buffered data ahead
  of the hole exceeds the per-direction limit or the worker budget, or when the stream
  ends. The consumer hears ``gap(n)`` and resynchronises.
- A reset discards what the receiver never acknowledged: its TCP drops the out-of-order
  queue on RST, so bytes held beyond a hole were never read by the application. When the
  receiver's acknowledgements were seen, held segments past them are dropped at a reset
  (``tcp_unacked_at_reset``) instead of being delivered after a gap; without any seen
  acknowledgement (one-sided capture) they are delivered as at a FIN.
- Mid-stream pickup: without a SYN, the first segment seen sets the origin.
The consumer is any object with ``data(bytes, ts_ns)``, ``gap(nbytes, ts_ns)`` and
``eof(ts_ns)`` methods (the HTTP direction parser).
"""
from __future__ import annotations

from typing import Final, Protocol

from workers.anomalies import Anomalies, register
from workers.http1 import HalfParser
from workers.segment import FIN, SYN

ANOMALIES = register(
    {
        "tcp_retransmission": "a segment carried only bytes already delivered",
        "tcp_overlap_mismatch": "a retransmitted copy of bytes differed from the first copy",
        "tcp_gap": "bytes the capture never saw were skipped (count of gaps)",
        "tcp_gap_bytes": "total bytes skipped over gaps",
        "tcp_ooo_limit": "out-of-order bytes per direction passed the limit; a gap was forced",
        "tcp_worker_budget": "the worker's buffered-bytes budget was exhausted; a gap was forced",
        "tcp_data_after_close": "payload arrived after the direction had ended",
        "tcp_unacked_at_reset": "bytes held past a hole, never acknowledged, dropped at a RST",
    }
)

_MASK: Final = 0xFFFFFFFF
_HALF: Final = 0x80000000
_RECENT_BYTES: Final = 4096


class StreamConsumer(Protocol):
    """What a reassembled byte stream is delivered to."""

    def data(self, chunk: bytes, ts_ns: int) -> None: ...  # noqa: D102
    def gap(self, nbytes: int, ts_ns: int) -> None: ...  # noqa: D102
    def eof(self, ts_ns: int) -> None: ...  # noqa: D102


class Budget:
    """Bytes buffered out of order by all streams of one worker, against a cap."""

    __slots__ = ("used", "cap")

    def __init__(self, cap: int) -> None:
        self.used = 0
        self.cap = cap


class Reassembler:
    """Reassembles one direction of a TCP connection and feeds a consumer in order."""

    __slots__ = (
        "consumer", "anomalies", "budget", "max_ooo", "next_seq32", "next_off",
        "ooo", "ooo_bytes", "fin_off", "ended", "acked_off", "recent", "recent_bytes",
    )

    def __init__(
        self, consumer: StreamConsumer, anomalies: Anomalies, budget: Budget, max_ooo_bytes: int
    ) -> None:
        self.consumer = consumer
        self.anomalies = anomalies
        self.budget = budget
        self.max_ooo = max_ooo_bytes
        self.next_seq32: int | None = None  # wire sequence number of the next expected byte
        self.next_off = 0  # 64-bit relative offset of the next expected byte
        self.ooo: dict[int, bytes] = {}  # offset -> bytes waiting for a hole to fill
        self.ooo_bytes = 0
        self.fin_off: int | None = None
        self.ended = False
        self.acked_off = 0  # highest offset the peer acknowledged
        # the last few chunks delivered (references, at most _RECENT_BYTES), so a later copy
        # of the same bytes can be compared with what was delivered
        self.recent: list[tuple[int, bytes]] = []
        self.recent_bytes = 0

    def segment(self, seq: int, flags: int, payload: bytes, ts_ns: int) -> None:
        """Take one segment of this direction."""
        if flags & SYN:
            seq = (seq + 1) & _MASK  # the SYN occupies one sequence number
            if self.next_off == 0 and not self.ooo:
                # first SYN, or a retransmitted one that picked a new initial sequence number
                self.next_seq32 = seq
        if self.ended:
            if payload:
                self.anomalies.hit("tcp_data_after_close")
            return
        if self.next_seq32 is None:
            self.next_seq32 = seq
        delta = ((seq - self.next_seq32 + _HALF) & _MASK) - _HALF
        if payload:
            if delta == 0 and not self.ooo:
                self._deliver(payload, ts_ns)
            else:
                self._insert(self.next_off + delta, payload, ts_ns)
        if flags & FIN:
            fin_off = self.next_off + delta + len(payload)
            if self.fin_off is None or fin_off < self.fin_off:
                self.fin_off = fin_off
        if self.fin_off is not None and self.next_off >= self.fin_off:
            self.end(ts_ns)

    def note_ack(self, ack: int, ts_ns: int) -> None:
        """The peer acknowledged bytes up to wire sequence ``ack`` of this direction."""
        if self.next_seq32 is None:
            return
        off = self.next_off + (((ack - self.next_seq32 + _HALF) & _MASK) - _HALF)
        if off > self.acked_off:
            self.acked_off = off
            if self.ooo and off > self.next_off:
                # The receiver has the hole's bytes, so no retransmission will show them to us.
                self._skip_to(min(off, min(self.ooo)), ts_ns)
                self._drain(ts_ns)

    def end(self, ts_ns: int, reset: bool = False) -> None:
        """The direction is over (FIN reached, RST, expiry): flush what is held, then EOF.

        ``reset``: the connection was reset; held bytes the receiver never acknowledged are
        dropped rather than delivered (see the module rules).
        """
        if self.ended:
            return
        self.ended = True  # set first: draining below must not end the stream a second time
        if reset and self.ooo and self.acked_off > 0:
            self.anomalies.hit("tcp_unacked_at_reset", self.ooo_bytes)
            self.release()
        while self.ooo:
            self._skip_to(min(self.ooo), ts_ns)
            self._drain(ts_ns)
        self.consumer.eof(ts_ns)

    # -- internals ---------------------------------------------------------------------------
    def _deliver(self, chunk: bytes, ts_ns: int) -> None:
        recent = self.recent
        size = len(chunk)
        if size <= _RECENT_BYTES:
            recent.append((self.next_off, chunk))
            self.recent_bytes += size
            if len(recent) > 4 or self.recent_bytes > _RECENT_BYTES:
                self.recent_bytes -= len(recent.pop(0)[1])  # pop: del is a generic call
        elif recent:
            recent.clear()
            self.recent_bytes = 0
        self.next_off += size
        self.next_seq32 = ((self.next_seq32 or 0) + size) & _MASK
        consumer = self.consumer
        if isinstance(consumer, HalfParser):  # compiled: a direct call, not a look-up by name
            consumer.data(chunk, ts_ns)
        else:
            consumer.data(chunk, ts_ns)

    def _insert(self, off: int, payload: bytes, ts_ns: int) -> None:
        end = off + len(payload)
        if end <= self.next_off:
            self.anomalies.hit("tcp_retransmission")
            self._compare_old(off, payload)
            return
        if off < self.next_off:  # partly old: keep only the new tail (first copy wins)
            self._compare_old(off, payload[: self.next_off - off])
            payload = payload[self.next_off - off :]
            off = self.next_off
        if off == self.next_off:
            self._deliver(payload, ts_ns)
            self._drain(ts_ns)
            return
        held = self.ooo.get(off)
        if held is not None:
            n = min(len(held), len(payload))
            if held[:n] != payload[:n]:
                self.anomalies.hit("tcp_overlap_mismatch")
            if len(payload) <= len(held):
                return
            payload = payload[len(held) :]
            off += len(held)
            if off in self.ooo:
                return self._insert(off, payload, ts_ns)
        self.ooo[off] = payload
        self.ooo_bytes += len(payload)
        self.budget.used += len(payload)
        if self.acked_off > self.next_off:
            self._skip_to(min(self.acked_off, min(self.ooo)), ts_ns)
            self._drain(ts_ns)
        while self.ooo and (self.ooo_bytes > self.max_ooo or self.budget.used > self.budget.cap):
            self.anomalies.hit(
                "tcp_ooo_limit" if self.ooo_bytes > self.max_ooo else "tcp_worker_budget"
            )
            self._skip_to(min(self.ooo), ts_ns)
            self._drain(ts_ns)

    def _compare_old(self, off: int, payload: bytes) -> None:
        end = off + len(payload)
        for start, chunk in self.recent:
            lo, hi = max(off, start), min(end, start + len(chunk))
            if lo < hi and chunk[lo - start : hi - start] != payload[lo - off : hi - off]:
                self.anomalies.hit("tcp_overlap_mismatch")
                return

    def _skip_to(self, off: int, ts_ns: int) -> None:
        if off <= self.next_off:
            return
        n = off - self.next_off
        self.anomalies.hit("tcp_gap")
        self.anomalies.hit("tcp_gap_bytes", n)
        self.next_off = off
        self.next_seq32 = ((self.next_seq32 or 0) + n) & _MASK
        self.recent.clear()
        self.recent_bytes = 0
        self.consumer.gap(n, ts_ns)

    def _drain(self, ts_ns: int) -> None:
        ooo = self.ooo
        while ooo:
            off = min(ooo)
            if off > self.next_off:
                return
            chunk = ooo.pop(off)
            self.ooo_bytes -= len(chunk)
            self.budget.used -= len(chunk)
            if off + len(chunk) <= self.next_off:
                self._compare_old(off, chunk)
                continue
            if off < self.next_off:
                self._compare_old(off, chunk[: self.next_off - off])
                chunk = chunk[self.next_off - off :]
            self._deliver(chunk, ts_ns)
        if self.fin_off is not None and self.next_off >= self.fin_off and not self.ended:
            self.end(ts_ns)

    def release(self) -> None:
        """Give buffered bytes back to the worker budget (the connection is being dropped)."""
        self.budget.used -= self.ooo_bytes
        self.ooo.clear()
        self.ooo_bytes = 0

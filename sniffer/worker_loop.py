"""The work of one worker: decoded segments in, serialised API calls out.

Strategy: a thin composition of the pure core (``WorkerCore``) and the record builder, used
unchanged by the worker processes of the live pipeline and by ``read``. Each output line
carries an order key, ``(packet index << 16) | n``: the global index of the packet that
completed the call and its rank among the calls that packet completed. Keys do not depend on
how flows were spread over workers, so merging the workers' outputs by key gives the same
sequence of calls for any worker count. Calls flushed at the end of input are keyed after
every packet, by the index of their connection's first packet.
Time only advances with packets: ``tick()`` is called with packet time by the caller.
"""
from __future__ import annotations

from pathlib import Path
from typing import Final

from sniffer import codec
from sniffer.config import Config
from workers.core import WorkerCore
from workers.message import ApiCall
from workers.record import RecordBuilder
from workers.rules import Rules, parse
from workers.segment import Segment

#: Packet time between two expiry passes over the connection table.
TICK_NS: Final = 1_000_000_000

Line = tuple[int, bytes]  # (order key, serialised call)


def load_rules(cfg: Config) -> Rules:
    """Parse the configured logging rules (``RulesError`` on a bad rule)."""
    return parse(cfg.output.rules or "", load_file=lambda p: Path(p).read_text("utf-8"))


class WorkerLoop:
    """Reassembly, parsing, pairing and record building for the flows of one worker."""

    def __init__(self, cfg: Config, rules: Rules | None = None) -> None:
        rules = rules if rules is not None else load_rules(cfg)
        # response bodies the rules always remove are never stored (memory of bodies in flight)
        self.core = WorkerCore(cfg.limits, cfg.capture.ports,
                               keep_response_bodies=not rules.drops("response_body"))
        self.builder = RecordBuilder(
            rules,
            cfg.limits,
            host=cfg.output.host_name,
            capture_details=cfg.output.capture_details,
            realip_header=cfg.capture.realip_header,
            anomalies=self.core.anomalies,
        )
        self.calls = 0

    def feed(self, index: int, ts_ns: int, seg: Segment) -> list[Line]:
        """Take the packet with global ``index``; return the calls it completed."""
        calls = self.core.feed(ts_ns, seg, index)
        return self._lines(index, calls) if calls else []

    def feed_frame(self, frame: bytes | bytearray | memoryview) -> list[Line]:
        """Take every packet of a PACKETS ring frame; return the calls they completed.

        The per-packet loop lives here, in compiled code, not in the process shell."""
        out: list[Line] = []
        core = self.core
        count, data = codec.packets_data(frame)
        off = codec.FIRST_ITEM
        for _ in range(count):
            index, ts_ns, flow, sport, dport, seq, ack, flags, start, off = \
                codec.unpack_item(data, off)
            calls = core.feed_parts(ts_ns, index, flow, sport, dport, seq, ack, flags,
                                    data[start:off])
            if calls:
                out += self._lines(index, calls)
        codec.check_items_end(data, off, count)
        return out

    def tick(self, index: int, ts_ns: int) -> list[Line]:
        """Expire idle connections at packet time ``ts_ns`` (after packet ``index``)."""
        calls = self.core.tick(ts_ns)
        return self._lines(index, calls) if calls else []

    def close(self, end_index: int) -> list[Line]:
        """Flush every connection; keys follow all packets (``end_index`` = packet count)."""
        out: list[Line] = []
        for first_index, calls in self.core.close_by_connection():
            out += self._lines(end_index + first_index, calls)
        return out

    def counters(self) -> dict[str, int]:
        """Anomalies and totals of this worker."""
        c = dict(self.core.anomalies)
        c["segments"] = self.core.segments
        c["calls"] = self.calls
        c["calls_dropped_by_rules"] = self.builder.dropped_by_rules
        c["connections_open"] = self.core.connection_count
        return c

    def _lines(self, index: int, calls: list[ApiCall]) -> list[Line]:
        out: list[Line] = []
        base = index << 16
        for n, call in enumerate(calls):
            line = self.builder.build(call)
            if line is not None:
                out.append((base | min(n, 0xFFFF), line))
        self.calls += len(out)
        return out

"""TCP reassembly: order, duplication, overlap, wraparound, gaps, limits.

The property at the heart of it: for any payload, any segmentation, any local reordering
and any duplication of the data segments, the calls equal the in-order, one-segment case.
"""
from __future__ import annotations

import gc
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import C2S, S2C, Packet, conversation, run_core, summary
from workers.anomalies import Anomalies
from workers.core import WorkerCore
from workers.limits import CoreLimits
from workers.segment import ACK, RST, Segment
from workers.tcp import Budget, Reassembler

REQ = b"POST /items HTTP/1.1\r\nHost: api\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz"
RESP = b"HTTP/1.1 201 Created\r\nContent-Length: 12\r\n\r\n{\"id\": 4242}"
EXPECTED = [(b"POST", b"/items", b"abcdefghijklmnopqrstuvwxyz", 201, b'{"id": 4242}', (), ())]


class Sink:
    """Collects what a Reassembler delivers."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def data(self, chunk: bytes, ts_ns: int) -> None:
        if self.events and self.events[-1][0] == "data":
            self.events[-1] = ("data", self.events[-1][1] + chunk)
        else:
            self.events.append(("data", chunk))

    def gap(self, nbytes: int, ts_ns: int) -> None:
        self.events.append(("gap", nbytes))

    def eof(self, ts_ns: int) -> None:
        self.events.append(("eof",))


def _reassembler(max_ooo: int = 1 << 20) -> tuple[Reassembler, Sink, Anomalies]:
    sink, anomalies = Sink(), Anomalies()
    return Reassembler(sink, anomalies, Budget(1 << 30), max_ooo), sink, anomalies


def _data_shuffle(packets: list[Packet], rng: random.Random, dup: float) -> list[Packet]:
    """Shuffle and duplicate data segments within each direction (a direction's bytes can
    only be reordered among themselves: a server cannot answer before it is asked);
    handshake first, FINs last."""
    head = packets[:3]
    data = [p for p in packets[3:] if p.seg.payload]
    tail = [p for p in packets[3:] if not p.seg.payload]
    out: list[Packet] = []
    for side in (C2S, S2C):
        mine = [p for p in data if (p.seg.sport == 80) == (side == S2C)]
        for p in list(mine):
            if rng.random() < dup:
                mine.insert(rng.randrange(len(mine) + 1), p)
        rng.shuffle(mine)
        out += mine
    return head + out + tail


@settings(max_examples=60, deadline=None)
@given(mss=st.integers(1, 64), seed=st.integers(0, 2**32), dup=st.floats(0, 0.5))
def test_any_segmentation_order_and_duplication_gives_the_same_calls(mss, seed, dup) -> None:
    packets = conversation([(C2S, REQ), (S2C, RESP)], mss=mss)
    packets = _data_shuffle(packets, random.Random(seed), dup)
    assert summary(run_core(packets)) == EXPECTED


@settings(max_examples=40, deadline=None)
@given(isn=st.integers(0, 2**32 - 1), mss=st.integers(1, 40))
def test_sequence_wraparound(isn, mss) -> None:
    """Initial sequence numbers near 2^32 wrap inside the stream without harm."""
    packets = conversation([(C2S, REQ), (S2C, RESP)], mss=mss, client_isn=isn,
                           server_isn=(2**32 - 5))
    assert summary(run_core(packets)) == EXPECTED


def test_first_copy_wins_and_a_differing_copy_is_counted() -> None:
    r, sink, anomalies = _reassembler()
    r.segment(100, 0, b"abcd", 1)
    r.segment(106, 0, b"gh", 2)  # ahead of a hole
    r.segment(104, 0, b"XY", 3)  # fills the hole
    r.segment(104, 0, b"ZZ", 4)  # old bytes, other data
    r.segment(102, 0, b"cdXYgh", 5)  # old bytes, same data
    assert sink.events == [("data", b"abcdXYgh")]
    assert anomalies["tcp_overlap_mismatch"] == 1
    assert anomalies["tcp_retransmission"] == 2


def test_ack_past_a_hole_declares_a_gap() -> None:
    r, sink, anomalies = _reassembler()
    r.segment(1, 0, b"abc", 1)
    r.segment(10, 0, b"xyz", 2)
    assert sink.events == [("data", b"abc")]
    r.note_ack(13, 3)  # the receiver got everything: bytes 4..9 will never be seen
    assert sink.events == [("data", b"abc"), ("gap", 6), ("data", b"xyz")]
    assert anomalies["tcp_gap_bytes"] == 6


def test_out_of_order_limit_forces_a_gap() -> None:
    r, sink, anomalies = _reassembler(max_ooo=10)
    r.segment(1, 0, b"a", 1)
    r.segment(5, 0, b"b" * 8, 2)
    r.segment(13, 0, b"c" * 8, 3)  # 16 bytes held > 10
    assert ("gap", 3) in sink.events
    assert anomalies["tcp_ooo_limit"] == 1


def test_end_flushes_held_data_after_gaps() -> None:
    r, sink, _ = _reassembler()
    r.segment(1, 0, b"a", 1)
    r.segment(3, 0, b"c", 2)
    r.end(3)
    assert sink.events == [("data", b"a"), ("gap", 1), ("data", b"c"), ("eof",)]


def test_lost_request_body_segment_marks_the_call_incomplete_and_parsing_goes_on() -> None:
    """A segment lost inside a body of known length: the call is kept (marked), the next
    request on the connection is parsed normally."""
    second = b"GET /next HTTP/1.1\r\nHost: api\r\n\r\n"
    packets = conversation([(C2S, REQ), (S2C, RESP), (C2S, second), (S2C, RESP)], mss=20)
    lost = next(i for i, p in enumerate(packets) if b"fghij" in p.seg.payload)
    del packets[lost]
    calls = run_core(packets)
    assert [c.request.target for c in calls if c.request] == [b"/items", b"/next"]
    assert "request-incomplete" in calls[0].notes
    assert calls[1].notes == []


def test_mid_stream_pickup_resyncs_at_the_next_request() -> None:
    """No handshake and the first bytes are the middle of a body: skip to the next request."""
    tail = b"ZZZZ tail of an earlier body\r\n"
    packets = conversation([(C2S, tail + REQ), (S2C, RESP)], handshake=False)
    calls = run_core(packets)
    assert summary(calls) == EXPECTED


def test_mid_stream_pickup_without_server_port_learns_roles_from_content() -> None:
    """Capture starts with the server's bytes: the client is whoever sends requests."""
    packets = conversation([(S2C, RESP), (C2S, REQ), (S2C, RESP)], handshake=False)
    calls = run_core(packets)
    assert [(c.request is None, c.response.status) for c in calls] == [(True, 201), (False, 201)]
    assert calls[1].client == (b"\x0a\x00\x00\x01", 40000)


def test_rst_flushes_the_connection() -> None:
    packets = conversation([(C2S, REQ)], close="rst")
    calls = run_core(packets, WorkerCore())
    assert summary(calls)[0][:3] == EXPECTED[0][:3]
    assert calls[0].notes == ["response-missing"]


def test_idle_expiry_runs_on_packet_time() -> None:
    core = WorkerCore(CoreLimits(idle_timeout_s=30))
    packets = conversation([(C2S, REQ)], close=None)
    for p in packets:
        assert core.feed(p.ts_ns, p.seg) == []
    last = packets[-1].ts_ns
    assert core.tick(last + 29 * 10**9) == []
    calls = core.tick(last + 31 * 10**9)
    assert len(calls) == 1 and calls[0].notes == ["response-missing"]
    assert core.anomalies["conn_expired"] == 1 and core.connection_count == 0


def test_connection_table_is_bounded() -> None:
    core = WorkerCore(CoreLimits(max_connections=2))
    for port in range(3):
        client = (b"\x0a\x00\x00\x09", 50000 + port)
        for p in conversation([(C2S, REQ)], close=None, client=client):
            core.feed(p.ts_ns + port, p.seg)
    assert core.connection_count == 2
    assert core.anomalies["conn_evicted"] == 1


def test_port_reuse_starts_a_new_connection() -> None:
    first = conversation([(C2S, REQ), (S2C, RESP)], close=None)
    second = conversation([(C2S, REQ), (S2C, RESP)], close=None, client_isn=777777,
                          t0_ns=first[-1].ts_ns + 10)
    calls = run_core(first + second)
    assert summary(calls) == EXPECTED * 2


def test_pure_acks_do_not_open_connections() -> None:
    core = WorkerCore()
    seg = Segment(b"\x01\x02\x03\x04", 1, b"\x01\x02\x03\x05", 2, 10, 20, ACK, b"")
    assert core.feed(1, seg) == [] and core.connection_count == 0


@pytest.mark.parametrize("acked, reset, events", [
    # the receiver acknowledged one byte of the 2-byte hole (a gap); at a RST, "c" (held past
    # the rest of the hole) was never read by the application and is dropped
    (4, True, [("data", b"ab"), ("gap", 1), ("eof",)]),
    # no acknowledgement seen (one-sided capture): deliver as at a FIN
    (None, True, [("data", b"ab"), ("gap", 2), ("data", b"c"), ("eof",)]),
    # a FIN (no reset) flushes held bytes after the gap as before
    (4, False, [("data", b"ab"), ("gap", 1), ("gap", 1), ("data", b"c"), ("eof",)]),
], ids=["rst-drops-unacked", "rst-without-acks-flushes", "fin-flushes"])
def test_reset_drops_held_bytes_the_receiver_never_acknowledged(acked, reset, events) -> None:
    r, sink, anomalies = _reassembler()
    r.segment(1, 0, b"ab", 1)
    r.segment(5, 0, b"c", 2)
    if acked is not None:
        r.note_ack(acked, 3)
    r.end(4, reset)
    assert sink.events == events
    assert anomalies["tcp_unacked_at_reset"] == (1 if reset and acked else 0)


def test_rst_notes_its_ack_then_drops_the_unacked_tail() -> None:
    """The resetting client acknowledged part of a lost stretch: that part is a gap inside
    the body, the bytes past the rest of the hole are dropped, the call is incomplete."""
    body = bytes(range(65, 91)) * 4  # 104 bytes
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n" + body
    packets = conversation([(C2S, REQ), (S2C, resp)], mss=20, close=None)
    server = [p for p in packets if p.seg.sport == 80 and p.seg.payload]
    lost = server[-3]  # a hole two segments before the end
    packets.remove(lost)
    client = [p for p in packets if p.seg.dport == 80][-1].seg
    rst_ack = (lost.seg.seq + 8) & 0xFFFFFFFF  # the client got 8 bytes of the hole
    rst = Segment(client.src, client.sport, client.dst, client.dport,
                  (client.seq + len(client.payload)) & 0xFFFFFFFF, rst_ack, RST | ACK, b"")
    packets.append(Packet(packets[-1].ts_ns + 1, rst))
    core = WorkerCore()
    (call,) = run_core(packets, core)
    assert call.response is not None and call.notes == ["response-incomplete"]
    kept_until = lost.seg.seq - server[0].seg.seq - (len(resp) - len(body))
    assert call.response.body == body[:kept_until]
    assert call.response.body_size == kept_until + 8
    assert core.anomalies["tcp_unacked_at_reset"] == sum(len(p.seg.payload) for p in server[-2:])


@pytest.mark.parametrize("close", ["fin", "rst", None])
def test_a_dropped_connection_leaves_no_cyclic_garbage(close) -> None:
    # a finished connection cuts its parsers' back reference, so reference counting frees it
    # (parsers, reassemblers, exchanges) when the table lets go: no work left for the collector
    gc.collect()
    gc.disable()
    try:
        core = WorkerCore()
        calls = []
        for port in range(20):
            client = (b"\x0a\x00\x00\x09", 50000 + port)
            calls += run_core(conversation([(C2S, REQ), (S2C, RESP)], close=close,
                                           client=client), core)
        assert len(calls) == 20 and core.connection_count == 0
        del calls
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize("client, server", [
    ((b"\x0a\x00\x00\x01", 40000), (b"\x0a\x00\x00\x02", 80)),
    ((b"\xfd" + b"\x00" * 14 + b"\x01", 443), (b"\xfd" + b"\x00" * 14 + b"\x02", 8080)),
])
def test_both_directions_find_one_connection_by_their_flow_keys(client, server) -> None:
    """The table holds a connection under the flow key of each direction (addresses, then
    ports, big-endian), and lets go of both when it ends."""
    core = WorkerCore()
    exchange = [(C2S, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
                (S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]
    packets = conversation(exchange, client=client, server=server)
    calls = []
    for p in packets[:-2]:  # all but the closing FINs
        calls += core.feed(p.ts_ns, p.seg)
    (caddr, cport), (saddr, sport) = client, server
    ports = cport.to_bytes(2, "big"), sport.to_bytes(2, "big")
    assert set(core.conns) == {caddr + saddr + ports[0] + ports[1],
                               saddr + caddr + ports[1] + ports[0]}
    assert core.connection_count == 1 and len(calls) == 1 and calls[0].client == client
    for p in packets[-2:]:
        calls += core.feed(p.ts_ns, p.seg)
    assert core.conns == {} and len(calls) == 1

"""Sharder (sniffer/sharder.py, fed by capture_proc.read_source) over real rings and a real
capture: every TCP segment goes once, with its packet index, to the worker its flow hash
picks; both directions alike."""
from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from sniffer import codec
from sniffer import sharder as sharder_module
from sniffer.capture_proc import read_source
from sniffer.sharder import Sharder
from sniffer.config import load_config
from sniffer.flowhash import flow_hash, worker_for
from sniffer.pcapfile import iter_packets
from sniffer.pipeline import StatsReporter, Wiring
from sniffer.ring import Ring
from workers.decode import Decoder

CAPTURE = "/work/shared/corpus/pcaps/zeek-cab-multi-conn.pcap"


def run(workers: int, ports: str = "", sync_packets: int | None = None,
        ) -> tuple[Sharder, list[list[tuple[int, int, object]]], list[list[str]]]:
    """Read CAPTURE through a Sharder into real rings; return what each worker received."""
    env = {"SNIFFER_CAPTURE_PORTS": ports} if ports else {}
    cfg = load_config(None, env, {})
    rings = [Ring.create(4 << 20) for _ in range(workers)]
    ctx = mp.get_context("spawn")
    wiring = Wiring(inputs=rings, outputs=[], stop=ctx.Event(), stats=ctx.Queue(),
                    source=CAPTURE, ordered=True, lossless=True, parent_pid=os.getppid())
    try:
        sharder = Sharder(cfg, wiring)
        if sync_packets is not None:
            sharder.sync_packets = sync_packets
        read_source(CAPTURE, sharder, wiring, StatsReporter("capture", wiring))
        sharder.end()
        packets: list[list[tuple[int, int, object]]] = [[] for _ in range(workers)]
        words: list[list[str]] = [[] for _ in range(workers)]
        for w, ring in enumerate(rings):
            while frames := ring.get_many(1000):
                for frame in frames:
                    if codec.frame_kind(frame) is codec.Kind.PACKETS:
                        packets[w] += codec.decode_packets(frame)
                    else:  # with the count of packets before it, for the SYNC test
                        words[w].append(f"{codec.decode_control(frame)} @{len(packets[w])}")
        return sharder, packets, words
    finally:
        for ring in rings:
            ring.unlink()
        wiring.stats.close()


needs_corpus = pytest.mark.skipif(not os.path.exists(CAPTURE), reason="no corpus capture")


@needs_corpus
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_every_segment_reaches_its_flows_worker_once_in_order(workers: int) -> None:
    decoder = Decoder()
    expected = [(i, ts, decoder.decode(lt, frame))
                for i, (ts, lt, frame) in enumerate(iter_packets(CAPTURE))]
    expected = [e for e in expected if e[2] is not None]
    sharder, packets, words = run(workers)
    assert sorted(p for ps in packets for p in ps) == sorted(expected)
    for w, got in enumerate(packets):
        assert [i for i, _, _ in got] == sorted(i for i, _, _ in got)  # capture order
        for _, _, seg in got:
            assert worker_for(flow_hash(seg.src, seg.sport, seg.dst, seg.dport), workers) == w
        assert words[w][-1].startswith(f"END {sharder.index} @")
        assert words[w][0].startswith("TICK ")
    assert sharder.counters["segments_sent"] == len(expected)
    assert sharder.counters["packets"] == sharder.index == len(list(iter_packets(CAPTURE)))


@needs_corpus
def test_the_flow_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sharder_module, "MAX_CACHED_FLOWS", 4)
    sharder, packets, _ = run(2)
    flows = {frozenset({(s.src, s.sport), (s.dst, s.dport)}) for ps in packets for _, _, s in ps}
    assert len(flows) > 2  # the cache had to be cleared along the way
    assert len(sharder.owners) <= 4


@needs_corpus
def test_the_port_filter_applies_to_files() -> None:
    _, packets, _ = run(2, ports="1")
    assert packets == [[], []]


def test_batches_end_at_a_byte_bound_so_big_packets_always_fit_the_ring() -> None:
    """256 offloaded 60 KB segments would be a 15 MB frame: more than a 1 MiB ring holds, so
    it could never be put. Batches end at 1/8 of the ring instead, and all of them arrive."""
    from tests.helpers import conversation
    from tests.pcapgen import frame

    body = b"x" * 60_000
    packets = conversation([("c", b"POST / HTTP/1.1\r\nContent-Length: 60000\r\n\r\n" + body)],
                           mss=65_000)
    ring = Ring.create(1 << 20)
    ctx = mp.get_context("spawn")
    wiring = Wiring(inputs=[ring], outputs=[], stop=ctx.Event(), stats=ctx.Queue(),
                    source=None, ordered=False, lossless=False, parent_pid=os.getppid())
    try:
        sharder = Sharder(load_config(None, {}, {}), wiring)
        assert sharder.batch_bytes == (1 << 20) // 8
        got = 0
        for _ in range(40):  # 40 copies of the big segment, drained as they come
            sharder.packets(1, [(p.ts_ns, frame(p)) for p in packets])
            while frames := ring.get_many(100):
                got += sum(len(codec.decode_packets(f)) for f in frames
                           if codec.frame_kind(f) is codec.Kind.PACKETS)
        sharder.flush()
        got += sum(len(codec.decode_packets(f)) for f in ring.get_many(100))
        assert sharder.counters["ring_frames_dropped"] == 0
        assert got == sharder.counters["segments_sent"] == 40 * len(packets)
    finally:
        ring.unlink()
        wiring.stats.close()


@needs_corpus
def test_sync_words_mark_how_far_each_worker_was_sent() -> None:
    sharder, packets, words = run(2, sync_packets=7)
    syncs = [(w, word) for w in range(2) for word in words[w] if word.startswith("SYNC ")]
    assert len(syncs) > 4
    for w, word in syncs:
        index, before = int(word.split()[1]), int(word.split("@")[1])
        # every packet sent before the word is at or below its index, every later one above
        assert all(i <= index for i, _, _ in packets[w][:before])
        assert all(i > index for i, _, _ in packets[w][before:])
    assert not [word for ws in run(2)[2] for word in ws if word.startswith("SYNC ")]


def _mixed_frames() -> list[tuple[int, bytes]]:
    """Both directions of many flows, each direction in a different shape: the common frame
    (whose header bytes the sharder ships as they are) against IP options, VLAN tags, SLL,
    IPv6; plus frames that are no segment at all."""
    from tests.workers.test_decode import SLL_HEAD, eth, ipv4, ipv6, tcp

    out: list[tuple[int, bytes]] = []
    for i in range(60):
        a4, b4 = bytes([10, 0, i // 8, i]), bytes([10, 1, 0, 2])
        port = 30000 + 17 * i
        there = tcp(b"GET /%d HTTP/1.1\r\n\r\n" % i, port, 80, seq=i, ack=2 * i, flags=0x18)
        back = tcp(b"HTTP/1.1 200 OK\r\n\r\n", 80, port, seq=3 * i, ack=i + 1, flags=0x11 + i % 2)
        out.append((1, eth(ipv4(there, src=a4, dst=b4, frag=0x4000 * (i % 2)))))
        shape = i % 4
        if shape == 0:
            out.append((1, eth(ipv4(back, src=b4, dst=a4, options=b"\x01" * 4))))
        elif shape == 1:
            out.append((1, eth(ipv4(back, src=b4, dst=a4), tags=(0x8100,))))
        elif shape == 2:
            out.append((113, SLL_HEAD + b"\x08\x00" + ipv4(back, src=b4, dst=a4)))
        else:
            out.append((1, eth(ipv4(back, src=b4, dst=a4)) + b"\0" * 6))  # trailer padding
        a6, b6 = b"\xfd" + bytes(14) + bytes([i]), b"\xfd" + bytes(14) + b"\xff"
        out.append((1, eth(ipv6(there, src=a6, dst=b6), 0x86DD)))
        out.append((113, SLL_HEAD + b"\x86\xdd" + ipv6(back, src=b6, dst=a6)))
    out += [(1, eth(ipv4(tcp(b"x"), proto=17))), (1, eth(ipv4(tcp(b"cut")))[:30]),
            (1, eth(ipv4(tcp(b"x"), frag=0x2000)))]
    return out


@pytest.mark.parametrize("workers", [1, 3])
def test_the_common_frame_shipped_as_it_is_decodes_like_every_other(workers: int) -> None:
    """What a worker unpacks is what Decoder.decode makes of each frame, whether the sharder
    copied the frame's header bytes (plain IPv4) or packed decoded fields (everything else),
    and both directions of each flow meet in its worker though they took different paths."""
    frames = _mixed_frames()
    decoder = Decoder()
    expected = [(i, 1000 + i, decoder.decode(lt, f)) for i, (lt, f) in enumerate(frames)]
    rings = [Ring.create(1 << 20) for _ in range(workers)]
    ctx = mp.get_context("spawn")
    wiring = Wiring(inputs=rings, outputs=[], stop=ctx.Event(), stats=ctx.Queue(),
                    source=None, ordered=False, lossless=False, parent_pid=os.getppid())
    try:
        sharder = Sharder(load_config(None, {}, {}), wiring)
        for i, (lt, f) in enumerate(frames):  # link types alternate: one packet per call
            sharder.packets(lt, [(1000 + i, f)])
        sharder.flush()
        got = [[p for fr in ring.get_many(1000) for p in codec.decode_packets(fr)]
               for ring in rings]
    finally:
        for ring in rings:
            ring.unlink()
        wiring.stats.close()
    assert sorted(p for ps in got for p in ps) == [e for e in expected if e[2] is not None]
    for w, items in enumerate(got):
        for _, _, seg in items:
            assert worker_for(flow_hash(seg.src, seg.sport, seg.dst, seg.dport), workers) == w
    counters = sharder.all_counters()
    assert counters["segments_sent"] == sum(e[2] is not None for e in expected) == 240
    assert {k: v for k, v in counters.items() if k.startswith("decode_")} == dict(
        decoder.anomalies)
    if workers > 1:  # both directions of 120 flows, cached under the frame's byte order
        assert len(sharder.owners) == 240


@needs_corpus
def test_a_packet_time_outside_u64_is_a_codec_error_not_a_crash() -> None:
    """A time no item can hold (a bug upstream, never traffic) raises CodecError, on the
    common-frame path (the C item helper: OverflowError) as on the general one."""
    cfg = load_config(None, {}, {})
    ring = Ring.create(1 << 20)
    ctx = mp.get_context("spawn")
    wiring = Wiring(inputs=[ring], outputs=[], stop=ctx.Event(), stats=ctx.Queue(),
                    source=CAPTURE, ordered=True, lossless=True, parent_pid=os.getppid())
    try:
        _, linktype, frame = next(iter(iter_packets(CAPTURE)))
        sharder = Sharder(cfg, wiring)
        sharder.packets(linktype, [(1_700_000_000_000_000_000, frame)])
        with pytest.raises(codec.CodecError, match="out of range"):
            sharder.packets(linktype, [(2**64, frame)])
    finally:
        ring.unlink()
        wiring.stats.close()

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

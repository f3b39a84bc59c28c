"""Tests of sniffer/ring.py: the same producer/consumer code under threads and spawned
processes, wrap-around, drops, integrity over millions of bytes, and no /dev/shm leftovers."""
from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import zlib
from multiprocessing import shared_memory
from typing import Any

import pytest

from sniffer.ring import HEADER_BYTES, Ring, RingError

SPAWN = multiprocessing.get_context("spawn")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _shm_entries(ring: Ring) -> set[str]:
    """The /dev/shm files backing ``ring``: its segment and its doorbell semaphore."""
    sem = ring._sem_owner._semlock.name.lstrip("/")
    wanted = {ring.name.lstrip("/"), f"sem.{sem}"}
    return wanted & set(os.listdir("/dev/shm"))


@pytest.fixture
def ring() -> Any:
    r = Ring.create(4096)
    entries = _shm_entries(r)
    assert len(entries) == 2
    yield r
    r.close()
    if r._sem_owner is not None:
        r.unlink()
    assert not entries & set(os.listdir("/dev/shm")), "ring left files in /dev/shm"


# ----------------------------------------------------------------------- shared workloads
def make_frame(seq: int, size: int, rnd: random.Random) -> bytes:
    """``seq`` (8 bytes) | random filler | crc32 of everything before (4 bytes)."""
    body = seq.to_bytes(8, "little") + rnd.randbytes(max(0, size - 12))
    return body + zlib.crc32(body).to_bytes(4, "little")


def producer(name: str, n: int, seed: int, sizes: tuple[int, int], lossless: bool,
             results: Any) -> None:
    """Send ``n`` checksummed frames then an empty end frame. Lossless mode retries a full
    ring (bounded); lossy mode drops like the capture process. Reports its failures."""
    ring = Ring.attach(name)
    rnd = random.Random(seed)
    failures = data_drops = 0
    deadline = time.monotonic() + 60
    try:
        for seq in range(n):
            frame = make_frame(seq, rnd.randint(*sizes), rnd)
            while not ring.put(frame):
                failures += 1
                if not lossless:
                    data_drops += 1
                    break
                assert time.monotonic() < deadline, "consumer stalled"
                time.sleep(0.0002)
        while not ring.put(b""):
            failures += 1
            assert time.monotonic() < deadline, "consumer stalled"
            time.sleep(0.0002)
        results.put(("producer", failures, data_drops))
    finally:
        ring.close()


def consumer(name: str, results: Any) -> None:
    """Read until the empty end frame; report count, bytes, bad checksums, order breaks."""
    ring = Ring.attach(name)
    count = nbytes = bad = unordered = 0
    last = -1
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for frame in ring.get_many(64, 0.5):
                if not frame:
                    results.put(("consumer", count, nbytes, bad, unordered, last))
                    return
                seq = int.from_bytes(frame[:8], "little")
                bad += zlib.crc32(frame[:-4]) != int.from_bytes(frame[-4:], "little")
                unordered += seq <= last
                last, count, nbytes = seq, count + 1, nbytes + len(frame)
        results.put(("consumer", "timeout"))
    finally:
        ring.close()


def run_pair(medium: str, ring: Ring, n: int, sizes: tuple[int, int], lossless: bool) -> dict:
    """Run producer and consumer under ``medium`` ("thread" or "process"); their reports."""
    results: Any = queue.Queue() if medium == "thread" else SPAWN.SimpleQueue()
    runner: Any = threading.Thread if medium == "thread" else SPAWN.Process
    workers = [runner(target=consumer, args=(ring.name, results)),
               runner(target=producer, args=(ring.name, n, 7, sizes, lossless, results))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=90)
    assert not any(w.is_alive() for w in workers)
    reports = {r[0]: r[1:] for r in (results.get() for _ in workers)}
    if medium == "process":
        assert [w.exitcode for w in workers] == [0, 0]
        results.close()
    return reports


# ----------------------------------------------------------------------- single process
SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 100, 1000, 4096 - 4]


@pytest.mark.parametrize("size", SIZES)
def test_frame_sizes_round_trip_at_every_offset(ring: Ring, size: int) -> None:
    """A frame of each size survives starting at many offsets, so every split of the
    payload across the wrap point is exercised; the largest frame fills the whole ring."""
    payload = bytes(range(256)) * (size // 256 + 1)
    frame = payload[:size]
    for offset_frames in range(0, 40):
        assert ring.put(frame), (size, offset_frames)
        assert ring.get_many(5, 0) == [frame]
        assert ring.put(b"x" * (offset_frames % 13))  # shift the next start position
        assert len(ring.get_many(5, 0)) == 1
    c = ring.counters()
    assert c["used_bytes"] == 0 and c["frames_put"] == c["frames_got"] == 80


def test_wraps_around_many_times_in_order(ring: Ring) -> None:
    rnd = random.Random(3)
    sent, got = [], []
    for i in range(20000):
        frame = make_frame(i, rnd.randint(12, 300), rnd)
        if ring.put(frame):
            sent.append(frame)
        if rnd.random() < 0.4:
            got += ring.get_many(rnd.randint(1, 8), 0)
    while batch := ring.get_many(100, 0):
        got += batch
    assert got == sent
    c = ring.counters()
    assert c["bytes_got"] > 200 * ring.capacity_bytes, "the test should wrap many times"
    assert c["frames_dropped"] == 20000 - len(sent) > 0


def test_full_ring_drops_are_counted_and_never_block(ring: Ring) -> None:
    frame = b"f" * 100  # 104 bytes + 0 pad -> 104-byte records
    accepted = sum(ring.put(frame) for _ in range(100))
    assert accepted == ring.capacity_bytes // 104
    c = ring.counters()
    assert c["frames_dropped"] == 100 - accepted and c["bytes_dropped"] == 100 * (100 - accepted)
    assert not ring.put(b"z" * ring.capacity_bytes)  # can never fit: dropped, not raised
    assert ring.counters()["frames_dropped"] == 101 - accepted
    assert len(ring.get_many(1000, 0)) == accepted
    assert ring.put(frame)  # space is reusable after the consumer advanced


def test_put_many_accepts_what_fits_in_order(ring: Ring) -> None:
    frames = [bytes([i]) * 1000 for i in range(6)]
    assert ring.put_many(frames) == 4  # 4 * 1008 <= 4096
    assert ring.get_many(10, 0) == frames[:4]
    assert ring.counters()["frames_dropped"] == 2


def test_get_many_limits_and_timeouts(ring: Ring) -> None:
    assert ring.get_many(10, 0) == [] and ring.get_many(0, 0) == []
    start = time.monotonic()
    assert ring.get_many(10, 0.05) == []
    assert time.monotonic() - start >= 0.04
    ring.put_many([b"a", b"b", b"c"])
    assert ring.get_many(2, 1.0) == [b"a", b"b"]
    assert ring.get_many(2, None) == [b"c"]


def test_consumer_blocks_until_the_producer_posts(ring: Ring) -> None:
    """A consumer waiting in get_many wakes up when a frame arrives from another thread."""
    timer = threading.Timer(0.05, ring.put, args=(b"late",))
    timer.start()
    try:
        assert ring.get_many(4, 10.0) == [b"late"]
    finally:
        timer.join()


def test_attached_end_cannot_unlink_and_pickles_by_name(ring: Ring) -> None:
    other = pickle.loads(pickle.dumps(ring))
    try:
        assert other.name == ring.name and other.capacity_bytes == ring.capacity_bytes
        with pytest.raises(RingError):
            other.unlink()
        other.put(b"hello")
        assert ring.get_many(1, 1.0) == [b"hello"]
    finally:
        other.close()
        other.close()  # idempotent


def test_corrupt_tail_is_detected(ring: Ring) -> None:
    ring._hdr[8] = 5  # W_TAIL, not 8-aligned: a second producer or a stray write
    with pytest.raises(RingError):
        ring.put(b"x")
    ring._hdr[8] = 0


def test_attaching_to_something_else_is_an_error() -> None:
    shm = shared_memory.SharedMemory(create=True, size=HEADER_BYTES + 64)
    try:
        with pytest.raises(RingError):
            Ring.attach(shm.name)
    finally:
        shm.close()
        shm.unlink()


def test_capacity_is_bounded() -> None:
    with pytest.raises(ValueError):
        Ring.create(1 << 32)


# ----------------------------------------------------------------------- two executions
@pytest.mark.parametrize("medium", ["thread", "process"])
def test_lossless_integrity_over_millions_of_bytes(ring: Ring, medium: str) -> None:
    """~3 MB in frames of 12..1500 bytes through a 4 KiB ring: every frame arrives once, in
    order, with a valid checksum (the producer retries when the ring is full)."""
    reports = run_pair(medium, ring, 4000, (12, 1500), lossless=True)
    count, nbytes, bad, unordered, last = reports["consumer"]
    assert (count, bad, unordered, last) == (4000, 0, 0, 3999)
    assert nbytes > 2_500_000
    failures, _ = reports["producer"]
    assert ring.counters()["frames_dropped"] == failures
    assert ring.counters()["frames_got"] == 4001


@pytest.mark.parametrize("medium", ["thread", "process"])
def test_lossy_producer_drops_are_all_accounted(ring: Ring, medium: str) -> None:
    """A producer that never waits: received + dropped == sent, and what arrives is intact."""
    reports = run_pair(medium, ring, 3000, (12, 600), lossless=False)
    count, _, bad, unordered, _ = reports["consumer"]
    failures, data_drops = reports["producer"]
    assert bad == unordered == 0
    assert count + data_drops == 3000
    assert ring.counters()["frames_dropped"] == failures


# ----------------------------------------------------------------------- lifetime
def _attach_and_hang(name: str) -> None:
    ring = Ring.attach(name)
    ring.put(b"attached")
    time.sleep(60)


def test_sigkilled_child_leaves_nothing_after_unlink() -> None:
    ring = Ring.create(1024)
    entries = _shm_entries(ring)
    child = SPAWN.Process(target=_attach_and_hang, args=(ring.name,))
    child.start()
    try:
        assert ring.get_many(1, 30.0) == [b"attached"]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    assert child.exitcode == -signal.SIGKILL
    assert _shm_entries(ring) == entries  # the child's death did not unlink anything
    ring.close()
    ring.unlink()
    assert not entries & set(os.listdir("/dev/shm"))


def test_unrelated_process_that_attaches_does_not_unlink_at_exit() -> None:
    """A process not started by multiprocessing (own resource tracker) attaches, puts, exits;
    the segment survives and its tracker says nothing about leaks (CPython gh-82300)."""
    ring = Ring.create(1024)
    try:
        code = ("import sys; from sniffer.ring import Ring\n"
                "r = Ring.attach(sys.argv[1]); assert r.put(b'from outside'); r.close()\n")
        res = subprocess.run([sys.executable, "-c", code, ring.name], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert "leaked" not in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert len(_shm_entries(ring)) == 2
        assert ring.get_many(1, 1.0) == [b"from outside"]
    finally:
        ring.close()
        ring.unlink()


# ----------------------------------------------------------------------- throughput report
def _blast(name: str, n: int, batch: int) -> None:
    ring = Ring.attach(name)
    frame = bytes(1024)
    sent = 0
    deadline = time.monotonic() + 60
    while sent < n and time.monotonic() < deadline:
        sent += ring.put_many([frame] * min(batch, n - sent)) if batch > 1 else ring.put(frame)
    ring.close()


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 32])
def test_report_throughput_1kib_frames(batch: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a speed assertion: a spawned producer pushes 1 KiB frames (put or put_many) through
    a 1 MiB ring to this process; prints MB/s and frames/s."""
    n = 100_000
    ring = Ring.create(1 << 20)
    proc = SPAWN.Process(target=_blast, args=(ring.name, n, batch))
    try:
        proc.start()
        assert ring.get_many(1, 30.0)  # the first frame starts the clock
        start, got = time.perf_counter(), 1
        while got < n:
            frames = ring.get_many(256, 5.0)
            assert frames, "producer stalled"
            got += len(frames)
        elapsed = time.perf_counter() - start
        proc.join(30)
        with capsys.disabled():
            print(f"\nring, 1 KiB frames, producer batch {batch}: {n / elapsed:,.0f} frames/s, "
                  f"{n * 1024 / elapsed / 1e6:,.0f} MB/s")
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        ring.close()
        ring.unlink()

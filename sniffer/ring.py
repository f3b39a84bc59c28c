"""SPSC shared-memory ring of length-prefixed frames between two processes.

Strategy: one producer process and one consumer process share one ``SharedMemory`` segment,
modelled on faster-fifo's C++ core: a fixed header, then a byte ring of frames. The producer
never blocks: when a frame does not fit, ``put`` returns False and counts a drop. The consumer
blocks on a process-shared counting semaphore (the doorbell) with a timeout instead of spinning.

Layout (all u64 fields 8-byte aligned, native byte order; ``W`` = word index in the header):

    bytes     W      field            written by
    0..7      0      MAGIC            creator
    8..15     1      LAYOUT_VERSION   creator
    16..23    2      capacity_bytes   creator (multiple of 8; size of the data area)
    64..71    8      tail             producer: bytes ever written (monotonic, never wrapped)
    72..103   9-12   frames_put, bytes_put, frames_dropped, bytes_dropped   producer
    128..135  16     head             consumer: bytes ever consumed (monotonic)
    136..151  17-18  frames_got, bytes_got                                   consumer
    192..255  -      doorbell semaphore name (NUL padded)                   creator
    256..     -      data area, ``capacity_bytes`` long

A frame is ``u32 length | payload``, padded to a multiple of 8 bytes, written at
``tail % capacity``. The length word never straddles the end (positions are 8-aligned and the
capacity is a multiple of 8); a payload may, and ``_spans`` is the one place that splits a copy
at the wrap point. Used bytes are ``tail - head``; the counters are monotonic, so there is no
full/empty ambiguity and no wrap marker.

Rules: SPSC only. The producer writes only its cache line (tail and its counters), the consumer
only its own (head and its counters); each side reads the other's. The u64 fields are read and
written through a ``memoryview`` cast to ``"Q"``, which CPython copies with a fixed-size 8-byte
``memcpy`` (one 64-bit load/store); aligned 64-bit accesses are single-copy atomic on x86-64
and arm64, so no side ever sees a torn value.

Ordering: the producer copies the payload, stores ``tail``, then posts the semaphore once per
frame; the consumer waits on the semaphore once per frame before reading it. POSIX lists
``sem_post``/``sem_wait`` among the functions that synchronize memory, so the consumer sees the
payload bytes even on arm64, whose stores may otherwise become visible out of order (x86-64's
TSO keeps stores in order anyway). In the other direction the consumer copies frames out, runs
a full fence (``_fence``: an uncontended lock acquire+release, i.e. atomic acquire/release
instructions), then stores ``head``; the producer's later writes into that space depend on the
``head`` it loaded, and CPUs never make stores visible speculatively.

Lifetime: ``Ring.create`` (the supervisor) owns the segment and the semaphore and alone calls
``unlink``. ``Ring.attach(name)`` (children, tools) never unlinks: on 3.13+ it passes
``track=False``; on 3.11/3.12 a child started by ``multiprocessing`` shares the parent's resource
tracker (so its registration is a harmless duplicate), while an unrelated process that attaches
unregisters from its own private tracker, which would otherwise unlink the segment when that
process exits (CPython gh-82300). A consumer killed between taking doorbell tokens and storing
``head`` leaves the ring inconsistent: the supervisor recreates rings when it restarts a child.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import struct
import sys
import threading
from multiprocessing import resource_tracker, shared_memory
from typing import Any, Callable, Iterable

import _multiprocessing  # type: ignore[import-not-found]

__all__ = ["Ring", "RingError", "HEADER_BYTES", "MAX_CAPACITY_BYTES"]

MAGIC = int.from_bytes(b"SNFRING\0", "little")
LAYOUT_VERSION = 1
HEADER_BYTES = 256
MIN_CAPACITY_BYTES = 64
MAX_CAPACITY_BYTES = 1 << 31  # u32 lengths; fewer frames than SEM_VALUE_MAX
W_MAGIC, W_VERSION, W_CAPACITY = 0, 1, 2
W_TAIL, W_FRAMES_PUT, W_BYTES_PUT, W_FRAMES_DROPPED, W_BYTES_DROPPED = 8, 9, 10, 11, 12
W_HEAD, W_FRAMES_GOT, W_BYTES_GOT = 16, 17, 18
SEM_NAME_SLICE = slice(192, 256)
LENGTH = struct.Struct("<I")
COUNTERS = {"frames_put": W_FRAMES_PUT, "bytes_put": W_BYTES_PUT,
            "frames_dropped": W_FRAMES_DROPPED, "bytes_dropped": W_BYTES_DROPPED,
            "frames_got": W_FRAMES_GOT, "bytes_got": W_BYTES_GOT}


class RingError(RuntimeError):
    """A ring invariant does not hold (a bug, or a second producer/consumer), or bad layout."""


def _record_bytes(n: int) -> int:
    return (4 + n + 7) & ~7


def _open_semaphore(name: str) -> Any:
    # multiprocessing rebuilds a named POSIX semaphore by name when unpickling it in a spawned
    # child; this is the same call, so attach() works from any process, not only children.
    sync: Any = multiprocessing.synchronize
    return _multiprocessing.SemLock._rebuild(0, sync.SEMAPHORE, sync.SEM_VALUE_MAX, name)


def _buf(shm: shared_memory.SharedMemory) -> memoryview:
    buf = shm.buf
    if buf is None:
        raise RingError(f"{shm.name} is closed")
    return buf


def _check_layout(shm: shared_memory.SharedMemory) -> None:
    if shm.size < HEADER_BYTES + MIN_CAPACITY_BYTES:
        raise RingError(f"{shm.name} is too small to be a ring")
    hdr = _buf(shm)[:HEADER_BYTES].cast("Q")
    layout, cap = (hdr[W_MAGIC], hdr[W_VERSION]), hdr[W_CAPACITY]
    hdr.release()
    if layout != (MAGIC, LAYOUT_VERSION) or HEADER_BYTES + cap > shm.size:
        raise RingError(f"{shm.name} is not a version {LAYOUT_VERSION} ring")


class Ring:
    """One end (or both, in tests) of an SPSC frame ring in shared memory."""

    def __init__(self, shm: shared_memory.SharedMemory, sem: Any, owner: Any | None) -> None:
        self._shm = shm
        self._hdr: memoryview = _buf(shm)[:HEADER_BYTES].cast("Q")
        self.capacity_bytes: int = self._hdr[W_CAPACITY]
        self._data: memoryview = _buf(shm)[HEADER_BYTES : HEADER_BYTES + self.capacity_bytes]
        self._sem = sem
        self._sem_owner = owner  # the creator's Semaphore: dropping it unlinks the name
        self._fence_lock = threading.Lock()
        self._closed = False
        self.name: str = shm.name

    # ------------------------------------------------------------------ lifetime
    @classmethod
    def create(cls, capacity_bytes: int, name: str | None = None) -> Ring:
        """Create a ring with a data area of ``capacity_bytes`` (rounded up to 8); the caller
        owns it and must ``unlink()`` it once every process is done."""
        cap = max(MIN_CAPACITY_BYTES, (capacity_bytes + 7) & ~7)
        if cap > MAX_CAPACITY_BYTES:
            raise ValueError(f"capacity {capacity_bytes} bytes exceeds {MAX_CAPACITY_BYTES}")
        name = name or f"snfring-{os.getpid()}-{os.urandom(4).hex()}"
        shm = shared_memory.SharedMemory(name, create=True, size=HEADER_BYTES + cap)
        try:
            owner: Any = multiprocessing.get_context("spawn").Semaphore(0)
            sem_name = owner._semlock.name.encode()
            width = SEM_NAME_SLICE.stop - SEM_NAME_SLICE.start
            if len(sem_name) > width:  # pragma: no cover - CPython names are ~12 bytes
                raise RingError(f"semaphore name {sem_name!r} too long")
            hdr = _buf(shm)[:HEADER_BYTES].cast("Q")
            hdr[W_CAPACITY], hdr[W_VERSION], hdr[W_MAGIC] = cap, LAYOUT_VERSION, MAGIC
            hdr.release()
            _buf(shm)[SEM_NAME_SLICE] = sem_name.ljust(width, b"\0")
        except BaseException:
            shm.close()
            shm.unlink()
            raise
        return cls(shm, owner._semlock, owner)

    @classmethod
    def attach(cls, name: str) -> Ring:
        """Attach to an existing ring by name (never unlinks it, whoever the caller is)."""
        if sys.version_info >= (3, 13):
            shm = shared_memory.SharedMemory(name, track=False)
        else:
            tracker: Any = getattr(resource_tracker, "_resource_tracker")
            tracker_shared = tracker._fd is not None  # inherited from a multiprocessing parent
            shm = shared_memory.SharedMemory(name)
            if not tracker_shared:  # our own private tracker would unlink it at our exit
                resource_tracker.unregister(getattr(shm, "_name"), "shared_memory")
        try:
            _check_layout(shm)
            sem_name = bytes(_buf(shm)[SEM_NAME_SLICE]).rstrip(b"\0").decode()
            return cls(shm, _open_semaphore(sem_name), None)
        except BaseException:
            shm.close()
            raise

    def __reduce__(self) -> tuple[Callable[[str], Ring], tuple[str]]:
        return (Ring.attach, (self.name,))

    def close(self) -> None:
        """Detach this process from the ring (idempotent); the segment stays until unlink."""
        if not self._closed:
            self._closed = True
            self._hdr.release()
            self._data.release()
            self._shm.close()

    def unlink(self) -> None:
        """Destroy the segment and the doorbell (creator only, once, after the others)."""
        if self._sem_owner is None:
            raise RingError("only the creator unlinks a ring")
        self.close()
        self._shm.unlink()
        self._sem = self._sem_owner = None  # the Semaphore's finalizer unlinks its name

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ copying
    def _spans(self, pos: int, n: int) -> tuple[int, int, int]:
        """The one wrap-around rule: ``n`` bytes at ring offset ``pos`` are ``first`` bytes
        at ``start`` and then ``n - first`` bytes at offset 0."""
        start = pos % self.capacity_bytes
        first = min(n, self.capacity_bytes - start)
        return start, first, n - first

    def _write(self, pos: int, frame: bytes) -> None:
        start, first, rest = self._spans(pos, len(frame))
        if rest:
            view = memoryview(frame)
            self._data[start : start + first] = view[:first]
            self._data[:rest] = view[first:]
        else:
            self._data[start : start + first] = frame

    def _read(self, pos: int, n: int) -> bytes:
        start, first, rest = self._spans(pos, n)
        data = self._data
        if not rest:
            return bytes(data[start : start + n])
        return bytes(data[start : start + first]) + bytes(data[:rest])

    def _fence(self) -> None:
        with self._fence_lock:
            pass

    # ------------------------------------------------------------------ producer
    def put(self, frame: bytes) -> bool:
        """Append one frame; False (and a counted drop) when it does not fit. Never blocks."""
        return self.put_many((frame,)) == 1

    def put_many(self, frames: Iterable[bytes]) -> int:
        """Append frames in order, dropping (and counting) those that do not fit; returns the
        number accepted. Never blocks."""
        hdr, cap = self._hdr, self.capacity_bytes
        tail = hdr[W_TAIL]
        used = tail - hdr[W_HEAD]
        if not 0 <= used <= cap or tail % 8:
            raise RingError(f"corrupt ring {self.name}: tail={tail} used={used} cap={cap}")
        accepted = accepted_bytes = dropped = dropped_bytes = 0
        for frame in frames:
            n = len(frame)
            rec = _record_bytes(n)
            if used + rec > cap:
                dropped += 1
                dropped_bytes += n
                continue
            start = tail % cap  # 8-aligned, so the length word never wraps
            LENGTH.pack_into(self._data, start, n)
            self._write(tail + 4, frame)
            tail += rec
            used += rec
            accepted += 1
            accepted_bytes += n
        if dropped:
            hdr[W_FRAMES_DROPPED] += dropped
            hdr[W_BYTES_DROPPED] += dropped_bytes
        if accepted:
            hdr[W_FRAMES_PUT] += accepted
            hdr[W_BYTES_PUT] += accepted_bytes
            hdr[W_TAIL] = tail  # publish, then ring the doorbell once per frame
            release = self._sem.release
            for _ in range(accepted):
                release()
        return accepted

    # ------------------------------------------------------------------ consumer
    def get_many(self, max_frames: int, timeout_s: float | None = 0.0) -> list[bytes]:
        """Take up to ``max_frames`` frames, waiting up to ``timeout_s`` (None: forever) for
        the first one; returns [] on timeout."""
        acquire = self._sem.acquire
        if max_frames < 1:
            return []
        if not (acquire(False) if timeout_s is not None and timeout_s <= 0
                else acquire(True, timeout_s)):
            return []
        tokens = 1
        while tokens < max_frames and acquire(False):
            tokens += 1
        hdr, cap = self._hdr, self.capacity_bytes
        head = hdr[W_HEAD]
        tail = hdr[W_TAIL]
        out: list[bytes] = []
        got_bytes = 0
        for _ in range(tokens):
            if head % 8 or not 8 <= tail - head <= cap:
                raise RingError(f"corrupt ring {self.name}: head={head} tail={tail}")
            (n,) = LENGTH.unpack_from(self._data, head % cap)
            rec = _record_bytes(n)
            if head + rec > tail:
                raise RingError(f"frame of {n} bytes at {head} runs past tail {tail}")
            out.append(self._read(head + 4, n))
            head += rec
            got_bytes += n
        self._fence()  # every read above completes before the producer may reuse the space
        hdr[W_FRAMES_GOT] += tokens
        hdr[W_BYTES_GOT] += got_bytes
        hdr[W_HEAD] = head
        return out

    # ------------------------------------------------------------------ observation
    def counters(self) -> dict[str, int]:
        """Snapshot of the ring's counters plus ``used_bytes`` and ``capacity_bytes``."""
        hdr = self._hdr
        snap = {k: hdr[w] for k, w in COUNTERS.items()}
        snap["used_bytes"] = hdr[W_TAIL] - hdr[W_HEAD]
        snap["capacity_bytes"] = self.capacity_bytes
        return snap

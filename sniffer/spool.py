"""Bounded on-disk spool of NDJSON bundles waiting for the capture URL.

Strategy: the spool is a directory of files, one per bundle, named
``bundle-<seq>-<calls>.ndjson`` where ``seq`` is the bundle's place in the output stream (assigned
when the bundle was sealed, so the spool and the in-memory queue can be merged by sequence
number) and ``calls`` is the number of messages in it (so a dropped file can be counted as lost
calls without reading it). Rules:

- Writes are atomic: the bytes go to ``<name>.tmp`` and are renamed into place (``os.replace``),
  so a crash leaves either a whole bundle or a ``.tmp`` file that the next start-up deletes.
- The total size is capped (``max_bytes``). Past the cap the OLDEST files are deleted and their
  calls counted in ``dropped_calls`` and logged: newer data is worth more than older data.
- A bundle being delivered is *claimed*; the cap never deletes a claimed file, and the sender
  either removes it (delivered or rejected) or releases it (retry later).
- Files from an earlier run are found at start-up and come out first, in sequence order;
  ``next_seq()`` tells the owner where to continue numbering.
- One process per directory: an ``flock`` on ``spool.lock`` refuses a second owner.

Files hold raw NDJSON (one message per line, ``\\n`` after each); compression happens when sent.
All methods are thread-safe (one lock); none of them raises on I/O errors after start-up:
failures are counted (``errors``) and logged, and the bundle counts as lost.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)

_NAME = re.compile(r"^bundle-(\d{16})-(\d+)\.ndjson$")


class SpoolLockedError(RuntimeError):
    """Another process already owns this spool directory."""


class Spool:
    """A directory of sequence-numbered bundle files with a total byte cap."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int, fsync: bool = False):
        """Open (creating if needed) and lock ``directory``; index files left by an earlier run."""
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "spool.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            raise SpoolLockedError(f"spool {self.directory} is in use by another process") from exc
        self._lock = threading.Lock()
        self._files: dict[int, tuple[int, int]] = {}  # seq -> (calls, bytes)
        self._claimed: set[int] = set()
        self.total_bytes = 0
        self.counts: Counter[str] = Counter()
        self._scan()

    def _path(self, seq: int, calls: int) -> Path:
        return self.directory / f"bundle-{seq:016d}-{calls}.ndjson"

    def _scan(self) -> None:
        for entry in self.directory.iterdir():
            if entry.name.endswith(".tmp"):
                entry.unlink(missing_ok=True)
                self.counts["tmp_files_removed"] += 1
                continue
            match = _NAME.match(entry.name)
            if match is None:
                continue
            size = entry.stat().st_size
            self._files[int(match[1])] = (int(match[2]), size)
            self.total_bytes += size
        if self._files:
            log.info("spool %s: %d bundles (%d calls, %d bytes) from an earlier run will be "
                     "replayed first", self.directory, len(self._files), self.pending_calls(),
                     self.total_bytes)

    def next_seq(self) -> int:
        """The first sequence number after every bundle already in the spool."""
        with self._lock:
            return max(self._files, default=0) + 1

    def claim_oldest(self, before_seq: int | None = None) -> int | None:
        """Claim the oldest unclaimed bundle if its seq is below ``before_seq``; its seq or None."""
        with self._lock:
            free = [seq for seq in self._files if seq not in self._claimed]
            if not free or (before_seq is not None and min(free) >= before_seq):
                return None
            seq = min(free)
            self._claimed.add(seq)
            return seq

    def pending_calls(self) -> int:
        """Calls held in the spool (claimed or not)."""
        with self._lock:
            return sum(calls for calls, _ in self._files.values())

    def counters(self) -> dict[str, int]:
        """Counts (spooled, dropped, errors) plus what the spool holds now."""
        with self._lock:
            out = dict(self.counts)
            out["pending_calls"] = sum(calls for calls, _ in self._files.values())
            out["pending_bytes"] = self.total_bytes
        return out

    def __len__(self) -> int:
        return len(self._files)

    def append(self, seq: int, calls: int, body: bytes) -> bool:
        """Store one bundle atomically, then enforce the cap; False when it could not be stored."""
        path = self._path(seq, calls)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(body)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            with self._lock:
                self.counts["errors"] += 1
                self.counts["dropped_calls"] += calls
            log.error("spool write failed, %d calls lost: %s", calls, exc)
            return False
        with self._lock:
            self._files[seq] = (calls, len(body))
            self.total_bytes += len(body)
            self.counts["spooled_bundles"] += 1
            self.counts["spooled_calls"] += calls
            self._enforce_cap_locked()
        return seq in self._files

    def _enforce_cap_locked(self) -> None:
        for seq in sorted(self._files):
            if self.total_bytes <= self.max_bytes:
                return
            if seq in self._claimed:
                continue
            calls, size = self._files[seq]
            self._remove_locked(seq)
            self.counts["dropped_bundles"] += 1
            self.counts["dropped_calls"] += calls
            log.warning("spool over its cap of %d bytes: dropped the oldest bundle #%d "
                        "(%d calls lost, %d lost so far)", self.max_bytes, seq, calls,
                        self.counts["dropped_calls"])

    def _remove_locked(self, seq: int) -> None:
        calls, size = self._files.pop(seq)
        self._claimed.discard(seq)
        self.total_bytes -= size
        self._path(seq, calls).unlink(missing_ok=True)

    def read(self, seq: int) -> tuple[int, bytes] | None:
        """``(calls, body)`` of a claimed bundle; None (counted as lost) when it cannot be read."""
        with self._lock:
            calls, _ = self._files[seq]
        try:
            return calls, self._path(seq, calls).read_bytes()
        except OSError as exc:
            with self._lock:
                self._remove_locked(seq)
                self.counts["errors"] += 1
                self.counts["dropped_calls"] += calls
            log.error("spool read of bundle #%d failed, %d calls lost: %s", seq, calls, exc)
            return None

    def release(self, seq: int) -> None:
        """Give a claimed bundle back (delivery will be retried later)."""
        with self._lock:
            self._claimed.discard(seq)
            self._enforce_cap_locked()

    def remove(self, seq: int) -> None:
        """Delete a bundle that was delivered (or rejected for good)."""
        with self._lock:
            if seq in self._files:
                self._remove_locked(seq)

    def close(self) -> None:
        """Release the directory lock; the files stay for the next run."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

"""UrlSink: ships Resurface messages to a capture URL (USAGE_LOGGERS_URL) as NDJSON bundles.

Strategy (the wire protocol is in /work/shared/reference/resurface.md section 4; one POST, its
classification, the headers and the backoff are ``sniffer/delivery.py``, whose
``destination_state``, ``parse_retry_after`` and ``post_bundle`` are re-exported here):

- ``write`` (one producer thread) appends a line to the open bundle under one lock. A bundle is
  sealed when it reaches ``bundle_bytes`` or is ``bundle_s`` old, gets the next sequence number
  and joins a memory queue capped at ``queue_bytes``.
- Past that cap the OLDEST queued bundles move to the disk spool (``sniffer/spool.py``), or are
  dropped and counted when there is no spool. The stream is always "spool ++ memory queue",
  merged by sequence number, so spooled bundles (including those of an earlier run) go first.
- One sender thread POSTs the lowest-numbered bundle (deflated unless ``skip_compression``)
  and retries it for as long as it takes: the bounded spool, not the retry loop, decides what
  is lost. A rejected bundle is logged once per status, counted and dropped. An attempt the
  server may have taken anyway counts the bundle's calls in ``duplicates_possible``.
- ``close(deadline_s)`` seals the open bundle and keeps sending until the deadline; whatever is
  left then is spooled (or counted as dropped) and close() returns False.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from sniffer.compression import deflate
from sniffer.delivery import (Outcome, backoff_s, destination_state, open_session,
                              parse_retry_after, post_bundle, timeouts_within)
from sniffer.sink import cumulative_sizes, fill_index
from sniffer.spool import Spool

__all__ = ["ShipperSettings", "UrlSink", "destination_state", "parse_retry_after", "post_bundle"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShipperSettings:
    """Tunables of UrlSink (sizes in bytes, times in seconds)."""

    bundle_bytes: int = 5 * 1024 * 1024
    bundle_calls: int | None = None
    """A bundle is also sealed when it holds this many calls (None: no cap)."""
    bundle_s: float = 1.0
    queue_bytes: int = 64 * 1024 * 1024
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 300.0
    compress_level: int = 1
    close_timeout_s: float = 10.0


@dataclass
class _Bundle:
    seq: int
    calls: int
    raw: bytes
    from_spool: bool = False
    wire: bytes | None = None  # the POST body, compressed once and kept across retries


class UrlSink:
    """A Sink that POSTs NDJSON bundles to a capture URL from one background thread."""

    def __init__(self, url: str, *, skip_compression: bool = False, spool: Spool | None = None,
                 settings: ShipperSettings = ShipperSettings()):
        """Start the sender thread; ``spool`` (owned from now on) holds what cannot be sent."""
        self.url = url
        self.skip_compression = skip_compression
        self.settings = settings
        self._spool = spool
        self._lock = threading.Lock()  # guards the open bundle, the queue and the spool order
        self._cond = threading.Condition(self._lock)
        self._bundle_bytes = settings.bundle_bytes
        self._bundle_calls = settings.bundle_calls or 1 << 62
        self._lines: list[bytes] = []
        self._open_bytes = 0
        self._opened_s = 0.0
        self._queue: deque[_Bundle] = deque()
        self._queue_bytes = 0
        self._next_seq = spool.next_seq() if spool else 1
        self._calls_written = 0
        self._counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._deadline_s: float | None = None  # monotonic time; set by close()
        self._stopping = False
        self._session = open_session(deflated=not skip_compression)
        self._warned_statuses: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="url-sink", daemon=True)
        self._thread.start()

    # ---- producer side -------------------------------------------------------------------
    def write(self, line: bytes) -> None:
        """Append one message to the open bundle (sealed at ``bundle_bytes`` or
        ``bundle_calls``)."""
        with self._lock:
            if not self._lines:
                self._opened_s = time.monotonic()
            self._lines.append(line)
            self._open_bytes += len(line) + 1
            self._calls_written += 1
            if (self._open_bytes >= self._bundle_bytes
                    or len(self._lines) >= self._bundle_calls):
                self._seal_locked()

    def write_many(self, lines: list[bytes]) -> None:
        """Append messages under one lock, sealing bundles exactly where ``write`` would."""
        sizes = cumulative_sizes(lines)
        i, used, n = 0, 0, len(lines)
        with self._lock:
            self._calls_written += n
            while i < n:
                if not self._lines:
                    self._opened_s = time.monotonic()
                j = fill_index(sizes, i, used, self._bundle_bytes - self._open_bytes,
                               self._bundle_calls - len(self._lines))
                last = n - 1 if j == n else j
                self._lines += lines[i:last + 1]
                self._open_bytes += sizes[last] - used
                if j < n:
                    self._seal_locked()
                i, used = last + 1, sizes[last]

    def flush(self) -> None:
        """Seal the open bundle now so the sender picks it up."""
        with self._cond:
            self._seal_locked()

    def queued_bytes(self) -> int:
        """Bytes waiting in memory (open bundle + queue): lets a batch producer pace itself."""
        with self._cond:
            return self._open_bytes + self._queue_bytes

    def _seal_locked(self) -> None:
        if not self._lines:
            return
        calls = len(self._lines)
        self._lines.append(b"")  # the last newline from the join: "+ b'\n'" copies the bundle
        bundle = _Bundle(self._next_seq, calls, b"\n".join(self._lines))
        self._next_seq += 1
        self._lines, self._open_bytes = [], 0
        self._queue.append(bundle)
        self._queue_bytes += len(bundle.raw)
        while self._queue_bytes > self.settings.queue_bytes and self._queue:
            oldest = self._queue.popleft()
            self._queue_bytes -= len(oldest.raw)
            self._set_aside(oldest, "the memory queue is full")
        self._cond.notify_all()

    def _set_aside(self, bundle: _Bundle, why: str, quiet: bool = False) -> None:
        """Spool an undeliverable bundle, or drop and count it when there is no spool."""
        if bundle.from_spool:
            assert self._spool is not None
            self._spool.release(bundle.seq)
        elif self._spool is not None:
            self._spool.append(bundle.seq, bundle.calls, bundle.raw)
        else:
            self._count("dropped_calls", bundle.calls)
            if quiet:
                return
            log.warning("%s and there is no spool: dropped %d calls (%d dropped so far)",
                        why, bundle.calls, self._counts["dropped_calls"])

    def _count(self, name: str, n: int = 1) -> None:
        with self._count_lock:
            self._counts[name] += n

    # ---- sender thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if self._past_deadline_locked():
                    self._spill_locked()
                    return
                bundle = self._next_locked()
                if bundle is None:
                    if self._stopping:
                        return
                    self._cond.wait(self.settings.bundle_s / 4)
                    continue
            if bundle.from_spool and not self._load(bundle):
                continue
            self._deliver(bundle)

    def _past_deadline_locked(self) -> bool:
        return self._deadline_s is not None and time.monotonic() >= self._deadline_s

    def _next_locked(self) -> _Bundle | None:
        if self._lines and (self._stopping or
                            time.monotonic() - self._opened_s >= self.settings.bundle_s):
            self._seal_locked()
        head = self._queue[0] if self._queue else None
        if self._spool is not None:
            seq = self._spool.claim_oldest(head.seq if head else None)
            if seq is not None:
                return _Bundle(seq, 0, b"", from_spool=True)
        if head is not None:
            self._queue.popleft()
            self._queue_bytes -= len(head.raw)
        return head

    def _load(self, bundle: _Bundle) -> bool:
        assert self._spool is not None
        loaded = self._spool.read(bundle.seq)
        if loaded is None:
            return False
        bundle.calls, bundle.raw = loaded
        return True

    def _spill_locked(self) -> None:
        self._seal_locked()
        calls = sum(bundle.calls for bundle in self._queue)
        while self._queue:
            bundle = self._queue.popleft()
            self._queue_bytes -= len(bundle.raw)
            self._set_aside(bundle, "close() deadline passed", quiet=True)
        if calls:
            log.warning("close() deadline passed with %d calls not sent: %s", calls,
                        "spooled for the next run" if self._spool else "dropped (no spool)")

    def _deliver(self, bundle: _Bundle) -> None:
        attempt = 0
        while True:
            if bundle.wire is None:
                bundle.wire = (bundle.raw if self.skip_compression else
                               deflate(bundle.raw, self.settings.compress_level))
            outcome = post_bundle(self._session, self.url, bundle.wire, self._timeouts())
            self._account(bundle, outcome)
            if outcome.kind != "retry":
                if bundle.from_spool:
                    assert self._spool is not None
                    self._spool.remove(bundle.seq)
                return
            attempt += 1
            self._count("retries")
            delay = outcome.retry_after_s
            if delay is None:
                delay = backoff_s(attempt, self.settings.backoff_initial_s,
                                  self.settings.backoff_max_s)
            if not self._sleep(min(delay, self.settings.retry_after_max_s)):
                with self._cond:
                    self._set_aside(bundle, "close() deadline passed")
                return

    def _timeouts(self) -> tuple[float, float]:
        left_s = None if self._deadline_s is None else self._deadline_s - time.monotonic()
        settings = self.settings
        return timeouts_within(settings.connect_timeout_s, settings.read_timeout_s, left_s)

    def _account(self, bundle: _Bundle, outcome: Outcome) -> None:
        self._count(outcome.counter)
        if outcome.maybe_delivered:
            self._count("duplicates_possible", bundle.calls)
        if outcome.kind == "ok":
            self._count("calls_sent", bundle.calls)
            self._count("bundles_sent")
            self._count("bytes_sent", len(bundle.wire or b""))
            if bundle.from_spool:
                self._count("calls_replayed", bundle.calls)
        elif outcome.kind == "rejected":
            self._count("rejected_calls", bundle.calls)
            level = logging.DEBUG if outcome.status in self._warned_statuses else logging.ERROR
            self._warned_statuses.add(outcome.status)
            log.log(level, "capture URL answered %s, dropped a bundle of %d calls "
                    "(%d rejected so far; this status is logged once): %r", outcome.status,
                    bundle.calls, self._counts["rejected_calls"], outcome.detail)
        else:
            log.debug("bundle #%d not delivered (%s), will retry", bundle.seq, outcome.detail)

    def _sleep(self, delay_s: float) -> bool:
        """Wait ``delay_s`` unless the close deadline comes first; False once it has passed."""
        end_s = time.monotonic() + delay_s
        with self._cond:
            while True:
                if self._past_deadline_locked():
                    return False
                now_s = time.monotonic()
                stop_s = end_s if self._deadline_s is None else min(end_s, self._deadline_s)
                if now_s >= stop_s:
                    return True
                self._cond.wait(stop_s - now_s)

    # ---- shutdown and reporting ----------------------------------------------------------
    def close(self, deadline_s: float | None = None) -> bool:
        """Send what is left within ``deadline_s`` seconds, spool the rest; True if all went."""
        if deadline_s is None:
            deadline_s = self.settings.close_timeout_s
        with self._cond:
            self._stopping = True
            self._deadline_s = time.monotonic() + deadline_s
            self._cond.notify_all()
        self._thread.join(deadline_s + 1.0)
        if self._thread.is_alive():
            log.error("url sink: sender still busy after the close deadline; its bundle is lost")
            with self._cond:
                self._spill_locked()
        else:
            self._session.close()
        counts = self.counters()
        pending = counts["queued_calls"] + counts.get("spool_pending_calls", 0)
        lost = counts["dropped_calls"] + counts["rejected_calls"] + counts.get(
            "spool_dropped_calls", 0)
        if pending or lost:
            log.warning("url sink closed with %d calls undelivered (%d spooled for the next "
                        "run) and %d lost", pending + lost, pending, lost)
        if self._spool is not None and not self._thread.is_alive():
            self._spool.close()
        return pending == 0 and lost == 0

    def counters(self) -> dict[str, int]:
        """Counters: calls_written/sent, bundles_sent, bytes_sent, retries, errors, spool, ..."""
        with self._count_lock:
            out = dict(self._counts)
        with self._cond:
            out["calls_written"] = self._calls_written
            out["queued_calls"] = len(self._lines) + sum(b.calls for b in self._queue)
            out["queued_bytes"] = self._open_bytes + self._queue_bytes
        for name in ("calls_sent", "bundles_sent", "bytes_sent", "retries", "dropped_calls",
                     "rejected_calls", "duplicates_possible"):
            out.setdefault(name, 0)
        if self._spool is not None:
            out.update((f"spool_{name}", value) for name, value in self._spool.counters().items())
        return out

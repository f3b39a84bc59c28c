"""What the pipeline's processes share: their wiring, control words and shell helpers.

Control words travel in CONTROL frames (``sniffer/codec.py``):
- capture -> worker: ``TICK <index> <ts_ns>`` (time advanced to ``ts_ns``; every packet up
  to global index ``index`` has been sent), ``END <count>`` (no more input; ``count``
  packets in all);
- worker -> aggregator: ``MARK <index>`` (every call completed by packets up to ``index``
  has been sent), ``END``.
Counters go to the supervisor on a small multiprocessing queue, once a second per process.

Children start from a fork server by default (``start_method``): one process, started once,
imports ``CHILD_MODULES`` and forks every child, so no child pays for an interpreter start
and the imports (about 0.1 CPU s each). The server is a clean single-threaded process, not
the supervisor, so children inherit no threads, sockets or handlers from it, as with spawn.
The server, not the supervisor, is then the children's parent, so ``orphaned`` watches the
supervisor's end of each child's start pipe instead of the parent pid.
"""
from __future__ import annotations

import gc
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from sniffer.ring import Ring

log = logging.getLogger(__name__)


@dataclass
class Wiring:
    """Everything a child process needs besides the configuration (picklable)."""

    inputs: list[Ring]
    """capture -> worker i rings."""
    outputs: list[Ring]
    """worker i -> aggregator rings."""
    stop: Any
    """multiprocessing.Event: the capture stops reading when it is set."""
    stats: Any
    """multiprocessing.Queue of (process name, counters dict)."""
    source: str | None = None
    """A capture file to read (``read``), or None for live capture."""
    ordered: bool = False
    """Merge the workers' calls back into capture order (``read``)."""
    lossless: bool = False
    """Wait for ring space instead of dropping (files can wait, live traffic cannot)."""
    parent_pid: int = field(default_factory=os.getpid)


#: glibc's mmap threshold in the workers (``mallopt`` at their start): buffers from 128 KiB
#: up (ring frames of up to 1 MiB, large bodies) get their own mappings, returned to the
#: system when freed, instead of growing a heap that fragments over thousands of connections
#: (about 15 MB less resident memory at 10,000 connections). The capture and the aggregator
#: keep glibc's adaptive threshold: their large buffers (file batches, ring frames, bundles)
#: are short-lived, and a fresh mapping for each cost them about 110,000 page faults and
#: 0.4 CPU s per 200,000 calls. A MALLOC_MMAP_THRESHOLD_ the user set applies everywhere.
WORKER_MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def tune_worker_malloc() -> bool:
    """Set this process's mmap threshold to ``WORKER_MMAP_THRESHOLD`` (glibc); False when
    the user set one in the environment or the C library has no ``mallopt``."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes

        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


#: The cyclic garbage collector in the children: a first-generation pass every 10,000 net
#: allocations of container objects instead of CPython's 700 (the later generations keep
#: their ratios). What a worker allocates and keeps is mostly the live connection table
#: (about 20 objects per connection), which each pass traverses again while it is young:
#: at 10,000 connections, 260 passes cost a worker 0.15 CPU s per 31,000 calls, 18 passes
#: 0.06 s. Connections themselves free by reference counting (no cycles, see
#: Connection.finish), so the rarer passes hold no extra garbage of ours.
CHILD_GC_THRESHOLD = (10_000, 10, 10)


def tune_child_gc() -> None:
    """Freeze what start-up made (modules, configuration: never garbage) out of the
    collector's sight, so no pass traverses it or writes to its pages (which the fork server
    shares with every child), and set ``CHILD_GC_THRESHOLD``."""
    gc.freeze()
    gc.set_threshold(*CHILD_GC_THRESHOLD)


#: what every child imports; the fork server imports them once, before it forks any child.
#: ``runpy`` and ``sniffer.cli`` too: a child started from the console script runs that
#: script again as ``__mp_main__`` (multiprocessing's start-up preparation; the server's own
#: ``__main__`` preload never applies, CPython 3.11 looks for a key the preparation data
#: does not have), which then finds the command line and its configuration stack imported
#: instead of importing them once per child (about 10 ms of CPU each).
CHILD_MODULES = ["runpy", "sniffer.cli", "sniffer.pipeline", "sniffer.aggregator_proc",
                 "sniffer.capture_proc", "sniffer.worker_proc"]


def start_context(method: str) -> Any:
    """The multiprocessing context children start in: ``forkserver`` or ``spawn``."""
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(CHILD_MODULES)
    return ctx


def stop_start_server(method: str) -> None:
    """Stop the fork server and reap it, once every child has exited.

    The server reaps the children, so their CPU time reaches this process's
    ``RUSAGE_CHILDREN`` (and ``time``'s) only when this process reaps the server."""
    if method != "forkserver":
        return
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)  # noqa: SLF001 - no public stop
    if stop is not None:
        stop()


def child_setup(level: str) -> None:
    """First thing in every child: logging, leave Ctrl-C to the supervisor, tune the
    garbage collector (``tune_child_gc``)."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tune_child_gc()


def child_entry(main: str, *args: Any) -> None:
    """Run a process's ``main`` (``"module:function"``) and make its return value the
    process exit code. A name, not the function: the supervisor then never imports the
    children's modules (the output stack, requests, the capture), which the fork server has
    preloaded for the child already."""
    module, _, function = main.partition(":")
    sys.exit(getattr(importlib.import_module(module), function)(*args))


def release_rings(wiring: Wiring) -> None:
    """Detach from every ring before the process exits (the supervisor unlinks them)."""
    for ring in (*wiring.inputs, *wiring.outputs):
        try:
            ring.close()
        except Exception:  # noqa: BLE001 - detaching at exit must not mask the real outcome
            log.debug("closing a ring failed", exc_info=True)


def orphaned(wiring: Wiring) -> bool:
    """True when the supervisor is gone (killed): children then wind down on their own.

    A child started by multiprocessing watches the supervisor's end of its start pipe (the
    fork server stays up while children hold it, so the parent pid would not change); a loop
    run in a thread (tests) compares its parent pid with ``wiring.parent_pid``."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        return not parent.is_alive()
    return os.getppid() != wiring.parent_pid


def put_waiting(ring: Ring, frame: bytes, wiring: Wiring, deadline_s: float = 30.0) -> bool:
    """Put a frame that must not be lost, waiting for space (bounded by ``deadline_s``)."""
    if ring.put(frame):
        return True
    end = time.monotonic() + deadline_s
    delay = 0.0005
    while time.monotonic() < end:
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
        if ring.put(frame):
            return True
        if orphaned(wiring):
            return False
    log.error("a ring stayed full for %.0f s; a frame was lost", deadline_s)
    return False


class StatsReporter:
    """Sends a process's counters to the supervisor at most once per interval."""

    def __init__(self, name: str, wiring: Wiring, interval_s: float = 1.0) -> None:
        self.name = name
        self.queue = wiring.stats
        self.interval_s = interval_s
        self.next_s = 0.0

    def maybe_send(self, counters: dict[str, int], force: bool = False) -> None:
        """Send ``counters`` when the interval has passed (or ``force``)."""
        now = time.monotonic()
        if force or now >= self.next_s:
            self.next_s = now + self.interval_s
            try:
                self.queue.put_nowait((self.name, counters))
            except Exception:  # a full stats queue only delays the status line
                pass

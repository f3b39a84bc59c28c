"""Process plumbing shared by the pipeline's processes (sniffer/pipeline.py)."""
from __future__ import annotations

import ctypes
import gc
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sniffer.pipeline import (CHILD_GC_THRESHOLD, WORKER_MMAP_THRESHOLD, Wiring, child_setup,
                              orphaned, start_context, stop_start_server, tune_worker_malloc)

ROOT = Path(__file__).resolve().parents[2]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mmapped_after_warm_up(tune: bool, queue: mp.Queue) -> None:  # runs in a child
    """Whether a buffer of 200 KB or more gets its own mapping once glibc's adaptive
    threshold has risen (freeing an 8 MiB mapped buffer raises it to 8 MiB). The buffer is
    larger than all the free space in the heap, which could serve it otherwise."""
    os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
    tuned = tune_worker_malloc() if tune else False
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    warm = bytearray(8 << 20)
    del warm
    info = mallinfo2()
    size = max(200_000, info.fordblks + 65536)
    assert size < 8 << 20, "the heap has more free space than the warm-up raised the threshold"
    buffer = bytearray(size)
    queue.put((tuned, mallinfo2().hblks - info.hblks))
    del buffer


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_give_large_buffers_their_own_mappings(method: str) -> None:
    ctx = start_context(method)
    queue = ctx.Queue()
    try:
        for tune, expected in ((True, (True, 1)), (False, (False, 0))):
            proc = ctx.Process(target=_mmapped_after_warm_up, args=(tune, queue))
            proc.start()
            assert queue.get(timeout=30) == expected
            proc.join(30)
    finally:
        queue.close()
        stop_start_server(method)
    assert WORKER_MMAP_THRESHOLD == 131072


def test_a_threshold_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert tune_worker_malloc() is False


def _gc_after_child_setup(queue: mp.Queue) -> None:  # runs in a child
    """The collector's settings after ``child_setup``, and whether a pass visits start-up
    objects (a frozen object is in no generation: ``gc.get_objects`` does not list it)."""
    marker = {"made": "before child_setup"}
    child_setup("warning")
    queue.put((gc.get_threshold(), gc.get_freeze_count() > 1000,
               any(o is marker for o in gc.get_objects())))


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_children_freeze_start_up_objects_and_collect_less_often(method: str) -> None:
    ctx = start_context(method)
    queue = ctx.Queue()
    try:
        proc = ctx.Process(target=_gc_after_child_setup, args=(queue,))
        proc.start()
        assert queue.get(timeout=30) == (CHILD_GC_THRESHOLD, True, False)
        proc.join(30)
    finally:
        queue.close()
        stop_start_server(method)
    assert gc.get_threshold() != CHILD_GC_THRESHOLD  # the test process is untouched
    assert CHILD_GC_THRESHOLD[0] > 700


def _burn_cpu(seconds: float) -> None:  # runs in a child
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_children_cpu_time_reaches_this_process_once_the_start_server_stops(method: str) -> None:
    """The fork server reaps the children; stopping and reaping it brings their CPU seconds
    into RUSAGE_CHILDREN, which the benchmark and `time` rely on."""
    ctx = start_context(method)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = ctx.Process(target=_burn_cpu, args=(0.4,))
    proc.start()
    proc.join(60)
    stop_start_server(method)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.exitcode == 0
    assert after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime >= 0.35


_ORPHAN_HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from sniffer.pipeline import Wiring, start_context
from tests.sniffer.test_pipeline import _wait_until_orphaned
ctx = start_context({method!r})
wiring = Wiring([], [], ctx.Event(), ctx.Queue())
proc = ctx.Process(target=_wait_until_orphaned, args=(wiring, {marker!r}))
proc.start()
print(proc.pid, flush=True)
time.sleep(120)
"""


def _wait_until_orphaned(wiring: Wiring, marker: str) -> None:  # runs in a child
    assert not orphaned(wiring)
    Path(marker + ".ready").write_text("up")  # the test kills the supervisor only after this
    end = time.monotonic() + 60
    while not orphaned(wiring) and time.monotonic() < end:
        time.sleep(0.02)
    Path(marker).write_text(f"orphaned={orphaned(wiring)} parent={os.getppid()}")


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_child_notices_that_its_supervisor_was_killed(method: str, tmp_path: Path) -> None:
    """SIGKILL the process that started a child: the child sees ``orphaned`` and ends, and
    the fork server (its real parent, kept up by the child's pipe end) ends after it."""
    marker = tmp_path / "orphaned.txt"
    holder = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_HOLDER.format(root=str(ROOT), method=method,
                                                     marker=str(marker))],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        child = int(holder.stdout.readline())
        server = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert (server == holder.pid) == (method == "spawn")
        ready = Path(str(marker) + ".ready")
        end = time.monotonic() + 60  # a spawned child imports for a while on a slow machine
        while not ready.exists() and time.monotonic() < end:
            time.sleep(0.02)
        assert ready.exists(), "the child never started"
        time.sleep(0.3)
        assert not marker.exists()
        holder.kill()
        holder.wait(10)
        end = time.monotonic() + 30
        while not (_gone(child) and _gone(server)) and time.monotonic() < end:
            time.sleep(0.05)
        assert _gone(child) and _gone(server)
        assert marker.read_text().startswith("orphaned=True")
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()

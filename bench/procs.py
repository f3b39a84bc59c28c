"""Measuring a command's process tree: CPU (total and per process), peak memory, wall time.

Strategy: the command runs as our child. Its total CPU is the difference of
``getrusage(RUSAGE_CHILDREN)`` around the run (every descendant that was reaped, which the
sniffer's supervisor does for its children). A sampler thread walks /proc every
``interval_s`` to find the live descendants, sums their VmRSS and Pss (Pss counts the shared
ring pages once, VmRSS once per process that maps them) and keeps the last utime+stime seen
per pid, so per-process CPU is known even for processes that have exited (to within one
sampling interval). Names come from the supervisor's ``started <name> (pid N)`` lines.
"""
from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED_RE = re.compile(r"started (\S+) \(pid (\d+)\)")


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime+stime seconds) of ``pid``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _mem_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, Pss) of ``pid`` in KiB; zeros when it is gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
                break
    except (OSError, ValueError):
        pass
    return rss, pss


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


@dataclass
class TreeSample:
    """What the sampler saw of one process tree."""

    peak_rss_kb: int = 0
    peak_pss_kb: int = 0
    cpu_s_by_pid: dict[int, float] = field(default_factory=dict)
    samples: int = 0


class TreeSampler:
    """Samples a process tree in a background thread until ``stop()``."""

    def __init__(self, root_pid: int, interval_s: float = 0.1) -> None:
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.result = TreeSample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss = pss = 0
            for pid in descendants(self.root_pid):
                st = _stat(pid)
                if st is not None:
                    self.result.cpu_s_by_pid[pid] = st[1]
                r, p = _mem_kb(pid)
                rss, pss = rss + r, pss + p
            self.result.peak_rss_kb = max(self.result.peak_rss_kb, rss)
            self.result.peak_pss_kb = max(self.result.peak_pss_kb, pss)
            self.result.samples += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> TreeSample:
        """Stop sampling; returns what was seen."""
        self._stop.set()
        self._thread.join(5)
        return self.result


@dataclass
class RunResult:
    """One measured command."""

    argv: list[str]
    rc: int
    wall_s: float
    cpu_s: float
    """user+sys of every reaped descendant (RUSAGE_CHILDREN difference)."""
    tree: TreeSample
    stdout: str
    stderr: str
    pid: int = 0

    def names(self) -> dict[int, str]:
        """pid -> process name from the supervisor's ``started`` lines (plus ``supervisor``)."""
        out = {int(pid): name for name, pid in STARTED_RE.findall(self.stderr)}
        return out

    def cpu_by_name(self) -> dict[str, float]:
        """CPU seconds per named process; the rest of the tree is ``supervisor`` / ``other``."""
        names = self.names()
        out: dict[str, float] = {}
        for pid, cpu in self.tree.cpu_s_by_pid.items():
            name = names.get(pid) or ("supervisor" if pid == self.pid else "other")
            out[name] = out.get(name, 0.0) + cpu
        return out


class MeasuredProcess:
    """A command started now and measured until ``finish()``.

    Nothing else may be reaped by this process meanwhile, or its CPU would count in
    ``cpu_s`` (the sampler's per-process figures are not affected).
    """

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None,
                 cwd: str | None = None, interval_s: float = 0.1,
                 stdout_path: str | None = None) -> None:
        self.argv = argv
        self._before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._out,
                                     stderr=subprocess.PIPE)
        self.sampler = TreeSampler(self.proc.pid, interval_s)
        self._err: list[bytes] = []
        self._reader = threading.Thread(target=self._read_err, daemon=True)
        self._reader.start()

    def _read_err(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self._err.append(line)

    def stderr_so_far(self) -> str:
        """What the command wrote on stderr until now."""
        return b"".join(self._err).decode(errors="replace")

    def wait_for_stderr(self, text: str, timeout_s: float) -> bool:
        """Wait until ``text`` appears on stderr; False if the process ended or time ran out."""
        end = time.monotonic() + timeout_s
        while text not in self.stderr_so_far():
            if self.proc.poll() is not None or time.monotonic() > end:
                return False
            time.sleep(0.05)
        return True

    def finish(self, sig: int | None = None, timeout_s: float = 600,
               after_s: float | None = None) -> RunResult:
        """Send ``sig`` (now, or after ``after_s`` if still running), wait, and measure."""
        try:
            if after_s is not None:
                try:
                    self.proc.wait(timeout=after_s)
                except subprocess.TimeoutExpired:
                    pass
            if sig is not None and self.proc.poll() is None:
                self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        wall = time.monotonic() - self._t0
        tree = self.sampler.stop()
        self._reader.join(10)
        if self._out is not subprocess.DEVNULL:
            self._out.close()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - self._before.ru_utime) + (after.ru_stime - self._before.ru_stime)
        return RunResult(self.argv, self.proc.returncode, wall, cpu, tree, "",
                         self.stderr_so_far(), self.proc.pid)


def measured(argv: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
             timeout_s: float = 600, interval_s: float = 0.1,
             stop_after_s: float | None = None, stdout_path: str | None = None) -> RunResult:
    """Run ``argv`` to completion (or SIGINT after ``stop_after_s``), measuring its tree."""
    run = MeasuredProcess(argv, env=env, cwd=cwd, interval_s=interval_s,
                          stdout_path=stdout_path)
    if stop_after_s is not None:
        return run.finish(signal.SIGINT, timeout_s, after_s=stop_after_s)
    return run.finish(None, timeout_s)

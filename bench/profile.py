"""Where the time goes, per process: py-spy over ``network-sniffer read`` (every process).

Strategy: ``py-spy record --subprocesses --native -f raw`` samples the supervisor and every
child (active samples only: a process waiting on a ring or a socket costs nothing; native
frames because the hot path is compiled: its functions show as ``CPyDef_<module>___<name>``
of ``__native_network_sniffer_core.c``, and ``--native`` rules out ``--nonblocking``, so
py-spy pauses each process briefly per sample), writing one
collapsed stack per line, rooted at ``process PID:"cmdline"`` frames. The child's pid is
named by the supervisor's ``started <name> (pid N)`` lines. Per process we report its share
of all samples and its CPU seconds from /proc (py-spy's idle detection is a heuristic: a
process that polls can look busy, so the CPU column is the one to weigh processes by), then
the functions with the most self samples (the leaf frame) and the most inclusive samples.
Without py-spy (``pip install py-spy``) this step is skipped.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from bench.offline import ROOT, SNIFFER, _env
from bench.procs import STARTED_RE, MeasuredProcess

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
_PROC_RE = re.compile(r'^process (\d+):')
_BOILERPLATE = ("<module>", "_main", "spawn_main", "main", "child_entry", "_run_code",
                "_run_module_as_main", "BaseProcess", "_find_and_load", "_load_unlocked",
                "_call_with_frames_removed", "_LoaderBasics", "_handle_fromlist", "run_pipeline",
                "Supervisor.run", "read_command", "Popen", "Process.start", "_launch")
_FRAME_RE = re.compile(r"^(.*?) \((.*?):\d+\)$")


def available() -> bool:
    """Whether py-spy is installed in the venv."""
    return PY_SPY.exists() or shutil.which("py-spy") is not None


def _func(frame: str) -> str:
    m = _FRAME_RE.match(frame)
    if not m:
        return frame
    path = m.group(2)
    for marker in ("/work/main/", str(ROOT) + "/", "site-packages/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m.group(1)} ({path})"


def profile_read(pcap: Path, workers: int = 1, rate_hz: int = 200,
                 top: int = 8) -> dict[str, dict[str, object]]:
    """Sample ``read pcap -o FILE --workers N``; per process name: share and top functions."""
    exe = str(PY_SPY) if PY_SPY.exists() else "py-spy"
    tmp = Path(tempfile.mkdtemp(prefix="bench-prof-"))
    try:
        raw = tmp / "raw.txt"
        argv = [exe, "record", "--subprocesses", "--native", "-r", str(rate_hz), "-f",
                "raw", "-o", str(raw), "--", *SNIFFER, "read", str(pcap.resolve()), "-o",
                str(tmp / "calls.ndjson"), "--workers", str(workers)]
        res = MeasuredProcess(argv, env=_env({}, str(tmp)), cwd=str(tmp),
                              interval_s=0.2).finish(None, 900)
        names = {int(pid): name for name, pid in STARTED_RE.findall(res.stderr)}
        cpu_s: Counter[str] = Counter()
        for pid, cpu in res.tree.cpu_s_by_pid.items():
            cpu_s["py-spy" if pid == res.pid else names.get(pid, "supervisor")] += cpu
        if not raw.exists():
            return {"error": {"message": res.stderr.strip()[-300:]}}
        per_proc: dict[str, Counter[str]] = {}
        incl: dict[str, Counter[str]] = {}
        totals: Counter[str] = Counter()
        imports: Counter[str] = Counter()
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            pids = [int(m.group(1)) for f in frames if (m := _PROC_RE.match(f))]
            name = names.get(pids[-1], "supervisor") if pids else "?"
            code = [f for f in frames if not _PROC_RE.match(f)]
            totals[name] += count
            if any("_find_and_load" in f for f in frames):
                imports[name] += count
            if code:
                per_proc.setdefault(name, Counter())[_func(code[-1])] += count
                for func in {_func(f) for f in code}:
                    incl.setdefault(name, Counter())[func] += count
        all_samples = sum(totals.values()) or 1
        out: dict[str, dict[str, object]] = {}
        for name, samples in totals.most_common():
            out[name] = {
                "share": samples / all_samples,
                "cpu_s": cpu_s.get(name, 0.0),
                "samples": samples,
                "self": [(f, c / samples)
                         for f, c in per_proc.get(name, Counter()).most_common(top)],
                "inclusive": [(f, c / samples) for f, c in incl.get(name, Counter()).most_common(
                    top + 12) if not f.split(" (")[0].strip().startswith(_BOILERPLATE)][:top],
                "imports": imports[name] / samples,
            }
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # python -m bench.profile FILE.pcap [workers]
    import sys

    result = profile_read(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    for proc, info in result.items():
        print(proc, {k: v for k, v in info.items() if k in ("share", "samples", "imports")})
        for f, share in info.get("self", []):  # type: ignore[union-attr]
            print(f"   self {100 * share:5.1f}%  {f}")
        for f, share in info.get("inclusive", []):  # type: ignore[union-attr]
            print(f"   incl {100 * share:5.1f}%  {f}")
    os._exit(0)

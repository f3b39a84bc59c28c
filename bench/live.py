"""Live measurements: tcpreplay onto a veth at fixed rates, the sniffer on the far end.

Strategy: the replay unit is the first packets of the small capture (``editcap -r``). Its
true call count is what ``network-sniffer read`` finds in it as complete calls (no
``sniffer-note``: the cut at both ends leaves a few halves, which are excluded on both
sides). tcpreplay sends the unit ``--loop`` times with ``--unique-ip`` (new addresses each
loop, so every loop is new connections rather than retransmissions of the first), enough
loops that each rate lasts at least ``min_s`` seconds; ``--preload-pcap`` keeps the disk
out of the timing. The sniffer (``run -i IF -o FILE --workers auto``) captures inside a
namespace on the veth's far end, is confirmed ready ("capturing on") before the replay and
stopped with SIGTERM once its output has stopped growing; delivered = complete calls in its
output / (unit calls x loops). tcpdump on the same replay (``-w /dev/null``, the sniffer's
32 MiB kernel buffer) gives the capture reference: packets captured / packets sent.
"""
from __future__ import annotations

import math
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.offline import SNIFFER, _env, count_calls, read_into_file
from bench.procs import MeasuredProcess
from bench.traffic import Tcpdump
from tests.netns import Namespace, veth_pair

TAG = "bench"


@dataclass
class LiveResult:
    """One rate."""

    rate: str
    loops: float
    sent_packets: int
    replay_s: float
    achieved_pps: float
    expected_calls: int
    delivered_calls: int
    noted_calls: int
    kernel_dropped: int
    ring_dropped: int
    cpu_by_process: dict[str, float] = field(default_factory=dict)
    replay_cpu_s: float = 0.0
    """tcpreplay's own CPU seconds: it shares the two cores with the sniffer."""
    tcpdump_fraction: float | None = None
    tcpdump_report: dict[str, int] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Delivered / expected."""
        return self.delivered_calls / self.expected_calls if self.expected_calls else 0.0


def make_unit(capture: Path, packets: int, out_dir: Path) -> tuple[Path, int, int]:
    """(unit path, its packets, its complete calls) for the first ``packets`` of ``capture``."""
    unit = out_dir / f"{capture.stem}-unit{packets}.pcap"
    if not unit.exists():
        tmp = unit.with_suffix(".tmp")
        subprocess.run(["editcap", "-F", "pcap", "-r", str(capture), str(tmp), f"1-{packets}"],
                       check=True, capture_output=True, timeout=300)
        tmp.rename(unit)
    m = read_into_file(unit, "unit")
    return unit, m.packets, m.calls - m.noted


def _replay(ifname: str, unit: Path, rate: int | None, loops: int,
            timeout_s: float, duration_s: float | None = None) -> tuple[int, float, float]:
    """Run tcpreplay; (packets sent, seconds, its CPU seconds).

    The CPU comes from ``RUSAGE_CHILDREN`` around the run: only children that ended count,
    and the sniffer, also a child, is still running then."""
    argv = ["tcpreplay", "-q", "--preload-pcap", "--no-flow-stats", "-i", ifname,
            f"--loop={loops}"]
    if duration_s:
        argv.append(f"--duration={int(duration_s)}")
    if loops > 1:
        argv.append("--unique-ip")
    argv += [f"--pps={rate}"] if rate else ["--topspeed"]
    argv.append(str(unit))
    t0, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    took, after = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    m = re.search(r"Actual: (\d+) packets .*? in ([\d.]+) seconds", res.stdout + res.stderr)
    if res.returncode != 0 or not m:
        raise RuntimeError(f"tcpreplay failed: {(res.stdout + res.stderr).strip()[-300:]}")
    return int(m.group(1)), float(m.group(2)) or took, cpu_s


def _wait_stable(path: Path, max_s: float) -> None:
    """Wait until ``path`` stops growing (the sniffer drained), at most ``max_s``."""
    end = time.monotonic() + max_s
    last = -1
    while time.monotonic() < end:
        size = path.stat().st_size if path.exists() else 0
        if size == last:
            return
        last = size
        time.sleep(1.0)


def _counter(stderr: str, name: str) -> int:
    m = re.findall(rf"\b{name}=(\d+)", stderr)
    return int(m[-1]) if m else 0


def run_rates(unit: Path, unit_packets: int, unit_calls: int, rates: list[int | None],
              min_s: float, workers: str = "auto", with_tcpdump: bool = True,
              say=print) -> list[LiveResult]:
    """Every rate (None = top speed) with the sniffer, then with tcpdump."""
    results: list[LiveResult] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    try:
        with Namespace("snf", TAG) as ns, veth_pair(ns, None, "10.79.9.2", "10.79.9.1") as link:
            for ifname, where in ((link.if_a, ns), (link.if_b, None)):
                cmd = ["ip", "link", "set", ifname, "txqueuelen", "10000"]
                (where.run(*cmd, check=False) if where else
                 subprocess.run(cmd, capture_output=True, check=False))
            for rate in rates:
                # top speed: as many loops as fit in the duration; expected calls pro rata
                loops = (max(1, min(200, math.ceil(rate * min_s / unit_packets))) if rate
                         else 500)
                duration = None if rate else min_s + 2
                label = f"{rate // 1000}k pps" if rate else "top speed"
                say(f"live: {label}: up to {loops} loops of {unit_packets} packets"
                    + (f" (about {loops * unit_packets / rate:.0f} s)" if rate else
                       f" for {duration} s"))
                out = tmp / f"calls-{label.replace(' ', '')}.ndjson"
                env = _env({}, str(tmp))
                snf = MeasuredProcess(ns.exec_argv(*SNIFFER, "run", "-i", link.if_a, "-o",
                                                   str(out), "--workers", workers),
                                      env=env, cwd=str(tmp), interval_s=0.25)
                try:
                    if not snf.wait_for_stderr("capturing on", 60):
                        raise RuntimeError("the sniffer did not start: "
                                           + snf.stderr_so_far()[-500:])
                    time.sleep(0.5)
                    sent, secs, replay_cpu = _replay(link.if_b, unit, rate, loops,
                                                     60 + 3 * min_s * 3, duration)
                    _wait_stable(out, 30)
                finally:
                    res = snf.finish(signal.SIGTERM, 120)
                calls, noted = count_calls(out)
                out.unlink(missing_ok=True)
                expected = unit_calls * loops if rate else round(unit_calls * sent / unit_packets)
                result = LiveResult(label, sent / unit_packets, sent, secs, sent / secs, expected,
                                    calls - noted, noted, _counter(res.stderr, "kernel_dropped"),
                                    _counter(res.stderr, "ring_frames_dropped"),
                                    res.cpu_by_name(), replay_cpu)
                say(f"live: {label}: {result.achieved_pps:,.0f} pps for {secs:.1f} s, "
                    f"{result.delivered_calls}/{result.expected_calls} calls "
                    f"({100 * result.fraction:.1f}%), kernel drops {result.kernel_dropped}")
                if with_tcpdump:
                    dump = Tcpdump(ns, link.if_a, "/dev/null", bpf="", buffer_kib=32768)
                    try:
                        sent2, _, _ = _replay(link.if_b, unit, rate, loops, 60 + 3 * min_s * 3,
                                           duration)
                        time.sleep(1.0)
                    finally:
                        report = dump.stop()
                    result.tcpdump_report = report
                    if sent2 > 0 and report.get("captured", -1) >= 0:
                        result.tcpdump_fraction = report["captured"] / sent2
                results.append(result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results

"""Offline measurements: ``network-sniffer read`` into the endpoint or a file, and tshark.

Strategy: each run is one real process tree measured by ``bench/procs.py`` (CPU of every
process, peak memory of all of them together, per-process CPU by the supervisor's names).
The endpoint runs are the product as deployed: the capture URL from ``USAGE_LOGGERS_URL``,
the rules ``allow_http_url`` + ``include default`` (strict), shipping to the strict test
endpoint, which counts what it accepted. The file runs write NDJSON (``-o FILE``) and the
calls are the file's lines. tshark runs on the same capture with the command of the issue;
its calls are the responses it paired with a request.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import RunResult, measured

ROOT = Path(__file__).resolve().parent.parent
SNIFFER = [str(ROOT / ".venv" / "bin" / "python"), "-m", "sniffer"]
STRICT_RULES = "allow_http_url\ninclude default"


def count_calls(path: Path) -> tuple[int, int]:
    """Calls in an NDJSON output file, and how many carry a sniffer note."""
    calls = noted = 0
    if path.exists():
        with open(path, "rb") as f:
            for line in f:
                calls += 1
                noted += b"custom_field:sniffer-note" in line
    return calls, noted


@dataclass
class Measurement:
    """One offline run, ready for the tables."""

    label: str
    tool: str
    wall_s: float
    cpu_s: float
    calls: int
    noted: int
    packets: int
    peak_rss_mb: float
    peak_pss_mb: float
    rc: int
    cpu_by_process: dict[str, float] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def calls_per_s(self) -> float:
        """Calls per wall-clock second."""
        return self.calls / self.wall_s if self.wall_s else 0.0

    @property
    def packets_per_s(self) -> float:
        """Packets per wall-clock second."""
        return self.packets / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_us_per_call(self) -> float:
        """CPU microseconds (all processes) per call."""
        return 1e6 * self.cpu_s / self.calls if self.calls else float("nan")


def _env(extra: dict[str, str], data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SNIFFER_", "USAGE_LOGGERS_"))
           and k != "PYTHONDONTWRITEBYTECODE"}  # steady state: no recompiling per process
    env.update({"PYTHONPATH": str(ROOT), "SNIFFER_OUTPUT_DATA_DIR": data_dir,
                "SNIFFER_STATUS_INTERVAL_S": "0"}, **extra)
    return env


def _from_run(label: str, res: RunResult, calls: int, noted: int, packets: int,
              extra: dict[str, object]) -> Measurement:
    by_name = res.cpu_by_name()
    return Measurement(label, "network-sniffer", res.wall_s, res.cpu_s, calls, noted, packets,
                       res.tree.peak_rss_kb / 1024, res.tree.peak_pss_kb / 1024, res.rc,
                       by_name, extra)


def _summary_count(stderr: str, name: str) -> int:
    for token in stderr.split():
        if token.startswith(name + "="):
            try:
                return int(token.split("=", 1)[1])
            except ValueError:
                return 0
    return 0


def read_into_file(pcap: Path, label: str, workers: int | str | None = None) -> Measurement:
    """``network-sniffer read FILE -o OUT`` (strict default rules)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-read-"))
    try:
        out = tmp / "calls.ndjson"
        argv = [*SNIFFER, "read", str(pcap.resolve()), "-o", str(out)]
        if workers is not None:
            argv += ["--workers", str(workers)]
        res = measured(argv, env=_env({}, str(tmp)), cwd=str(tmp), timeout_s=900)
        calls, noted = count_calls(out)
        return _from_run(label, res, calls, noted, _summary_count(res.stderr, "packets"),
                         {"stderr_tail": res.stderr.strip().splitlines()[-4:],
                          "workers": workers})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def as_pcapng(pcap: Path) -> Path:
    """The same capture as pcapng (``editcap -F pcapng``, cached beside it): Wireshark's and
    dumpcap's default format, which the reader parses by blocks, not records."""
    out = pcap.with_suffix(".pcapng")
    if not out.exists() or out.stat().st_mtime < pcap.stat().st_mtime:
        subprocess.run(["editcap", "-F", "pcapng", str(pcap), str(out)], check=True,
                       capture_output=True, timeout=300)
    return out


def read_into_endpoint(pcap: Path, label: str, workers: int | str | None = None) -> Measurement:
    """``network-sniffer read FILE`` shipping to the strict test endpoint (strict rules)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-read-"))
    endpoint = subprocess.Popen([sys.executable, "-m", "bench.endpoint"], cwd=str(ROOT),
                                env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.PIPE, text=True)
    try:
        url = endpoint.stdout.readline().strip()  # type: ignore[union-attr]
        if not url.startswith("http://"):
            raise RuntimeError(f"the bench endpoint did not start: {url!r}")
        argv = [*SNIFFER, "read", str(pcap.resolve())]
        if workers is not None:
            argv += ["--workers", str(workers)]
        env = _env({"USAGE_LOGGERS_URL": url, "USAGE_LOGGERS_RULES": STRICT_RULES}, str(tmp))
        res = measured(argv, env=env, cwd=str(tmp), timeout_s=900)
    finally:
        if endpoint.poll() is None:
            endpoint.send_signal(signal.SIGINT)
        try:
            counts_line, _ = endpoint.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            endpoint.kill()
            counts_line, _ = endpoint.communicate()
        shutil.rmtree(tmp, ignore_errors=True)
    counts = json.loads(counts_line.strip().splitlines()[-1]) if counts_line.strip() else {}
    return _from_run(label, res, counts.get("accepted", 0), counts.get("noted", 0),
                     _summary_count(res.stderr, "packets"),
                     {"endpoint": counts, "stderr_tail": res.stderr.strip().splitlines()[-4:],
                      "workers": workers})


def tshark_calls(pcap: Path, label: str, max_s: float) -> Measurement:
    """``tshark -r F -Y http.response -T fields -e http.request_in``: paired responses."""
    argv = ["tshark", "-r", str(pcap), "-Y", "http.response", "-T", "fields", "-e",
            "http.request_in"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-tshark-"))
    try:
        out = tmp / "out.txt"
        res = measured(argv, stdout_path=str(out), timeout_s=max_s + 30, stop_after_s=max_s)
        calls = responses = 0
        with open(out, "rb") as f:
            for line in f:
                responses += 1
                calls += bool(line.strip())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    timed_out = res.wall_s >= max_s
    return Measurement(label, "tshark", res.wall_s, res.cpu_s, calls, 0, 0,
                       res.tree.peak_rss_kb / 1024, res.tree.peak_pss_kb / 1024, res.rc,
                       {"tshark": res.cpu_s},
                       {"responses": responses, "stopped_at_bound": timed_out})


def wait_idle(max_s: float = 0.0) -> None:
    """A short pause between runs so one run's exit does not overlap the next's start."""
    time.sleep(max_s)

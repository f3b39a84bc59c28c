"""Tables for the benchmark: printed as they come and kept as one markdown report.

Strategy: every section appends markdown lines to the report and prints them at once, so a
long run shows progress; ``raw`` keeps the numbers for the JSON file.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _version(argv: list[str], pattern: str = r"(\d+\.\d+(\.\d+)?)") -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    m = re.search(pattern, res.stdout + res.stderr)
    return m.group(1) if m else "?"


def machine_facts() -> list[str]:
    """nproc, CPU model, RAM, kernel and tool versions as markdown lines."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    sniffer = _version([str(ROOT / ".venv" / "bin" / "python"), "-m", "sniffer", "--version"],
                       r"(\S+)")
    wrk = _version(["wrk", "--version"], r"wrk (?:debian/)?(\S+)")
    return [
        f"- machine: {os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
        f"Linux {platform.release()}",
        f"- versions: python {platform.python_version()}, network-sniffer {sniffer}, "
        f"tshark {_version(['tshark', '--version'])}, "
        f"tcpdump {_version(['tcpdump', '--version'])}, "
        f"tcpreplay {_version(['tcpreplay', '--version'])}, "
        f"wrk {wrk}, "
        f"nginx {_version(['nginx', '-v'])}",
    ]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


class Report:
    """The markdown report being built."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.md: list[str] = [f"# network-sniffer benchmark ({'quick' if quick else 'full'})"]
        self.raw: dict[str, Any] = {"quick": quick}

    def say(self, text: str) -> None:
        """A progress line (stdout only)."""
        print(f"  .. {text}", flush=True)

    def lines(self, lines: list[str]) -> None:
        """Markdown lines, printed and kept."""
        for line in lines:
            print(line, flush=True)
        self.md.extend(lines)

    def section(self, title: str) -> None:
        """A new section."""
        self.lines(["", f"## {title}", ""])

    def load(self) -> None:
        """The load average now (other work on the machine skews wall times)."""
        self.lines([f"load average before: {Path('/proc/loadavg').read_text().split()[0]} "
                    f"(2 CPUs)", ""])

    def markdown(self) -> str:
        """The whole report."""
        return "\n".join(self.md) + "\n"

    def say_measure(self, m: Any, true_calls: int) -> None:
        """One measurement as a progress line."""
        self.say(f"{m.label}: {m.calls} calls (true {true_calls}) in {m.wall_s:.1f} s, "
                 f"cpu {m.cpu_s:.1f} s, rss {m.peak_rss_mb:.0f} MB, rc {m.rc}")

    def traffic_table(self, caps: dict[str, Any], profiles: dict[str, Any]) -> None:
        """The reference captures."""
        rows = ["| profile | how | true calls (access logs) | packets | pcap MB "
                "| tcpdump dropped |",
                "|---|---|---|---|---|---|"]
        for name, cap in caps.items():
            p = profiles[name]
            how = (f"wrk -c {p.nginx_conns} `{p.nginx_script}` -> nginx"
                   + (f" ({cap.nginx_calls}); wrk -c {p.app_conns} -> app ({cap.app_calls})"
                      if p.app_calls else ""))
            if p.close_every:
                how += f"; 1 in {p.close_every} `Connection: close`"
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(cap.nginx_statuses.items()))
            size = cap.path.stat().st_size / 1e6
            rows.append(f"| {name} | {how} (nginx status {statuses}) | {cap.true_calls} | "
                        f"{cap.packets} | {size:.0f} | {cap.tcpdump.get('dropped')} |")
        self.raw["traffic"] = {k: {**asdict(v), "path": str(v.path)} for k, v in caps.items()}
        self.lines(rows)

    def offline_table(self, rows: list[tuple[Any, Any]]) -> None:
        """Offline results, with the sniffer/tshark ratio per profile."""
        out = ["| run | calls (true) | noted | wall s | calls/s | packets/s | CPU s | "
               "CPU µs/call | peak RSS MB (sum VmRSS / sum Pss) | rc |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        tshark = {cap.profile: m for cap, m in rows if m.tool == "tshark"}
        for cap, m in rows:
            pps = f"{m.packets_per_s:,.0f}" if m.packets else "-"
            cps = f"{m.calls_per_s:,.0f}"
            if m.tool == "tshark" and m.extra.get("stopped_at_bound"):
                cps += " (stopped at bound: partial)"
            out.append(f"| {m.label} | {m.calls} ({cap.true_calls}) | {m.noted} | "
                       f"{m.wall_s:.1f} | {cps} | {pps} | {m.cpu_s:.1f} | "
                       f"{m.cpu_us_per_call:.0f} | {m.peak_rss_mb:.0f} / {m.peak_pss_mb:.0f} | "
                       f"{m.rc} |")
        out += ["", "| profile | sniffer -> endpoint calls/s | tshark calls/s | ratio "
                "(issue target: >= 4) |", "|---|---|---|---|"]
        for cap, m in rows:
            if m.label.endswith("-> endpoint") and cap.profile in tshark:
                t = tshark[cap.profile]
                ratio = m.calls_per_s / t.calls_per_s if t.calls_per_s else float("nan")
                out.append(f"| {cap.profile} | {m.calls_per_s:,.0f} | {t.calls_per_s:,.0f} | "
                           f"{ratio:.2f} |")
        out += ["", "CPU seconds per process (sampled from /proc):", ""]
        for cap, m in rows:
            if m.tool != "tshark":
                endpoint = m.extra.get("endpoint", {}).get("cpu_s")
                out.append(f"- {m.label}: " + ", ".join(
                    f"{k} {v:.1f}" for k, v in sorted(m.cpu_by_process.items()))
                    + ("" if endpoint is None else
                       f"; the test endpoint itself (same 2 cores, not counted above) "
                       f"{endpoint:.1f}"))
        self.raw["offline"] = [{**asdict(m), "true_calls": cap.true_calls} for cap, m in rows]
        self.lines(out)

    def scaling_table(self, rows: list[Any]) -> None:
        """Throughput per worker count and each process's CPU share of the wall time."""
        out = ["| workers | calls/s | wall s | CPU µs/call | peak RSS MB | CPU busy per "
               "process (CPU s / wall s) |", "|---|---|---|---|---|---|"]
        for m in rows:
            busy = ", ".join(f"{k} {100 * v / m.wall_s:.0f}%" for k, v in
                             sorted(m.cpu_by_process.items(), key=lambda kv: -kv[1]) if v > 0.05)
            out.append(f"| {m.extra.get('workers')} | {m.calls_per_s:,.0f} | {m.wall_s:.1f} | "
                       f"{m.cpu_us_per_call:.0f} | {m.peak_rss_mb:.0f} | {busy} |")
        self.raw["scaling"] = [asdict(m) for m in rows]
        self.lines(out)

    def live_table(self, results: list[Any], unit_packets: int, unit_calls: int,
                   min_s: float) -> None:
        """Delivered fraction per rate, with tcpdump's capture fraction."""
        out = [f"Replay unit: {unit_packets} packets, {unit_calls} complete calls; each rate "
               f"looped with `--unique-ip` for at least {min_s:.0f} s.", "",
               "| rate | achieved pps | seconds | calls delivered / expected | delivered | "
               "sniffer kernel drops | ring drops | tcpdump captured | CPU s per process | "
               "tcpreplay CPU s |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for r in results:
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r.cpu_by_process.items())
                            if v > 0.05)
            out.append(f"| {r.rate} | {r.achieved_pps:,.0f} | {r.replay_s:.1f} | "
                       f"{r.delivered_calls} / {r.expected_calls} | {_pct(r.fraction)} | "
                       f"{r.kernel_dropped} | {r.ring_dropped} | {_pct(r.tcpdump_fraction)} | "
                       f"{cpu} | {r.replay_cpu_s:.1f} |")
        self.raw["live"] = [asdict(r) for r in results]
        self.lines(out)

    def profile_table(self, prof: dict[str, dict[str, Any]]) -> None:
        """Share of samples per process and its hottest functions."""
        out = ["| process | CPU s (/proc) | share of py-spy samples | of which start-up imports "
               "| top self time | top inclusive |", "|---|---|---|---|---|---|"]
        for name, info in prof.items():
            if "share" not in info:
                out.append(f"| {name} | {info} | | | | |")
                continue
            selfs = "<br>".join(f"{100 * s:.0f}% {f}" for f, s in info["self"][:5])
            incl = "<br>".join(f"{100 * s:.0f}% {f}" for f, s in info["inclusive"][:6])
            out.append(f"| {name} | {info['cpu_s']:.1f} | {100 * info['share']:.0f}% | "
                       f"{100 * info['imports']:.0f}% | {selfs} | {incl} |")
        self.raw["profile"] = prof
        self.lines(out)


if __name__ == "__main__":  # pragma: no cover
    print("\n".join(machine_facts()), file=sys.stdout)

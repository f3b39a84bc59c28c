"""``bench/run [--quick]``: reference traffic, offline, live, scaling, profile; tables out.

Strategy: one process drives every step in order and prints each table as soon as it is
known; the whole report (markdown) also goes to ``bench/out/results-<time>.md`` and the raw
numbers to ``.json`` next to it. Nothing here asserts a time: it only measures. The machine's
load average is printed before each section, because the 2 cores may be shared.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import live, offline, profile, traffic
from bench.report import Report, machine_facts

OUT = Path(__file__).resolve().parent / "out"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smaller profiles, shorter rates (about 2-3 minutes)")
    p.add_argument("--skip", action="append", default=[],
                   choices=["offline", "tshark", "live", "scaling", "profile"],
                   help="leave out a section (repeatable)")
    p.add_argument("--tshark-max-s", type=float, default=None,
                   help="stop tshark after this many seconds (default 30 quick, 90 full)")
    p.add_argument("--regenerate", action="store_true", help="make the captures again")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    args = parse(argv)
    quick = args.quick
    table = traffic.QUICK_PROFILES if quick else traffic.PROFILES
    tshark_max_s = args.tshark_max_s or (30.0 if quick else 90.0)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = Report(quick)
    t_start = time.monotonic()
    report.section("Machine and versions")
    report.lines(machine_facts())

    report.section("Reference traffic (wrk -> nginx / app, captured by tcpdump)")
    caps = {}
    for name, prof in table.items():
        if args.regenerate:
            for old in OUT.glob(f"{name}-{prof.key()}.*"):
                old.unlink()
        caps[name] = traffic.make_capture(prof, OUT, say=report.say)
    report.traffic_table(caps, table)

    small, mixed = caps["small"], caps["mixed"]
    if "offline" not in args.skip:
        report.section("Offline: network-sniffer read (default workers) vs tshark")
        report.load()
        rows = []
        for cap in (small, mixed):
            rows.append((cap, offline.read_into_endpoint(cap.path, f"{cap.profile} -> endpoint")))
            report.say_measure(rows[-1][1], cap.true_calls)
            rows.append((cap, offline.read_into_file(cap.path, f"{cap.profile} -> file")))
            report.say_measure(rows[-1][1], cap.true_calls)
            if cap is small:  # the same packets as pcapng: the block reader's cost
                rows.append((cap, offline.read_into_file(offline.as_pcapng(cap.path),
                                                         "small (pcapng) -> file")))
                report.say_measure(rows[-1][1], cap.true_calls)
            if "tshark" not in args.skip:
                rows.append((cap, offline.tshark_calls(cap.path, f"{cap.profile}: tshark",
                                                       tshark_max_s)))
                report.say_measure(rows[-1][1], cap.true_calls)
        report.offline_table(rows)

    if "scaling" not in args.skip:
        report.section("Scaling: read small -> file with 1, 2, 4 workers")
        report.load()
        rows = []
        for n in (1, 2, 4):
            m = offline.read_into_file(small.path, f"small, {n} worker(s)", workers=n)
            report.say_measure(m, small.true_calls)
            rows.append(m)
        report.scaling_table(rows)

    if "live" not in args.skip:
        report.section("Live: tcpreplay onto a veth, network-sniffer run --workers auto")
        report.load()
        unit_packets = 40_000 if quick else 200_000
        unit, packets, calls = live.make_unit(small.path, min(unit_packets, small.packets), OUT)
        report.say(f"live: replay unit {unit.name}: {packets} packets, {calls} complete calls")
        min_s = 5.0 if quick else 10.0
        results = live.run_rates(unit, packets, calls, [50_000, 100_000, 200_000, None],
                                 min_s, say=report.say)
        report.live_table(results, packets, calls, min_s)

    if "profile" not in args.skip:
        report.section("Profile: py-spy over read small --workers 1 (active samples)")
        if profile.available():
            target = small.path
            if not quick:  # a slice is enough to see the shape, and keeps the run short
                target, _, _ = live.make_unit(small.path, min(200_000, small.packets), OUT)
            report.profile_table(profile.profile_read(target, 1))
        else:
            report.lines(["py-spy is not installed: `.venv/bin/pip install py-spy`"])

    report.lines(["", f"Whole run: {time.monotonic() - t_start:.0f} s."])
    md = OUT / f"results-{stamp}.md"
    md.write_text(report.markdown())
    (OUT / f"results-{stamp}.json").write_text(json.dumps(report.raw, indent=1, default=str))
    print(f"\nreport: {md}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

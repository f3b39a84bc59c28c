"""The ``read`` and ``run`` commands: configuration in, output opened, work done, summary.

Shell strategy: everything here is orchestration. Errors the user can fix (a bad rule, a
missing or damaged file) become one line and exit code 2; losses at run time are counted,
summarised on stderr and make the exit code 1.
"""
from __future__ import annotations

import logging
import os
import sys

from sniffer.config import Config
from sniffer.outputs import open_output
from sniffer.pcapfile import PcapError
from sniffer.worker_loop import load_rules
from workers.rules import RulesError

log = logging.getLogger("network-sniffer")


def _rules(cfg: Config):  # noqa: ANN202 - Rules
    try:
        return load_rules(cfg)
    except RulesError as exc:
        raise _usage(f"logging rules: {exc}") from None


def _usage(message: str) -> Exception:
    from sniffer.cli import UsageError

    return UsageError(message)


def summary_line(counters: dict[str, int]) -> str:
    """One line with the totals first and then every non-zero anomaly, by name."""
    first = ("packets", "segments", "calls", "calls_dropped_by_rules")
    head = " ".join(f"{k}={counters[k]}" for k in first if k in counters)
    rest = " ".join(f"{k}={v}" for k, v in sorted(counters.items()) if k not in first and v)
    return f"{head} {rest}".strip()


def read_command(cfg: Config, path: str) -> int:
    """``network-sniffer read FILE``."""
    if not os.path.isfile(path):
        raise _usage(f"{path}: no such capture file")
    rules = _rules(cfg)
    dest = open_output(cfg, rules)
    log.info("reading %s; %s", path, dest.description)
    from sniffer.read_cmd import read_file

    try:
        counters, error = read_file(path, cfg, dest.sink, rules)
    except PcapError as exc:  # damaged before the first packet (e.g. not a capture file)
        dest.sink.close(0)
        raise _usage(str(exc)) from None
    delivered = dest.sink.close(cfg.output.read_deadline_s)
    counters.update({f"output_{k}": v for k, v in dest.sink.counters().items()})
    print(f"network-sniffer: {summary_line(counters)}", file=sys.stderr)
    if error is not None:
        print(f"network-sniffer: {error}", file=sys.stderr)
        return 2
    if not delivered:
        print("network-sniffer: some calls were not delivered before the deadline; "
              "they are in the spool and will be sent by the next run", file=sys.stderr)
        return 1
    return 0


def run_command(cfg: Config) -> int:
    """``network-sniffer run`` (and no subcommand): live capture."""
    rules = _rules(cfg)
    from sniffer.supervisor import run_live

    return run_live(cfg, rules)

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


def read_command(cfg: Config, path: str) -> int:
    """``network-sniffer read FILE``: the file through the same pipeline as live capture."""
    if not os.path.isfile(path):
        raise _usage(f"{path}: no such capture file")
    _rules(cfg)  # a bad rule is a usage error before any process starts
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise _usage(f"{path}: {exc.strerror}") from None
    if magic not in _CAPTURE_MAGICS:
        raise _usage(f"{path}: not a pcap or pcapng file (magic {magic.hex() or 'empty'})")
    from sniffer.supervisor import run_pipeline

    outcome = run_pipeline(cfg, path, cfg.output.read_deadline_s)
    for error in outcome.errors:
        print(f"network-sniffer: {error}", file=sys.stderr)
    if outcome.totals.get("file_error"):
        return 2
    return outcome.code


_CAPTURE_MAGICS = {bytes.fromhex(m) for m in (
    "d4c3b2a1", "a1b2c3d4", "4d3cb2a1", "a1b23c4d", "0a0d0d0a")}


def run_command(cfg: Config) -> int:
    """``network-sniffer run`` (and no subcommand): live capture."""
    _rules(cfg)
    from sniffer.supervisor import run_pipeline

    from sniffer import build_description

    log.info("network-sniffer %s: %d worker(s), %s", _version(), int(cfg.workers),
             build_description())
    for line in cfg.describe():
        log.info("  %s", line)
    outcome = run_pipeline(cfg, None, 10.0)
    for error in outcome.errors:
        print(f"network-sniffer: {error}", file=sys.stderr)
    return outcome.code


def _version() -> str:
    from sniffer import __version__

    return __version__

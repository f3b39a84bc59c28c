"""Command-line interface: ``run`` (live), ``read`` (files), ``upload`` (saved calls).

With no subcommand the sniffer runs live from the environment, as the original container's
entry point did. Exit codes: 0 success; 1 something failed at run time (a worker died,
calls left undelivered); 2 a usage problem (bad flag, config key, rule, missing or damaged
capture file), always reported as one line naming the key or file and the fix.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn
from collections.abc import Sequence

from sniffer import __version__
from sniffer.config import Config, ConfigError, load_config

log = logging.getLogger("network-sniffer")


class UsageError(Exception):
    """A one-line usage problem (exit code 2)."""


def _ports(text: str) -> list[int]:
    try:
        ports = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ports like 80,8080, got {text!r}") from None
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"ports must be 1-65535, got {text!r}")
    return ports


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f'expected "auto" or a whole number >= 1, got {text!r}')


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    p = _Parser(prog="network-sniffer", description="Passive HTTP/1.x API-call capture.")
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", metavar="FILE", help="YAML configuration file")
        sp.add_argument("--ports", type=_ports, metavar="P,...",
                        help="server ports carrying HTTP (default: any TCP port, by content)")
        sp.add_argument("--rules", metavar="RULES",
                        help="Resurface logging rules (text, or file://PATH); default strict")
        sp.add_argument("-o", "--output", metavar="PATH|-",
                        help="write NDJSON calls to PATH (a file, or a directory for rotating "
                             "files) or - for stdout")
        sp.add_argument("--workers", type=_workers, metavar="N|auto", help="worker processes")
        sp.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    run = sub.add_parser("run", help="capture live traffic (the default)")
    common(run)
    run.add_argument("-i", "--interface", metavar="IF[,IF...]",
                     help="interface(s) to capture on, or any (default)")
    read = sub.add_parser("read", help="read a pcap or pcapng file")
    common(read)
    read.add_argument("file", metavar="FILE")
    up = sub.add_parser("upload", help="send saved NDJSON calls to a capture URL")
    up.add_argument("files", nargs="+", metavar="FILE")
    up.add_argument("--url", required=True, help="capture URL, e.g. http://localhost:7701/message")
    up.add_argument("--skip-compression", action="store_true")
    up.add_argument("--deadline", type=float, default=60.0, metavar="S",
                    help="give up after S seconds of failed delivery (default 60)")
    return p


def _overrides(args: argparse.Namespace) -> tuple[dict[str, object], dict[str, str]]:
    pairs = {
        "capture.ports": ("ports", "--ports"),
        "output.rules": ("rules", "--rules"),
        "output.path": ("output", "-o"),
        "workers": ("workers", "--workers"),
        "capture.interfaces": ("interface", "--interface"),
    }
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for key, (attr, flag) in pairs.items():
        value = getattr(args, attr, None)
        if value is not None:
            values[key] = value
            sources[key] = flag
    if getattr(args, "verbose", False):
        values["debug.log_level"] = "debug"
        sources["debug.log_level"] = "--verbose"
    return values, sources


def load(args: argparse.Namespace) -> Config:
    """The effective configuration: defaults < file < environment < flags."""
    values, sources = _overrides(args)
    return load_config(getattr(args, "config", None), os.environ, values,
                       override_sources=sources)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if command == "upload":
            from sniffer.upload import upload

            return upload(args.files, args.url, skip_compression=args.skip_compression,
                          deadline_s=args.deadline)
        cfg = load(args)
        logging.getLogger().setLevel(cfg.debug.log_level.upper())
        if command == "read":
            from sniffer.commands import read_command

            return read_command(cfg, args.file)
        from sniffer.commands import run_command

        return run_command(cfg)
    except (ConfigError, UsageError) as exc:
        print(f"network-sniffer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Command-line entry point (placeholder until the subcommands land)."""
from __future__ import annotations

import argparse
import sys

from sniffer import __version__


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run a subcommand; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="network-sniffer")
    parser.add_argument("--version", action="version", version=__version__)
    parser.parse_args(argv)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

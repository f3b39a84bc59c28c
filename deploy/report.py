"""Progress output of a release: numbered steps, the commands run where, what was cleaned.

Strategy: one small object owns every line the maintainer sees, so dry runs and real runs
print the same steps and commands, and tests can capture the output through ``stream``.
Writes are serialised with a lock because both build hosts report from their own threads.
"""
from __future__ import annotations

import sys
import threading
from typing import TextIO


class Reporter:
    """Prints steps (``==> ...``), commands (``[where]$ ...``) and notes, flushed at once."""

    def __init__(self, dry_run: bool = False, stream: TextIO | None = None) -> None:
        self.dry_run = dry_run
        self.stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        self._step = 0

    def _write(self, line: str) -> None:
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def step(self, title: str) -> None:
        """Announce the next numbered step."""
        self._step += 1
        prefix = "[dry-run] " if self.dry_run else ""
        self._write(f"==> {prefix}{self._step}. {title}")

    def command(self, where: str, cmd: str) -> None:
        """Show a command about to run (or that would run, in a dry run) on ``where``."""
        self._write(f"    [{where}]$ {cmd}")

    def note(self, text: str) -> None:
        """An indented detail line (progress, results, cleanup)."""
        self._write(f"    {text}")

"""A one-line progress bar on stderr for reading large capture files (terminals only)."""
from __future__ import annotations

import sys
import time


class Progress:
    """Draws ``FILE: [#####     ]  42.0%`` at most twice a second, only on a terminal."""

    def __init__(self, path: str, min_interval_s: float = 0.5) -> None:
        self.path = path
        self.active = sys.stderr.isatty()
        self.min_interval_s = min_interval_s
        self.last_s = 0.0

    def update(self, offset: int, size: int) -> None:
        """Show that ``offset`` of ``size`` bytes have been read."""
        now = time.monotonic()
        if not self.active or not size or now - self.last_s < self.min_interval_s:
            return
        self.last_s = now
        pct = min(100.0, 100.0 * offset / size)
        sys.stderr.write(f"\r{self.path}: [{'#' * int(pct / 4):<25}] {pct:5.1f}%")
        sys.stderr.flush()

    def done(self) -> None:
        """Clear the bar."""
        if self.active and self.last_s:
            sys.stderr.write("\r" + " " * (len(self.path) + 40) + "\r")
            sys.stderr.flush()

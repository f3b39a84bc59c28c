"""Where calls go, for ``run`` and ``read`` alike, and how that is said at start-up.

Precedence: ``-o PATH|-`` when given; otherwise the capture URL when ``USAGE_LOGGERS_URL``
is set and enabled (reference section 4.7: http/https, ``http:`` needs ``allow_http_url``,
``USAGE_LOGGERS_DISABLE``); otherwise the embedded default, rotating gzip NDJSON files in
``output.data_dir``. A URL that is set but disabled is logged with the reason, and calls go
nowhere (like the original sniffer) unless ``-o`` is given, so nothing is sent to a
destination the user switched off.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

from sniffer.config import Config
from sniffer.filesink import PathSink, RotatingFileSink, StreamSink
from sniffer.shipper import ShipperSettings, UrlSink, destination_state
from sniffer.sink import Sink
from sniffer.spool import Spool
from workers.rules import Rules

log = logging.getLogger(__name__)


class NullSink:
    """Accepts calls and counts them: for a disabled destination or ``skip_submission``."""

    def __init__(self) -> None:
        self._calls = 0

    def write(self, line: bytes) -> None:
        """Count and discard one message."""
        self._calls += 1

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self, deadline_s: float | None = None) -> bool:
        """Nothing to deliver."""
        return True

    def counters(self) -> dict[str, int]:
        """Calls discarded."""
        return {"calls_discarded": self._calls}


@dataclass
class Destination:
    """An opened output and the one line that describes it."""

    sink: Sink
    description: str


def open_output(cfg: Config, rules: Rules) -> Destination:
    """Open the output chosen by the precedence in the module docstring."""
    out = cfg.output
    if out.path == "-":
        return Destination(StreamSink(sys.stdout.buffer), "calls go to standard output")
    if out.path:
        if os.path.isdir(out.path):
            return Destination(_rotating(cfg, out.path), f"calls go to files in {out.path}")
        return Destination(PathSink(out.path), f"calls go to {out.path} (NDJSON)")
    if out.url:
        enabled, reason = destination_state(
            out.url, rules.allow_http_url, "true" if out.disable else None
        )
        if not enabled:
            return Destination(NullSink(), f"capture URL {reason}; calls are not kept")
        if rules.skip_submission:
            return Destination(NullSink(), f"capture URL {reason}, but skip_submission is set")
        settings = ShipperSettings(
            bundle_bytes=out.bundle_bytes,
            bundle_s=out.bundle_interval_s,
            read_timeout_s=out.request_timeout_s,
        )
        spool_dir = out.spool_dir or os.path.join(_data_dir(cfg), "spool")
        sink = UrlSink(
            out.url,
            skip_compression=rules.skip_compression,
            spool=Spool(spool_dir, out.spool_max_bytes),
            settings=settings,
        )
        return Destination(sink, f"capture URL {reason} (spool {spool_dir})")
    directory = _data_dir(cfg)
    return Destination(_rotating(cfg, directory), f"calls go to gzip NDJSON files in {directory}")


def _data_dir(cfg: Config) -> str:
    return cfg.output.data_dir or os.path.join(os.getcwd(), "sniffer-data")


def _rotating(cfg: Config, directory: str) -> RotatingFileSink:
    out = cfg.output
    return RotatingFileSink(directory, out.rotate_bytes, out.rotate_s, out.max_total_bytes)

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
from sniffer.sink import Sink
from workers.rules import Rules

log = logging.getLogger(__name__)


class NullSink:
    """Accepts calls and counts them: for a disabled destination or ``skip_submission``."""

    def __init__(self) -> None:
        self._calls = 0

    def write(self, line: bytes) -> None:
        """Count and discard one message."""
        self._calls += 1

    def write_many(self, lines: list[bytes]) -> None:
        """Count and discard messages."""
        self._calls += len(lines)

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


class TeeSink:
    """Writes every call to a main sink and to a copy (``debug.export: local``)."""

    def __init__(self, main: Sink, copy: Sink) -> None:
        self.main, self.copy = main, copy

    def write(self, line: bytes) -> None:
        """Write to both."""
        self.main.write(line)
        self.copy.write(line)

    def write_many(self, lines: list[bytes]) -> None:
        """Write to both."""
        self.main.write_many(lines)
        self.copy.write_many(lines)

    def flush(self) -> None:
        """Flush both."""
        self.main.flush()
        self.copy.flush()

    def close(self, deadline_s: float | None = None) -> bool:
        """Close both; the main sink decides delivery."""
        self.copy.close(deadline_s)
        return self.main.close(deadline_s)

    def counters(self) -> dict[str, int]:
        """The main sink's counters and the copy's, prefixed ``debug_``."""
        out = self.main.counters()
        out.update({f"debug_{k}": v for k, v in self.copy.counters().items()})
        return out


def open_output(cfg: Config, rules: Rules) -> Destination:
    """Open the output chosen by the precedence in the module docstring, plus the local copy
    of every call that ``debug.export: local`` (SNIFFER_DEBUG_EXPORT=local) asks for."""
    dest = _open_main(cfg, rules)
    if cfg.debug.export == "local":
        directory = os.path.join(_data_dir(cfg), "debug")
        dest = Destination(TeeSink(dest.sink, _rotating(cfg, directory)),
                           f"{dest.description}; a copy of every call goes to {directory}")
    return dest


def _open_main(cfg: Config, rules: Rules) -> Destination:
    out = cfg.output
    if out.path == "-":
        return Destination(StreamSink(sys.stdout.buffer), "calls go to standard output")
    if out.path:
        if os.path.isdir(out.path):
            return Destination(_rotating(cfg, out.path), f"calls go to files in {out.path}")
        return Destination(PathSink(out.path), f"calls go to {out.path} (NDJSON)")
    if out.url:
        # imported here: requests costs a spawned aggregator ~60 ms of CPU it needs for URLs only
        from sniffer.shipper import ShipperSettings, UrlSink, destination_state
        from sniffer.spool import Spool

        enabled, reason = destination_state(
            out.url, rules.allow_http_url, "true" if out.disable else None
        )
        if not enabled:
            return Destination(NullSink(), f"capture URL {reason}; calls are not kept")
        if rules.skip_submission:
            return Destination(NullSink(), f"capture URL {reason}, but skip_submission is set")
        settings = ShipperSettings(
            bundle_bytes=out.bundle_bytes,
            bundle_calls=out.message_queue_size,
            bundle_s=out.bundle_interval_s,
            queue_bytes=out.bundle_queue_size * out.bundle_bytes,
            read_timeout_s=out.request_timeout_s,
            compress_level=out.compress_level,
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
    return RotatingFileSink(directory, out.rotate_bytes, out.rotate_s, out.max_total_bytes,
                            compress_level=out.compress_level)

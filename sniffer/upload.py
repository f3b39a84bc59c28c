"""``upload``: send saved NDJSON files (plain or gzip) to a capture URL through UrlSink.

Strategy: lines are read in file order and written to a ``UrlSink`` without a spool; the reader
waits while more than ``max_queued_bytes`` are waiting in memory, so a slow or down endpoint
slows the upload instead of overflowing the queue. Gzip is recognised by its magic bytes, not by
the file name. Blank lines are skipped; lines that do not look like a JSON array are skipped and
counted. Everything must be delivered before ``deadline_s``; the exit code is 0 only when every
call went through, and the last stderr line says how many did not.
"""
from __future__ import annotations

import gzip
import logging
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from sniffer.shipper import ShipperSettings, UrlSink

log = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"


def read_calls(path: str) -> Iterator[bytes]:
    """The non-blank lines of one NDJSON file, plain or gzip-compressed, without newlines."""
    with open(path, "rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        for line in handle:
            line = line.strip()
            if line:
                yield line


def _wait_for_room(sink: UrlSink, max_queued_bytes: int, end_s: float) -> bool:
    while sink.queued_bytes() > max_queued_bytes:
        if time.monotonic() >= end_s:
            return False
        time.sleep(0.01)
    return True


def upload(paths: list[str], url: str, *, skip_compression: bool, deadline_s: float,
           settings: ShipperSettings = ShipperSettings(), max_queued_bytes: int = 16 << 20,
           progress: TextIO | None = sys.stderr) -> int:
    """Send every call in ``paths`` to ``url`` within ``deadline_s`` seconds; the exit code.

    Returns 0 when all calls were delivered, 1 when some were not (or a file was unreadable).
    """
    end_s = time.monotonic() + deadline_s
    sink = UrlSink(url, skip_compression=skip_compression, settings=settings)
    read = skipped = 0
    unreadable: list[str] = []
    last_report_s = 0.0
    timed_out = False
    for index, path in enumerate(paths, 1):
        try:
            for line in read_calls(path):
                if not line.startswith(b"["):
                    skipped += 1
                    continue
                if read % 1024 == 0 and not _wait_for_room(sink, max_queued_bytes, end_s):
                    timed_out = True
                    break
                sink.write(line)
                read += 1
                if progress is not None and time.monotonic() - last_report_s >= 0.5:
                    last_report_s = time.monotonic()
                    sent = sink.counters()["calls_sent"]
                    progress.write(f"\rupload: file {index}/{len(paths)}, {read} calls read, "
                                   f"{sent} sent")
                    progress.flush()
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            unreadable.append(path)
            log.error("upload: cannot read %s: %s", path, exc)
        if timed_out:
            break
    sink.close(max(0.0, end_s - time.monotonic()))
    counts = sink.counters()
    undelivered = read - counts["calls_sent"]
    if progress is not None:
        progress.write(f"\rupload: {counts['calls_sent']} of {read} calls delivered to {url}"
                       + (f", {undelivered} NOT delivered" if undelivered else "")
                       + (" (deadline reached while reading)" if timed_out else "")
                       + (f", {skipped} lines skipped (not a JSON array)" if skipped else "")
                       + (f", unreadable: {', '.join(unreadable)}" if unreadable else "") + "\n")
        progress.flush()
    return 1 if undelivered or unreadable or timed_out else 0

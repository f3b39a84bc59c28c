"""File outputs: rotating gzip NDJSON files (the embedded default), one plain file, a stream.

Strategy: every sink buffers lines in memory and writes them in chunks (``chunk_bytes``), so
``write`` costs a list append on the hot path and compression runs once per chunk, not per call.

``RotatingFileSink`` writes ``calls-YYYYmmddTHHMMSS-<seq>.ndjson.gz`` in ``directory``. The file
being written is ``<name>.part``; it is closed as one complete gzip member (RFC 1952) and renamed
to its final name when it reaches ``rotate_bytes`` (uncompressed) or ``rotate_s`` of age, and on
close, so every finished file passes ``gzip -t``. Past ``max_total_bytes`` (finished files on disk)
the oldest finished files are deleted, counted and logged. Age is checked on ``write`` and
``flush``; the owner calls ``flush`` about once a second. ``.part`` files left by a crash are kept
(``zcat`` recovers their content) and reported at start-up.

``PathSink`` appends plain NDJSON to one file (``-o FILE``); ``StreamSink`` writes to a binary
stream (``-o -``), flushing it on every ``flush``; a closed pipe (BrokenPipeError) is reported
once and later calls are counted as dropped.
"""
from __future__ import annotations

import gzip
import logging
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

from sniffer.compression import gzip_writer
from sniffer.sink import Sink, cumulative_sizes, fill_index

__all__ = ["Sink", "RotatingFileSink", "PathSink", "StreamSink"]

log = logging.getLogger(__name__)

_FINISHED = re.compile(r"^calls-\d{8}T\d{6}-(\d+)\.ndjson\.gz$")


class _BufferedSink:
    """Shared buffering: lines collect in a list and go out through ``_emit`` in chunks."""

    def __init__(self, chunk_bytes: int):
        self.chunk_bytes = chunk_bytes
        self._lines: list[bytes] = []
        self._buffered_bytes = 0
        self.counts: Counter[str] = Counter()

    def write(self, line: bytes) -> None:
        """Buffer one message; emit the buffer once it holds ``chunk_bytes``."""
        self._lines.append(line)
        self._buffered_bytes += len(line) + 1
        if self._buffered_bytes >= self.chunk_bytes:
            self._drain()

    def write_many(self, lines: list[bytes]) -> None:
        """Buffer messages, emitting chunks exactly where ``write`` of each would."""
        sizes = cumulative_sizes(lines)
        i, used, n = 0, 0, len(lines)
        while i < n:
            j = fill_index(sizes, i, used, self.chunk_bytes - self._buffered_bytes, n + 1)
            if j == n:
                self._lines += lines[i:] if i else lines
                self._buffered_bytes += sizes[-1] - used
                return
            self._lines += lines[i:j + 1]
            self._buffered_bytes += sizes[j] - used
            self._drain()
            i, used = j + 1, sizes[j]

    def _drain(self) -> None:
        if not self._lines:
            return
        lines, self._lines, self._buffered_bytes = self._lines, [], 0
        calls = len(lines)
        lines.append(b"")  # the last newline from the join itself: "+ b'\n'" copies it all
        data = b"\n".join(lines)
        try:
            self._emit(data, calls)
        except OSError as exc:
            self.counts["dropped_calls"] += calls
            self._on_error(exc, calls)
        else:
            self.counts["calls_written"] += calls
            self.counts["bytes_written"] += len(data)

    def _emit(self, data: bytes, calls: int) -> None:
        raise NotImplementedError

    def _on_error(self, exc: OSError, calls: int) -> None:
        log.error("%s: write failed, %d calls lost: %s", type(self).__name__, calls, exc)

    def counters(self) -> dict[str, int]:
        """Calls and bytes written, calls dropped, files rotated and deleted."""
        out = {"calls_written": 0, "dropped_calls": 0, **self.counts}
        out["buffered_calls"] = len(self._lines)
        return out


class RotatingFileSink(_BufferedSink):
    """Gzip NDJSON files in ``directory``, rotated by size or age, total size capped."""

    def __init__(self, directory: str | os.PathLike[str], rotate_bytes: int = 64 << 20,
                 rotate_s: float = 3600.0, max_total_bytes: int = 1 << 30,
                 compress_level: int = 1, chunk_bytes: int = 256 << 10):
        """Create ``directory`` if needed; numbering continues after files already there."""
        super().__init__(chunk_bytes)
        self.directory = Path(directory)
        self.rotate_bytes, self.rotate_s = rotate_bytes, rotate_s
        self.max_total_bytes, self.compress_level = max_total_bytes, compress_level
        self.directory.mkdir(parents=True, exist_ok=True)
        self._finished: list[tuple[int, Path]] = []  # (seq, path), oldest first
        for entry in self.directory.iterdir():
            match = _FINISHED.match(entry.name)
            if match:
                self._finished.append((int(match[1]), entry))
            elif entry.name.endswith(".part"):
                log.warning("left over from an earlier run (not a complete gzip file): %s", entry)
        self._finished.sort()
        self._seq = self._finished[-1][0] + 1 if self._finished else 1
        self._file: gzip.GzipFile | None = None
        self._raw: BinaryIO | None = None
        self._path: Path | None = None
        self._file_raw_bytes = 0
        self._opened_s = 0.0

    def write(self, line: bytes) -> None:
        """Buffer one message; rotate first if the open file is past its age."""
        if self._file is not None and time.monotonic() - self._opened_s >= self.rotate_s:
            self._drain()
            self._finish()
        super().write(line)

    def write_many(self, lines: list[bytes]) -> None:
        """Buffer messages; rotate first if the open file is past its age."""
        if self._file is not None and time.monotonic() - self._opened_s >= self.rotate_s:
            self._drain()
            self._finish()
        super().write_many(lines)

    def _emit(self, data: bytes, calls: int) -> None:
        if self._file is None:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self._path = self.directory / f"calls-{stamp}-{self._seq:06d}.ndjson.gz"
            self._seq += 1
            part = self._path.with_name(self._path.name + ".part")
            self._raw = open(part, "wb")
            self._file = gzip_writer(self._path.name, self.compress_level, self._raw)
            self._file_raw_bytes, self._opened_s = 0, time.monotonic()
        self._file.write(data)
        self._file_raw_bytes += len(data)
        if self._file_raw_bytes >= self.rotate_bytes:
            self._finish()

    def _finish(self) -> None:
        if self._file is None or self._path is None or self._raw is None:
            return
        self._file.close()
        self._raw.close()
        os.replace(self._path.with_name(self._path.name + ".part"), self._path)
        self._finished.append((self._seq - 1, self._path))
        self.counts["files_finished"] += 1
        self._file, self._path = None, None
        self._enforce_cap()

    def _enforce_cap(self) -> None:
        sizes = [(path, path.stat().st_size) for _, path in self._finished]
        total = sum(size for _, size in sizes)
        while total > self.max_total_bytes and len(self._finished) > 1:
            _, oldest = self._finished.pop(0)
            size = dict(sizes)[oldest]
            oldest.unlink(missing_ok=True)
            total -= size
            self.counts["files_deleted"] += 1
            self.counts["bytes_deleted"] += size
            log.warning("output over its cap of %d bytes: deleted the oldest file %s (%d files "
                        "deleted so far)", self.max_total_bytes, oldest.name,
                        self.counts["files_deleted"])

    def flush(self) -> None:
        """Compress what is buffered; finish the open file if it is past its age."""
        try:
            self._drain()
            if self._file is not None:
                if time.monotonic() - self._opened_s >= self.rotate_s:
                    self._finish()
                else:
                    self._file.flush()
        except OSError as exc:
            log.error("RotatingFileSink: flush failed: %s", exc)
            self.counts["errors"] += 1

    def close(self, deadline_s: float | None = None) -> bool:
        """Write everything and finish the open file; True when no call was lost."""
        try:
            self._drain()
            self._finish()
        except OSError as exc:
            log.error("RotatingFileSink: close failed: %s", exc)
            self.counts["errors"] += 1
            return False
        return self.counts["dropped_calls"] == 0


class StreamSink(_BufferedSink):
    """Plain NDJSON to a binary stream (``-o -`` gives ``sys.stdout.buffer``)."""

    def __init__(self, stream: BinaryIO, chunk_bytes: int = 64 << 10):
        """Write to ``stream``; the caller keeps ownership of it."""
        super().__init__(chunk_bytes)
        self.stream = stream
        self._broken = False

    def _emit(self, data: bytes, calls: int) -> None:
        if self._broken:
            raise BrokenPipeError("output closed earlier")
        self.stream.write(data)

    def _on_error(self, exc: OSError, calls: int) -> None:
        if isinstance(exc, BrokenPipeError):
            if not self._broken:
                self._broken = True
                log.warning("output closed by the reader; dropping calls from now on")
                self._silence_stdout()
            return
        super()._on_error(exc, calls)

    def _silence_stdout(self) -> None:
        # Python would report the broken pipe again when it flushes stdout at exit.
        if self.stream is getattr(sys.stdout, "buffer", None):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    def flush(self) -> None:
        """Write buffered calls and flush the stream."""
        self._drain()
        if not self._broken:
            try:
                self.stream.flush()
            except OSError as exc:
                self._on_error(exc, 0)

    def close(self, deadline_s: float | None = None) -> bool:
        """Flush everything; True when no call was dropped."""
        self.flush()
        return self.counts["dropped_calls"] == 0


class PathSink(StreamSink):
    """Plain NDJSON to one file (``-o FILE``), created or truncated unless ``append``."""

    def __init__(self, path: str | os.PathLike[str], append: bool = False,
                 chunk_bytes: int = 256 << 10):
        """Open ``path`` now, so a bad path fails at start-up."""
        super().__init__(open(path, "ab" if append else "wb"), chunk_bytes)

    def close(self, deadline_s: float | None = None) -> bool:
        """Flush and close the file; True when no call was dropped."""
        ok = super().close(deadline_s)
        try:
            self.stream.close()
        except OSError as exc:
            log.error("PathSink: close failed: %s", exc)
            return False
        return ok

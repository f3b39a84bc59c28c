"""File outputs on real files: rotation by size and age, the total cap, gzip validity, stdout."""
from __future__ import annotations

import gzip
import io
import logging
import os
import subprocess
import sys
import time

import pytest

from sniffer.filesink import PathSink, RotatingFileSink, StreamSink


def call(i: int) -> bytes:
    return b'[["request_method","GET"],["custom_field:n","%06d"],["now","1700000000000"]]' % i


def finished(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".ndjson.gz"))


def read_all(directory) -> list[bytes]:
    lines: list[bytes] = []
    for name in finished(directory):
        lines += gzip.decompress((directory / name).read_bytes()).splitlines()
    return lines


def test_rotation_by_size_keeps_every_call_in_order_in_valid_gzip_files(tmp_path):
    sink = RotatingFileSink(tmp_path, rotate_bytes=10_000, chunk_bytes=1_000)
    for i in range(1000):
        sink.write(call(i))
    assert sink.close()
    names = finished(tmp_path)
    assert len(names) > 5 and not [n for n in os.listdir(tmp_path) if n.endswith(".part")]
    assert all(n.startswith("calls-") and n[6:21].replace("T", "").isdigit() for n in names)
    assert read_all(tmp_path) == [call(i) for i in range(1000)]
    result = subprocess.run(["gzip", "-t", *names], cwd=tmp_path, capture_output=True)
    assert result.returncode == 0, result.stderr
    counts = sink.counters()
    assert counts["calls_written"] == 1000 and counts["files_finished"] == len(names)


def files_of(directory) -> list[list[bytes]]:
    return [gzip.decompress((directory / n).read_bytes()).splitlines()
            for n in finished(directory)]


@pytest.mark.parametrize("batch", [1, 3, 17, 400])
def test_write_many_cuts_chunks_and_files_where_write_would(tmp_path, batch):
    lines = [call(i) * (1 + i % 7) for i in range(1000)]
    one, many = RotatingFileSink(tmp_path / "one", 10_000, chunk_bytes=1_000), \
        RotatingFileSink(tmp_path / "many", 10_000, chunk_bytes=1_000)
    for i in range(0, len(lines), batch):
        for line in lines[i:i + batch]:
            one.write(line)
        many.write_many(lines[i:i + batch])
        assert many.counters() == one.counters()  # same chunks emitted, same lines held
    assert one.close() and many.close()
    assert files_of(tmp_path / "many") == files_of(tmp_path / "one")
    assert len(files_of(tmp_path / "one")) > 5
    assert one.counters() == many.counters()


def test_the_open_file_is_a_part_file_until_finished(tmp_path):
    sink = RotatingFileSink(tmp_path, chunk_bytes=1)
    sink.write(call(1))
    sink.flush()
    parts = [n for n in os.listdir(tmp_path) if n.endswith(".ndjson.gz.part")]
    assert len(parts) == 1 and finished(tmp_path) == []
    assert sink.close()
    assert finished(tmp_path) == [parts[0][: -len(".part")]]


def test_rotation_by_age_happens_on_flush(tmp_path):
    sink = RotatingFileSink(tmp_path, rotate_s=0.05, chunk_bytes=1)
    sink.write(call(1))
    time.sleep(0.1)
    sink.flush()
    assert len(finished(tmp_path)) == 1
    sink.write(call(2))
    time.sleep(0.1)
    sink.write(call(3))  # a write also rotates an old file first
    assert sink.close()
    assert len(finished(tmp_path)) == 3
    assert read_all(tmp_path) == [call(1), call(2), call(3)]


def test_past_the_total_cap_the_oldest_files_are_deleted_and_counted(tmp_path, caplog):
    sink = RotatingFileSink(tmp_path, rotate_bytes=2_000, max_total_bytes=3_000,
                            chunk_bytes=500, compress_level=0)
    with caplog.at_level(logging.WARNING, logger="sniffer.filesink"):
        for i in range(500):
            sink.write(call(i))
        assert sink.close()
    sizes = [(tmp_path / n).stat().st_size for n in finished(tmp_path)]
    assert sum(sizes) <= 3_000
    counts = sink.counters()
    assert counts["files_deleted"] > 0 and counts["bytes_deleted"] > 0
    assert any("deleted the oldest file" in r.getMessage() for r in caplog.records)
    kept = read_all(tmp_path)
    assert kept == [call(i) for i in range(500 - len(kept), 500)]  # the newest survive


def test_numbering_continues_after_a_restart(tmp_path):
    for run in range(2):
        sink = RotatingFileSink(tmp_path)
        sink.write(call(run))
        assert sink.close()
    names = finished(tmp_path)
    assert [n[-16:] for n in names] == ["000001.ndjson.gz", "000002.ndjson.gz"]
    assert read_all(tmp_path) == [call(0), call(1)]


def test_nothing_written_leaves_no_file(tmp_path):
    assert RotatingFileSink(tmp_path).close()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("append, expected", [(False, [2]), (True, [1, 2])])
def test_path_sink_writes_plain_ndjson(tmp_path, append, expected):
    out = tmp_path / "calls.ndjson"
    out.write_bytes(call(1) + b"\n")
    sink = PathSink(out, append=append)
    sink.write(call(2))
    assert sink.close()
    assert out.read_bytes() == b"".join(call(i) + b"\n" for i in expected)


def test_stream_sink_flushes_on_flush():
    stream = io.BytesIO()
    sink = StreamSink(stream)
    sink.write(call(1))
    assert stream.getvalue() == b""
    sink.flush()
    assert stream.getvalue() == call(1) + b"\n"
    assert sink.close() and sink.counters()["calls_written"] == 1


def test_stdout_closed_by_the_reader_is_quiet_and_counted():
    code = ("import sys, logging\n"
            "logging.basicConfig(level=logging.WARNING)\n"
            "from sniffer.filesink import StreamSink\n"
            "sink = StreamSink(sys.stdout.buffer, chunk_bytes=1)\n"
            "for i in range(200000):\n"
            "    sink.write(b'[[\"now\",\"1\"]]')\n"
            "sink.close()\n"
            "print(sink.counters()['dropped_calls'] > 0, file=sys.stderr)\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=root, text=True)
    assert proc.stdout is not None
    proc.stdout.read(10)
    proc.stdout.close()  # the reader goes away, like `| head -c 10`
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert stderr.count("output closed by the reader") == 1
    assert stderr.strip().endswith("True")

"""Every output the sniffer has satisfies the Sink protocol, and a non-sink does not."""
from __future__ import annotations

import gzip
import io

import pytest

from sniffer.config import load_config
from sniffer.filesink import PathSink, RotatingFileSink, StreamSink
from sniffer.outputs import open_output
from sniffer.shipper import UrlSink
from sniffer.sink import Sink
from sniffer.worker_loop import load_rules


def test_every_output_is_a_sink(tmp_path):
    sinks = [RotatingFileSink(tmp_path / "r"), PathSink(tmp_path / "p"),
             StreamSink(io.BytesIO()), UrlSink("http://127.0.0.1:9/m")]
    for sink in sinks:
        assert isinstance(sink, Sink)
        assert sink.close(0.1)  # nothing written, nothing lost
        assert sink.counters()["calls_written"] == 0


def test_something_without_close_is_not_a_sink():
    assert not isinstance(io.BytesIO(), Sink)


def _opened(tmp_path, level: int, url: str | None = None):
    overrides = {"output.compress_level": level, "output.data_dir": str(tmp_path / f"d{level}")}
    if url:
        overrides.update({"output.url": url, "output.rules": "allow_http_url"})
    cfg = load_config(None, {}, overrides)
    return open_output(cfg, load_rules(cfg)).sink


def test_gzip_output_files_use_the_configured_level(tmp_path):
    lines = [b'[["request_method","GET"],["custom_field:n","%d"]]' % i for i in range(2000)]
    sizes = {}
    for level in (1, 6, 9):
        sink = _opened(tmp_path, level)
        sink.write_many(lines)
        assert sink.close(1.0)
        (written,) = (tmp_path / f"d{level}").glob("*.ndjson.gz")
        data = written.read_bytes()
        assert gzip.decompress(data) == b"".join(line + b"\n" for line in lines)
        if level > 1:  # zlib's gzip header says which end of its range: XFL 2 = best, 0 = between
            assert data[8] == (2 if level == 9 else 0)
        sizes[level] = len(data)
    assert sizes[9] <= sizes[6] < sizes[1]  # level 1 (ISA-L) is the fastest, not the smallest


def test_url_bundles_are_deflated_at_the_configured_level(tmp_path, endpoint):
    lines = [b'[["request_method","GET"],["request_url","http://a.test/%d"],'
             b'["response_code","200"],["now","1700000000000"]]' % (i * 7919 % 10007)
             for i in range(5000)]
    wire = {}
    for level in (1, 2, 9):  # 1: ISA-L's streams, which the endpoint inflates like zlib's
        before = sum(r.wire_bytes for r in endpoint.requests)
        sink = _opened(tmp_path, level, endpoint.url)
        sink.write_many(lines)
        assert sink.close(5.0)
        wire[level] = sum(r.wire_bytes for r in endpoint.requests) - before
    assert len(endpoint.messages) == 3 * len(lines)
    assert wire[9] < wire[2]  # the same calls, smaller at 9: the level reached zlib

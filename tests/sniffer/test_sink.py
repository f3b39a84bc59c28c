"""Every output the sniffer has satisfies the Sink protocol, and a non-sink does not."""
from __future__ import annotations

import io

from sniffer.filesink import PathSink, RotatingFileSink, StreamSink
from sniffer.sink import Sink
from sniffer.shipper import UrlSink


def test_every_output_is_a_sink(tmp_path):
    sinks = [RotatingFileSink(tmp_path / "r"), PathSink(tmp_path / "p"),
             StreamSink(io.BytesIO()), UrlSink("http://127.0.0.1:9/m")]
    for sink in sinks:
        assert isinstance(sink, Sink)
        assert sink.close(0.1)  # nothing written, nothing lost
        assert sink.counters()["calls_written"] == 0


def test_something_without_close_is_not_a_sink():
    assert not isinstance(io.BytesIO(), Sink)

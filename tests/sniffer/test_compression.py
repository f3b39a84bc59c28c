"""sniffer/compression.py: every level writes the standard formats any inflater reads, level 1
through ISA-L and the others through zlib (byte for byte what each library gives)."""
from __future__ import annotations

import gzip
import io
import os
import zlib

import pytest
from isal import isal_zlib

from sniffer.compression import FAST_LEVEL, deflate, gzip_writer

LINE = b'[["request_method","GET"],["request_url","http://api.test/x"],["host","h"]]\n'
PAYLOADS = {
    "empty": b"",
    "one line": LINE,
    "ndjson": b"".join(LINE.replace(b"/x", b"/%d" % i) for i in range(20_000)),
    "random": os.urandom(300_000),  # incompressible: stored blocks
}


@pytest.mark.parametrize("level", range(1, 10))
@pytest.mark.parametrize("name", PAYLOADS)
def test_deflate_is_a_zlib_stream_from_the_library_for_its_level(name: str, level: int) -> None:
    raw = PAYLOADS[name]
    wire = deflate(raw, level)
    assert zlib.decompress(wire) == raw
    expected = isal_zlib.compress(raw, 1) if level == FAST_LEVEL else zlib.compress(raw, level)
    assert wire == expected
    if name == "ndjson":
        assert len(wire) * 20 < len(raw)  # it compresses: ratio over 20 at every level


@pytest.mark.parametrize("level", [1, 2, 6, 9])
def test_gzip_writer_writes_one_member_with_its_name(level: int) -> None:
    raw = io.BytesIO()
    with gzip_writer("calls-1.ndjson", level, raw) as out:
        for _ in range(3):
            out.write(PAYLOADS["ndjson"])
    data = raw.getvalue()
    assert gzip.decompress(data) == PAYLOADS["ndjson"] * 3
    assert data[:2] == b"\x1f\x8b" and data[3] & 0x08  # FNAME set
    assert data[10:data.index(b"\0", 10)] == b"calls-1.ndjson"
    assert raw.closed is False  # the caller closes its file

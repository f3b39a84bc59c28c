"""upload(): saved NDJSON files (plain and gzip) go to a real capture endpoint over loopback."""
from __future__ import annotations

import gzip
import io

import pytest

from sniffer.shipper import ShipperSettings
from sniffer.upload import read_calls, upload
from tests.sniffer.conftest import numbers

FAST = ShipperSettings(bundle_bytes=4 << 10, bundle_s=0.05, backoff_initial_s=0.02,
                       backoff_max_s=0.1, connect_timeout_s=0.5, read_timeout_s=1.0)


def call(i: int) -> bytes:
    return b'[["request_method","GET"],["custom_field:n","%d"],["now","1700000000000"]]' % i


@pytest.fixture
def files(tmp_path):
    plain = tmp_path / "a.ndjson"
    plain.write_bytes(b"".join(call(i) + b"\n" for i in range(0, 500)) + b"\n\n")
    packed = tmp_path / "b.data"  # gzip is recognised by content, not by name
    packed.write_bytes(gzip.compress(b"".join(call(i) + b"\r\n" for i in range(500, 1000))))
    return [str(plain), str(packed)]


@pytest.mark.parametrize("skip_compression", [False, True])
def test_plain_and_gzip_files_arrive_in_order(endpoint, files, skip_compression):
    progress = io.StringIO()
    code = upload(files, endpoint.url, skip_compression=skip_compression, deadline_s=10.0,
                  settings=FAST, progress=progress)
    assert code == 0
    assert numbers(endpoint.messages) == list(range(1000))
    assert "1000 of 1000 calls delivered" in progress.getvalue()
    assert "NOT" not in progress.getvalue()


def test_read_calls_skips_blank_lines_and_strips_line_ends(files):
    assert list(read_calls(files[0])) == [call(i) for i in range(500)]
    assert list(read_calls(files[1])) == [call(i) for i in range(500, 1000)]


def test_undelivered_calls_give_a_non_zero_exit_and_say_how_many(endpoint, files):
    endpoint.stop()
    progress = io.StringIO()
    code = upload(files, endpoint.url, skip_compression=False, deadline_s=0.5, settings=FAST,
                  progress=progress)
    assert code == 1
    assert "0 of 1000 calls delivered" in progress.getvalue()
    assert "1000 NOT delivered" in progress.getvalue()


def test_a_slow_endpoint_throttles_the_reader_instead_of_dropping(endpoint, files):
    endpoint.set_fault("status", status=503, times=5)
    code = upload(files, endpoint.url, skip_compression=False, deadline_s=10.0, settings=FAST,
                  max_queued_bytes=8 << 10, progress=None)
    assert code == 0
    assert numbers(endpoint.messages) == list(range(1000))


def test_unreadable_and_non_json_lines_are_reported(endpoint, tmp_path):
    odd = tmp_path / "odd.ndjson"
    odd.write_bytes(call(1) + b"\nnot json\n")
    progress = io.StringIO()
    code = upload([str(odd), str(tmp_path / "missing.ndjson")], endpoint.url,
                  skip_compression=True, deadline_s=5.0, settings=FAST, progress=progress)
    assert code == 1
    assert numbers(endpoint.messages) == [1]
    assert "1 lines skipped" in progress.getvalue()
    assert "missing.ndjson" in progress.getvalue()

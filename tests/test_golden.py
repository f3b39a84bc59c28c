"""Golden Resurface output per scenario: a capture written from code, read through the same
decode -> core -> rules -> JSON path as ``network-sniffer read``, compared line for line with
``tests/data/golden/<scenario>.ndjson``.

The captures are made from the scenario tables of the unit tests (so they stay small and
reviewable); the golden files are the checked-in expected output. After a deliberate change
of the output format, regenerate them with ``UPDATE_GOLDEN=1 pytest tests/test_golden.py``
and review the diff.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from sniffer.config import load_config
from sniffer.pcapfile import iter_packets
from sniffer.worker_loop import WorkerLoop
from tests.helpers import C2S, S2C, conversation
from tests.pcapgen import write_pcap
from tests.workers.test_http1 import CASES
from workers.decode import Decoder

GOLDEN = Path(__file__).parent / "data" / "golden"
GZ = gzip.compress(b'{"text": "now"}', mtime=0)
V6_CLIENT = (bytes.fromhex("fd770000000000000000000000000001"), 50123)
V6_SERVER = (bytes.fromhex("fd770000000000000000000000000002"), 8080)
EXTRA = {
    "ipv6-post-json": conversation(
        [(C2S, b"POST /v6?a=1&a=2 HTTP/1.1\r\nHost: [fd77::2]:8080\r\nContent-Type: "
               b"application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\nname=J%C3"),
         (S2C, b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
               b"Content-Length: 2\r\n\r\n{}")], client=V6_CLIENT, server=V6_SERVER),
    "gzip-response": conversation(
        [(C2S, b"GET /z HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n"),
         (S2C, b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
               % (len(GZ), GZ))]),
}


def scenarios() -> dict[str, list]:
    out = {c.name: conversation(c.exchanges, close=c.close) for c in CASES if c.limits is None}
    out.update(EXTRA)
    return out


def read_lines(pcap: Path) -> list[bytes]:
    cfg = load_config(None, {}, {"output.rules": "include debug", "output.host_name": "golden"})
    loop, decoder = WorkerLoop(cfg), Decoder()
    lines: list[bytes] = []
    index = -1
    for index, (ts, linktype, frame) in enumerate(iter_packets(str(pcap))):
        seg = decoder.decode(linktype, frame)
        if seg is not None:
            lines += [line for _, line in loop.feed(index, ts, seg)]
    lines += [line for _, line in loop.close(index + 1)]
    return lines


@pytest.mark.parametrize("name", sorted(scenarios()))
def test_golden_output(name: str, tmp_path: Path) -> None:
    pcap = tmp_path / f"{name}.pcap"
    write_pcap(str(pcap), scenarios()[name])
    got = b"".join(line + b"\n" for line in read_lines(pcap))
    golden = GOLDEN / f"{name}.ndjson"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_bytes(got)
    assert golden.exists(), f"no golden file {golden}: run with UPDATE_GOLDEN=1 and review it"
    assert got.decode() == golden.read_text()

"""Calls to a capture URL end to end: the sniffer process, the real transport, a real
endpoint that goes down. Every call arrives exactly once, or its loss is counted and said."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.endpoint import CaptureEndpoint
from tests.helpers import C2S, CLIENT, S2C, conversation
from tests.pcapgen import write_pcap

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def capture(path: Path, n: int, spread_s: float) -> None:
    """``n`` calls spread over ``spread_s`` seconds of packet time."""
    packets = []
    for i in range(n):
        req = b"GET /ship/%d HTTP/1.1\r\nHost: api.test\r\nCookie: s=%d\r\n\r\n" % (i, i)
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        packets += conversation([(C2S, req), (S2C, resp)], client=(CLIENT[0], 20000 + i),
                                t0_ns=1_700_000_000_000_000_000 + int(i * spread_s / n * 1e9))
    write_pcap(str(path), sorted(packets, key=lambda p: p.ts_ns))


def read(pcap: Path, tmp: Path, url: str, rules: str, **env: str) -> subprocess.Popen[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "USAGE_LOGGERS_URL": url,
            "USAGE_LOGGERS_RULES": rules, "SNIFFER_OUTPUT_DATA_DIR": str(tmp / "data"), **env}
    return subprocess.Popen([sys.executable, "-m", "sniffer", "read", str(pcap)],
                            stderr=subprocess.PIPE, text=True, env=full, cwd=tmp)


def test_endpoint_down_30s_mid_run_every_call_arrives_once(tmp_path: Path) -> None:
    pcap = tmp_path / "ship.pcap"
    capture(pcap, 300, 1.0)
    endpoint = CaptureEndpoint()
    try:
        endpoint.set_fault("down", down_s=30)
        started = time.monotonic()
        proc = read(pcap, tmp_path, endpoint.url, "include debug\nallow_http_url",
                    SNIFFER_OUTPUT_READ_DEADLINE_S="150")
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert time.monotonic() - started > 25  # it really waited for the endpoint
        urls = [dict(m)["request_url"] for m in endpoint.messages]
    finally:
        endpoint.stop()
    assert sorted(urls) == sorted(f"http://api.test/ship/{i}" for i in range(300))
    assert "duplicates_possible" not in err or "duplicates_possible=0" in err
    assert all("request_header:cookie" in dict(m) for m in endpoint.messages)


def test_strict_default_over_the_wire_removes_cookies(tmp_path: Path) -> None:
    pcap = tmp_path / "ship.pcap"
    capture(pcap, 20, 0.2)
    endpoint = CaptureEndpoint()
    try:
        proc = read(pcap, tmp_path, endpoint.url, "include default\nallow_http_url")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        msgs = [dict(m) for m in endpoint.messages]
    finally:
        endpoint.stop()
    assert len(msgs) == 20
    assert not any("request_header:cookie" in m for m in msgs)
    assert all(m["request_url"].startswith("http://api.test/ship/") for m in msgs)
    assert not endpoint.rejections


def test_endpoint_down_past_the_spool_limit_loss_is_counted_and_said(tmp_path: Path) -> None:
    pcap = tmp_path / "ship.pcap"
    capture(pcap, 200, 0.5)
    endpoint = CaptureEndpoint()
    try:
        endpoint.set_fault("down", down_s=600)
        proc = read(pcap, tmp_path, endpoint.url, "include debug\nallow_http_url",
                    SNIFFER_OUTPUT_READ_DEADLINE_S="3", SNIFFER_OUTPUT_SPOOL_MAX_BYTES="1KiB",
                    SNIFFER_OUTPUT_BUNDLE_BYTES="2KiB")
        _, err = proc.communicate(timeout=120)
    finally:
        endpoint.stop()
    assert proc.returncode == 1, err
    assert "not delivered" in err
    assert "spool_dropped_calls=" in err and "spool_dropped_calls=0" not in err

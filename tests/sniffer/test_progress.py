"""The progress bar of ``read``: drawn on a terminal, silent otherwise."""
from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.helpers import C2S, CLIENT, S2C, conversation
from tests.pcapgen import write_pcap

ROOT = Path(__file__).resolve().parents[2]


def big_capture(path: Path) -> None:
    packets = []
    for i in range(1500):
        packets += conversation([(C2S, b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n"),
                                 (S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                                       + b"x" * 1000)],
                                client=(CLIENT[0], 10000 + i), t0_ns=10**18 + i * 10**6)
    write_pcap(str(path), packets)


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    pcap = tmp_path / "big.pcap"
    big_capture(pcap)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SNIFFER_STATUS_INTERVAL_S": "0"}
    argv = [sys.executable, "-m", "sniffer", "read", str(pcap), "-o", str(tmp_path / "o.jsonl"),
            "--workers", "1"]
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env,
                            cwd=tmp_path)
    os.close(follower)
    seen = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        seen += data
    assert proc.wait(timeout=120) == 0
    assert f"{pcap}: [".encode() in seen and b"%" in seen
    plain = subprocess.run(argv, capture_output=True, timeout=120, env=env, cwd=tmp_path)
    assert plain.returncode == 0 and b"%" not in plain.stderr.replace(b"100%", b"")

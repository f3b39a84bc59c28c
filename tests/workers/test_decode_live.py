"""Live tests for workers/decode.py: real VXLAN and IPv6 traffic between network namespaces.

Two namespaces joined by a veth pair carry a VXLAN link (VNI 42, port 4789) each; a real
``http.server`` answers a real ``curl``, ``tcpdump`` captures the underlay veth, and the
capture is read back with ``sniffer.pcapfile`` and decoded.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Iterator

import pytest

from sniffer.pcapfile import iter_packets
from workers.decode import Decoder
from workers.segment import Segment

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("ip", "tcpdump", "curl")),
                       reason="needs ip, tcpdump and curl"),
]

NS_A, NS_B = f"dec-a{os.getpid()}", f"dec-b{os.getpid()}"
UNDER_A, UNDER_B = "192.168.77.1", "192.168.77.2"
INNER_A, INNER_B = "10.42.0.1", "10.42.0.2"
V6_A, V6_B = "fd00:77::1", "fd00:77::2"
BODY = b"hello from inside the tunnel\n"


def run(*args: str) -> None:
    subprocess.run(args, check=True, timeout=20, capture_output=True)


def in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


@pytest.fixture(scope="module")
def namespaces() -> Iterator[None]:
    """dec-a <-veth-> dec-b, IPv4 + IPv6 on the veth, and a VXLAN (VNI 42) on top."""
    try:
        run("ip", "netns", "add", NS_A)
        run("ip", "netns", "add", NS_B)
        run("ip", "link", "add", "dec-va", "netns", NS_A, "type", "veth",
            "peer", "name", "dec-vb", "netns", NS_B)
        for ns, dev, under, v6, inner, remote in (
                (NS_A, "dec-va", UNDER_A, V6_A, INNER_A, UNDER_B),
                (NS_B, "dec-vb", UNDER_B, V6_B, INNER_B, UNDER_A)):
            run("ip", "-n", ns, "addr", "add", f"{under}/24", "dev", dev)
            run("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "link", "add", "vx42", "type", "vxlan", "id", "42",
                "dstport", "4789", "remote", remote, "local", under, "dev", dev)
            run("ip", "-n", ns, "addr", "add", f"{inner}/24", "dev", "vx42")
            run("ip", "-n", ns, "link", "set", "vx42", "up")
        yield
    finally:
        for ns in (NS_A, NS_B):
            subprocess.run(["ip", "netns", "del", ns], timeout=20, capture_output=True)


@pytest.fixture(scope="module")
def web_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("www")
    (root / "hello.txt").write_bytes(BODY)
    return root


def wait_for_line(proc: subprocess.Popen[bytes], needle: bytes, timeout_s: float) -> None:
    """Read ``proc``'s stderr until a line containing ``needle`` (tcpdump's 'listening on')."""
    assert proc.stderr is not None
    deadline, seen = time.monotonic() + timeout_s, b""
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stderr], [], [], left)[0]:
            raise AssertionError(f"no {needle!r} within {timeout_s} s: {seen!r}")
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"process ended: {seen!r}")
        seen += chunk


def capture_http(tmp_path: Path, web_root: Path, bind: str, url: str) -> str:
    """Serve ``web_root`` in dec-a on ``bind``, capture dec-b's veth while dec-b curls ``url``."""
    pcap_path = str(tmp_path / "underlay.pcap")
    server = subprocess.Popen(in_ns(NS_A, sys.executable, "-m", "http.server", "8080", "--bind",
                                    bind, "--directory", str(web_root)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tcpdump = None
    try:
        for _ in range(100):  # the server is up once a connection is accepted
            probe = subprocess.run(in_ns(NS_A, "curl", "-s", "-o", "/dev/null", "-g", url),
                                   timeout=10)
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        tcpdump = subprocess.Popen(in_ns(NS_B, "tcpdump", "-i", "dec-vb", "-U", "--immediate-mode",
                                         "-Z", "root",
                                         "-s", "0", "-w", pcap_path),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_line(tcpdump, b"listening on", 10)
        fetched = subprocess.run(in_ns(NS_B, "curl", "-s", "-g", url), capture_output=True,
                                 timeout=20, check=True)
        assert fetched.stdout == BODY
    finally:
        if tcpdump is not None:
            time.sleep(0.3)  # let the last FIN/ACK reach the capture
            tcpdump.send_signal(signal.SIGINT)
            tcpdump.wait(timeout=10)
            assert tcpdump.stderr is not None
            tcpdump.stderr.close()
        server.terminate()
        server.wait(timeout=10)
    return pcap_path


def streams(path: str, decoder: Decoder) -> dict[int, bytes]:
    """Payload bytes per server-side port direction (80xx = from the server), in seq order."""
    pieces: dict[int, dict[int, bytes]] = {}
    for _ts_ns, linktype, frame in iter_packets(path):
        seg = decoder.decode(linktype, frame)
        if isinstance(seg, Segment) and seg.payload:
            pieces.setdefault(seg.sport, {})[seg.seq] = seg.payload
    return {port: b"".join(p for _, p in sorted(by_seq.items())) for port, by_seq in
            pieces.items()}


def check_http(flows: dict[int, bytes]) -> None:
    response = flows.pop(8080)
    (request,) = flows.values()
    assert request.startswith(b"GET /hello.txt HTTP/1.1\r\n")
    assert response.startswith(b"HTTP/1.0 200 OK\r\n") and response.endswith(b"\r\n\r\n" + BODY)


def test_http_inside_vxlan_is_decapsulated(namespaces: None, web_root: Path,
                                           tmp_path: Path) -> None:
    path = capture_http(tmp_path, web_root, INNER_A, f"http://{INNER_A}:8080/hello.txt")
    decoder = Decoder()
    check_http(streams(path, decoder))
    tcp_packets = sum(1 for _ in iter_packets(path)) - sum(decoder.anomalies.values())
    assert tcp_packets >= 6  # handshake, request, response, close: all from inside VXLAN

    # The same capture without VXLAN decoding: the TCP is invisible (only UDP 4789).
    assert streams(path, Decoder(vxlan_ports=())) == {}

    filtered = Decoder(vni_allow=frozenset({7}))
    assert streams(path, filtered) == {}
    assert filtered.anomalies["decode_vni_filtered"] >= tcp_packets
    assert streams(path, Decoder(vni_allow=frozenset({7, 42}))) == streams(path, Decoder())


def test_http_over_plain_ipv6(namespaces: None, web_root: Path, tmp_path: Path) -> None:
    path = capture_http(tmp_path, web_root, V6_A, f"http://[{V6_A}]:8080/hello.txt")
    decoder = Decoder()
    check_http(streams(path, decoder))
    segs = [s for _, lt, f in iter_packets(path) if (s := decoder.decode(lt, f))]
    assert segs and all(len(s.src) == 16 and len(s.dst) == 16 for s in segs)

"""Tests for sniffer/config_bpf.py: the filter strings, that they compile, and that they pass
data and control segments and drop pure ACKs on real pcap files (Ethernet and Linux SLL)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from sniffer.config import Config, build_bpf

# ---------------------------------------------------------------- BPF


def cap(**kw):
    return dataclasses.replace(Config().capture, **kw)


V4 = "(ip and (tcp[13] & 7 != 0 or ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0))"
V6 = "(ip6 and (ip6[6] != 6 or ip6[53] & 7 != 0 or ip6[4:2] - ((ip6[52] & 0xf0) >> 2) != 0))"

BPF_CASES = [
    ("all-tcp", cap(drop_pure_acks=False), "tcp"),
    ("ports", cap(ports=(80, 8080), drop_pure_acks=False), "tcp and (port 80 or port 8080)"),
    ("acks", cap(), f"tcp and ({V4} or {V6})"),
    ("ports+acks", cap(ports=(80,)), f"tcp and (port 80) and ({V4} or {V6})"),
    (
        "mirror",
        cap(ports=(80,), drop_pure_acks=False, engine="mirror"),
        "(tcp and (port 80)) or (udp and (dst port 4789 or dst port 6081))",
    ),
    (
        "mirror-no-tunnels",
        cap(engine="mirror", vxlan_ports=(), geneve_ports=(), drop_pure_acks=False),
        "tcp",
    ),
    ("user", cap(bpf_filter="host 10.0.0.1", ports=(80,)), "host 10.0.0.1"),
    ("none", cap(no_filter=True, ports=(80,)), None),
]


@pytest.mark.parametrize("name,capture,expected", BPF_CASES, ids=[c[0] for c in BPF_CASES])
def test_bpf_strings(name, capture, expected):
    assert build_bpf(capture) == expected


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
@pytest.mark.parametrize(
    "name,capture,expected", BPF_CASES[:-1], ids=[c[0] for c in BPF_CASES[:-1]]
)
def test_bpf_compiles_with_tcpdump(name, capture, expected):
    run = subprocess.run(
        ["tcpdump", "-d", "-i", "lo", build_bpf(capture)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode == 0, run.stderr
    assert "ret" in run.stdout


# Packets for the pass/drop check: (id, description). Built with dpkt in _frames().
PKT_IDS = {
    "v4-data-80": 0,
    "v4-pure-ack-80-padded": 1,
    "v4-syn-80": 2,
    "v4-fin-80": 3,
    "v4-rst-80": 4,
    "v4-pure-ack-80-options": 5,
    "v4-data-9999": 6,
    "v6-data-80": 7,
    "v6-pure-ack-80": 8,
    "v6-syn-80": 9,
    "v6-fin-80": 10,
    "udp-vxlan-4789": 11,
    "udp-geneve-6081": 12,
    "udp-dns-53": 13,
    "v4-data-8080": 14,
    "v4-synack-from-80": 15,
    "v4-pure-ack-9999": 16,
}
FILTER_EXPECT = [
    ("acks", cap(), {0, 2, 3, 4, 6, 7, 9, 10, 14, 15}),
    ("ports+acks", cap(ports=(80, 8080)), {0, 2, 3, 4, 7, 9, 10, 14, 15}),
    ("ports", cap(ports=(80,), drop_pure_acks=False), {0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 15}),
    ("mirror", cap(ports=(80,), engine="mirror"), {0, 2, 3, 4, 7, 9, 10, 15, 11, 12}),
]


def _frames(sll: bool):
    dpkt = pytest.importorskip("dpkt")
    from dpkt.tcp import TH_ACK, TH_FIN, TH_PUSH, TH_RST, TH_SYN

    def tcp(sport, dport, flags, data=b"", opts=b""):
        return dpkt.tcp.TCP(
            sport=sport, dport=dport, flags=flags, data=data, opts=opts, off=(20 + len(opts)) // 4
        )

    def v4(payload, proto=6):
        return dpkt.ip.IP(src=b"\x0a\0\0\x01", dst=b"\x0a\0\0\x02", p=proto, data=payload)

    def v6(t):
        return dpkt.ip6.IP6(
            src=b"\0" * 15 + b"\1",
            dst=b"\0" * 15 + b"\2",
            nxt=6,
            hlim=64,
            data=t,
            plen=len(bytes(t)),
        )

    def udp(dport):
        return v4(
            dpkt.udp.UDP(sport=5000, dport=dport, data=b"\x08\0\0\0\0\0\x01\0" + b"x" * 20),
            proto=17,
        )

    get_ = b"GET / HTTP/1.1\r\n\r\n"
    packets = {
        0: v4(tcp(40000, 80, TH_PUSH | TH_ACK, get_)),
        1: v4(tcp(40000, 80, TH_ACK)),
        2: v4(tcp(40000, 80, TH_SYN)),
        3: v4(tcp(40000, 80, TH_FIN | TH_ACK)),
        4: v4(tcp(40000, 80, TH_RST)),
        5: v4(tcp(40000, 80, TH_ACK, opts=b"\x01\x01\x08\x0a" + b"\0" * 8)),
        6: v4(tcp(40000, 9999, TH_ACK, get_)),
        7: v6(tcp(40000, 80, TH_PUSH | TH_ACK, get_)),
        8: v6(tcp(40000, 80, TH_ACK)),
        9: v6(tcp(40000, 80, TH_SYN)),
        10: v6(tcp(40000, 80, TH_FIN)),
        11: udp(4789),
        12: udp(6081),
        13: udp(53),
        14: v4(tcp(40000, 8080, TH_ACK, get_)),
        15: v4(tcp(80, 40000, TH_SYN | TH_ACK)),
        16: v4(tcp(40000, 9999, TH_ACK)),
    }
    frames = []
    for n, ip in packets.items():
        etype = 0x86DD if isinstance(ip, dpkt.ip6.IP6) else 0x0800
        if sll:
            frame = bytes(
                dpkt.sll.SLL(type=0, hrd=1, hlen=6, hdr=b"\0" * 8, ethtype=etype, data=ip)
            )
        else:
            frame = bytes(
                dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=etype, data=ip)
            )
            frame += b"\0" * max(0, 60 - len(frame))  # Ethernet minimum frame: padding
        frames.append((n, frame))
    return dpkt, frames


def _pcap_file(tmp_path: Path, sll: bool) -> str:
    dpkt, frames = _frames(sll)
    path = tmp_path / ("sll.pcap" if sll else "eth.pcap")
    with open(path, "wb") as fh:
        writer = dpkt.pcap.Writer(
            fh, linktype=dpkt.pcap.DLT_LINUX_SLL if sll else dpkt.pcap.DLT_EN10MB
        )
        for n, frame in frames:
            writer.writepkt(frame, ts=n + 1)
    return str(path)


@pytest.mark.parametrize("sll", [False, True], ids=["ethernet", "linux-sll"])
@pytest.mark.parametrize("name,capture,expected", FILTER_EXPECT, ids=[c[0] for c in FILTER_EXPECT])
def test_bpf_passes_data_and_control_and_drops_pure_acks(tmp_path, sll, name, capture, expected):
    pcap = pytest.importorskip("pcap")
    handle = pcap.pcap(name=_pcap_file(tmp_path, sll), timestamp_in_ns=True)
    handle.setfilter(build_bpf(capture))
    passed = {ts // 10**9 - 1 for ts, _ in handle.readpkts()}
    assert passed == expected, {k: v for k, v in PKT_IDS.items() if v in passed ^ expected}


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_bpf_with_tcpdump_read(tmp_path):
    path = _pcap_file(tmp_path, sll=False)
    run = subprocess.run(
        ["tcpdump", "-nn", "-r", path, build_bpf(cap(ports=(80,)))],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 8  # v4 data/SYN/FIN/RST/SYN-ACK, v6 data/SYN/FIN

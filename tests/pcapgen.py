"""Write test captures from code: conversations (tests/helpers.py) as Ethernet/IPv4/TCP pcaps.

Used to make small, reviewable captures for the CLI and pipeline tests instead of checking
in binary files.
"""
from __future__ import annotations

import dpkt

from tests.helpers import Packet


def frame(p: Packet) -> bytes:
    """One Ethernet frame for a test packet."""
    s = p.seg
    tcp = dpkt.tcp.TCP(sport=s.sport, dport=s.dport, seq=s.seq, ack=s.ack, flags=s.flags,
                       data=s.payload, win=65535)
    if len(s.src) == 4:
        ip = dpkt.ip.IP(src=s.src, dst=s.dst, p=dpkt.ip.IP_PROTO_TCP, data=tcp, ttl=64)
        ip.len = len(ip)
        etype = dpkt.ethernet.ETH_TYPE_IP
    else:
        ip = dpkt.ip6.IP6(src=s.src, dst=s.dst, nxt=dpkt.ip.IP_PROTO_TCP, data=tcp, hlim=64)
        ip.plen = len(tcp)
        etype = dpkt.ethernet.ETH_TYPE_IP6
    eth = dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02",
                                 type=etype, data=ip)
    return bytes(eth)


def write_pcap(path: str, packets: list[Packet]) -> None:
    """Write packets to a nanosecond pcap file."""
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, nano=True)
        for p in packets:
            w.writepkt(frame(p), ts=p.ts_ns / 1e9)

"""Tests for workers/decode.py (+ decode_link, decode_tunnel): frames built here with struct."""
from __future__ import annotations

import glob
import os
import re
import struct

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sniffer.pcapfile import iter_packets
from workers.anomalies import REGISTRY
from workers.decode import Decoder
from workers.segment import ACK, PSH, SYN, Segment

CORPUS = "/work/shared/corpus/pcaps"
A4, B4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
A6, B6 = bytes.fromhex("fd00" + "00" * 13 + "01"), bytes.fromhex("fd00" + "00" * 13 + "02")
BODY = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


# -- frame builders ----------------------------------------------------------------------------
def tcp(payload: bytes = BODY, sport: int = 40000, dport: int = 80, seq: int = 0xFFFFFFF0,
        ack: int = 7, flags: int = PSH | ACK, options: bytes = b"") -> bytes:
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 65535, 0, 0) \
        + options + payload


def udp(payload: bytes, dport: int, sport: int = 5555) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(l4: bytes, proto: int = 6, options: bytes = b"", frag: int = 0x4000,
         total: int | None = None, src: bytes = A4, dst: bytes = B4) -> bytes:
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(l4) if total is None else total
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, frag, 64, proto, 0, src, dst) \
        + options + l4


def ipv6(l4: bytes, nh: int = 6, exts: tuple[tuple[int, bytes], ...] = (), plen: int | None = None,
         src: bytes = A6, dst: bytes = B6) -> bytes:
    """``exts``: (header type, header bytes without its next-header byte) in order."""
    body = l4
    for i in range(len(exts) - 1, -1, -1):
        kind, data = exts[i]
        body = bytes([nh]) + data + body
        nh = kind
    plen = len(body) if plen is None else plen
    return struct.pack("!IHBB16s16s", 0x60000000, plen, nh, 64, src, dst) + body


def ext8(kind: int, length_units: int = 0) -> tuple[int, bytes]:
    """A hop-by-hop / routing / destination-options header of (1 + units) * 8 bytes."""
    return kind, bytes([length_units]) + b"\x01\x00" + b"\x00" * (4 + 8 * length_units)


def eth(l3: bytes, etype: int = 0x0800, tags: tuple[int, ...] = ()) -> bytes:
    head = b"\x02" * 6 + b"\x04" * 6
    for tpid in tags:
        head += struct.pack("!H", tpid)
        head += struct.pack("!H", 100)  # the TCI: VLAN 100
    return head + struct.pack("!H", etype) + l3


def vxlan(inner: bytes, vni: int = 42, flags: int = 0x08, dport: int = 4789) -> bytes:
    return ipv4(udp(struct.pack("!B3xI", flags, vni << 8) + inner, dport), proto=17)


def geneve(inner: bytes, protocol: int, options: bytes = b"", vni: int = 42) -> bytes:
    head = struct.pack("!BBHI", len(options) // 4, 0, protocol, vni << 8) + options
    return ipv4(udp(head + inner, 6081), proto=17)


def gre(inner: bytes, protocol: int, flags: int = 0, words: bytes = b"") -> bytes:
    return ipv4(struct.pack("!HH", flags, protocol) + words + inner, proto=47)


def seg(src: bytes = A4, dst: bytes = B4, payload: bytes = BODY, sport: int = 40000,
        dport: int = 80, seq: int = 0xFFFFFFF0, flags: int = PSH | ACK) -> Segment:
    return Segment(src, sport, dst, dport, seq, 7, flags, payload)


V4, V6 = ipv4(tcp()), ipv6(tcp())
SLL_HEAD = struct.pack("!HHH8s", 0, 1, 6, b"\x02" * 6 + b"\0\0")
SLL2_HEAD = lambda proto: struct.pack("!HHIHBB8s", proto, 0, 3, 1, 0, 6, b"\x02" * 8)  # noqa: E731
AUTH = b"\x00\x01" + bytes([2, 3]) + b"id" + b"key" + b"N" * 8 + b"\x00"  # id 2, auth 3 bytes
ORIGIN = b"\x00\x00" + b"\xff" * 6

GOOD = [  # (id, linktype, frame, expected segment)
    ("ether-ipv4", 1, eth(V4), seg()),
    ("ether-padding-trimmed", 1, eth(ipv4(tcp(b"hi"))) + b"\0" * 10 + b"FCS!", seg(payload=b"hi")),
    ("ether-empty-syn-padded", 1, eth(ipv4(tcp(b"", flags=SYN))) + b"\0" * 6,
     seg(payload=b"", flags=SYN)),
    ("ether-ipv6", 1, eth(V6, 0x86DD), seg(A6, B6)),
    ("ipv6-padding-trimmed", 1, eth(ipv6(tcp(b"x")), 0x86DD) + b"\0" * 8, seg(A6, B6, b"x")),
    ("vlan-8021q", 1, eth(V4, tags=(0x8100,)), seg()),
    ("qinq-88a8", 1, eth(V6, 0x86DD, tags=(0x88A8, 0x8100)), seg(A6, B6)),
    ("qinq-9100-three-tags", 1, eth(V4, tags=(0x9100, 0x8100, 0x8100)), seg()),
    ("pppoe-ipv4", 1, eth(struct.pack("!BBHHH", 0x11, 0, 7, len(V4) + 2, 0x21) + V4, 0x8864),
     seg()),
    ("pppoe-ipv6", 1, eth(struct.pack("!BBHHH", 0x11, 0, 7, len(V6) + 2, 0x57) + V6, 0x8864),
     seg(A6, B6)),
    ("pppoe-compressed-protocol", 1,
     eth(struct.pack("!BBHHB", 0x11, 0, 7, len(V4) + 1, 0x21) + V4, 0x8864), seg()),
    ("vlan-pppoe", 1,
     eth(struct.pack("!BBHHH", 0x11, 0, 7, 0, 0x21) + V4, 0x8864, tags=(0x8100,)), seg()),
    ("sll-ipv4", 113, SLL_HEAD + b"\x08\x00" + V4, seg()),
    ("sll-vlan", 113, SLL_HEAD + b"\x81\x00" + b"\x00\x64\x86\xdd" + V6, seg(A6, B6)),
    ("sll2-ipv6", 276, SLL2_HEAD(0x86DD) + V6, seg(A6, B6)),
    ("sll2-ipv4", 276, SLL2_HEAD(0x0800) + V4, seg()),
    ("null-le-inet", 0, struct.pack("<I", 2) + V4, seg()),
    ("null-be-inet", 0, struct.pack(">I", 2) + V4, seg()),
    ("null-linux-inet6", 0, struct.pack("<I", 10) + V6, seg(A6, B6)),
    ("null-bsd-inet6", 0, struct.pack("<I", 24) + V6, seg(A6, B6)),
    ("null-freebsd-inet6", 0, struct.pack(">I", 28) + V6, seg(A6, B6)),
    ("null-macos-inet6", 0, struct.pack("<I", 30) + V6, seg(A6, B6)),
    ("loop-inet", 108, struct.pack(">I", 2) + V4, seg()),
    ("loop-inet6", 108, struct.pack(">I", 24) + V6, seg(A6, B6)),
    ("raw12-v4", 12, V4, seg()),
    ("raw14-v6", 14, V6, seg(A6, B6)),
    ("raw101-v4", 101, V4, seg()),
    ("raw101-v6", 101, V6, seg(A6, B6)),
    ("ipv4-link", 228, V4, seg()),
    ("ipv6-link", 229, V6, seg(A6, B6)),
    ("ipv4-options", 228, ipv4(tcp(), options=b"\x01\x01\x01\x00" * 2), seg()),
    ("tcp-options", 228, ipv4(tcp(options=b"\x01\x01\x08\x0a" + b"\0" * 8)), seg()),
    ("ipv4-tso-zero-length", 1, eth(ipv4(tcp(), total=0)), seg()),
    ("ipv6-hbh-routing-dst-ah", 229,
     ipv6(tcp(), exts=(ext8(0), ext8(43, 1), ext8(60), (51, b"\x02" + b"\0" * 14))), seg(A6, B6)),
    ("ipv6-atomic-fragment", 229, ipv6(tcp(), exts=((44, b"\0" * 7),)), seg(A6, B6)),
    ("vxlan", 1, eth(vxlan(eth(V4))), seg()),
    ("vxlan-inner-vlan-ipv6", 1, eth(vxlan(eth(V6, 0x86DD, tags=(0x8100,)))), seg(A6, B6)),
    ("vxlan-over-ipv6", 1,
     eth(ipv6(udp(struct.pack("!B3xI", 8, 42 << 8) + eth(V4), 4789), nh=17), 0x86DD), seg()),
    ("geneve-ether-options", 1, eth(geneve(eth(V4), 0x6558, options=b"\x01" * 8)), seg()),
    ("geneve-ipv4", 1, eth(geneve(V4, 0x0800)), seg()),
    ("geneve-ipv6", 1, eth(geneve(V6, 0x86DD)), seg(A6, B6)),
    ("teredo-plain", 1, eth(ipv4(udp(V6, 3544), proto=17)), seg(A6, B6)),
    ("teredo-origin-from-server", 1, eth(ipv4(udp(ORIGIN + V6, 50000, sport=3544), proto=17)),
     seg(A6, B6)),
    ("teredo-auth-origin", 1, eth(ipv4(udp(AUTH + ORIGIN + V6, 3544), proto=17)), seg(A6, B6)),
    ("gre-ether", 1, eth(gre(eth(V4), 0x6558)), seg()),
    ("gre-key-seq-ipv4", 1, eth(gre(V4, 0x0800, 0x3000, b"K" * 4 + b"S" * 4)), seg()),
    ("gre-checksum-ipv6", 1, eth(gre(V6, 0x86DD, 0x8000, b"\0" * 4)), seg(A6, B6)),
    ("erspan-ii", 1, eth(gre(b"E" * 8 + eth(V4), 0x88BE, 0x1000, b"\0" * 4)), seg()),
    ("erspan-iii", 1, eth(gre(b"E" * 11 + b"\0" + eth(V4), 0x22EB, 0x1000, b"\0" * 4)), seg()),
    ("erspan-iii-platform", 1, eth(gre(b"E" * 11 + b"\1" + b"P" * 8 + eth(V4), 0x22EB)), seg()),
    ("ipip", 228, ipv4(V4, proto=4, src=B4, dst=A4), seg()),
    ("ipv6-in-ipv4", 228, ipv4(V6, proto=41), seg(A6, B6)),
    ("ipv4-in-ipv6", 229, ipv6(V4, nh=4), seg()),
    ("udp-64k-vxlan", 1, eth(vxlan(eth(ipv4(tcp(b"z" * 65000))))), seg(payload=b"z" * 65000)),
    ("seq-and-ports", 228, ipv4(tcp(b"", sport=1, dport=65535, seq=0, flags=SYN)),
     seg(payload=b"", sport=1, dport=65535, seq=0, flags=SYN)),
]


@pytest.mark.parametrize("linktype,frame,expected", [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_decodes_every_link_type_and_encapsulation(linktype: int, frame: bytes,
                                                   expected: Segment) -> None:
    decoder = Decoder()
    assert decoder.decode(linktype, frame) == expected
    assert not decoder.anomalies


def nest_vxlan(levels: int) -> bytes:
    frame = eth(V4)
    for _ in range(levels):
        frame = eth(vxlan(frame))
    return frame


BAD = [  # (id, linktype, frame, anomaly)
    ("unknown-linktype", 105, eth(V4), "decode_unknown_linktype"),
    ("empty-ether", 1, b"", "decode_truncated"),
    ("arp", 1, eth(b"\0" * 28, 0x0806), "decode_not_ip"),
    ("llc-length-field", 1, eth(b"\x42" * 40, 40), "decode_not_ip"),
    ("pppoe-lcp", 1, eth(struct.pack("!BBHHH", 0x11, 0, 7, 10, 0xC021) + b"\0" * 8, 0x8864),
     "decode_not_ip"),
    ("null-unknown-family", 0, struct.pack("<I", 7) + V4, "decode_not_ip"),
    ("raw-version-5", 101, b"\x50" + V4[1:], "decode_bad_ip_header"),
    ("ipv6-in-ipv4-ethertype", 1, eth(V6), "decode_bad_ip_header"),
    ("ihl-below-5", 228, b"\x44" + V4[1:], "decode_bad_ip_header"),
    ("total-below-ihl", 228, ipv4(tcp(), total=12), "decode_bad_ip_header"),
    ("snaplen-cut-ipv4", 1, eth(V4)[:-5], "decode_snaplen_cut"),
    ("snaplen-cut-ipv6", 1, eth(V6, 0x86DD)[:-1], "decode_snaplen_cut"),
    ("udp", 228, ipv4(udp(b"dns", 53), proto=17), "decode_not_tcp"),
    ("icmp", 228, ipv4(b"\x08\0\0\0\0\0\0\0", proto=1), "decode_not_tcp"),
    ("icmpv6", 229, ipv6(b"\x80\0\0\0", nh=58), "decode_not_tcp"),
    ("ipv4-more-fragments", 228, ipv4(tcp(), frag=0x2000), "decode_ip_fragment"),
    ("ipv4-fragment-offset", 228, ipv4(tcp(), frag=0x0010), "decode_ip_fragment"),
    ("ipv6-first-fragment", 229, ipv6(tcp(), exts=((44, b"\0\0\x01" + b"\0" * 4),)),
     "decode_ip_fragment"),
    ("ipv6-later-fragment", 229, ipv6(tcp(), exts=((44, b"\0\x01\x00" + b"\0" * 4),)),
     "decode_ip_fragment"),
    ("ipv6-too-many-ext", 229, ipv6(tcp(), exts=(ext8(60),) * 9), "decode_ipv6_too_many_ext"),
    ("ipv6-ext-truncated", 229, ipv6(b"", nh=0), "decode_truncated"),
    ("tcp-offset-below-5", 228, ipv4(tcp()[:12] + b"\x40" + tcp()[13:]), "decode_bad_tcp_header"),
    ("tcp-options-past-end", 228, ipv4(tcp(b"")[:12] + b"\xf0" + tcp(b"")[13:]),
     "decode_bad_tcp_header"),
    ("tcp-truncated", 228, ipv4(tcp()[:19]), "decode_truncated"),
    ("udp-length-below-8", 228, ipv4(b"\0\1\0\2\0\4\0\0", proto=17), "decode_bad_udp_header"),
    ("vlan-too-deep", 1, eth(V4, tags=(0x8100,) * 9), "decode_vlan_too_deep"),
    ("vxlan-without-i-flag", 1, eth(vxlan(eth(V4), flags=0)), "decode_bad_tunnel_header"),
    ("geneve-version-1", 1, eth(ipv4(udp(b"\x40\0\x65\x58" + b"\0" * 4 + eth(V4), 6081), 17)),
     "decode_bad_tunnel_header"),
    ("gre-version-1", 1, eth(gre(V4, 0x880B, 0x0001)), "decode_bad_tunnel_header"),
    ("gre-unknown-protocol", 1, eth(gre(b"\0" * 20, 0x1234)), "decode_not_ip"),
    ("teredo-bubble", 1, eth(ipv4(udp(ORIGIN + ipv6(b"", nh=59), 3544), 17)), "decode_not_tcp"),
    ("teredo-not-ipv6", 1, eth(ipv4(udp(V4, 3544), 17)), "decode_not_tcp"),
    ("vxlan-custom-port-not-configured", 1, eth(vxlan(eth(V4), dport=8472)), "decode_not_tcp"),
    ("tunnels-five-deep", 1, nest_vxlan(5), "decode_tunnel_too_deep"),
]


@pytest.mark.parametrize("linktype,frame,anomaly", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_counts_a_named_anomaly_for_what_is_not_a_tcp_segment(linktype: int, frame: bytes,
                                                              anomaly: str) -> None:
    decoder = Decoder()
    assert decoder.decode(linktype, frame) is None
    assert decoder.anomalies == {anomaly: 1}


def test_tunnel_depth_limit_is_inclusive_and_configurable() -> None:
    assert Decoder().decode(1, nest_vxlan(4)) == seg()
    shallow = Decoder(max_tunnel_depth=1)
    assert shallow.decode(1, nest_vxlan(1)) == seg()
    assert shallow.decode(1, nest_vxlan(2)) is None
    assert shallow.anomalies == {"decode_tunnel_too_deep": 1}


def test_vni_allow_list_filters_vxlan_and_geneve() -> None:
    decoder = Decoder(vni_allow=frozenset({7}))
    assert decoder.decode(1, eth(vxlan(eth(V4), vni=7))) == seg()
    assert decoder.decode(1, eth(geneve(V4, 0x0800, vni=7))) == seg()
    assert decoder.decode(1, eth(vxlan(eth(V4), vni=42))) is None
    assert decoder.decode(1, eth(geneve(V4, 0x0800, vni=8))) is None
    assert decoder.anomalies == {"decode_vni_filtered": 2}


def test_configured_tunnel_ports() -> None:
    decoder = Decoder(vxlan_ports=(8472,), geneve_ports=(6082,), teredo_port=3545)
    assert decoder.decode(1, eth(vxlan(eth(V4), dport=8472))) == seg()
    assert decoder.decode(1, eth(ipv4(udp(b"\0\0\x08\0" + b"\0" * 4 + V4, 6082), 17))) == seg()
    assert decoder.decode(1, eth(ipv4(udp(V6, 3545), proto=17))) == seg(A6, B6)
    assert decoder.decode(1, eth(vxlan(eth(V4)))) is None  # 4789 is no longer VXLAN
    assert decoder.anomalies == {"decode_not_tcp": 1}


TRUNCATABLE = [g for g in GOOD if g[0] not in {"ipv4-tso-zero-length", "udp-64k-vxlan"}]


@pytest.mark.parametrize("linktype,frame", [g[1:3] for g in TRUNCATABLE],
                         ids=[g[0] for g in TRUNCATABLE])
def test_every_cut_of_a_good_frame_is_counted_not_raised(linktype: int, frame: bytes) -> None:
    expected = Decoder().decode(linktype, frame)
    assert expected is not None
    decoder = Decoder()
    for cut in range(len(frame)):
        got = decoder.decode(linktype, frame[:cut])
        # Cutting only Ethernet trailer padding still yields the very same segment.
        assert got is None or got == expected
    assert "decode_error" not in decoder.anomalies
    assert sum(decoder.anomalies.values()) >= 1


@settings(max_examples=300, deadline=None)
@given(linktype=st.sampled_from([0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999]),
       prefix=st.sampled_from([b"", eth(b"", 0x8100)[:14], eth(ipv4(b"", 17))[:34],
                               eth(ipv4(udp(b"", 4789), 17))[:42], struct.pack("<I", 2)]),
       data=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(linktype: int, prefix: bytes, data: bytes) -> None:
    decoder = Decoder()
    result = decoder.decode(linktype, prefix + data)
    assert result is None or isinstance(result, Segment)
    assert "decode_error" not in decoder.anomalies
    assert sum(decoder.anomalies.values()) == (result is None)


def test_every_counted_anomaly_is_registered() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    source = ""
    for name in ("decode.py", "decode_tunnel.py"):
        with open(os.path.join(here, "..", "..", "workers", name), encoding="utf-8") as f:
            source += f.read()
    counted = set(re.findall(r'_drop\("(\w+)"\)', source))
    assert len(counted) >= 14
    assert counted <= set(REGISTRY)


# -- oracle: the real captures against dpkt -----------------------------------------------------
def dpkt_tcp(linktype: int, frame: bytes) -> dpkt.tcp.TCP | None:
    """The TCP layer dpkt finds directly under the link layer (no tunnels), if any."""
    try:
        if linktype == 1:
            layer = dpkt.ethernet.Ethernet(frame).data
        elif linktype == 0:
            layer = dpkt.loopback.Loopback(frame).data
        elif linktype == 228:
            layer = dpkt.ip.IP(frame)
        else:
            raise AssertionError(f"corpus link type {linktype} not covered by the oracle")
        if isinstance(layer, dpkt.pppoe.PPPoE):
            layer = layer.data
        if isinstance(layer, dpkt.ppp.PPP):
            layer = layer.data
        if isinstance(layer, dpkt.ip.IP) and (layer.mf or layer.offset):
            return None  # a fragment: we skip those
        tcp_layer = layer.data if isinstance(layer, (dpkt.ip.IP, dpkt.ip6.IP6)) else None
    except dpkt.UnpackError:
        return None
    return tcp_layer if isinstance(tcp_layer, dpkt.tcp.TCP) else None


CAPTURES = sorted(glob.glob(os.path.join(CORPUS, "*.pcap*")))


@pytest.mark.skipif(not CAPTURES, reason="no corpus captures")
def test_corpus_segments_match_dpkt() -> None:
    linktypes, compared, tunneled = set(), 0, 0
    for path in CAPTURES:
        with open(path, "rb") as f:
            reader = dpkt.pcapng.Reader(f) if path.endswith(".pcapng") else dpkt.pcap.Reader(f)
            reference = [(float(ts), bytes(buf)) for ts, buf in reader]
        ours = list(iter_packets(path))
        assert len(ours) == len(reference), path
        decoder = Decoder()
        for (ts, frame), (ts_ns, linktype, our_frame) in zip(reference, ours):
            assert our_frame == frame and abs(ts * 1e9 - ts_ns) < 1000, path
            linktypes.add(linktype)
            got, want = decoder.decode(linktype, frame), dpkt_tcp(linktype, frame)
            if want is not None and want.off >= 5:
                assert got is not None, (path, decoder.anomalies)
                assert (got.sport, got.dport, got.seq, got.ack, got.flags, got.payload) == (
                    want.sport, want.dport, want.seq, want.ack, want.flags, bytes(want.data)), path
                compared += 1
            elif got is not None:  # only tunnels (VXLAN, GENEVE+GRE) are ours alone
                assert os.path.basename(path) in {"zeek-vxlan.pcap", "sv-bug-2576.pcap",
                                                  "sv-bug-6402.pcap"}, path
                tunneled += 1
        assert "decode_error" not in decoder.anomalies
    assert linktypes == {0, 1, 228}
    assert compared > 3000 and tunneled >= 12 + 15 + 12

"""The decoder's fast path (Ethernet/SLL + IPv4/IPv6 + TCP at fixed offsets) agrees with the
general layer-by-layer path on every frame: same segment, same anomaly, or both nothing."""
from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.workers.test_decode import SLL_HEAD, eth, ipv4, ipv6, tcp
from workers.decode import Decoder, plain_tcp4
from workers.segment import Segment

ETHERNET, SLL = 1, 113


def general_path(linktype: int, frame: bytes) -> tuple[Segment | None, dict[str, int]]:
    """What the layer-by-layer path alone makes of ``frame`` (bypassing ``decode``)."""
    decoder = Decoder()
    at = 12 if linktype == ETHERNET else 14
    if len(frame) < at + 2:
        return None, {"decode_truncated": 1}
    seg = decoder._ethertype(frame, frame[at] << 8 | frame[at + 1], at + 2, len(frame), 0)
    return seg, dict(decoder.anomalies)


def both(linktype: int, frame: bytes) -> tuple[Segment | None, dict[str, int]]:
    decoder = Decoder()
    seg = decoder.decode(linktype, frame)
    got = (seg, dict(decoder.anomalies))
    assert got == general_path(linktype, frame)
    return got


@st.composite
def tcp_frames(draw: st.DrawFn) -> tuple[int, bytes]:
    """Mostly valid frames, with one header field or the length bent now and then."""
    payload = draw(st.binary(max_size=80))
    options = b"\x01" * 4 * draw(st.integers(0, 3))
    seg = tcp(payload, draw(st.integers(0, 65535)), draw(st.integers(0, 65535)),
              draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
              draw(st.integers(0, 255)), options)
    if draw(st.booleans()):  # bend the TCP data offset byte
        seg = seg[:12] + bytes([draw(st.integers(0, 255))]) + seg[13:]
    if draw(st.booleans()):
        l3 = ipv4(seg, proto=draw(st.sampled_from([6, 6, 17, 1])),
                  options=draw(st.sampled_from([b"", b"\x01" * 4])),
                  frag=draw(st.sampled_from([0, 0x4000, 0x2000, 0x0001, 0x8000])),
                  total=draw(st.one_of(st.none(), st.integers(0, 200))))
        if draw(st.booleans()):  # bend the version/IHL byte
            l3 = bytes([draw(st.integers(0, 255))]) + l3[1:]
        etype = 0x0800
    else:
        l3 = ipv6(seg, nh=draw(st.sampled_from([6, 6, 17, 0])),
                  plen=draw(st.one_of(st.none(), st.integers(0, 200))))
        if draw(st.booleans()):
            l3 = bytes([draw(st.integers(0, 255))]) + l3[1:]
        etype = draw(st.sampled_from([0x86DD, 0x86DD, 0x0800]))
    linktype = draw(st.sampled_from([ETHERNET, SLL]))
    frame = (eth(l3, etype) if linktype == ETHERNET
             else SLL_HEAD + struct.pack("!H", etype) + l3)
    frame += b"\0" * draw(st.integers(0, 8))  # trailer padding
    cut = draw(st.one_of(st.none(), st.integers(0, len(frame))))
    return linktype, frame if cut is None else frame[:cut]


@settings(max_examples=600, deadline=None)
@given(tcp_frames())
def test_fast_path_agrees_with_the_general_path(case: tuple[int, bytes]) -> None:
    both(*case)


CASES = [  # (id, linktype, frame, expected payload or None for "not a segment")
    ("ether-ipv4", ETHERNET, eth(ipv4(tcp(b"hello"))), b"hello"),
    ("ether-ipv4-tcp-options", ETHERNET, eth(ipv4(tcp(b"hi", options=b"\x01" * 12))), b"hi"),
    ("ether-ipv4-padding", ETHERNET, eth(ipv4(tcp(b"hi"))) + b"\0" * 6, b"hi"),
    ("ether-ipv4-options", ETHERNET, eth(ipv4(tcp(b"x"), options=b"\x01" * 4)), b"x"),
    ("ether-ipv4-tso", ETHERNET, eth(ipv4(tcp(b"big"), total=0)), b"big"),
    ("ether-ipv4-fragment", ETHERNET, eth(ipv4(tcp(b"x"), frag=0x2000)), None),
    ("ether-ipv4-cut", ETHERNET, eth(ipv4(tcp(b"hello")))[:-1], None),
    ("ether-ipv6", ETHERNET, eth(ipv6(tcp(b"six")), 0x86DD), b"six"),
    ("ether-ipv6-jumbo", ETHERNET, eth(ipv6(tcp(b"j"), plen=0), 0x86DD), b"j"),
    ("ether-ipv6-udp", ETHERNET, eth(ipv6(tcp(b"u"), nh=17), 0x86DD), None),
    ("sll-ipv4", SLL, SLL_HEAD + b"\x08\x00" + ipv4(tcp(b"sll")), b"sll"),
    ("sll-ipv6", SLL, SLL_HEAD + b"\x86\xdd" + ipv6(tcp(b"sll6")), b"sll6"),
    ("tcp-offset-below-5", ETHERNET,
     eth(ipv4(tcp(b"x")[:12] + b"\x40" + tcp(b"x")[13:])), None),
]


def test_fast_path_cases() -> None:
    for name, linktype, frame, payload in CASES:
        seg, anomalies = both(linktype, frame)
        assert (None if seg is None else seg.payload) == payload, name
        assert seg is None or (type(seg) is Segment and seg.sport == 40000), name
        assert bool(anomalies) == (seg is None), name


@settings(max_examples=600, deadline=None)
@given(tcp_frames())
def test_plain_tcp4_accepts_only_what_the_general_path_decodes_cleanly(
        case: tuple[int, bytes]) -> None:
    """Where ``plain_tcp4`` accepts a frame, its payload bounds and the 22 header bytes the
    capture ships as they are give exactly the general path's segment, without an anomaly."""
    linktype, frame = case
    ip, start, end = plain_tcp4(linktype, frame)
    seg, anomalies = general_path(linktype, frame)
    if ip < 0:
        return
    assert seg is not None and not anomalies
    assert frame[start:end] == seg.payload
    src, dst, sport, dport, seq, ack, flags = struct.unpack("!4s4sHHIIxB", frame[ip + 12:ip + 34])
    assert Segment(src, sport, dst, dport, seq, ack, flags, seg.payload) == seg


def test_plain_tcp4_cases() -> None:
    accepted = {"ether-ipv4", "ether-ipv4-tcp-options", "ether-ipv4-padding", "sll-ipv4"}
    for name, linktype, frame, _ in CASES:
        assert (plain_tcp4(linktype, frame)[0] >= 0) == (name in accepted), name

"""Tests of sniffer/codec.py: round trips, the documented layout, garbage -> CodecError only."""
from __future__ import annotations

import os
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sniffer import codec
from sniffer.codec import CODEC_VERSION, CodecError, Kind
from tests.workers.test_decode import ipv4, tcp
from workers.segment import ACK, PSH, SYN, Segment

u32 = st.integers(0, 2**32 - 1)
port = st.integers(0, 65535)


@st.composite
def segments(draw: st.DrawFn) -> tuple[int, Segment]:
    alen = draw(st.sampled_from([4, 16]))
    addr = st.binary(min_size=alen, max_size=alen)
    seg = Segment(draw(addr), draw(port), draw(addr), draw(port), draw(u32), draw(u32),
                  draw(st.integers(0, 0xFF)), draw(st.binary(max_size=300)))  # a flags byte
    return draw(st.integers(0, 2**64 - 1)), seg


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), segments()), max_size=20))
def test_packets_round_trip(items: list[tuple[int, tuple[int, Segment]]]) -> None:
    triples = [(index, ts, seg) for index, (ts, seg) in items]
    frame = codec.encode_packets(triples)
    assert codec.frame_kind(frame) is Kind.PACKETS
    got = codec.decode_packets(frame)
    assert got == triples and all(type(seg) is Segment for _, _, seg in got)
    assert codec.decode_packets(memoryview(bytearray(frame))) == triples


@given(st.sampled_from([4, 6]), st.binary(min_size=66, max_size=66), st.integers(0, 40))
def test_unpack_item_reads_the_fields_of_the_struct_layout(ipv: int, rest: bytes,
                                                           payload: int) -> None:
    """``unpack_item`` reads bytes by hand; ``PACKET_V4``/``PACKET_V6`` are the layout."""
    layout = codec.PACKET_V4 if ipv == 4 else codec.PACKET_V6
    header = bytes([ipv]) + rest[:layout.size - 5] + struct.pack("!I", payload)
    data = b"pre" + header + bytes(payload)
    _, index, ts, src, dst, sport, dport, seq, ack, flags, n = layout.unpack_from(data, 3)
    flow = src + dst + struct.pack("!HH", sport, dport)  # the connection key, as laid out
    assert codec.unpack_item(data, 3) == (index, ts, flow, sport, dport, seq, ack, flags,
                                          3 + layout.size, 3 + layout.size + n)
    for cut in (data[:3 + layout.size - 1], data[:-1] if payload else data[:-2]):
        with pytest.raises(CodecError):
            codec.unpack_item(cut, 3)


def test_packet_layout_matches_the_documented_table() -> None:
    """IPv4 items carry 4-byte addresses (43-byte header), IPv6 items 16-byte ones (67)."""
    v4 = Segment(bytes([10, 0, 0, 1]), 40000, bytes([10, 0, 0, 2]), 80, 7, 9, SYN, b"hi")
    v6 = Segment(bytes(range(16)), 1, bytes(range(16, 32)), 2, 3, 4, ACK, b"")
    frame = codec.encode_packets([(5, 123, v4), (6, 124, v6)])
    assert (codec.PACKET_V4.size, codec.PACKET_V6.size) == (43, 67)
    assert frame[:6] == struct.pack("<BBI", CODEC_VERSION, Kind.PACKETS, 2)
    assert frame[6:49] == struct.pack("!BQQ4s4sHHIIxBI", 4, 5, 123, v4.src, v4.dst, 40000, 80,
                                      7, 9, SYN, 2)
    assert frame[49:51] == b"hi"
    assert frame[51:] == struct.pack("!BQQ16s16sHHIIxBI", 6, 6, 124, v6.src, v6.dst, 1, 2, 3,
                                     4, ACK, 0)
    # the capture's copy of a frame's own bytes (IPv4 offset 12 to 34) is the same item
    wire = ipv4(tcp(b"hi", 40000, 80, seq=7, ack=9, flags=SYN), src=v4.src, dst=v4.dst)
    raw = codec.PACKET_V4_RAW.pack(4, 5, 123, wire[12:34], 2)
    assert raw[:37] + raw[38:] == frame[6:43] + frame[44:49]
    assert (raw[37], frame[43]) == (0x50, 0)  # the data offset byte rides along, ignored
    assert codec.PACKET_V4.unpack(raw) == codec.PACKET_V4.unpack(frame[6:49])
    one = codec.packets_frame(1, [codec.pack_packet(5, 123, v4), b"hi"])
    assert one == struct.pack("<BBI", CODEC_VERSION, Kind.PACKETS, 1) + frame[6:51]


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=100)), max_size=30))
def test_keyed_lines_round_trip(items: list[tuple[int, bytes]]) -> None:
    keys, lines = [k for k, _ in items], [line for _, line in items]
    frame = codec.encode_keyed_lines(keys, lines)
    assert codec.frame_kind(frame) is Kind.KEYED_LINES
    assert codec.decode_keyed_lines(frame) == (keys, lines)


@given(st.lists(st.binary(max_size=200), max_size=30))
def test_lines_round_trip(lines: list[bytes]) -> None:
    frame = codec.encode_lines(lines)
    assert codec.frame_kind(frame) is Kind.LINES
    assert codec.decode_lines(frame) == lines


@given(st.dictionaries(st.text(max_size=20), st.integers(-(2**63), 2**63), max_size=20))
def test_counters_round_trip(counters: dict[str, int]) -> None:
    frame = codec.encode_counters(counters)
    assert codec.frame_kind(frame) is Kind.COUNTERS
    assert codec.decode_counters(frame) == counters


@pytest.mark.parametrize("word", [codec.END, "FLUSH"])
def test_control_round_trip(word: str) -> None:
    frame = codec.encode_control(word)
    assert codec.frame_kind(frame) is Kind.CONTROL
    assert codec.decode_control(frame) == word


def test_default_control_word_is_end_of_input() -> None:
    assert codec.decode_control(codec.encode_control()) == "END"


BAD_SEGMENTS = [
    ("address lengths differ", Segment(bytes(4), 1, bytes(16), 2, 0, 0, 0, b"")),
    ("address of 5 bytes", Segment(bytes(5), 1, bytes(5), 2, 0, 0, 0, b"")),
    ("port too big", Segment(bytes(4), 70000, bytes(4), 2, 0, 0, 0, b"")),
    ("ack too big", Segment(bytes(16), 1, bytes(16), 2, 0, 2**32, 0, b"")),
    ("seq negative", Segment(bytes(4), 1, bytes(4), 2, -1, 0, 0, b"")),
]


@pytest.mark.parametrize("seg", [s for _, s in BAD_SEGMENTS], ids=[n for n, _ in BAD_SEGMENTS])
def test_unencodable_segment_raises_codec_error(seg: Segment) -> None:
    with pytest.raises(CodecError):
        codec.encode_packets([(0, 0, seg)])


def test_invalid_counters_and_control_words_raise_codec_error() -> None:
    for bad in ({"a": 1.5}, {"a": True}, {1: 2}):
        with pytest.raises(CodecError):
            codec.encode_counters(bad)  # type: ignore[arg-type]
    for word in ("", "ÉND"):
        with pytest.raises(CodecError):
            codec.encode_control(word)
    with pytest.raises(CodecError):
        codec.encode_lines(["text, not bytes"])  # type: ignore[list-item]
    with pytest.raises(CodecError):
        codec.encode_keyed_lines([1, 2], [b"one line"])
    with pytest.raises(CodecError):
        codec.encode_keyed_lines([-1], [b"negative key"])


V4 = Segment(bytes(4), 1, bytes(4), 2, 3, 4, PSH, b"abc")
PACKETS = codec.encode_packets([(9, 1, V4)])
KEYED = codec.encode_keyed_lines([7, 8], [b"ab", b"c"])
GARBAGE = [
    ("empty", b"", codec.decode_packets),
    ("short header", b"\x01\x01", codec.decode_packets),
    ("wrong version", bytes([CODEC_VERSION + 1]) + PACKETS[1:], codec.decode_packets),
    ("unknown kind", bytes([CODEC_VERSION, 99]) + PACKETS[2:], codec.decode_packets),
    ("old segments kind", bytes([CODEC_VERSION, 1]) + PACKETS[2:], codec.decode_packets),
    ("wrong kind", codec.encode_lines([b"x"]), codec.decode_packets),
    ("packets truncated payload", PACKETS[:-1], codec.decode_packets),
    ("packets truncated header", PACKETS[:20], codec.decode_packets),
    ("packets count too big", PACKETS[:2] + struct.pack("<I", 2) + PACKETS[6:],
     codec.decode_packets),
    ("packets trailing byte", PACKETS + b"\x00", codec.decode_packets),
    ("packets bad ip version", PACKETS[:6] + b"\x05" + PACKETS[7:], codec.decode_packets),
    ("keyed lines cut", KEYED[:-1], codec.decode_keyed_lines),
    ("keyed lines trailing", KEYED + b"z", codec.decode_keyed_lines),
    ("keyed lines count too big", KEYED[:2] + struct.pack("<I", 9) + KEYED[6:],
     codec.decode_keyed_lines),
    ("line past end", codec.encode_lines([b"abc"])[:-1], codec.decode_lines),
    ("line length cut", codec.encode_lines([b"abc"])[:8], codec.decode_lines),
    ("line trailing", codec.encode_lines([b"abc"]) + b"z", codec.decode_lines),
    ("counters not json", codec.FRAME_HEADER.pack(1, Kind.COUNTERS, 2) + b"{x",
     codec.decode_counters),
    ("counters not utf-8", codec.FRAME_HEADER.pack(1, Kind.COUNTERS, 2) + b"\xff\xfe",
     codec.decode_counters),
    ("counters a list", codec.FRAME_HEADER.pack(1, Kind.COUNTERS, 2) + b"[]",
     codec.decode_counters),
    ("counters nested too deep", codec.FRAME_HEADER.pack(1, Kind.COUNTERS, 100_000)
     + b"[" * 100_000, codec.decode_counters),
    ("counters length", codec.encode_counters({"a": 1}) + b" ", codec.decode_counters),
    ("control empty", codec.FRAME_HEADER.pack(1, Kind.CONTROL, 0), codec.decode_control),
    ("control non-ascii", codec.FRAME_HEADER.pack(1, Kind.CONTROL, 1) + b"\xff",
     codec.decode_control),
]


@pytest.mark.parametrize("buf, decode", [(b, d) for _, b, d in GARBAGE],
                         ids=[n for n, _, _ in GARBAGE])
def test_garbage_raises_codec_error(buf: bytes, decode: object) -> None:
    with pytest.raises(CodecError):
        decode(buf)  # type: ignore[operator]


DECODERS = [codec.decode_lines, codec.decode_counters,
            codec.decode_control, codec.frame_kind, codec.decode_packets,
            codec.decode_keyed_lines]


@settings(max_examples=300)
@given(st.binary(max_size=120), st.sampled_from(DECODERS), st.booleans())
def test_random_bytes_either_decode_or_raise_codec_error(
    blob: bytes, decode: object, valid_prefix: bool
) -> None:
    """Any input either decodes or raises CodecError, never any other exception."""
    if valid_prefix:
        blob = bytes([CODEC_VERSION]) + blob
    try:
        decode(blob)  # type: ignore[operator]
    except CodecError:
        pass


def test_report_us_per_segment(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a speed assertion: prints µs per segment (batch of 256, 200-byte payloads)."""
    seg = Segment(bytes(range(4)), 40000, bytes(range(4, 8)), 80, 1, 2, ACK | PSH, bytes(200))
    items = [(i, time.time_ns(), seg) for i in range(256)]
    frame = codec.encode_packets(items)
    loops = 20
    t_enc = min(_timed(lambda: codec.encode_packets(items), loops) for _ in range(3))
    t_dec = min(_timed(lambda: codec.decode_packets(frame), loops) for _ in range(3))
    per = 1e6 / (loops * len(items))
    with capsys.disabled():
        print(f"\ncodec: encode {t_enc * per:.2f} µs/segment, decode {t_dec * per:.2f} µs/segment")
    assert codec.decode_packets(frame) == items


def _timed(fn: object, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()  # type: ignore[operator]
    return time.perf_counter() - start


_U64 = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=2000, deadline=None)
@given(_U64, _U64, st.binary(min_size=22, max_size=80), st.data(),
       st.integers(min_value=0, max_value=2**32 - 1))
def test_the_item_header_helper_agrees_with_its_definition(
        index: int, ts_ns: int, frame: bytes, data: st.DataObject, n: int) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(frame) - 22))
    want = codec.item_v4_py(index, ts_ns, frame, at, n)
    assert codec.item_v4(index, ts_ns, frame, at, n) == want
    assert want == struct.pack("!BQQ22sI", 4, index, ts_ns, frame[at:at + 22], n)


def test_the_item_header_helper_is_what_runs_and_rejects_what_does_not_fit() -> None:
    if os.environ.get("NETWORK_SNIFFER_PURE", "") not in ("", "0"):
        assert not codec.ITEMS_ACCELERATED
        return
    assert codec.ITEMS_ACCELERATED and codec.item_v4 is not codec.item_v4_py
    frame = bytes(range(40))
    for args in ((2**64, 0, frame, 0, 1), (0, -1, frame, 0, 1), (0, 0, frame, 0, 2**32)):
        with pytest.raises(OverflowError):
            codec.item_v4(*args)
        with pytest.raises(struct.error):
            codec.item_v4_py(*args)
    with pytest.raises(ValueError, match="22 frame bytes at 19 of 40"):
        codec.item_v4(0, 0, frame, 19, 1)
    with pytest.raises(ValueError):
        codec.item_v4(0, 0, frame, -1, 1)
    with pytest.raises(TypeError, match="as bytes, not bytearray"):
        codec.item_v4(0, 0, bytearray(frame), 0, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes 5 arguments"):
        codec.item_v4(0, 0, frame, 0)  # type: ignore[call-arg]

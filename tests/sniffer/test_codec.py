"""Tests of sniffer/codec.py: round trips, the documented layout, garbage -> CodecError only."""
from __future__ import annotations

import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sniffer import codec
from sniffer.codec import CODEC_VERSION, CodecError, Kind
from workers.segment import ACK, PSH, SYN, Segment

u32 = st.integers(0, 2**32 - 1)
port = st.integers(0, 65535)


@st.composite
def segments(draw: st.DrawFn) -> tuple[int, Segment]:
    alen = draw(st.sampled_from([4, 16]))
    addr = st.binary(min_size=alen, max_size=alen)
    seg = Segment(draw(addr), draw(port), draw(addr), draw(port), draw(u32), draw(u32),
                  draw(st.integers(0, 0x1FF)), draw(st.binary(max_size=300)))
    return draw(st.integers(0, 2**64 - 1)), seg


@given(st.lists(segments(), max_size=20))
def test_segments_round_trip(items: list[tuple[int, Segment]]) -> None:
    frame = codec.encode_segments(items)
    assert frame[0] == CODEC_VERSION and codec.frame_kind(frame) is Kind.SEGMENTS
    assert codec.decode_segments(frame) == items
    assert codec.decode_segments(memoryview(bytearray(frame))) == items


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


def test_segment_layout_matches_the_documented_table() -> None:
    """Byte offsets of one IPv4 segment frame, as in the module's table."""
    seg = Segment(bytes([10, 0, 0, 1]), 40000, bytes([10, 0, 0, 2]), 80, 7, 9, SYN | ACK, b"hi")
    frame = codec.encode_segments([(123, seg)])
    assert codec.FRAME_HEADER.size == 6 and codec.SEGMENT_HEADER.size == 60
    assert frame[:6] == struct.pack("<BBI", CODEC_VERSION, Kind.SEGMENTS, 1)
    h = frame[6:66]
    assert struct.unpack_from("<Q", h, 0) == (123,)
    assert h[8] == 4 and h[9:13] == bytes([10, 0, 0, 1]) and h[13:25] == bytes(12)
    assert h[25:29] == bytes([10, 0, 0, 2])
    assert struct.unpack_from("<HHIIHI", h, 41) == (40000, 80, 7, 9, SYN | ACK, 2)
    assert frame[66:] == b"hi"


BAD_SEGMENTS = [
    ("address lengths differ", Segment(bytes(4), 1, bytes(16), 2, 0, 0, 0, b"")),
    ("address of 5 bytes", Segment(bytes(5), 1, bytes(5), 2, 0, 0, 0, b"")),
    ("port too big", Segment(bytes(4), 70000, bytes(4), 2, 0, 0, 0, b"")),
    ("seq negative", Segment(bytes(4), 1, bytes(4), 2, -1, 0, 0, b"")),
]


@pytest.mark.parametrize("seg", [s for _, s in BAD_SEGMENTS], ids=[n for n, _ in BAD_SEGMENTS])
def test_unencodable_segment_raises_codec_error(seg: Segment) -> None:
    with pytest.raises(CodecError):
        codec.encode_segments([(0, seg)])


def test_invalid_counters_and_control_words_raise_codec_error() -> None:
    for bad in ({"a": 1.5}, {"a": True}, {1: 2}):
        with pytest.raises(CodecError):
            codec.encode_counters(bad)  # type: ignore[arg-type]
    for word in ("", "ÉND"):
        with pytest.raises(CodecError):
            codec.encode_control(word)
    with pytest.raises(CodecError):
        codec.encode_lines(["text, not bytes"])  # type: ignore[list-item]


V4 = Segment(bytes(4), 1, bytes(4), 2, 3, 4, PSH, b"abc")
GOOD = codec.encode_segments([(1, V4)])
GARBAGE = [
    ("empty", b"", codec.decode_segments),
    ("short header", b"\x01\x01", codec.decode_segments),
    ("wrong version", bytes([CODEC_VERSION + 1]) + GOOD[1:], codec.decode_segments),
    ("unknown kind", bytes([CODEC_VERSION, 99]) + GOOD[2:], codec.decode_segments),
    ("wrong kind", codec.encode_lines([b"x"]), codec.decode_segments),
    ("truncated payload", GOOD[:-1], codec.decode_segments),
    ("truncated header", GOOD[:30], codec.decode_segments),
    ("trailing byte", GOOD + b"\x00", codec.decode_segments),
    ("count too big", GOOD[:2] + struct.pack("<I", 2) + GOOD[6:], codec.decode_segments),
    ("bad ip version", GOOD[:14] + b"\x05" + GOOD[15:], codec.decode_segments),
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


DECODERS = [codec.decode_segments, codec.decode_lines, codec.decode_counters,
            codec.decode_control, codec.frame_kind]


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
    items = [(time.time_ns(), seg)] * 256
    frame = codec.encode_segments(items)
    loops = 20
    t_enc = min(_timed(lambda: codec.encode_segments(items), loops) for _ in range(3))
    t_dec = min(_timed(lambda: codec.decode_segments(frame), loops) for _ in range(3))
    per = 1e6 / (loops * len(items))
    with capsys.disabled():
        print(f"\ncodec: encode {t_enc * per:.2f} µs/segment, decode {t_dec * per:.2f} µs/segment")
    assert codec.decode_segments(frame) == items


def _timed(fn: object, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()  # type: ignore[operator]
    return time.perf_counter() - start

"""Versioned binary framing of what travels through the shared-memory rings.

Strategy: one ring frame carries a whole batch (never one packet), so the per-frame cost is
paid once per batch and the per-segment cost is one ``struct.pack_into`` plus one payload copy
into a preallocated ``bytearray`` on encode, and one ``unpack_from`` plus one slice on decode.
The frame layouts are declared below as ``struct.Struct`` constants with a field table, in the
spirit of dpkt's ``__hdr__``. Everything is little-endian (the hosts are x86-64 and arm64;
frames never leave the machine).

Frame header (every frame), ``FRAME_HEADER`` = ``<BBI`` (6 bytes):

    offset  width  field     meaning
    0       u8     version   CODEC_VERSION; a different value is a CodecError
    1       u8     kind      Kind: SEGMENTS, LINES, COUNTERS, CONTROL
    2       u32    count     number of items that follow (counters/control: byte length)

SEGMENTS item, ``SEGMENT_HEADER`` = ``<QB16s16sHHIIHI`` (60 bytes), then ``payload_len`` bytes:

    offset  width  field        meaning
    0       u64    ts_ns        capture timestamp, integer nanoseconds
    8       u8     ip_version   4 (addresses are the first 4 bytes of src/dst) or 6 (16 bytes)
    9       16s    src          packed source address, zero padded
    25      16s    dst          packed destination address, zero padded
    41      u16    sport        TCP source port
    43      u16    dport        TCP destination port
    45      u32    seq          raw TCP sequence number
    49      u32    ack          raw TCP acknowledgment number
    53      u16    flags        TCP flag bits (workers/segment.py)
    55      u32    payload_len  TCP payload bytes that follow
    59      u8     (pad)        zero, keeps the header at 60 bytes

PACKETS: like SEGMENTS, but the items are preceded by ``count`` u64 global packet indexes
(``<Q`` each), so a worker knows where each segment stood in the capture (order keys).

LINES item: ``u32 length`` then that many bytes (e.g. one serialized JSON message).
COUNTERS body: UTF-8 JSON object of str -> int. CONTROL body: an ASCII control word such as
``END`` ("end of input": the producer will send nothing more).

Rule: decoding something that is not a frame we wrote raises ``CodecError`` and nothing else.
That means a bug (a torn ring, a version mismatch), not bad traffic: traffic is already a
``Segment`` before it gets here.
"""
from __future__ import annotations

import enum
import json
import struct

from workers.segment import Segment

__all__ = [
    "CODEC_VERSION", "CodecError", "Kind", "FRAME_HEADER", "SEGMENT_HEADER", "frame_kind",
    "encode_segments", "decode_segments", "encode_lines", "decode_lines",
    "encode_counters", "decode_counters", "encode_control", "decode_control", "END",
    "encode_packets", "decode_packets",
]

CODEC_VERSION = 1
FRAME_HEADER = struct.Struct("<BBI")
SEGMENT_HEADER = struct.Struct("<QB16s16sHHIIHIx")
LINE_LENGTH = struct.Struct("<I")
END = "END"


class Kind(enum.IntEnum):
    """What a frame carries (its second byte)."""

    SEGMENTS = 1
    LINES = 2
    COUNTERS = 3
    CONTROL = 4
    PACKETS = 5


class CodecError(ValueError):
    """A frame could not be encoded or decoded: a bug indicator, never a traffic anomaly."""


_KINDS = {k.value: k for k in Kind}
_FH = FRAME_HEADER.size
_SH = SEGMENT_HEADER.size


def frame_kind(buf: bytes | bytearray | memoryview) -> Kind:
    """The ``Kind`` of a frame, after checking its version byte."""
    if len(buf) < _FH:
        raise CodecError(f"frame of {len(buf)} bytes is shorter than its header")
    version, kind = buf[0], buf[1]
    if version != CODEC_VERSION:
        raise CodecError(f"codec version {version}, expected {CODEC_VERSION}")
    try:
        return _KINDS[kind]
    except KeyError:
        raise CodecError(f"unknown frame kind {kind}") from None


def _body(buf: bytes | bytearray | memoryview, kind: Kind) -> tuple[int, bytes]:
    got = frame_kind(buf)
    if got is not kind:
        raise CodecError(f"expected a {kind.name} frame, got {got.name}")
    return FRAME_HEADER.unpack_from(buf)[2], bytes(buf)


def encode_segments(items: list[tuple[int, Segment]]) -> bytes:
    """Encode ``(ts_ns, Segment)`` pairs into one SEGMENTS frame."""
    total = _FH + _SH * len(items) + sum(len(seg[7]) for _, seg in items)
    out = bytearray(total)
    FRAME_HEADER.pack_into(out, 0, CODEC_VERSION, Kind.SEGMENTS, len(items))
    pack_into = SEGMENT_HEADER.pack_into
    off = _FH
    try:
        for ts_ns, (src, sport, dst, dport, seq, ack, flags, payload) in items:
            alen = len(src)
            if alen != len(dst) or (alen != 4 and alen != 16):
                raise CodecError(f"address lengths {alen}/{len(dst)} are not 4/4 or 16/16")
            n = len(payload)
            pack_into(out, off, ts_ns, 4 if alen == 4 else 6, src, dst, sport, dport,
                      seq, ack, flags, n)
            off += _SH
            out[off : off + n] = payload
            off += n
    except struct.error as exc:
        raise CodecError(f"segment field out of range: {exc}") from None
    return bytes(out)


def encode_packets(items: list[tuple[int, int, Segment]]) -> bytes:
    """Encode ``(index, ts_ns, Segment)`` triples into one PACKETS frame."""
    body = encode_segments([(ts, seg) for _, ts, seg in items])
    try:
        indexes = struct.pack(f"<{len(items)}Q", *[i for i, _, _ in items])
    except struct.error as exc:
        raise CodecError(f"packet index out of range: {exc}") from None
    head = FRAME_HEADER.pack(CODEC_VERSION, Kind.PACKETS, len(items))
    return b"".join((head, indexes, memoryview(body)[_FH:]))


def decode_packets(buf: bytes | bytearray | memoryview) -> list[tuple[int, int, Segment]]:
    """Decode a PACKETS frame back into ``(index, ts_ns, Segment)`` triples."""
    count, data = _body(buf, Kind.PACKETS)
    start = _FH + 8 * count
    if start > len(data):
        raise CodecError(f"{count} packet indexes run past the frame end")
    indexes = struct.unpack_from(f"<{count}Q", data, _FH)
    pairs = _decode_items(data, count, start)
    return [(i, ts, seg) for i, (ts, seg) in zip(indexes, pairs)]


def decode_segments(buf: bytes | bytearray | memoryview) -> list[tuple[int, Segment]]:
    """Decode a SEGMENTS frame back into ``(ts_ns, Segment)`` pairs."""
    count, data = _body(buf, Kind.SEGMENTS)
    return _decode_items(data, count, _FH)


def _decode_items(data: bytes, count: int, off: int) -> list[tuple[int, Segment]]:
    unpack_from = SEGMENT_HEADER.unpack_from
    end = len(data)
    out: list[tuple[int, Segment]] = []
    append = out.append
    try:
        for _ in range(count):
            ts_ns, ipv, src, dst, sport, dport, seq, ack, flags, n = unpack_from(data, off)
            off += _SH
            if off + n > end:
                raise CodecError(f"payload of {n} bytes runs past the frame end")
            if ipv == 4:
                src, dst = src[:4], dst[:4]
            elif ipv != 6:
                raise CodecError(f"ip version {ipv}")
            append((ts_ns, Segment(src, sport, dst, dport, seq, ack, flags, data[off : off + n])))
            off += n
    except struct.error:
        raise CodecError(f"segment header truncated at offset {off}") from None
    if off != end:
        raise CodecError(f"{end - off} trailing bytes after {count} segments")
    return out


def encode_lines(lines: list[bytes]) -> bytes:
    """Encode byte strings (e.g. serialized JSON messages) into one LINES frame."""
    parts = [FRAME_HEADER.pack(CODEC_VERSION, Kind.LINES, len(lines))]
    pack = LINE_LENGTH.pack
    try:
        for line in lines:
            parts.append(pack(len(line)))
            parts.append(line)
        return b"".join(parts)
    except (struct.error, TypeError) as exc:
        raise CodecError(f"cannot encode line: {exc}") from None


def decode_lines(buf: bytes | bytearray | memoryview) -> list[bytes]:
    """Decode a LINES frame back into its byte strings."""
    count, data = _body(buf, Kind.LINES)
    off, end = _FH, len(data)
    out: list[bytes] = []
    for _ in range(count):
        if off + 4 > end:
            raise CodecError(f"line length truncated at offset {off}")
        (n,) = LINE_LENGTH.unpack_from(data, off)
        off += 4
        if off + n > end:
            raise CodecError(f"line of {n} bytes runs past the frame end")
        out.append(data[off : off + n])
        off += n
    if off != end:
        raise CodecError(f"{end - off} trailing bytes after {count} lines")
    return out


def _encode_blob(kind: Kind, blob: bytes) -> bytes:
    return FRAME_HEADER.pack(CODEC_VERSION, kind, len(blob)) + blob


def _decode_blob(buf: bytes | bytearray | memoryview, kind: Kind) -> bytes:
    n, data = _body(buf, kind)
    if len(data) != _FH + n:
        raise CodecError(f"{kind.name} body is {len(data) - _FH} bytes, header says {n}")
    return data[_FH:]


def encode_counters(counters: dict[str, int]) -> bytes:
    """Encode a ``name -> count`` dict (a worker's counters) into one COUNTERS frame."""
    if not all(isinstance(k, str) and type(v) is int for k, v in counters.items()):
        raise CodecError("counters must map str -> int")
    return _encode_blob(Kind.COUNTERS, json.dumps(counters, separators=(",", ":")).encode())


def decode_counters(buf: bytes | bytearray | memoryview) -> dict[str, int]:
    """Decode a COUNTERS frame back into its dict."""
    blob = _decode_blob(buf, Kind.COUNTERS)
    try:
        value = json.loads(blob)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise CodecError(f"counters are not JSON: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and type(v) is int for k, v in value.items()
    ):
        raise CodecError("counters frame is not an object of str -> int")
    return value


def encode_control(word: str = END) -> bytes:
    """Encode a CONTROL frame carrying an ASCII control word (default ``END``)."""
    if not word.isascii() or not word:
        raise CodecError(f"control word {word!r} must be non-empty ASCII")
    return _encode_blob(Kind.CONTROL, word.encode("ascii"))


def decode_control(buf: bytes | bytearray | memoryview) -> str:
    """Decode a CONTROL frame back into its control word."""
    blob = _decode_blob(buf, Kind.CONTROL)
    if not blob or not blob.isascii():
        raise CodecError("control word must be non-empty ASCII")
    return blob.decode("ascii")

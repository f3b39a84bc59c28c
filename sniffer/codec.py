"""Versioned binary framing of what travels through the shared-memory rings.

Strategy: one ring frame carries a whole batch (never one packet), so the per-frame cost is
paid once per batch. Per packet the capture process makes one ``struct.pack`` of the item
header and keeps ``[header, payload, header, payload, ...]`` per worker; a batch becomes a
frame with one ``join`` (``packets_frame``). The worker reads each item's fields straight
from the frame's bytes (``unpack_item``), no tuple of objects and no ``Segment``. Lines
go back with their order keys and lengths in two arrays packed and unpacked with one call
each. Layouts are ``struct.Struct`` constants with a field table, in the spirit of dpkt's
``__hdr__``. Frames never leave the machine; packet items are in network order (see below),
everything else little-endian.

Frame header (every frame), ``FRAME_HEADER`` = ``<BBI`` (6 bytes, little-endian):

    offset  width  field     meaning
    0       u8     version   CODEC_VERSION; a different value is a CodecError
    1       u8     kind      Kind: PACKETS, KEYED_LINES, LINES, COUNTERS, CONTROL
    2       u32    count     number of items that follow (counters/control: byte length)

PACKETS item (capture -> worker): a header, then ``payload_len`` payload bytes. The first
byte picks the layout: ``PACKET_V4`` = ``!BQQ4s4sHHIIxBI`` (43 bytes), ``PACKET_V6`` =
``!BQQ16s16sHHIIxBI`` (67 bytes):

    width      field        meaning
    u8         ip_version   4 or 6 (any other value is a CodecError)
    u64        index        global packet index in the capture (order keys)
    u64        ts_ns        capture timestamp, integer nanoseconds
    4s or 16s  src, dst     packed source and destination addresses
    u16 u16    sport dport  TCP ports
    u32 u32    seq ack      raw TCP sequence and acknowledgment numbers
    u8         (ignored)    the TCP data offset byte, as the frame had it
    u8         flags        TCP flag bits (workers/segment.py)
    u32        payload_len  TCP payload bytes that follow

Network byte order, because from ``src`` to ``flags`` a PACKET_V4 item is the frame's own
bytes (IPv4 addresses, then TCP ports, seq, ack, data offset, flags): the capture packs the
common frame's item around one slice of them (``PACKET_V4_RAW`` = ``!BQQ22sI``, 43 bytes).

KEYED_LINES (worker -> aggregator, little-endian): ``count`` u64 order keys, ``count`` u32
lengths, the lines back to back. LINES item: ``u32 length`` and the bytes. COUNTERS: UTF-8
JSON of str -> int. CONTROL: an ASCII word such as ``END`` (the producer sends no more).

Rule: decoding what is not a frame we wrote raises ``CodecError`` and nothing else: a bug (a
torn ring, a version mismatch), not bad traffic, which is decoded before it gets here.
"""
from __future__ import annotations

import enum
import json
import struct
from collections.abc import Sequence
from itertools import accumulate
from typing import Any, Final

from workers.native import native_or
from workers.segment import Segment

__all__ = [
    "CODEC_VERSION", "CodecError", "Kind", "FRAME_HEADER", "frame_kind",
    "encode_lines", "decode_lines",
    "encode_counters", "decode_counters", "encode_control", "decode_control", "END",
    "encode_packets", "decode_packets", "PACKET_V4", "PACKET_V6", "PACKET_V4_RAW", "pack_packet",
    "packets_frame", "encode_keyed_lines", "decode_keyed_lines", "packets_data", "unpack_item",
    "check_items_end", "FIRST_ITEM", "Item", "item_v4", "item_v4_py", "ITEMS_ACCELERATED",
]

CODEC_VERSION: Final = 3
FRAME_HEADER: Final = struct.Struct("<BBI")
PACKET_V4: Final = struct.Struct("!BQQ4s4sHHIIxBI")
PACKET_V6: Final = struct.Struct("!BQQ16s16sHHIIxBI")
PACKET_V4_RAW: Final = struct.Struct("!BQQ22sI")  # PACKET_V4 with src..flags as frame bytes
LINE_LENGTH: Final = struct.Struct("<I")
END = "END"


class Kind(enum.IntEnum):
    """What a frame carries (its second byte)."""

    LINES = 2  # 1 was SEGMENTS (codec version 1)
    COUNTERS = 3
    CONTROL = 4
    PACKETS = 5
    KEYED_LINES = 6


class CodecError(ValueError):
    """A frame could not be encoded or decoded: a bug indicator, never a traffic anomaly."""


_KINDS: Final = {k.value: k for k in Kind}
_FH: Final = FRAME_HEADER.size
_P4: Final = PACKET_V4.size
_P6: Final = PACKET_V6.size


def item_v4_py(index: int, ts_ns: int, frame: bytes, at: int, n: int) -> bytes:
    """The ``PACKET_V4_RAW`` item header of a common frame (``workers.decode.plain_tcp4``):
    packet ``index`` and time, the 22 frame bytes from ``at`` (the IPv4 addresses through the
    TCP flags) and the payload length ``n``. ``item_v4`` is the C helper of the same
    definition (``sniffer/_items.c``: the bound ``pack`` costs about 1,000 instructions a
    packet, the helper a few hundred); a value out of range raises ``struct.error`` here,
    ``OverflowError`` there."""
    return PACKET_V4_RAW.pack(4, index, ts_ns, frame[at:at + 22], n)


_ITEM_V4 = native_or("sniffer._items", "item_v4", item_v4_py)
#: the C helper, or ``item_v4_py`` in a pure install
item_v4: Final = _ITEM_V4[0]
#: whether ``item_v4`` is the C helper
ITEMS_ACCELERATED: Final = _ITEM_V4[1]
_PACK_V4: Final = PACKET_V4.pack
_PACK_V6: Final = PACKET_V6.pack
_new_tuple = tuple.__new__  # builds a Segment without the NamedTuple __new__ frame


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


def pack_packet(index: int, ts_ns: int, seg: Segment) -> bytes:
    """The PACKETS item header of one segment (its payload follows it in the frame)."""
    src, sport, dst, dport, seq, ack, flags, payload = seg
    alen = len(src)
    if alen != len(dst) or (alen != 4 and alen != 16):
        raise CodecError(f"address lengths {alen}/{len(dst)} are not 4/4 or 16/16")
    try:
        return (_PACK_V4 if alen == 4 else _PACK_V6)(
            4 if alen == 4 else 6, index, ts_ns, src, dst, sport, dport, seq, ack, flags,
            len(payload))
    except struct.error as exc:
        raise CodecError(f"segment field out of range: {exc}") from None


def packets_frame(count: int, parts: list[bytes]) -> bytes:
    """One PACKETS frame of ``count`` items from ``[header, payload, header, payload, ...]``
    (the list is the caller's no more: the frame header goes in front, so the frame is one
    join and not a join plus a copy of everything for ``+``)."""
    parts.insert(0, FRAME_HEADER.pack(CODEC_VERSION, Kind.PACKETS, count))
    return b"".join(parts)


def encode_packets(items: list[tuple[int, int, Segment]]) -> bytes:
    """Encode ``(index, ts_ns, Segment)`` triples into one PACKETS frame."""
    parts: list[bytes] = []
    for index, ts_ns, seg in items:
        parts.append(pack_packet(index, ts_ns, seg))
        parts.append(seg[7])
    return packets_frame(len(items), parts)


#: ``unpack_item``: index, ts_ns, flow, sport, dport, seq, ack, flags, payload start, end; the
#: flow is the item's addresses and ports as they are laid out (source address, destination
#: address, source port, destination port): the worker's connection key, one slice
Item = tuple[int, int, bytes, int, int, int, int, int, int, int]
FIRST_ITEM: Final = _FH


def packets_data(buf: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    """The item count and the bytes of a PACKETS frame (items from ``FIRST_ITEM`` on)."""
    return _body(buf, Kind.PACKETS)


def unpack_item(data: bytes, off: int) -> Item:
    """The PACKETS item at ``off`` of ``packets_data``'s bytes (``CodecError`` if damaged).

    Read byte by byte, not with ``unpack_from``: compiled, each field is a few machine
    operations into a native int, where ``unpack_from`` builds a tuple of eleven objects
    (about a third of the instructions of the item; ``PACKET_V4``/``PACKET_V6`` give the
    layout, and the tests hold the two to each other)."""
    if off >= len(data):
        raise CodecError(f"packet header truncated at offset {off}")
    ipv = data[off]
    if ipv == 4:
        size, alen = _P4, 4
    elif ipv == 6:
        size, alen = _P6, 16
    else:
        raise CodecError(f"ip version {ipv}")
    if off + size > len(data):
        raise CodecError(f"packet header truncated at offset {off}")
    index = u32be(data, off + 1) << 32 | u32be(data, off + 5)
    ts_ns = u32be(data, off + 9) << 32 | u32be(data, off + 13)
    a = off + 17
    p = a + 2 * alen
    flow = data[a:p + 4]
    sport = data[p] << 8 | data[p + 1]
    dport = data[p + 2] << 8 | data[p + 3]
    seq = u32be(data, p + 4)
    ack = u32be(data, p + 8)
    flags = data[p + 13]
    n = u32be(data, p + 14)
    off += size
    if off + n > len(data):
        raise CodecError(f"payload of {n} bytes runs past the frame end")
    return index, ts_ns, flow, sport, dport, seq, ack, flags, off, off + n


def u32be(data: bytes, off: int) -> int:
    """The big-endian u32 at ``off`` (the caller checked the bounds): compiled, a few machine
    operations, where ``unpack_from`` builds a tuple of int objects. Also pcapfile's."""
    return data[off] << 24 | data[off + 1] << 16 | data[off + 2] << 8 | data[off + 3]


def check_items_end(data: bytes, off: int, count: int) -> None:
    """After the last item: the frame must end there."""
    if off != len(data):
        raise CodecError(f"{len(data) - off} trailing bytes after {count} packets")


def decode_packets(buf: bytes | bytearray | memoryview) -> list[tuple[int, int, Segment]]:
    """Decode a PACKETS frame back into ``(index, ts_ns, Segment)`` triples."""
    count, data = packets_data(buf)
    off = FIRST_ITEM
    out: list[tuple[int, int, Segment]] = []
    for _ in range(count):
        index, ts_ns, flow, sport, dport, seq, ack, flags, start, off = unpack_item(data, off)
        alen = (len(flow) - 4) >> 1
        out.append((index, ts_ns, _new_tuple(Segment, (flow[:alen], sport, flow[alen:2 * alen],
                                                       dport, seq, ack, flags, data[start:off]))))
    check_items_end(data, off, count)
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


def encode_keyed_lines(keys: Sequence[int], lines: Sequence[bytes]) -> bytes:
    """Encode lines and their u64 order keys (same length) into one KEYED_LINES frame."""
    n = len(lines)
    if len(keys) != n:
        raise CodecError(f"{len(keys)} keys for {n} lines")
    try:
        return b"".join((FRAME_HEADER.pack(CODEC_VERSION, Kind.KEYED_LINES, n),
                         struct.pack(f"<{n}Q", *keys),
                         struct.pack(f"<{n}I", *map(len, lines)), *lines))
    except (struct.error, TypeError) as exc:
        raise CodecError(f"cannot encode keyed lines: {exc}") from None


def decode_keyed_lines(buf: bytes | bytearray | memoryview) -> tuple[list[int], list[bytes]]:
    """Decode a KEYED_LINES frame back into its keys and lines."""
    count, data = _body(buf, Kind.KEYED_LINES)
    off = _FH + 12 * count
    if off > len(data):
        raise CodecError(f"{count} keys and lengths run past the frame end")
    keys = list(struct.unpack_from(f"<{count}Q", data, _FH))
    ends = list(accumulate(struct.unpack_from(f"<{count}I", data, _FH + 8 * count),
                           initial=off))
    if ends[-1] != len(data):
        raise CodecError(f"lines end at {ends[-1]}, the frame at {len(data)}")
    return keys, [data[a:b] for a, b in zip(ends, ends[1:])]


def _encode_blob(kind: Kind, blob: bytes) -> bytes:
    return FRAME_HEADER.pack(CODEC_VERSION, kind, len(blob)) + blob


def _decode_blob(buf: bytes | bytearray | memoryview, kind: Kind) -> bytes:
    n, data = _body(buf, kind)
    if len(data) != _FH + n:
        raise CodecError(f"{kind.name} body is {len(data) - _FH} bytes, header says {n}")
    return data[_FH:]


def encode_counters(counters: dict[Any, Any]) -> bytes:
    """Encode a ``name -> count`` dict (a worker's counters) into one COUNTERS frame.

    Typed ``Any`` on purpose: the check below is the contract (str -> int, bools refused).
    """
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

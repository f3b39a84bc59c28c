"""Offline capture reader for pcap and pcapng files, in pure Python (no libpcap).

Strategy: the file is read in large chunks (``CHUNK_BYTES``) into one ``bytes`` buffer and
records are cut from it with their fields read byte by byte (compiled: a few machine operations
where a ``struct`` unpacker builds a tuple of int objects), so a file of any size streams
with flat memory. The reader yields ``(ts_ns, linktype, frame)``; ``batches(n)`` yields lists
of up to ``n`` packets of one link type instead (the capture process's hot loop: one list
append per packet, no generator switch); ``offset`` is the file offset of the next record
(for progress bars, against ``size``). Damage is reported after
every good packet before it: the generator raises ``PcapError`` naming the file, the byte
offset and what was wrong.

Formats: pcap (draft-ietf-opsawg-pcap) in both byte orders, microsecond (0xa1b2c3d4) and
nanosecond (0xa1b23c4d) magic; pcapng (draft-ietf-opsawg-pcapng): Section Header Blocks in
either byte order (each section resets the interfaces), Interface Description Blocks with
``if_tsresol`` (power of 10 or of 2) and ``if_tsoffset``, Enhanced Packet Blocks, Simple
Packet Blocks (first interface of the section; no timestamp, so the previous packet's time
is used), the obsolete Packet Block; unknown blocks are skipped.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO, Final

from sniffer.codec import u32be

CHUNK_BYTES = 1 << 20
MAX_RECORD_BYTES: Final = 256 << 20  # a larger caplen or block length means a damaged file

_PCAP_MAGICS = {  # magic as read little-endian -> (byte order, nanosecond timestamps)
    0xA1B2C3D4: ("<", False), 0xD4C3B2A1: (">", False),
    0xA1B23C4D: ("<", True), 0x4D3CB2A1: (">", True),
}
# Final: compiled, each use is then a constant, not a look-up in the module's dict
_PCAPNG_SHB: Final = 0x0A0D0D0A
_PCAPNG_BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
_IDB: Final = 1
_PB: Final = 2
_SPB: Final = 3
_EPB: Final = 6
_OPT_TSRESOL: Final = 9
_OPT_TSOFFSET: Final = 14

Packet = tuple[int, int, bytes]
Batch = tuple[int, list[tuple[int, bytes]]]  # (linktype, [(ts_ns, frame), ...])


class PcapError(Exception):
    """A capture file is not pcap/pcapng or is damaged; the message names file and offset."""


class PcapReader:
    """Iterator over ``(ts_ns, linktype, frame)`` of one capture file, with progress."""

    def __init__(self, path: str) -> None:
        """Open ``path`` and check its magic (``FileNotFoundError`` if it is missing)."""
        self.path = path
        self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 (closed by the generator)
        self.size = os.fstat(self._file.fileno()).st_size
        self.offset = 0
        self._buf = b""
        self._pos = 0  # index in _buf of file offset self._base + self._pos
        self._base = 0
        head = self._peek(4)
        magic = int.from_bytes(head, "little") if len(head) == 4 else -1
        self._pcap_format: tuple[str, bool] | None = None
        if magic in _PCAP_MAGICS:
            self._pcap_format = _PCAP_MAGICS[magic]
            self._gen = self._pcap_packets()
        elif magic == _PCAPNG_SHB:
            self._gen = self._pcapng()
        else:
            self._file.close()
            raise PcapError(f"{path}: not a pcap or pcapng file (magic {head.hex() or 'empty'})")

    def __iter__(self) -> Iterator[Packet]:
        return self._gen

    def __next__(self) -> Any:  # Packet; Any because mypyc cannot compile a tuple __next__
        return next(self._gen)

    def batches(self, max_packets: int) -> Iterator[Batch]:
        """Iterate over ``(linktype, [(ts_ns, frame), ...])`` lists of up to ``max_packets``
        packets of one link type; damage raises ``PcapError`` after the packets before it."""
        if self._pcap_format is not None:
            return self._pcap(*self._pcap_format, max(1, max_packets))
        return self._pcapng_batches(max(1, max_packets))

    def close(self) -> None:
        """Close the file early (it is closed anyway when iteration ends)."""
        self._gen.close()
        self._file.close()

    def __del__(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- buffer ---------------------------------------------------------------------------
    def _peek(self, n: int) -> bytes:
        """Make ``n`` bytes available at ``_pos`` if the file has them; return what there is."""
        if len(self._buf) - self._pos < n:
            rest = self._buf[self._pos:]
            self._base += self._pos
            self._buf = rest + self._file.read(max(CHUNK_BYTES, n - len(rest)))
            self._pos = 0
        return self._buf[self._pos:self._pos + n]

    def _need(self, n: int, what: str) -> None:
        """Ensure ``n`` bytes at ``_pos`` or raise ``PcapError`` about a truncated ``what``."""
        if len(self._buf) - self._pos < n:
            left = len(self._peek(n))
            if left < n:
                raise PcapError(f"{self.path}: truncated {what} at offset {self._base + self._pos}"
                                f" (needs {n} bytes, {left} left)")

    def _error(self, message: str) -> PcapError:
        return PcapError(f"{self.path}: {message} at offset {self._base + self._pos}")

    def _error_at(self, pos: int, message: str) -> PcapError:
        """``_error`` about the record at ``pos`` of the buffer (a loop's local position)."""
        self._pos = pos
        return self._error(message)

    def _at_eof(self) -> bool:
        return self._pos >= len(self._buf) and not self._peek(1)

    # -- pcap -------------------------------------------------------------------------------
    def _pcap_packets(self) -> Generator[Packet, None, None]:
        assert self._pcap_format is not None
        for linktype, batch in self._pcap(*self._pcap_format, 1):
            ts_ns, frame = batch[0]
            yield ts_ns, linktype, frame

    def _pcap(self, order: str, nanos: bool, max_packets: int) -> Iterator[Batch]:
        batch: list[tuple[int, bytes]] = []
        linktype = 0
        try:
            self._need(24, "file header")
            linktype = struct.unpack_from(order + "I", self._buf, self._pos + 20)[0] & 0xFFFF
            self._pos += 24
            self.offset = 24
            little = order == "<"  # the fields read by _u32le / codec.u32be, not unpack_from
            frac_ns = 1 if nanos else 1000
            buf, pos = self._buf, self._pos
            size = len(buf)
            append = batch.append
            while True:  # the hot loop: buffer and position live in locals between refills
                if size - pos < 16:
                    self._pos = pos
                    if self._at_eof():
                        break
                    self._need(16, "packet record header")
                    buf, pos = self._buf, self._pos
                    size = len(buf)
                caplen = _u32le(buf, pos + 8) if little else u32be(buf, pos + 8)
                end = pos + 16 + caplen
                if end > size:
                    self._pos = pos
                    if caplen > MAX_RECORD_BYTES:
                        raise self._error(f"absurd packet length {caplen}")
                    self._need(16 + caplen, "packet record")
                    buf, pos = self._buf, self._pos
                    size = len(buf)
                    end = pos + 16 + caplen
                if little:
                    ts_ns = _seconds_ns(_u32le(buf, pos)) + _u32le(buf, pos + 4) * frac_ns
                else:
                    ts_ns = _seconds_ns(u32be(buf, pos)) + u32be(buf, pos + 4) * frac_ns
                append((ts_ns, buf[pos + 16:end]))
                pos = end
                if len(batch) >= max_packets:
                    self.offset = self._base + pos
                    yield linktype, batch
                    batch = []
                    append = batch.append
            self.offset = self._base + self._pos
            if batch:
                yield linktype, batch
        except PcapError:
            if batch:  # the good packets before the damage first
                self.offset = self._base + self._pos
                yield linktype, batch
            raise
        finally:
            self._file.close()

    # -- pcapng -----------------------------------------------------------------------------
    def _pcapng(self) -> Generator[Packet, None, None]:
        for linktype, batch in self._pcapng_batches(1):
            ts_ns, frame = batch[0]
            yield ts_ns, linktype, frame

    def _pcapng_batches(self, max_packets: int) -> Iterator[Batch]:
        """The blocks in one loop, as ``_pcap`` reads records: buffer and position in locals,
        fields read byte by byte in the section's order (``_u32le`` / ``codec.u32be``), one
        list append per packet; a batch ends full or where the link type changes."""
        batch: list[tuple[int, bytes]] = []
        linktype = -1
        little = True
        # per interface: (linktype, snaplen, multiplier, divisor, offset_ns)
        interfaces: list[tuple[int, int, int, int, int]] = []
        last_ts_ns = 0
        try:
            buf, pos = self._buf, self._pos
            while True:
                if len(buf) - pos < 12:
                    self._pos = pos
                    if self._at_eof():
                        break
                    self._need(12, "block header")
                    buf, pos = self._buf, self._pos
                btype = _u32le(buf, pos)  # a Section Header's type reads the same either way
                if btype == _PCAPNG_SHB:
                    if _u32le(buf, pos + 8) == _PCAPNG_BYTE_ORDER_MAGIC:
                        little = True
                    elif u32be(buf, pos + 8) == _PCAPNG_BYTE_ORDER_MAGIC:
                        little = False
                    else:
                        raise self._error_at(pos, "bad pcapng byte-order magic")
                    interfaces = []
                elif not little:
                    btype = u32be(buf, pos)
                blen = _u32le(buf, pos + 4) if little else u32be(buf, pos + 4)
                if blen < 12 or blen % 4 or blen > MAX_RECORD_BYTES:
                    raise self._error_at(pos, f"bad pcapng block length {blen}")
                if len(buf) - pos < blen:
                    self._pos = pos
                    self._need(blen, "pcapng block")
                    buf, pos = self._buf, self._pos
                body, body_end = pos + 8, pos + blen - 4
                if (_u32le(buf, body_end) if little else u32be(buf, body_end)) != blen:
                    raise self._error_at(pos, "pcapng block length mismatch")
                data = lt = caplen = -1  # where this block's packet starts: none yet
                if btype == _EPB or btype == _PB:
                    if body + 20 > body_end:
                        raise self._error_at(pos, "packet block too short for its fields")
                    if little:  # the Packet Block's interface is a u16 (then a u16 drop count)
                        iface = _u32le(buf, body) if btype == _EPB else \
                            buf[body] | buf[body + 1] << 8
                        ticks = _u32le(buf, body + 4) << 32 | _u32le(buf, body + 8)
                        caplen = _u32le(buf, body + 12)
                    else:
                        iface = u32be(buf, body) if btype == _EPB else \
                            buf[body] << 8 | buf[body + 1]
                        ticks = u32be(buf, body + 4) << 32 | u32be(buf, body + 8)
                        caplen = u32be(buf, body + 12)
                    data = body + 20
                    if iface >= len(interfaces):
                        raise self._error_at(pos, f"packet for undeclared interface {iface}")
                    if data + caplen > body_end:
                        raise self._error_at(pos, f"packet length {caplen} beyond its block")
                    lt, _snap, mul, div, offset_ns = interfaces[iface]
                    last_ts_ns = _ticks_ns(ticks, mul, div) + offset_ns
                elif btype == _SPB:
                    if not interfaces:
                        raise self._error_at(pos, "simple packet block before any interface")
                    lt, snaplen, _mul, _div, _off = interfaces[0]
                    origlen = _u32le(buf, body) if little else u32be(buf, body)
                    caplen = min(origlen, snaplen or origlen, body_end - body - 4)
                    data = body + 4
                elif btype == _IDB:
                    self._pos = pos
                    interfaces.append(self._interface("<" if little else ">", body, body_end))
                if data >= 0:  # a packet: its interface's link type, time and bytes
                    if lt != linktype and batch:
                        self.offset = self._base + pos
                        yield linktype, batch
                        batch = []
                    linktype = lt
                    batch.append((last_ts_ns, buf[data:data + caplen]))
                pos += blen
                if len(batch) >= max_packets:
                    self.offset = self._base + pos
                    yield linktype, batch
                    batch = []
            self.offset = self._base + self._pos
            if batch:
                yield linktype, batch
        except PcapError:
            if batch:  # the good packets before the damage first
                self.offset = self._base + self._pos
                yield linktype, batch
            raise
        finally:
            self._file.close()

    def _interface(self, order: str, body: int, end: int) -> tuple[int, int, int, int, int]:
        """Parse an Interface Description Block: link type, snaplen and time options."""
        if body + 8 > end:
            raise self._error("interface description block too short")
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", self._buf, body)
        mul, div, offset_ns = 1000, 1, 0  # default resolution: microseconds
        pos = body + 8
        while pos + 4 <= end:  # options: code, length, value padded to 4 bytes
            code, length = struct.unpack_from(order + "HH", self._buf, pos)
            if code == 0:  # opt_endofopt
                break
            value = pos + 4
            if value + length > end:
                raise self._error("interface option beyond its block")
            if code == _OPT_TSRESOL and length >= 1:
                resol = self._buf[value]
                if resol & 0x80:  # 2^-n seconds per unit
                    mul, div = 1_000_000_000, 1 << (resol & 0x7F)
                elif resol <= 9:  # 10^-n seconds per unit
                    mul, div = 10 ** (9 - resol), 1
                else:
                    mul, div = 1, 10 ** (resol - 9)
            elif code == _OPT_TSOFFSET and length >= 8:
                offset_ns = struct.unpack_from(order + "q", self._buf, value)[0] * 1_000_000_000
            pos = value + (length + 3) // 4 * 4
        return linktype, snaplen, mul, div, offset_ns


def iter_packets(path: str) -> PcapReader:
    """Open a pcap/pcapng file for iteration over ``(ts_ns, linktype, frame)``.

    The returned reader also has ``offset`` (bytes consumed) and ``size`` (file size).
    """
    return PcapReader(path)


def _u32le(buf: bytes, off: int) -> int:
    """The little-endian u32 at ``off`` (the caller checked the bounds): compiled, a few
    machine operations, where ``unpack_from`` builds a tuple of four int objects."""
    return buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16 | buf[off + 3] << 24


def _ticks_ns(ticks: int, mul: int, div: int) -> int:
    """``ticks * mul // div``, exact. Compiled, a product is native only when both factors
    are below 2**30 (see ``_seconds_ns``); an interface's multiplier is (10**n, or 10**9 for
    a power-of-two resolution), its ticks since 1970 are not, so they are split in two."""
    if mul < 1 << 30 and ticks < 1 << 60:
        product = ((ticks >> 30) * mul << 30) + (ticks & 0x3FFFFFFF) * mul
    else:
        product = ticks * mul
    return product if div == 1 else product // div


def _seconds_ns(sec: int) -> int:
    """``sec * 1_000_000_000`` in two halves: compiled, a product is computed natively only
    when both factors are below 2**30, and today's seconds are not (the one product would
    go through Python's long multiplication and a new int object)."""
    return ((sec >> 16) * 1_000_000_000 << 16) + (sec & 0xFFFF) * 1_000_000_000

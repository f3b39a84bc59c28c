"""Tests for sniffer/pcapfile.py: files written here byte by byte, plus the real corpus."""
from __future__ import annotations

import glob
import os
import struct
import tempfile
import tracemalloc
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sniffer import pcapfile
from sniffer.pcapfile import PcapError, iter_packets

CORPUS = "/work/shared/corpus/pcaps"
FRAMES = [b"first frame", b"", b"x" * 1514, b"\x00\x01\x02"]


def pcap(records: list[tuple[int, int, bytes]], order: str = "<", nanos: bool = False,
         linktype: int = 1) -> bytes:
    """A pcap file; records are (seconds, fraction, frame)."""
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for sec, frac, frame in records:
        out += struct.pack(order + "IIII", sec, frac, len(frame), len(frame)) + frame
    return out


def block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, linktype: int, snaplen: int = 0, options: bytes = b"") -> bytes:
    end = struct.pack(order + "HH", 0, 0) if options else b""
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + options + end)


def epb(order: str, iface: int, units: int, frame: bytes) -> bytes:
    head = struct.pack(order + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(frame),
                       len(frame))
    return block(order, 6, head + frame)


def write(tmp_path: Path, data: bytes, name: str = "capture.pcap") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("nanos,scale", [(False, 1000), (True, 1)], ids=["usec", "nsec"])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nanos: bool,
                                          scale: int) -> None:
    records = [(1700000000 + i, 999 * i, frame) for i, frame in enumerate(FRAMES)]
    path = write(tmp_path, pcap(records, order, nanos, linktype=276))
    reader = iter_packets(path)
    assert reader.size == os.path.getsize(path)
    got = []
    for packet in reader:
        got.append(packet)
        assert 0 < reader.offset <= reader.size
    assert got == [((1700000000 + i) * 10**9 + 999 * i * scale, 276, frame)
                   for i, frame in enumerate(FRAMES)]
    assert reader.offset == reader.size


def test_pcapng_sections_interfaces_resolutions_and_blocks(tmp_path: Path) -> None:
    le, be = "<", ">"
    data = (
        shb(le)
        + idb(le, 1)  # default resolution: microseconds
        + idb(le, 113, options=option(le, 9, b"\x09"))  # 10^-9
        + block(le, 0x0BAD, b"unknown block, skipped")
        + epb(le, 0, 1_700_000_000_123_456, b"usec")
        + epb(le, 1, 1_700_000_000_123_456_789, b"nsec")
        + block(le, 3, struct.pack("<I", 4) + b"spb!")  # simple packet: interface 0
        + block(le, 2, struct.pack("<HHIIII", 1, 0, 0, 5, 2, 2) + b"PB" + struct.pack("<I", 2))
        + shb(be)  # a new section in the other byte order forgets the interfaces above
        + idb(be, 276, snaplen=3,
              options=option(be, 9, b"\x8a") + option(be, 14, struct.pack(">q", 100)))
        + block(be, 3, struct.pack(">I", 10) + b"cut to snap")  # SPB, cut to snaplen 3
        + epb(be, 0, (3 << 10) + 1, b"2^-10")
    )
    path = write(tmp_path, data, "capture.pcapng")
    reader = iter_packets(path)
    assert list(reader) == [
        (1_700_000_000_123_456_000, 1, b"usec"),
        (1_700_000_000_123_456_789, 113, b"nsec"),
        (1_700_000_000_123_456_789, 1, b"spb!"),  # no timestamp: the previous packet's
        (5, 113, b"PB"),  # units of 10^-9 on interface 1
        (5, 276, b"cut"),
        (103 * 10**9 + 976_562, 276, b"2^-10"),  # 3 s + 1/1024 s + if_tsoffset
    ]
    assert reader.offset == len(data)
    with open(path, "rb") as f:
        assert [bytes(b) for _, b in dpkt.pcapng.Reader(f)][:2] == [b"usec", b"nsec"]


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64])
def test_small_read_chunks_give_the_same_packets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 chunk_bytes: int) -> None:
    path = write(tmp_path, pcap([(1, 2, f) for f in FRAMES]))
    ng = write(tmp_path, shb("<") + idb("<", 1) + b"".join(epb("<", 0, 5, f) for f in FRAMES),
               "c.pcapng")
    expected, expected_ng = list(iter_packets(path)), list(iter_packets(ng))
    monkeypatch.setattr(pcapfile, "CHUNK_BYTES", chunk_bytes)
    assert list(iter_packets(path)) == expected
    assert list(iter_packets(ng)) == expected_ng
    assert [f for _, _, f in expected] == FRAMES == [f for _, _, f in expected_ng]


CAPTURES = sorted(glob.glob(os.path.join(CORPUS, "*.pcap*")))


@pytest.mark.skipif(not CAPTURES, reason="no corpus captures")
def test_corpus_matches_dpkt_readers() -> None:
    for path in CAPTURES:
        with open(path, "rb") as f:
            ref = dpkt.pcapng.Reader(f) if path.endswith(".pcapng") else dpkt.pcap.Reader(f)
            expected = [(float(ts), ref.datalink(), bytes(b)) for ts, b in ref]
        got = list(iter_packets(path))
        assert [p[1:] for p in got] == [p[1:] for p in expected], path
        assert all(abs(ts * 1e9 - ts_ns) < 1000 for (ts_ns, *_), (ts, *_) in zip(got, expected))


@pytest.mark.skipif(not CAPTURES, reason="no corpus captures")
def test_truncated_real_capture_yields_good_packets_then_names_file_and_offset(
        tmp_path: Path) -> None:
    source = os.path.join(CORPUS, "zeek-wikipedia.pcap")
    data = Path(source).read_bytes()
    whole = list(iter_packets(source))
    offsets, reader = [], iter_packets(source)
    for _ in reader:
        offsets.append(reader.offset)
    cut_record = 60  # cut record 60 in the middle of its frame
    cut_at = offsets[cut_record - 1] + 16 + 40
    path = write(tmp_path, data[:cut_at])
    reader = iter_packets(path)
    got = []
    with pytest.raises(PcapError) as error:
        for packet in reader:
            got.append(packet)
    assert got == whole[:cut_record]
    caplen = len(whole[cut_record][2])
    assert str(error.value) == (f"{path}: truncated packet record at offset "
                                f"{offsets[cut_record - 1]} (needs {16 + caplen} bytes, 56 left)")


def test_truncated_record_header_and_pcapng_block(tmp_path: Path) -> None:
    path = write(tmp_path, pcap([(1, 2, b"ok")]) + b"\xd4\xc3")
    reader = iter_packets(path)
    assert next(reader) == (1_000_002_000, 1, b"ok")
    with pytest.raises(PcapError, match=r"truncated packet record header at offset 42 "
                                        r"\(needs 16 bytes, 2 left\)"):
        next(reader)
    good = shb("<") + idb("<", 1) + epb("<", 0, 1, b"ok")
    path = write(tmp_path, good + epb("<", 0, 1, b"lost")[:-3], "c.pcapng")
    with pytest.raises(PcapError, match=rf"truncated pcapng block at offset {len(good)}"):
        assert len(list(iter_packets(path))) == 1


DAMAGED_PCAPNG = [
    ("length-mismatch", epb("<", 0, 1, b"ok")[:-4] + struct.pack("<I", 8),
     "pcapng block length mismatch"),
    ("undeclared-interface", epb("<", 3, 1, b"ok"), "packet for undeclared interface 3"),
    ("bad-block-length", struct.pack("<II", 6, 10) + b"\0" * 8, "bad pcapng block length 10"),
    ("absurd-block-length", struct.pack("<II", 6, 1 << 30) + b"\0" * 8, "bad pcapng block length"),
    ("caplen-beyond-block", block("<", 6, struct.pack("<IIIII", 0, 0, 0, 99, 99) + b"x"),
     "packet length 99 beyond its block"),
    ("short-packet-block", block("<", 6, b"\0" * 12), "packet block too short for its fields"),
    ("short-obsolete-block", block("<", 2, b""), "packet block too short for its fields"),
]


@pytest.mark.parametrize("tail,message", [d[1:] for d in DAMAGED_PCAPNG],
                         ids=[d[0] for d in DAMAGED_PCAPNG])
def test_damaged_pcapng_blocks(tmp_path: Path, tail: bytes, message: str) -> None:
    good = shb("<") + idb("<", 1) + epb("<", 0, 1, b"ok")
    path = write(tmp_path, good + tail, "c.pcapng")
    reader = iter_packets(path)
    assert next(reader)[2] == b"ok"
    with pytest.raises(PcapError, match=rf"^{path}: {message}.* at offset {len(good)}$"):
        next(reader)


def test_absurd_caplen(tmp_path: Path) -> None:
    head = pcap([(1, 2, b"ok")])
    path = write(tmp_path, head + struct.pack("<IIII", 1, 2, 300 << 20, 60) + b"\0" * 64)
    reader = iter_packets(path)
    assert next(reader)[2] == b"ok"
    with pytest.raises(PcapError, match=rf"absurd packet length {300 << 20} at offset 42"):
        next(reader)


@pytest.mark.parametrize("data", [b"", b"GIF89a not a capture", b"\xd4\xc3"],
                         ids=["empty", "gif", "short"])
def test_bad_magic(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, data)
    with pytest.raises(PcapError, match=rf"^{path}: not a pcap or pcapng file"):
        iter_packets(path)


def test_header_only_files_are_empty_captures(tmp_path: Path) -> None:
    assert list(iter_packets(write(tmp_path, pcap([])))) == []
    assert list(iter_packets(write(tmp_path, shb(">") + idb(">", 1), "c.pcapng"))) == []
    with pytest.raises(PcapError, match="truncated file header at offset 0"):
        list(iter_packets(write(tmp_path, pcap([])[:20], "short.pcap")))


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        iter_packets(str(tmp_path / "nope.pcap"))


def test_big_file_streams_with_flat_memory(tmp_path: Path) -> None:
    frame = bytes(range(256)) * 6  # 1536 bytes
    record = struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame
    count = 20_000  # about 31 MB
    path = tmp_path / "big.pcap"
    with open(path, "wb") as f:
        f.write(pcap([]))
        for _ in range(count // 1000):
            f.write(record * 1000)
    tracemalloc.start()
    try:
        seen = sum(1 for _ts, _lt, got in iter_packets(str(path)) if got == frame)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak < 4 * pcapfile.CHUNK_BYTES + (1 << 20)


def flatten(batches: list[tuple[int, list[tuple[int, bytes]]]]) -> list[tuple[int, int, bytes]]:
    return [(ts, linktype, frame) for linktype, batch in batches for ts, frame in batch]


@pytest.mark.parametrize("size", [1, 2, 3, 1024])
def test_batches_hold_the_same_packets_one_link_type_each(tmp_path: Path, size: int) -> None:
    records = [(i, i, frame) for i, frame in enumerate(FRAMES * 2)]
    plain = write(tmp_path, pcap(records))
    mixed = write(tmp_path, shb("<") + idb("<", 1) + idb("<", 113) + b"".join(
        epb("<", i % 3 // 2, i, frame) for i, frame in enumerate(FRAMES * 2)), "m.pcapng")
    for path in (plain, mixed):
        batches = list(iter_packets(path).batches(size))
        assert flatten(batches) == list(iter_packets(path))
        assert all(0 < len(batch) <= size for _, batch in batches)
        assert all(len({lt for lt, _ in batches[i:i + 2]}) == 2 or len(batches[i][1]) == size
                   for i in range(len(batches) - 1))  # a batch ends full or at a new link type
    reader = iter_packets(plain)
    list(reader.batches(size))
    assert reader.offset == reader.size


@pytest.mark.parametrize("name, data", [
    ("pcap", pcap([(1, 0, b"one"), (2, 0, b"two"), (3, 0, b"three")])[:-2]),
    ("pcapng", shb("<") + idb("<", 1) + epb("<", 0, 1, b"one") + epb("<", 0, 2, b"two")
     + epb("<", 0, 3, b"three")[:-2]),
])
def test_batches_deliver_the_good_packets_before_the_damage(tmp_path: Path, name: str,
                                                            data: bytes) -> None:
    got: list[bytes] = []
    with pytest.raises(PcapError, match="truncated"):
        for _, batch in iter_packets(write(tmp_path, data, f"c.{name}")).batches(1024):
            got += [frame for _, frame in batch]
    assert got == [b"one", b"two"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999_999)), min_size=1,
                max_size=5), st.sampled_from(["<", ">"]), st.booleans())
def test_record_times_are_exact_over_the_whole_u32_range(times: list[tuple[int, int]],
                                                         order: str, nanos: bool) -> None:
    """Seconds and fractions read field by field give the exact nanosecond time, from 0 to
    the last u32 second (the reader splits the seconds' product to keep it native)."""
    records = [(sec, frac, FRAMES[0]) for sec, frac in times]
    with tempfile.TemporaryDirectory() as tmp:
        got = [ts for ts, _, _ in iter_packets(write(Path(tmp), pcap(records, order, nanos)))]
    assert got == [sec * 10**9 + frac * (1 if nanos else 1000) for sec, frac in times]


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2**64 - 1), st.sampled_from([1, 10, 1000, 10**6, 10**9, 2**31, 10**12]),
       st.sampled_from([1, 2**10, 2**30, 10, 10**3, 10**9]))
def test_interface_ticks_become_exact_nanoseconds(ticks: int, mul: int, div: int) -> None:
    """An interface's ticks times its multiplier over its divisor, exactly, whatever the
    sizes (the reader splits the product to keep today's microsecond ticks native)."""
    assert pcapfile._ticks_ns(ticks, mul, div) == ticks * mul // div

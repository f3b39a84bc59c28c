"""Symmetric, process-stable flow hashing: which worker owns a TCP connection.

Strategy: the capture process must send both directions of a connection to the same worker
(the worker reassembles both halves and pairs requests with responses), and every process, every
run and every test must agree on the choice. So:

* symmetric: the two endpoints ``(addr, port)`` are put in a canonical order (the smaller packed
  endpoint first) before hashing, so ``a -> b`` and ``b -> a`` hash alike;
* process-stable: ``zlib.crc32`` over the packed bytes, never the built-in ``hash()``, whose
  str/bytes values are salted per process (``PYTHONHASHSEED``);
* cheap: one bytes concatenation, one comparison and one C-level CRC per new flow (the
  capture caches the owner of each flow);
* mixed: a CRC is linear over GF(2), so any one bit of it (the top bit picks between two
  workers) is the parity of a fixed set of input bits, and flows that differ by the same
  bit pattern (a replay tool renumbering addresses, ports handed out in steps) all land
  together or all flip together. The CRC goes through MurmurHash3's 32-bit finaliser
  (multiplications, not linear over GF(2)) so every output bit depends on every input bit.

Endpoints are packed as ``addr || port`` (port as 2 big-endian bytes), so IPv4 (4-byte) and
IPv6 (16-byte) addresses never produce the same key for different flows of the same family.
``worker_for`` maps the 32-bit hash to ``0..n-1`` with a multiply-shift (Lemire's fast range
reduction), which uses the high bits of the CRC and avoids a modulo bias towards low workers.
"""
from __future__ import annotations

from zlib import crc32

__all__ = ["flow_hash", "worker_for"]


def flow_hash(src: bytes, sport: int, dst: bytes, dport: int) -> int:
    """A 32-bit hash of a TCP flow, equal for both directions and across processes.

    Args:
        src: packed source address (4 or 16 bytes).
        sport: source port (0..65535).
        dst: packed destination address.
        dport: destination port.

    Returns:
        An unsigned 32-bit integer.
    """
    a = src + sport.to_bytes(2, "big")
    b = dst + dport.to_bytes(2, "big")
    return _mix(crc32(b, crc32(a)) if a <= b else crc32(a, crc32(b)))


def _mix(h: int) -> int:
    """MurmurHash3's fmix32: a bijection on 32-bit values that spreads every bit."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def worker_for(h: int, n: int) -> int:
    """Map a 32-bit flow hash ``h`` to a worker index in ``0..n-1`` (``n >= 1``)."""
    return ((h & 0xFFFFFFFF) * n) >> 32

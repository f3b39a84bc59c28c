"""Value types that cross from packet decoding into TCP reassembly.

Strategy: one immutable, cheap record per TCP segment. A ``NamedTuple`` costs about what a
plain tuple costs to build, which matters because one is made per packet in the workers.
Addresses stay packed (4 bytes for IPv4, 16 for IPv6) until a record is written out.
"""
from __future__ import annotations

import ipaddress
from typing import Final, NamedTuple

# TCP header flag bits (RFC 9293 section 3.1).
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10


class Segment(NamedTuple):
    """One decoded TCP segment: the 4-tuple, sequence numbers, flags and payload."""

    src: bytes
    """Source IP address, packed (4 or 16 bytes)."""
    sport: int
    dst: bytes
    """Destination IP address, packed (4 or 16 bytes)."""
    dport: int
    seq: int
    """Raw 32-bit sequence number as on the wire."""
    ack: int
    flags: int
    """TCP flag bits (FIN, SYN, RST, PSH, ACK, ...)."""
    payload: bytes


def ip_text(packed: bytes) -> str:
    """Render a packed IPv4/IPv6 address as text (``10.0.0.1``, ``fe80::1``)."""
    return str(ipaddress.ip_address(packed))

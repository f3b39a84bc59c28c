"""Bounds for the core: every table, buffer and queue the workers keep has one here.

Strategy: one frozen record, filled from ``config.yaml``/environment by ``sniffer/config.py``
and passed into the core at construction. Hitting a limit always increments a named anomaly
counter and takes the documented action (evict, truncate, skip), never an unbounded growth.
"""
from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CoreLimits:
    """Limits for one worker's reassembly, parsing and record building."""

    max_connections: int = 100_000
    """Connections tracked per worker; past it the least recently active one is evicted."""
    max_ooo_bytes_per_direction: int = 4 * MiB
    """Out-of-order bytes held per direction waiting for a hole to fill; past it: gap."""
    max_buffered_bytes_total: int = 512 * MiB
    """All bytes held by one worker (out-of-order data, partial heads, bodies)."""
    max_header_bytes: int = 64 * 1024
    """Start line + header block; a longer head is counted and the stream resyncs."""
    max_body_bytes: int = 1 * MiB
    """Body bytes kept per message (raw and after Content-Encoding decoding); rest counted."""
    max_pending_requests: int = 100
    """Requests waiting for responses on one connection (pipelining); oldest flushed past it."""
    idle_timeout_s: float = 60.0
    """Packet-time seconds without traffic after which a connection is closed and flushed."""
    binary_bodies: str = "base64"
    """Policy for bodies that are not text: ``base64`` (exact bytes in ``*_body_base64``),
    ``skip`` or ``lossy`` (see ``workers/record.py``)."""

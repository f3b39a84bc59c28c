"""Builders for core tests: TCP conversations as Segment lists, and call summaries.

``conversation()`` turns a list of (direction, bytes) exchanges into the segments a capture
would hold (handshake, data split at ``mss``, FINs), each stamped with a packet time, so a
test can then cut, reorder, duplicate or drop them and feed ``WorkerCore``.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.core import WorkerCore
from workers.message import ApiCall
from workers.segment import ACK, FIN, PSH, RST, SYN, Segment

CLIENT = (b"\x0a\x00\x00\x01", 40000)
SERVER = (b"\x0a\x00\x00\x02", 80)
C2S, S2C = "c", "s"


@dataclass
class Packet:
    """A segment and its packet time."""

    ts_ns: int
    seg: Segment


def conversation(
    exchanges: list[tuple[str, bytes]],
    *,
    mss: int = 1460,
    handshake: bool = True,
    close: str | None = "fin",
    client_isn: int = 1000,
    server_isn: int = 5000,
    client: tuple[bytes, int] = CLIENT,
    server: tuple[bytes, int] = SERVER,
    t0_ns: int = 1_700_000_000_000_000_000,
    step_ns: int = 1_000_000,
) -> list[Packet]:
    """Segments for a TCP conversation; ``exchanges`` are (C2S|S2C, bytes) in wire order."""
    seq = {C2S: client_isn, S2C: server_isn}
    ends = {C2S: (client, server), S2C: (server, client)}
    out: list[Packet] = []
    t = t0_ns

    def add(d: str, flags: int, payload: bytes = b"", seq_override: int | None = None) -> None:
        nonlocal t
        (src, sport), (dst, dport) = ends[d]
        other = S2C if d == C2S else C2S
        s = seq[d] if seq_override is None else seq_override
        out.append(
            Packet(t, Segment(src, sport, dst, dport, s & 0xFFFFFFFF, seq[other] & 0xFFFFFFFF,
                              flags, payload))
        )
        t += step_ns

    if handshake:
        add(C2S, SYN)
        seq[C2S] += 1
        add(S2C, SYN | ACK)
        seq[S2C] += 1
        add(C2S, ACK)
    for d, data in exchanges:
        for i in range(0, len(data), mss):
            piece = data[i : i + mss]
            add(d, ACK | PSH, piece)
            seq[d] += len(piece)
    if close == "fin":
        add(S2C, FIN | ACK)
        seq[S2C] += 1
        add(C2S, FIN | ACK)
        seq[C2S] += 1
    elif close == "rst":
        add(C2S, RST)
    return out


def run_core(packets: list[Packet], core: WorkerCore | None = None) -> list[ApiCall]:
    """Feed packets in list order, then close; return every call."""
    core = core or WorkerCore()
    calls: list[ApiCall] = []
    for p in packets:
        calls += core.feed(p.ts_ns, p.seg)
    calls += core.close()
    return calls


def summary(calls: list[ApiCall]) -> list[tuple]:
    """Comparable summary of calls: method, target, status, bodies, notes."""
    out = []
    for c in calls:
        rq, rs = c.request, c.response
        out.append(
            (
                rq.method if rq else None,
                rq.target if rq else None,
                rq.body if rq else None,
                (rs.status if rs.status is not None else rs.status_raw) if rs else None,
                rs.body if rs else None,
                tuple(rs.interim) if rs else (),
                tuple(sorted(c.notes)),
            )
        )
    return out


def _setup_module() -> Any:
    """setup.py loaded as a module (``setup()`` itself only runs as ``__main__``)."""
    spec = importlib.util.spec_from_file_location(
        "_sniffer_setup", Path(__file__).resolve().parent.parent / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() itself only runs as __main__
    return module


def compiled_modules_listed() -> list[str]:
    """The dotted names of the modules setup.py compiles (its ``COMPILED`` list), sorted."""
    names = [s[: -len(".py")].replace("/", ".") for s in _setup_module().COMPILED]
    return sorted(n[: -len(".__init__")] if n.endswith(".__init__") else n for n in names)


def native_helpers_listed() -> list[str]:
    """The dotted names of the C helpers setup.py builds (its ``NATIVE`` list), sorted."""
    return sorted(name for name, _ in _setup_module().NATIVE)

"""Tests of sniffer/flowhash.py: symmetry, stability across processes, spread, speed report."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import timeit
import zlib
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sniffer.flowhash import flow_hash, worker_for

addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)
port = st.integers(0, 65535)
endpoint = st.one_of(st.tuples(addr4, port), st.tuples(addr6, port))


@given(endpoint, endpoint)
def test_both_directions_hash_alike(a: tuple[bytes, int], b: tuple[bytes, int]) -> None:
    """flow_hash(a -> b) == flow_hash(b -> a), a 32-bit value, for IPv4 and IPv6."""
    h = flow_hash(a[0], a[1], b[0], b[1])
    assert h == flow_hash(b[0], b[1], a[0], a[1])
    assert 0 <= h < 2**32


@given(st.integers(0, 2**32 - 1), st.integers(1, 64))
def test_worker_index_in_range(h: int, n: int) -> None:
    """worker_for always returns a valid index."""
    assert 0 <= worker_for(h, n) < n


def test_single_worker_gets_everything() -> None:
    assert {worker_for(h, 1) for h in (0, 1, 2**31, 2**32 - 1)} == {0}


# Known answers pin the function: if these change, processes of mixed versions would disagree
# about which worker owns a flow. Each row is checked in both directions.
KNOWN = [
    ("10.0.0.1", 40000, "10.0.0.2", 80, 2353184410),
    ("fd00::1", 51234, "fd00::2", 443, 2129684504),
]


@pytest.mark.parametrize("a, sport, b, dport, expected", KNOWN)
def test_known_answers(a: str, sport: int, b: str, dport: int, expected: int) -> None:
    pa, pb = ipaddress.ip_address(a).packed, ipaddress.ip_address(b).packed
    assert flow_hash(pa, sport, pb, dport) == expected == flow_hash(pb, dport, pa, sport)


def test_ports_and_addresses_both_matter() -> None:
    """Swapping only the ports (not the addresses) is a different flow."""
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    assert flow_hash(a, 1000, b, 80) != flow_hash(a, 80, b, 1000)


def _sample_flows() -> list[tuple[bytes, int, bytes, int]]:
    server = ipaddress.ip_address("10.1.2.3").packed
    server6 = ipaddress.ip_address("fd00::80").packed
    flows = []
    for i in range(200):
        client = ipaddress.ip_address(f"192.168.{i % 4}.{10 + i % 50}").packed
        flows.append((client, 32768 + i * 7, server, 80))
        flows.append((ipaddress.ip_address(f"fd00::{i + 1:x}").packed, 50000 + i, server6, 443))
    return flows


def _hashes_in_subprocess(seed: str) -> list[int]:
    code = (
        "import json, sys\n"
        "from sniffer.flowhash import flow_hash\n"
        "flows = json.loads(sys.stdin.read())\n"
        "print(json.dumps([flow_hash(bytes.fromhex(a), p, bytes.fromhex(b), q)"
        " for a, p, b, q in flows]))\n"
    )
    flows = [(a.hex(), p, b.hex(), q) for a, p, b, q in _sample_flows()]
    env = dict(os.environ, PYTHONHASHSEED=seed)
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(flows), text=True,
                         capture_output=True, env=env, check=True, timeout=60)
    return json.loads(out.stdout)


def test_stable_across_processes_with_different_hash_seeds() -> None:
    """Two interpreters with different PYTHONHASHSEED compute the same hashes as this one."""
    here = [flow_hash(*f) for f in _sample_flows()]
    assert _hashes_in_subprocess("1") == here
    assert _hashes_in_subprocess("12345") == here


@pytest.mark.parametrize("n", range(2, 9))
def test_spread_over_workers(n: int) -> None:
    """Realistic flows (one server, many ephemeral client ports) spread evenly: with 4000
    flows every worker gets within 25 % of its fair share."""
    server = ipaddress.ip_address("10.1.2.3").packed
    counts: Counter[int] = Counter()
    for i in range(4000):
        client = ipaddress.ip_address(f"10.9.{i % 16}.{1 + i % 200}").packed
        counts[worker_for(flow_hash(client, 30000 + i, server, 8080), n)] += 1
    fair = 4000 / n
    assert set(counts) == set(range(n))
    assert all(abs(c - fair) < 0.25 * fair for c in counts.values()), counts


def _partitions(hash_fn) -> list[tuple[int, ...]]:  # noqa: ANN001 - flow_hash or a variant
    """Which of two workers 32 flows get, for 16 renumberings of the same flows (one address
    byte XORed alike on both ends, as a replay tool's per-loop renumbering might)."""
    return [tuple(worker_for(hash_fn(bytes([10, 79 ^ k, 0, 1]), 38000 + 2 * i,
                                     bytes([10, 79 ^ k, 0, 2]), 80), 2) for i in range(32))
            for k in range(1, 17)]


def test_renumbered_flows_are_spread_afresh_not_moved_together() -> None:
    """A bare CRC is linear over GF(2): each renumbering keeps the same split of the flows or
    flips all of it, so the same flows share a worker forever. The mixed hash re-deals them."""
    def crc_only(src: bytes, sport: int, dst: bytes, dport: int) -> int:
        a, b = src + sport.to_bytes(2, "big"), dst + dport.to_bytes(2, "big")
        return zlib.crc32(b, zlib.crc32(a)) if a <= b else zlib.crc32(a, zlib.crc32(b))

    def moved_together(parts: list[tuple[int, ...]]) -> int:
        first, flipped = parts[0], tuple(1 - w for w in parts[0])
        return sum(p in (first, flipped) for p in parts)

    assert moved_together(_partitions(crc_only)) == 16  # the flaw the mixing removes
    assert moved_together(_partitions(flow_hash)) <= 2


def test_report_ns_per_call(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a speed assertion: prints ns per flow_hash + worker_for call for the report."""
    src, dst = bytes(16), bytes(range(16))
    loops = 20000
    t = min(timeit.repeat(lambda: worker_for(flow_hash(src, 51234, dst, 443), 4),
                          number=loops, repeat=3))
    with capsys.disabled():
        print(f"\nflowhash: {t / loops * 1e9:.0f} ns per flow_hash+worker_for (IPv6, lambda incl.)")

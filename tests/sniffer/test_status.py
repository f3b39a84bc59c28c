"""The stderr status line and the exit summary."""
from __future__ import annotations

import pytest

from sniffer.metrics import Snapshot, WorkerStatus
from sniffer.status import compact, final_summary, health_of, status_line

SNAP = Snapshot(
    2.0,
    counters={"packets": 13300, "segments": 12000, "calls": 3200, "kernel_drops": 0,
              "ring_frames_dropped": 0, "calls_dropped_by_rules": 0},
    anomalies={"tcp_gap": 3, "http_bad_start_line": 1, "tcp_overlap_mismatch": 0},
)
RATES = {"packets": 12_300.0, "calls": 3_140.0}


@pytest.mark.parametrize("value, text", [
    (0, "0"), (7, "7"), (999, "999"), (0.5, "0.5"), (9.94, "9.9"), (10.4, "10"), (850.6, "851"),
    (1000, "1.0k"), (12_345, "12.3k"), (4_100_000, "4.1M"), (2_000_000_000, "2.0G"), (3.0, "3"),
])
def test_compact(value, text):
    assert compact(value) == text


# ---- status line and summary ----------------------------------------------------------------

def test_status_line_matches_the_documented_shape():
    line = status_line(SNAP, RATES, [0.45, 0.38])
    assert line == ("pkts 12.3k/s calls 3.1k/s kdrop 0 ringdrop 0 | w0 45% w1 38% | "
                    "tcp_gap=3 http_bad_start_line=1")


def test_status_line_before_any_rate_and_with_a_dead_worker():
    line = status_line(SNAP, {}, {0: WorkerStatus(0.2), 1: WorkerStatus(0.9, alive=False),
                                  2: None})
    assert line.startswith("pkts -/s calls -/s kdrop 0 ringdrop 0 | w0 20% w1 down w2 down |")


def test_status_line_top_anomalies_and_losses():
    snap = Snapshot(0.0, counters={"kernel_drops": 1500, "ring_frames_dropped": 2,
                                   "output_dropped_calls": 3, "output_spool_dropped_calls": 4,
                                   "output_rejected_calls": 1, "output_spool_dropped_bundles": 9},
                    anomalies={f"a{i}": i for i in range(8)})
    line = status_line(snap, {"packets": 0.0, "calls": 0.5}, [], anomalies_top_n=3)
    assert line == ("pkts 0/s calls 0.5/s kdrop 1.5k ringdrop 2 outdrop 8 | "
                    "a7=7 a6=6 a5=5 +4 more")


def test_status_line_reads_the_pipeline_names():
    snap = Snapshot(0.0, counters={"packets": 10, "calls_out": 4, "kernel_dropped": 2_500_000,
                                   "ring_frames_dropped": 1})
    line = status_line(snap, {"packets": 100.0, "calls_out": 25.0}, {0: 0.5})
    assert line == "pkts 100/s calls 25/s kdrop 2.5M ringdrop 1 | w0 50%"


def test_status_line_without_workers_or_anomalies_is_one_part():
    assert status_line(Snapshot(0.0), {}, []) == "pkts -/s calls -/s kdrop 0 ringdrop 0"


def test_final_summary():
    snap = Snapshot(0.0, counters={**SNAP.counters, "output_calls_sent": 3100,
                                   "output_retries": 0, "metrics_bad_values": 0,
                                   "connections_evicted_by_budget": 5},
                    anomalies=SNAP.anomalies)
    assert final_summary(snap) == [
        "capture: packets=13300 segments=12000 kernel_drops=0 ring_frames_dropped=0",
        "calls: calls=3200 calls_dropped_by_rules=0",
        "output: output_calls_sent=3100",
        "other: connections_evicted_by_budget=5",
        "anomalies: tcp_gap=3 http_bad_start_line=1",
    ]
    assert final_summary(Snapshot(0.0)) == ["anomalies: none"]
    pipeline = Snapshot(0.0, counters={"packets": 5, "segments_sent": 4, "kernel_dropped": 1,
                                       "ring_segments_dropped": 0, "calls": 2, "calls_out": 2})
    assert final_summary(pipeline)[:2] == [
        "capture: packets=5 segments_sent=4 kernel_dropped=1 ring_segments_dropped=0",
        "calls: calls=2 calls_out=2"]


@pytest.mark.parametrize("alive, expected", [
    ({}, (True, "ok")), ({"capture": True, "worker0": True}, (True, "ok")),
    ({"capture": True, "worker0": False, "aggregator": False},
     (False, "not running: worker0, aggregator")),
])
def test_health_of(alive, expected):
    assert health_of(alive) == expected


# ---- the HTTP endpoint ----------------------------------------------------------------------

"""Totals over processes, rates from two snapshots, and the Prometheus text exposition.

The exposition is read back with ``parse_exposition``, a strict parser of format 0.0.4 that
checks every line: HELP/TYPE once per family and before its samples, families contiguous,
valid metric and label names, escaped label values, numeric sample values.
"""
from __future__ import annotations

import math
import re

import pytest

from sniffer.metrics import (RateMeter, Snapshot, Totals, WorkerStatus, escape_label_value,
                             format_value, is_gauge_name, label_name, metric_name,
                             prometheus_text, rates, worker_loads, worker_order)
from workers.anomalies import REGISTRY

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
NUMBER = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|Inf)|NaN"
SAMPLE = re.compile(
    rf"^({NAME})(?:\{{({LABEL}={VALUE}(?:,{LABEL}={VALUE})*)?\}})? ({NUMBER})$"
)
PAIR = re.compile(rf"({LABEL})=({VALUE})")
HELP_LINE = re.compile(rf"^# HELP ({NAME}) ((?:[^\\\n]|\\[\\n])*)$")
TYPE_LINE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def parse_exposition(text: str) -> dict[str, dict]:
    """Families by name: {"help", "type", "samples": [(labels, value)]}; asserts validity."""
    assert text.endswith("\n") and "\r" not in text
    families: dict[str, dict] = {}
    current: str | None = None
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}: {line!r}"
        if line.startswith("# HELP "):
            match = HELP_LINE.match(line)
            assert match, where
            name = match.group(1)
            assert name not in families, f"family seen twice, {where}"
            families[name] = {"help": unescape(match.group(2)), "type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            match = TYPE_LINE.match(line)
            assert match and match.group(1) == current, where
            assert families[current]["type"] is None and not families[current]["samples"], where
            families[current]["type"] = match.group(2)
        else:
            match = SAMPLE.match(line)
            assert match, where
            assert match.group(1) == current and families[current]["type"], where
            labels = {k: unescape(v[1:-1]) for k, v in PAIR.findall(match.group(2) or "")}
            assert not any(k.startswith("__") for k in labels), where
            assert len(labels) == len(PAIR.findall(match.group(2) or "")), f"dup label, {where}"
            seen = [s[0] for s in families[current]["samples"]]
            assert labels not in seen, f"duplicate series, {where}"
            families[current]["samples"].append((labels, float(match.group(3))))
    return families


def value_of(families: dict, family: str, **labels: str) -> float:
    return next(v for ls, v in families[family]["samples"] if ls == labels)


# ---- totals ---------------------------------------------------------------------------------

def test_totals_sum_processes_and_split_counters_anomalies_gauges():
    totals = Totals(anomaly_names={"tcp_gap", "http_bad_start_line"})
    totals.update("capture", {"packets": 100, "kernel_drops": 2})
    totals.update("worker0", {"segments": 60, "calls": 5, "tcp_gap": 1, "connections_open": 3})
    totals.update("worker1", {"segments": 40, "calls": 7, "tcp_gap": 2, "connections_open": 4})
    totals.update("aggregator", {"output_calls_sent": 12, "output_queued_calls": 9})
    snap = totals.snapshot(5.0)
    assert snap.at_s == 5.0
    assert {k: v for k, v in snap.counters.items() if not k.startswith("metrics_")} == {
        "packets": 100, "kernel_drops": 2, "segments": 100, "calls": 12, "output_calls_sent": 12}
    assert snap.anomalies == {"tcp_gap": 3, "http_bad_start_line": 0}
    assert snap.gauges == {"connections_open": 7, "output_queued_calls": 9}


def test_totals_count_increments_and_survive_a_restart():
    totals = Totals(anomaly_names=())
    totals.update("worker0", {"calls": 10})
    totals.update("worker0", {"calls": 25})
    assert totals.snapshot(1).counters["calls"] == 25
    totals.update("worker0", {"calls": 4})  # restarted under the same name: a reset
    assert totals.snapshot(2).counters["calls"] == 29
    totals.forget("worker0")  # the supervisor saw it die; the next one counts from zero
    totals.update("worker0", {"calls": 30})
    assert totals.snapshot(3).counters["calls"] == 59


def test_forget_drops_the_gauges_of_a_process_but_keeps_counters():
    totals = Totals(anomaly_names=())
    totals.update("worker0", {"connections_open": 5, "calls": 3})
    totals.update("worker1", {"connections_open": 2, "calls": 1})
    totals.forget("worker1")
    snap = totals.snapshot(1)
    assert snap.gauges["connections_open"] == 5 and snap.counters["calls"] == 4


@pytest.mark.parametrize("bad", [{"calls": -1}, {"calls": "7"}, {"calls": 1.5}, {"calls": None},
                                 {"calls": True}, {3: 1}, {"connections_open": float("nan")}])
def test_bad_values_are_counted_not_raised(bad):
    totals = Totals(anomaly_names=())
    totals.update("worker0", bad)
    snap = totals.snapshot(1)
    assert snap.counters["metrics_bad_values"] == 1
    assert "calls" not in snap.counters and "connections_open" not in snap.gauges


def test_distinct_names_are_capped():
    totals = Totals(anomaly_names=(), max_names=10)
    totals.update("worker0", {f"c{i}": 1 for i in range(50)})
    snap = totals.snapshot(1)
    assert len(snap.counters) + len(snap.gauges) == 10
    assert snap.counters["metrics_names_over_limit"] == 42  # 2 of the 10 are the metrics_ ones


def test_registered_anomalies_are_exported_at_zero_by_default():
    import workers.core  # noqa: F401 - registers the core's anomaly names

    totals = Totals()
    totals.update("worker0", {"tcp_gap": 2, "calls": 1})
    snap = totals.snapshot(1)
    assert set(snap.anomalies) == set(REGISTRY) and snap.anomalies["tcp_gap"] == 2
    assert "tcp_gap" not in snap.counters and snap.counters["calls"] == 1


@pytest.mark.parametrize("name, gauge", [
    ("connections_open", True), ("output_queued_calls", True), ("output_spool_pending_bytes", True),
    ("output_buffered_calls", True), ("slots_in_use", True), ("open", True),
    ("files_opened", False), ("calls", False), ("output_spool_dropped_calls", False),
    ("reopen_count", False),
])
def test_gauge_names(name, gauge):
    assert is_gauge_name(name) is gauge


def test_worker_load_is_not_a_total_and_is_read_per_worker():
    per_process = {"capture": {"packets": 9, "busy_permille": 999},
                   "worker-0": {"calls": 1, "busy_permille": 450},
                   "worker-10": {"busy_permille": 1200}, "worker-1": {"calls": 2},
                   "worker-x": {"busy_permille": 5}, "aggregator": {"calls_out": 3}}
    totals = Totals(anomaly_names=())
    for name, counts in per_process.items():
        totals.update(name, counts)
    snap = totals.snapshot(1)
    assert "busy_permille" not in snap.counters and "busy_permille" not in snap.gauges
    assert snap.counters["metrics_bad_values"] == 0
    assert worker_loads(per_process) == {0: 0.45, 10: 1.0}


# ---- rates ----------------------------------------------------------------------------------

def test_rates_from_two_snapshots():
    before = Snapshot(10.0, {"packets": 1000, "calls": 10})
    after = Snapshot(12.5, {"packets": 6000, "calls": 20, "segments": 50})
    assert rates(before, after) == {"packets": 2000.0, "calls": 4.0, "segments": 20.0}


@pytest.mark.parametrize("later_s", [10.0, 9.0])
def test_rates_need_time_to_pass(later_s):
    assert rates(Snapshot(10.0, {"packets": 1}), Snapshot(later_s, {"packets": 5})) == {}


def test_a_counter_that_went_back_has_rate_zero():
    assert rates(Snapshot(0.0, {"calls": 50}), Snapshot(1.0, {"calls": 20})) == {"calls": 0.0}


def test_rate_meter_keeps_the_previous_snapshot():
    meter, totals = RateMeter(), Totals(anomaly_names=())
    totals.update("capture", {"packets": 100})
    assert meter.update(totals.snapshot(100.0)) == {}
    totals.update("capture", {"packets": 400})
    assert meter.update(totals.snapshot(102.0))["packets"] == 150.0
    assert meter.update(totals.snapshot(102.0))["packets"] == 150.0  # no time: last rates
    totals.update("capture", {"packets": 400})
    assert meter.update(totals.snapshot(103.0))["packets"] == 0.0


# ---- names, escaping, values ------------------------------------------------------------------

@pytest.mark.parametrize("raw, clean", [
    ("network_sniffer_packets", "network_sniffer_packets"), ("a:b", "a:b"),
    ("http-2xx", "http_2xx"), ("9lives", "_9lives"), ("", "_"), ("dé jà", "d__j_"),
])
def test_metric_name(raw, clean):
    assert metric_name(raw) == clean and re.fullmatch(NAME, clean)


@pytest.mark.parametrize("raw, clean", [
    ("worker", "worker"), ("a:b", "a_b"), ("1x", "_1x"), ("__name__", "x__name__"), ("", "_"),
])
def test_label_name(raw, clean):
    assert label_name(raw) == clean and re.fullmatch(LABEL, clean)


@pytest.mark.parametrize("raw, escaped", [
    ("plain", "plain"), ('say "hi"', 'say \\"hi\\"'), ("C:\\dir", "C:\\\\dir"),
    ("two\nlines", "two\\nlines"), ('\\"\n', '\\\\\\"\\n'),
])
def test_escape_label_value(raw, escaped):
    assert escape_label_value(raw) == escaped and unescape(escaped) == raw


@pytest.mark.parametrize("value, text", [
    (0, "0"), (12345678901234567890, "12345678901234567890"), (0.45, "0.45"), (1e21, "1e+21"),
    (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (float("nan"), "NaN"),
])
def test_format_value(value, text):
    assert format_value(value) == text


def test_worker_order_is_numeric():
    assert worker_order([10, 2, 0, "x"]) == [0, 2, 10, "x"]


# ---- exposition -----------------------------------------------------------------------------

def sample_snapshot() -> Snapshot:
    return Snapshot(
        1.0,
        counters={"packets": 13300, "calls": 3200, "kernel_drops": 0, "output_calls_sent": 3100,
                  "output_spool_dropped_calls": 4, "weird-name.x": 2, "already_total": 9},
        anomalies={"tcp_gap": 3, "http_bad_start_line": 1, 'odd"name\\\n': 1},
        gauges={"connections_open": 7, "output_queued_calls": 12},
    )


def test_exposition_is_valid_and_complete():
    workers = [WorkerStatus(0.45), WorkerStatus(1.7, alive=False, restarts=2)]
    text = prometheus_text(sample_snapshot(), workers, {"version": "1.2.3"})
    families = parse_exposition(text)
    assert families["network_sniffer_packets_total"]["type"] == "counter"
    assert value_of(families, "network_sniffer_packets_total") == 13300
    assert value_of(families, "network_sniffer_output_spool_dropped_calls_total") == 4
    assert value_of(families, "network_sniffer_weird_name_x_total") == 2
    assert value_of(families, "network_sniffer_already_total") == 9
    anomalies = families["network_sniffer_anomalies_total"]
    assert anomalies["type"] == "counter"
    assert {ls["name"]: v for ls, v in anomalies["samples"]} == {
        "tcp_gap": 3, "http_bad_start_line": 1, 'odd"name\\\n': 1}
    assert families["network_sniffer_connections_open"]["type"] == "gauge"
    assert value_of(families, "network_sniffer_output_queued_calls") == 12
    assert value_of(families, "network_sniffer_worker_load", worker="0") == 0.45
    assert value_of(families, "network_sniffer_worker_load", worker="1") == 1.0  # clamped
    assert value_of(families, "network_sniffer_worker_up", worker="1") == 0
    assert value_of(families, "network_sniffer_worker_restarts_total", worker="1") == 2
    assert families["network_sniffer_info"]["samples"] == [({"version": "1.2.3"}, 1.0)]
    assert all(f["help"] for f in families.values())


def test_info_labels_are_sanitised_and_escaped():
    info = {"version": 'v"1\\2\n', "build-host": "x", "__reserved": "y"}
    families = parse_exposition(prometheus_text(Snapshot(0.0), [], info))
    assert families["network_sniffer_info"]["samples"] == [
        ({"version": 'v"1\\2\n', "build_host": "x", "x__reserved": "y"}, 1.0)]


def test_names_that_collide_after_sanitising_keep_one_family():
    snap = Snapshot(0.0, counters={"a-b": 1, "a_b": 2}, gauges={"a_b_total": 5})
    families = parse_exposition(prometheus_text(snap))
    assert len(families["network_sniffer_a_b_total"]["samples"]) == 1


def test_empty_snapshot_still_renders_valid_text():
    families = parse_exposition(prometheus_text(Snapshot(0.0)))
    assert families["network_sniffer_info"]["samples"] == [({}, 1.0)]
    assert families["network_sniffer_anomalies_total"]["samples"] == []


def test_exposition_of_live_totals_round_trips():
    totals = Totals(anomaly_names={"tcp_gap"})
    totals.update("capture", {"packets": 5, "ring_frames_dropped": 1})
    totals.update("worker3", {"calls": 2, "tcp_gap": 4, "connections_open": 1})
    families = parse_exposition(prometheus_text(totals.snapshot(1.0), {3: WorkerStatus(0.2)}))
    assert value_of(families, "network_sniffer_ring_frames_dropped_total") == 1
    assert value_of(families, "network_sniffer_anomalies_total", name="tcp_gap") == 4
    assert value_of(families, "network_sniffer_worker_load", worker="3") == 0.2
    assert not math.isnan(value_of(families, "network_sniffer_metrics_bad_values_total"))


@pytest.mark.parametrize("line", [
    "bad name 1", 'x{a="unterminated} 1', 'x{a="b"} one', 'x{1a="b"} 1', 'x{a="b\\q"} 1',
])
def test_the_test_parser_rejects_invalid_lines(line):
    with pytest.raises(AssertionError):
        parse_exposition(f"# HELP x h\n# TYPE x gauge\n{line}\n")


def test_the_test_parser_rejects_samples_before_type():
    with pytest.raises(AssertionError):
        parse_exposition("# HELP x h\nx 1\n# TYPE x gauge\n")

"""UrlSink over real HTTP on loopback against tests/endpoint.py: order, bundling, faults, spool.

One POST and its classification, the backoff and ``destination_state`` are in test_delivery.py.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import pytest

from sniffer import __version__
from sniffer.shipper import ShipperSettings, UrlSink
from sniffer.spool import Spool
from tests.sniffer.conftest import numbers

FAST = ShipperSettings(bundle_bytes=8 << 10, bundle_s=0.05, queue_bytes=1 << 20,
                       connect_timeout_s=1.0, read_timeout_s=1.0, backoff_initial_s=0.02,
                       backoff_max_s=0.1)


def call(i: int) -> bytes:
    """One valid Resurface message carrying its number."""
    return (b'[["request_method","GET"],["request_url","http://api.test/items/%d"],'
            b'["response_code","200"],["custom_field:n","%d"],["now","1700000000000"]]' % (i, i))


@pytest.mark.parametrize("skip_compression", [False, True], ids=["deflated", "plain"])
def test_every_call_arrives_exactly_once_in_order(endpoint, skip_compression):
    sink = UrlSink(endpoint.url, skip_compression=skip_compression, settings=FAST)
    for i in range(3000):
        sink.write(call(i))
    assert sink.close(5.0)
    assert numbers(endpoint.messages) == list(range(3000))
    counts = sink.counters()
    assert counts["calls_sent"] == counts["calls_written"] == 3000
    assert counts["bundles_sent"] == len(endpoint.requests) > 1
    assert counts["bytes_sent"] == sum(r.wire_bytes for r in endpoint.requests)
    assert endpoint.rejections == {}
    headers = endpoint.requests[0].headers
    assert headers["content-type"] == "application/ndjson; charset=UTF-8"
    assert headers["user-agent"].startswith(f"network-sniffer/{__version__} ")
    assert headers.get("content-encoding") == (None if skip_compression else "deflated")


def send(sink: UrlSink, lines: list[bytes], batch: int) -> None:
    """``write`` line by line (batch 0) or ``write_many`` in batches of ``batch`` lines."""
    if not batch:
        for line in lines:
            sink.write(line)
    for i in range(0, len(lines), batch or len(lines) + 1):
        sink.write_many(lines[i:i + batch])


@pytest.mark.parametrize("batch", [0, 1, 7, 50], ids=lambda b: f"batch{b}")
def test_bundles_are_cut_by_size(endpoint, batch):
    line_bytes = len(call(100)) + 1
    settings = ShipperSettings(bundle_bytes=20 * line_bytes, bundle_s=60.0)
    sink = UrlSink(endpoint.url, settings=settings)
    send(sink, [call(i) for i in range(100, 150)], batch)
    assert endpoint.wait_for(40, 5.0)  # two full bundles went out without any flush
    assert sink.close(5.0)
    assert [r.messages for r in endpoint.requests] == [20, 20, 10]


@pytest.mark.parametrize("batch", [0, 3, 25], ids=lambda b: f"batch{b}")
def test_bundles_are_cut_by_call_count(endpoint, batch):
    """message_queue_size (USAGE_LOGGERS_MESSAGE_QUEUE_SIZE) bounds the calls per bundle."""
    settings = dataclasses.replace(FAST, bundle_bytes=64 << 20, bundle_calls=10, bundle_s=60)
    sink = UrlSink(endpoint.url, settings=settings)
    send(sink, [call(i) for i in range(25)], batch)
    assert sink.close(5.0)
    assert numbers(endpoint.messages) == list(range(25))
    assert sink.counters()["bundles_sent"] == len(endpoint.requests) == 3
    assert [r.messages for r in endpoint.requests] == [10, 10, 5]
    assert sink.counters()["calls_written"] == 25


@pytest.mark.parametrize("batch", [0, 500], ids=lambda b: f"batch{b}")
def test_by_default_bundles_have_no_call_cap(endpoint, batch):
    """As logger-go: without message_queue_size a bundle is cut by size and age only."""
    sink = UrlSink(endpoint.url, settings=ShipperSettings(bundle_s=60.0))
    send(sink, [call(i) for i in range(3000)], batch)
    assert sink.close(5.0)
    assert [r.messages for r in endpoint.requests] == [3000]
    assert numbers(endpoint.messages) == list(range(3000))


def test_a_partial_bundle_goes_out_after_bundle_s(endpoint):
    sink = UrlSink(endpoint.url, settings=ShipperSettings(bundle_s=0.1))
    for i in range(3):
        sink.write(call(i))
    assert endpoint.wait_for(3, 5.0)  # no flush, no close: the age limit sent it
    assert [r.messages for r in endpoint.requests] == [3]
    assert sink.close(2.0)


def test_close_flushes_everything_even_with_long_bundle_times(endpoint):
    sink = UrlSink(endpoint.url, settings=ShipperSettings(bundle_s=3600.0))
    for i in range(10):
        sink.write(call(i))
    assert sink.close(5.0)
    assert numbers(endpoint.messages) == list(range(10))


def test_500s_are_retried_until_the_endpoint_recovers(endpoint):
    endpoint.set_fault("status", status=500, times=3)
    sink = UrlSink(endpoint.url, settings=FAST)
    for i in range(50):
        sink.write(call(i))
    assert sink.close(5.0)
    assert numbers(endpoint.messages) == list(range(50))
    counts = sink.counters()
    assert counts["http_5xx"] == 3 and counts["retries"] == 3
    assert counts["duplicates_possible"] == 0


def test_429_waits_for_retry_after(endpoint):
    endpoint.set_fault("429", retry_after="1", times=1)
    sink = UrlSink(endpoint.url, settings=FAST)
    sink.write(call(1))
    assert sink.close(5.0)
    first, second = endpoint.requests
    assert first.status == 429 and second.status == 204
    assert second.at_s - first.at_s >= 0.9  # honoured Retry-After, not the 20 ms backoff
    assert sink.counters()["http_429"] == 1


def test_4xx_is_logged_once_counted_and_the_bundle_dropped(endpoint, caplog):
    endpoint.set_fault("status", status=403, times=2)
    sink = UrlSink(endpoint.url, settings=FAST)
    with caplog.at_level(logging.DEBUG, logger="sniffer.shipper"):
        for batch in range(3):
            for i in range(5):
                sink.write(call(batch * 5 + i))
            sink.flush()
            assert _wait(lambda: len(endpoint.requests) > batch)
        assert not sink.close(5.0)
    counts = sink.counters()
    assert counts["http_4xx"] == 2 and counts["rejected_calls"] == 10 and counts["retries"] == 0
    assert numbers(endpoint.messages) == list(range(10, 15))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "403" in errors[0].getMessage()
    assert "fault 403" in errors[0].getMessage()  # the start of the response body


def test_a_message_the_endpoint_refuses_is_dropped_not_retried(endpoint):
    sink = UrlSink(endpoint.url, settings=FAST)
    sink.write(b'[["no_such_key","x"]]')
    assert not sink.close(5.0)
    assert sink.counters()["http_4xx"] == 1 and sum(endpoint.rejections.values()) == 1


def _wait(predicate, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_endpoint_down_for_a_while_then_back(endpoint):
    sink = UrlSink(endpoint.url, settings=FAST)
    for i in range(100):
        sink.write(call(i))
    assert endpoint.wait_for(1, 5.0)
    endpoint.set_fault("down", down_s=1.5)
    for i in range(100, 300):
        sink.write(call(i))
        time.sleep(0.002)
    assert sink.close(10.0)
    assert numbers(endpoint.messages) == list(range(300))
    assert sink.counters()["conn_errors"] > 0


@pytest.mark.parametrize("fault", ["drop", "accept_lose"])
def test_lost_answers_are_retried_and_counted_as_possible_duplicates(endpoint, fault):
    endpoint.set_fault(fault, times=1)
    sink = UrlSink(endpoint.url, settings=FAST)
    for i in range(20):
        sink.write(call(i))
    assert sink.close(5.0)
    got = numbers(endpoint.messages)
    duplicates = len(got) - 20
    assert sorted(set(got)) == list(range(20)) and list(dict.fromkeys(got)) == list(range(20))
    assert duplicates == (0 if fault == "drop" else sink.counters()["duplicates_possible"])
    assert sink.counters()["duplicates_possible"] > 0


def test_read_timeout_counts_possible_duplicates(endpoint):
    endpoint.set_fault("slow", delay_s=1.0, times=1)
    settings = ShipperSettings(read_timeout_s=0.3, backoff_initial_s=0.02, bundle_s=0.05)
    sink = UrlSink(endpoint.url, settings=settings)
    sink.write(call(1))
    assert sink.close(5.0)
    counts = sink.counters()
    assert counts["timeouts"] == 1 and counts["duplicates_possible"] == 1
    assert _wait(lambda: len(endpoint.messages) == 2)  # the slow answer stored it too


def test_without_a_spool_a_full_queue_drops_the_oldest_and_says_so(endpoint, caplog):
    endpoint.stop()
    settings = ShipperSettings(bundle_bytes=1 << 10, queue_bytes=4 << 10, bundle_s=60.0,
                               backoff_initial_s=0.02, backoff_max_s=0.05)
    sink = UrlSink(endpoint.url, settings=settings)
    with caplog.at_level(logging.WARNING, logger="sniffer.shipper"):
        for i in range(200):
            sink.write(call(i))
        assert not sink.close(0.3)
    counts = sink.counters()
    assert counts["dropped_calls"] == 200 and counts["calls_sent"] == 0
    assert any("dropped" in r.getMessage() for r in caplog.records)


def test_down_past_the_spool_cap_loses_the_oldest_and_counts_them(endpoint, tmp_path, caplog):
    endpoint.stop()
    settings = ShipperSettings(bundle_bytes=2 << 10, queue_bytes=4 << 10, bundle_s=60.0,
                               backoff_initial_s=0.02, backoff_max_s=0.05)
    sink = UrlSink(endpoint.url, spool=Spool(tmp_path, max_bytes=16 << 10), settings=settings)
    with caplog.at_level(logging.WARNING):
        for i in range(1000):
            sink.write(call(i))
        assert not sink.close(0.3)
    counts = sink.counters()
    lost, kept = counts["spool_dropped_calls"], counts["spool_pending_calls"]
    assert lost > 0 and kept > 0 and lost + kept == 1000
    assert any("spool over its cap" in r.getMessage() for r in caplog.records)
    # back up: the next run replays what the spool kept, the newest calls, in order
    endpoint.set_fault(None)
    again = UrlSink(endpoint.url, spool=Spool(tmp_path, max_bytes=16 << 10), settings=FAST)
    assert again.close(5.0)
    assert numbers(endpoint.messages) == list(range(lost, 1000))


def test_spool_survives_a_restart_and_replays_before_new_calls(endpoint, tmp_path):
    endpoint.stop()
    first = UrlSink(endpoint.url, spool=Spool(tmp_path, max_bytes=1 << 20), settings=FAST)
    for i in range(100):
        first.write(call(i))
    assert not first.close(0.3)
    assert first.counters()["spool_pending_calls"] == 100
    endpoint.set_fault(None)
    second = UrlSink(endpoint.url, spool=Spool(tmp_path, max_bytes=1 << 20), settings=FAST)
    for i in range(100, 200):
        second.write(call(i))
    assert second.close(5.0)
    assert numbers(endpoint.messages) == list(range(200))
    assert second.counters()["calls_replayed"] == 100


def test_overflow_goes_to_the_spool_and_comes_back_in_order(endpoint, tmp_path):
    endpoint.set_fault("status", status=503)
    settings = ShipperSettings(bundle_bytes=1 << 10, queue_bytes=3 << 10, bundle_s=0.05,
                               backoff_initial_s=0.02, backoff_max_s=0.05)
    sink = UrlSink(endpoint.url, spool=Spool(tmp_path, max_bytes=1 << 20), settings=settings)
    for i in range(300):
        sink.write(call(i))
    assert _wait(lambda: sink.counters().get("spool_spooled_bundles", 0) > 3)
    endpoint.set_fault(None)
    assert sink.close(5.0)
    assert numbers(endpoint.messages) == list(range(300))


@pytest.mark.slow
def test_a_30_s_outage_in_the_middle_of_a_stream_loses_nothing(endpoint, tmp_path):
    settings = ShipperSettings(bundle_bytes=16 << 10, bundle_s=0.2, queue_bytes=64 << 10,
                               backoff_initial_s=0.1, backoff_max_s=2.0)
    sink = UrlSink(endpoint.url, spool=Spool(tmp_path, max_bytes=64 << 20), settings=settings)
    start_s, written = time.monotonic(), 0
    faults = {3.0: lambda: endpoint.set_fault("accept_lose", times=1),
              5.0: lambda: endpoint.set_fault("down", down_s=30.0)}
    while (elapsed_s := time.monotonic() - start_s) < 40.0:
        for at_s in [t for t in faults if t <= elapsed_s]:
            faults.pop(at_s)()
        for _ in range(50):
            sink.write(call(written))
            written += 1
        time.sleep(0.1)
    assert sink.close(30.0)
    got = numbers(endpoint.messages)
    counts = sink.counters()
    assert list(dict.fromkeys(got)) == list(range(written))  # all there, first copies in order
    assert 0 < len(got) - written <= counts["duplicates_possible"]
    assert counts["spool_spooled_bundles"] > 0 and counts["calls_replayed"] > 0
    assert counts.get("spool_dropped_calls", 0) == 0 and counts["dropped_calls"] == 0

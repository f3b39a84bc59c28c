"""The metrics endpoint (sniffer/status_server.py) over real loopback HTTP."""
from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.request
from urllib.error import HTTPError

import pytest

from sniffer.metrics import Totals, WorkerStatus, prometheus_text
from sniffer.status_server import METRICS_CONTENT_TYPE, MetricsServer
from tests.sniffer.test_metrics import parse_exposition, value_of


def make_server(*args, **kwargs) -> MetricsServer:
    """A MetricsServer that stops quickly (short accept-loop poll)."""
    return MetricsServer(*args, poll_interval_s=0.02, **kwargs)


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


class State:
    """What the provider and health callables read; tests flip it."""

    def __init__(self) -> None:
        self.totals = Totals(anomaly_names={"tcp_gap"})
        self.totals.update("worker0", {"calls": 42, "tcp_gap": 1})
        self.health: tuple[bool, str] = (True, "ok")
        self.fail = False

    def provider(self) -> str:
        if self.fail:
            raise RuntimeError("boom")
        return prometheus_text(self.totals.snapshot(1.0), [WorkerStatus(0.5)], {"version": "t"})

    def healthz(self) -> tuple[bool, str]:
        if self.fail:
            raise RuntimeError("health boom")
        return self.health


@pytest.fixture
def served():
    state = State()
    server = make_server("127.0.0.1", 0, state.provider, state.healthz, timeout_s=2.0)
    server.start()
    yield server, state, f"http://127.0.0.1:{server.port}"
    server.stop()


def test_metrics_are_served_as_valid_exposition(served):
    server, _, base = served
    assert server.port > 0
    status, headers, body = fetch(base + "/metrics")
    assert status == 200 and headers["Content-Type"] == METRICS_CONTENT_TYPE
    families = parse_exposition(body.decode())
    assert value_of(families, "network_sniffer_calls_total") == 42
    assert value_of(families, "network_sniffer_anomalies_total", name="tcp_gap") == 1
    assert fetch(base + "/metrics?debug=1")[2] == body
    status, headers, empty = fetch(base + "/metrics", "HEAD")
    assert status == 200 and empty == b"" and int(headers["Content-Length"]) == len(body)


def test_healthz_follows_health(served):
    _, state, base = served
    assert fetch(base + "/healthz")[::2] == (200, b"ok\n")
    state.health = (False, "not running: worker1")
    assert fetch(base + "/healthz")[::2] == (503, b"not running: worker1\n")


@pytest.mark.parametrize("path", ["/", "/metric", "/metrics/x", "/healthz/", "/favicon.ico"])
def test_unknown_paths_are_404(served, path):
    assert fetch(served[2] + path)[0] == 404


def test_failing_callables_give_500_and_503_and_the_server_goes_on(served):
    server, state, base = served
    state.fail = True
    assert fetch(base + "/metrics")[::2] == (500, b"metrics unavailable\n")
    status, _, body = fetch(base + "/healthz")
    assert status == 503 and b"health boom" in body
    state.fail = False
    assert fetch(base + "/metrics")[0] == 200
    assert server.counters()["errors"] == 2


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, half-close, return everything the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if data:
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize("data, answer", [
    (b"", b""),
    (b"\x00\xff\xfe garbage\r\n\r\n", b"HTTP/1.0 400"),
    (b"GET /metrics HTTP/9.9\r\n\r\n", b"HTTP/1.0 505"),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"HTTP/1.0 414"),
    (b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"HTTP/1.0 431"),
    (b"GET /metrics HTTP/1.1\r\nHost: x", b"HTTP/1.0 200"),  # cut in the headers: EOF ends them
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"HTTP/1.0 501"),
    (b"BREW /pot HTTP/1.1\r\n\r\n", b"HTTP/1.0 501"),
    (b"GET\r\n\r\n", b"HTTP/1.0 400"),
])
def test_bad_requests_do_not_hurt_the_server(served, data, answer):
    server, _, base = served
    reply = raw_exchange(server.port, data)
    assert reply.startswith(answer) if answer else reply == b""
    if answer and not answer.endswith(b"200"):
        assert b"text/plain" in reply and b"\r\n\r\n" + answer[9:] + b" " in reply  # "400 ..."
        assert server.counters()["bad_requests"] == 1
    assert fetch(base + "/healthz")[0] == 200


def test_a_client_that_resets_mid_request_is_harmless(served):
    server, _, base = served
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET /metr")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST
    assert fetch(base + "/metrics")[0] == 200


def test_a_silent_client_is_cut_after_the_timeout():
    with make_server("127.0.0.1", 0, lambda: "", timeout_s=0.2) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # and then nothing
            assert sock.recv(1024) == b""  # closed by the server, not by our 10 s timeout


def test_concurrent_connections_are_capped():
    with make_server("127.0.0.1", 0, lambda: "x 1\n", max_connections=2) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
        try:
            with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
                fetch(f"http://127.0.0.1:{server.port}/metrics")
            assert server.counters()["rejected_connections"] == 1
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 5  # the idle handlers see EOF and free their slots
        while True:
            try:
                assert fetch(f"http://127.0.0.1:{server.port}/metrics")[0] == 200
                break
            except (http.client.RemoteDisconnected, ConnectionResetError):
                assert time.monotonic() < deadline, "slots were not released"
                time.sleep(0.05)


def test_parallel_scrapes_all_succeed(served):
    server, _, base = served
    results: list[int] = []

    def scrape() -> None:
        for _ in range(10):
            results.append(fetch(base + "/metrics")[0])

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [200] * 40 and server.counters()["requests"] >= 40


def test_port_zero_picks_distinct_free_ports_and_a_taken_port_fails():
    with make_server("127.0.0.1", 0, lambda: "") as one, \
            make_server("127.0.0.1", 0, lambda: "") as two:
        assert one.port != two.port
        with pytest.raises(OSError):
            make_server("127.0.0.1", one.port, lambda: "").start()


def test_stop_closes_the_port_and_is_idempotent():
    server = make_server("127.0.0.1", 0, lambda: "")
    server.start()
    server.start()  # no-op
    port = server.port
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = make_server("::1", 0, lambda: "")
        server.start()
    except OSError:
        pytest.skip("::1 not configured")
    try:
        assert fetch(f"http://[::1]:{server.port}/healthz")[::2] == (200, b"ok\n")
    finally:
        server.stop()

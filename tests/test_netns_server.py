"""tests/netns_server.py run as the script http_server() runs, on loopback (no root needed),
and stopped with netns_http.stop_process the way http_server() stops it."""
from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netns_http import SERVER_SCRIPT, stop_process


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path):
    """(port, access log) of a running server script; stopped and checked at the end."""
    port, log = _free_port(), tmp_path / "access.log"
    proc = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), "serve", "127.0.0.1", str(port),
                             str(log)], stderr=subprocess.PIPE)
    end = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < end, "server did not start"
            time.sleep(0.02)
    try:
        yield port, log
    finally:
        stop_process(proc)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
    assert proc.returncode == 0, err  # SIGTERM is a clean exit


# (method, path, body, expected status, expected JSON keys/values, raw body check)
REQUESTS = [
    ("GET", "/a?x=1", None, 200, {"method": "GET", "path": "/a?x=1", "request_bytes": 0}),
    ("POST", "/p", b'{"a": [1]}', 200, {"method": "POST", "request_bytes": 10, "echo": {"a": [1]}}),
    ("PUT", "/status/503", b"xyz", 503, {"method": "PUT", "request_bytes": 3}),
    ("DELETE", "/status/404", None, 404, {"method": "DELETE"}),
]


def test_requests_over_one_keep_alive_connection_and_the_access_log(server):
    port, log = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for method, path, body, status, expected in REQUESTS:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        doc = json.loads(response.read())
        assert response.status == status
        assert {k: doc[k] for k in expected} == expected
    conn.request("HEAD", "/h")
    head = conn.getresponse()
    assert head.status == 200 and head.read() == b""
    assert int(head.getheader("Content-Length")) > 0  # the length a GET would have had
    conn.close()
    expected_log = [f"{m} {p} {s}" for m, p, _, s, _ in REQUESTS] + ["HEAD /h 200"]
    end = time.monotonic() + 5  # a line is logged just after its response is sent
    while len(lines := log.read_text().splitlines()) < len(expected_log):
        assert time.monotonic() < end, lines
        time.sleep(0.01)
    assert lines == expected_log


def test_chunked_and_padded_bodies(server):
    port, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/c?chunked=1&bytes=3000")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    doc = json.loads(response.read())
    assert len(doc["pad"]) == 3000
    conn.request("GET", "/n?bytes=10")
    plain = conn.getresponse()
    assert plain.getheader("Transfer-Encoding") is None
    assert json.loads(plain.read())["pad"] == "x" * 10
    conn.close()


def test_stop_process_kills_what_ignores_the_signal():
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " print(1, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"1\n"  # handler installed
    stop_process(proc, signal.SIGTERM, timeout_s=0.3)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

"""Live capture with the real pipeline: namespaces, veth links, real servers and clients.

Each test builds its own network (tests/netns.py), runs ``network-sniffer`` as a real
process capturing on a real interface with libpcap, drives traffic with curl or tcpreplay,
stops the sniffer with SIGTERM and checks what came out, field for field.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.endpoint import CaptureEndpoint
from tests.helpers import C2S, CLIENT, S2C, conversation
from tests.netns import Namespace, curl, http_server, skip_unless_live, two_hosts, veth_pair
from tests.pcapgen import write_pcap

pytestmark = [pytest.mark.live, pytest.mark.slow]
SNIFFER = [sys.executable, "-m", "sniffer"]
ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def sniffer(ns: Namespace | None, args: list[str], tmp: Path, env: dict[str, str] | None = None
            ) -> Iterator[dict]:
    """Run the sniffer (in ``ns`` or the root namespace) until the block ends, then SIGTERM.

    Yields a dict that receives ``rc`` and ``stderr`` after the stop, and ``pid`` at once.
    """
    err_path = tmp / f"sniffer-{time.monotonic_ns()}.err"
    err = open(err_path, "wb")
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    argv = [*SNIFFER, *args]
    if ns is None:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=full_env,
                                cwd=tmp)
    else:
        proc = ns.popen(*argv, stdout=subprocess.DEVNULL, stderr=err, env=full_env, cwd=tmp)
    result: dict = {"pid": proc.pid, "err_path": err_path}
    try:
        deadline = time.monotonic() + 30
        while b"capturing on" not in err_path.read_bytes():
            assert proc.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, "sniffer did not start capturing"
            time.sleep(0.1)
        time.sleep(0.3)
        yield result
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            result["rc"] = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            result["rc"] = proc.wait(timeout=10)
        err.close()
        result["stderr"] = err_path.read_text()


def calls(path: Path) -> list[dict[str, str]]:
    return [dict(json.loads(line)) for line in path.read_text().splitlines()]


def shm_of(pid: int) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"snfring-{pid}-")]


def test_two_workers_capture_every_call_field_for_field(tmp_path: Path) -> None:
    skip_unless_live()
    with two_hosts("lvf") as (cli, srv, link), http_server(srv, link.addr_b, 8080) as server:
        out = tmp_path / "calls.jsonl"
        base = f"http://{link.addr_b}:8080"
        sent: list[tuple[str, str, str, bytes]] = []
        with sniffer(srv, ["run", "-i", link.if_b, "--workers", "2", "--ports", "8080",
                           "-o", str(out), "--rules", "include debug"], tmp_path) as run:
            for i in range(12):
                url = f"{base}/items/{i}?page={i}"
                body = curl(cli, url).stdout
                sent.append(("GET", url, "", body))
                payload = json.dumps({"n": i, "name": f"item {i}"})
                body = curl(cli, "-X", "POST", "-H", "Content-Type: application/json",
                            "--data", payload, f"{base}/items").stdout
                sent.append(("POST", f"{base}/items", payload, body))
            # keep-alive: several requests on one connection
            urls = [f"{base}/ka/{i}" for i in range(5)]
            bodies = curl(cli, *urls).stdout
            for u in urls:
                sent.append(("GET", u, "", b""))
            server.wait_requests(len(sent))
            time.sleep(1.0)
        assert run["rc"] == 0, run["stderr"]
        assert shm_of(run["pid"]) == []
    got = calls(out)
    assert len(got) == len(sent)
    by_key = {(c["request_method"], c["request_url"], c.get("request_body", "")): c for c in got}
    for method, url, req_body, resp_body in sent:
        call = by_key[(method, url, req_body)]
        assert call["response_code"] == "200"
        assert call["client_ip"] == link.addr_a and call["server_port"] == "8080"
        assert call["request_header:host"] == f"{link.addr_b}:8080"
        if resp_body:
            assert call["response_body"].encode() == resp_body
    assert b"/ka/4" in bodies
    assert "packets=" in run["stderr"] and "calls=" in run["stderr"]


def test_sigterm_mid_stream_loses_no_complete_call_and_flushes_the_rest(tmp_path: Path) -> None:
    """Calls complete on the wire when SIGTERM arrives are written; a request still waiting
    for its response is reported with a note instead of vanishing."""
    skip_unless_live()
    with two_hosts("lvs") as (cli, srv, link), http_server(srv, link.addr_b, 8080):
        out = tmp_path / "calls.jsonl"
        with sniffer(srv, ["run", "-i", link.if_b, "--workers", "2", "-o", str(out),
                           "--rules", "include debug"], tmp_path) as run:
            for i in range(20):
                curl(cli, f"http://{link.addr_b}:8080/x/{i}")
            # a request whose response never comes: a raw TCP client that only sends
            hang = cli.popen(sys.executable, "-c",
                             "import socket,time;s=socket.create_connection(('%s',8080));"
                             "s.sendall(b'GET /pending HTTP/1.1\\r\\nHost: h\\r\\n"
                             "Content-Length: 100\\r\\n\\r\\npartial');time.sleep(30)"
                             % link.addr_b)
            time.sleep(1.0)
        hang.kill()
        hang.wait()
        assert run["rc"] == 0, run["stderr"]
    got = calls(out)
    urls = [c["request_url"] for c in got]
    for i in range(20):
        assert f"http://{link.addr_b}:8080/x/{i}" in urls
    pending = [c for c in got if c["request_url"].endswith("/pending")]
    assert len(pending) == 1 and pending[0]["custom_field:sniffer-note"]


def test_a_killed_worker_is_restarted_and_the_run_goes_on(tmp_path: Path) -> None:
    skip_unless_live()
    with two_hosts("lvk") as (cli, srv, link), http_server(srv, link.addr_b, 8080):
        out = tmp_path / "calls.jsonl"
        with sniffer(srv, ["run", "-i", link.if_b, "--workers", "2", "-o", str(out),
                           "--rules", "include debug"], tmp_path) as run:
            for i in range(5):
                curl(cli, f"http://{link.addr_b}:8080/before/{i}")
            time.sleep(1.5)
            text = run["err_path"].read_text()
            worker_pid = int(re.search(r"started worker-0 \(pid (\d+)\)", text).group(1))
            os.kill(worker_pid, signal.SIGKILL)
            deadline = time.monotonic() + 20
            while "worker-0 died" not in run["err_path"].read_text():
                assert time.monotonic() < deadline
                time.sleep(0.2)
            time.sleep(2.0)  # the new worker starts (forked by the fork server) and attaches
            for i in range(20):
                curl(cli, f"http://{link.addr_b}:8080/after/{i}")
            time.sleep(1.0)
        assert shm_of(run["pid"]) == []
    assert "worker_restarts=1" in run["stderr"]
    urls = [c["request_url"] for c in calls(out)]
    assert all(f"http://{link.addr_b}:8080/after/{i}" in urls for i in range(20))


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _exited(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_killed_supervisor_leaves_no_process_and_no_ring_behind(tmp_path: Path) -> None:
    """SIGKILL the supervisor (no chance to clean up): every child notices and exits, the
    fork server after them, and the resource tracker unlinks the shared-memory rings."""
    skip_unless_live()
    with two_hosts("lvo") as (cli, srv, link), http_server(srv, link.addr_b, 8080):
        out = tmp_path / "calls.jsonl"
        with sniffer(srv, ["run", "-i", link.if_b, "--workers", "2", "-o", str(out)],
                     tmp_path) as run:
            curl(cli, f"http://{link.addr_b}:8080/x")
            text = run["err_path"].read_text()
            children = [int(p) for p in re.findall(r"started \S+ \(pid (\d+)\)", text)]
            servers = {_parent_of(pid) for pid in children}
            assert len(children) == 4 and len(servers) == 1 and run["pid"] not in servers
            assert _parent_of(next(iter(servers))) == run["pid"]
            assert shm_of(run["pid"])
            os.kill(run["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 30
            while not all(map(_exited, [*children, *servers])) and time.monotonic() < deadline:
                time.sleep(0.1)
        assert run["rc"] == -signal.SIGKILL
        assert [pid for pid in [*children, *servers] if not _exited(pid)] == []
        deadline = time.monotonic() + 10
        while shm_of(run["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert shm_of(run["pid"]) == []


def test_tcpreplay_onto_a_veth_at_a_moderate_rate(tmp_path: Path) -> None:
    """A capture replayed onto an interface yields every call in it."""
    skip_unless_live()
    packets = []
    for i in range(60):
        req = b"GET /replay/%d HTTP/1.1\r\nHost: api.test\r\n\r\n" % i
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nreplay%d" % (i % 10)
        packets += conversation([(C2S, req), (S2C, resp)], client=(CLIENT[0], 30000 + i),
                                t0_ns=1_700_000_000_000_000_000 + i * 3_000_000)
    packets.sort(key=lambda p: p.ts_ns)
    pcap = tmp_path / "replay.pcap"
    write_pcap(str(pcap), packets)
    with Namespace("snf", "lvr") as ns, veth_pair(ns, None, "10.78.0.2", "10.78.0.1") as link:
        out = tmp_path / "calls.jsonl"
        with sniffer(ns, ["run", "-i", link.if_a, "--workers", "2", "-o", str(out),
                          "--rules", "include debug"], tmp_path) as run:
            subprocess.run(["tcpreplay", "-q", "--pps=2000", "-i", link.if_b, str(pcap)],
                           check=True, capture_output=True, timeout=60)
            time.sleep(1.0)
        assert run["rc"] == 0, run["stderr"]
    got = calls(out)
    assert sorted(c["request_url"] for c in got) == sorted(
        f"http://api.test/replay/{i}" for i in range(60))
    assert all(c["response_code"] == "200" for c in got)


def test_an_env_file_from_the_original_container_works_unchanged(tmp_path: Path) -> None:
    """The original .env variables (legacy names included), no subcommand, calls at the URL."""
    skip_unless_live()
    endpoint = CaptureEndpoint()
    with contextlib.ExitStack() as stack:
        stack.callback(endpoint.stop)
        srv = stack.enter_context(Namespace("srv", "lve"))
        link = stack.enter_context(veth_pair(srv, None, "10.79.0.2", "10.79.0.1"))
        stack.enter_context(http_server(srv, "10.79.0.2", 8000))
        env_file = tmp_path / ".env"
        env_file.write_text(
            f"USAGE_LOGGERS_URL={endpoint.url}\n"
            "USAGE_LOGGERS_RULES=include debug\\nallow_http_url\n"
            "APP_PORT=80,8000,3000\n"
            f"NET_DEVICE={link.if_b}\n")
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        with sniffer(None, [], tmp_path, env=env) as run:
            for i in range(10):
                subprocess.run(["curl", "-sS", "--max-time", "10", f"http://10.79.0.2:8000/e/{i}"],
                               check=True, capture_output=True, timeout=20)
            time.sleep(1.0)
        assert run["rc"] == 0, run["stderr"]
        endpoint.wait_for(10, timeout_s=10)
        got = [dict(m) for m in endpoint.messages]
    assert sorted(m["request_url"] for m in got) == sorted(
        f"http://10.79.0.2:8000/e/{i}" for i in range(10))
    assert not endpoint.rejections
    assert all(m["client_ip"] == "10.79.0.1" and m["server_port"] == "8000" for m in got)


def test_metrics_and_health_endpoints_while_running(tmp_path: Path) -> None:
    skip_unless_live()
    with two_hosts("lvm") as (cli, srv, link), http_server(srv, link.addr_b, 8080):
        out = tmp_path / "calls.jsonl"
        env = {"SNIFFER_METRICS_PORT": "19179", "SNIFFER_STATUS_INTERVAL_S": "1"}
        with sniffer(srv, ["run", "-i", link.if_b, "--workers", "2", "-o", str(out)],
                     tmp_path, env=env) as run:
            for i in range(8):
                curl(cli, f"http://{link.addr_b}:8080/m/{i}")
            time.sleep(2.5)
            health = srv.run("curl", "-sS", "-i", "http://127.0.0.1:19179/healthz").stdout
            metrics = srv.run("curl", "-sS", "http://127.0.0.1:19179/metrics").stdout.decode()
        assert run["rc"] == 0, run["stderr"]
    assert b"200" in health.split(b"\r\n")[0] and health.rstrip().endswith(b"ok")
    calls_total = re.search(r"^network_sniffer_calls_total (\d+)", metrics, re.M)
    assert calls_total and int(calls_total.group(1)) == 8
    assert 'network_sniffer_worker_up{worker="1"} 1' in metrics
    assert re.search(r"^pkts .*calls .*\| w0 ", run["stderr"], re.M)  # the status line

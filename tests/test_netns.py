"""Live tests of tests/netns.py: real namespaces, real servers, real curl, nothing left behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests import netns

pytestmark = pytest.mark.live
TAG = "ringt"


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _running(pid: int, grace_s: float = 2.0) -> bool:
    """True if ``pid`` is still a live process (zombies awaiting reaping count as gone)."""
    end = time.monotonic() + grace_s
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state in ("Z", "X"):
            return False
        if time.monotonic() > end:
            return True
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _live() -> None:
    netns.skip_unless_live()


@pytest.mark.parametrize("kind", ["python", "nginx"])
def test_curl_between_namespaces_then_nothing_left(kind: str) -> None:
    """curl in one namespace reaches a server in another over IPv4 and IPv6, keep-alive
    reuses one connection, and afterwards no namespace, interface or process remains."""
    before_ns, before_links = _namespaces(), _links()
    with netns.two_hosts(TAG) as (cli, srv, link):
        assert cli.name.startswith(netns.run_prefix(TAG)) and cli.name in _namespaces()
        with netns.http_server(srv, link.addr_b, 8080, kind=kind) as server:
            url = f"{server.url}/a"
            out = netns.curl(cli, "-v", url, url, "-d", '{"k": 1}', "-H",
                             "Content-Type: application/json")
            assert b"Re-using existing connection" in out.stderr
            server_pids = srv.pids()
            assert server_pids
            with netns.http_server(srv, link.addr6_b, 8081, kind=kind) as server6:
                out6 = netns.curl(cli, "-I", f"{server6.url}/h")
                assert out6.stdout.startswith(b"HTTP/1.1 200")
                assert server6.wait_requests(1) == 1
            assert server.wait_requests(2) == 2
            if kind == "python":
                first = json.loads(netns.curl(cli, f"{server.url}/status/404").stdout)
                assert first["method"] == "GET"
        assert link.if_a not in _links() and link.if_b not in _links()
    assert _namespaces() == before_ns
    assert _links() == before_links
    assert not [pid for pid in server_pids if _running(pid)]


def test_python_server_json_status_and_chunked() -> None:
    """The python server honours /status/<code>, ?bytes=N and ?chunked=1 over keep-alive."""
    with netns.two_hosts(TAG, v6=False) as (cli, srv, link):
        with netns.http_server(srv, link.addr_b, 9000) as server:
            res = netns.curl(cli, "-s", "-o", "/dev/null", "-w", "%{http_code}",
                             f"{server.url}/status/503", check=False)
            assert res.stdout == b"503"
            body = netns.curl(cli, "--raw", f"{server.url}/c?chunked=1&bytes=3000").stdout
            assert body.endswith(b"0\r\n\r\n") and b"\r\n3e8\r\n" in body
            post = json.loads(netns.curl(cli, "-d", '{"a": [1]}', f"{server.url}/p").stdout)
            assert post == {"method": "POST", "path": "/p", "request_bytes": 10,
                            "echo": {"a": [1]}}


def test_veth_to_root_namespace_is_removed() -> None:
    """A veth end left in the root namespace is deleted on exit."""
    with netns.Namespace("solo", TAG) as ns:
        with netns.veth_pair(ns, None, "10.78.0.1", "10.78.0.2", 30) as link:
            assert link.if_b in _links()
            ns.run("ip", "addr", "show", link.if_a)
        assert link.if_b not in _links()


def test_leftovers_of_a_crashed_run_are_cleaned() -> None:
    """A child that creates a namespace + veth + server and is SIGKILLed leaves them behind;
    cleanup_stale removes them because the owner pid is dead."""
    code = (
        "import os, sys, time\n"
        "from tests import netns\n"
        f"ns = netns.Namespace('crash', {TAG!r}).__enter__()\n"
        "ns.popen('sleep', '60')\n"
        "cm = netns.veth_pair(ns, None, '10.79.0.1', '10.79.0.2', 30)\n"
        "cm.__enter__()\n"
        "print(ns.name, flush=True)\n"
        "time.sleep(60)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE,
                             text=True)
    try:
        name = child.stdout.readline().strip()
        assert name in _namespaces()
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    leftover_links = {i for i in _links() if i.startswith(f"{TAG[:4]}-{netns._pid36(child.pid)}-")}
    assert leftover_links
    orphans = [int(p) for p in subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                              text=True).stdout.split()]
    assert orphans, "the sleep started inside the namespace should have outlived its owner"
    removed = netns.cleanup_stale(TAG)
    assert name in removed  # deleting the namespace also deletes the veth pair
    assert name not in _namespaces()
    assert not leftover_links & _links()
    assert not [pid for pid in orphans if _running(pid)]

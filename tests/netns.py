"""Network-namespace helpers for live tests (root, iproute2, curl, nginx from nginx-light).

Strategy: every live test builds its own little network out of namespaces it creates, runs
real servers and clients inside them with ``ip netns exec``, and tears everything down in
``finally`` blocks, so nothing reaches or disturbs the host network.

Names: every namespace is ``<tag>-<pid>-<name>`` and every veth end is ``<tag4>-<pid36>-<n><a|b>``
(<= 15 characters, the kernel's IFNAMSIZ limit), where ``pid`` is the test process. Two
concurrent runs therefore never collide, and ``cleanup_stale(tag)`` (called automatically the
first time a tag is used in a process) removes namespaces and veths whose owning pid is dead:
the leftovers of an earlier run that crashed or was SIGKILLed.

Cleanup: ``Namespace.__exit__`` terminates the processes it started, then SIGKILLs anything
still running inside the namespace (``ip netns pids``), then deletes it, which also deletes every
interface inside it. A veth end left in the root namespace is deleted by ``VethPair.close()``.

Typical use::

    from tests.netns import two_hosts, http_server, curl, skip_unless_live
    pytestmark = pytest.mark.live

    def test_get():
        skip_unless_live()
        with two_hosts("mytag") as (cli, srv, link):
            with http_server(srv, link.addr_b, 8080) as server:
                out = curl(cli, f"http://{link.addr_b}:8080/x")
                assert server.request_count() == 1

This file is also a script: ``python tests/netns.py serve <addr> <port> <access-log>`` is the
small JSON HTTP/1.1 server that ``http_server(kind="python")`` runs inside a namespace.
"""
from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

DEFAULT_TAG = "nt"
_veth_counter = itertools.count(1)
_cleaned_tags: set[str] = set()


def _pid36(pid: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        pid, r = divmod(pid, 36)
        out = digits[r] + out
        if pid == 0:
            return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def live_problem() -> str | None:
    """Why live tests cannot run here (not root, a tool missing), or None when they can."""
    if os.geteuid() != 0:
        return "live tests need root"
    for tool in ("ip", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


def skip_unless_live() -> None:
    """``pytest.skip`` the calling test when namespaces cannot be used here."""
    import pytest

    problem = live_problem()
    if problem:
        pytest.skip(problem)


def run_prefix(tag: str = DEFAULT_TAG) -> str:
    """The namespace-name prefix of this process for ``tag`` (``<tag>-<pid>-``)."""
    return f"{tag}-{os.getpid()}-"


def _kill_namespace(name: str) -> None:
    """SIGKILL every process inside namespace ``name``, then delete it."""
    for _ in range(50):
        pids = [int(p) for p in _ip("netns", "pids", name, check=False).stdout.split()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    _ip("netns", "del", name, check=False)


def cleanup_stale(tag: str = DEFAULT_TAG) -> list[str]:
    """Delete namespaces and root-namespace veths of ``tag`` whose owning pid is dead."""
    removed: list[str] = []
    ns_re = re.compile(rf"^{re.escape(tag)}-(\d+)-\S+")
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = ns_re.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _kill_namespace(name)
            removed.append(name)
    veth_re = re.compile(rf"^{re.escape(tag[:4])}-([0-9a-z]+)-\d+[ab]$")
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        ifname = parts[1].strip().split("@")[0]
        m = veth_re.match(ifname)
        if m and not _pid_alive(int(m.group(1), 36)):
            _ip("link", "del", ifname, check=False)
            removed.append(ifname)
    return removed


def _first_use(tag: str) -> None:
    if tag not in _cleaned_tags:
        _cleaned_tags.add(tag)
        cleanup_stale(tag)


class Namespace:
    """A network namespace owned by this test process; use as a context manager."""

    def __init__(self, name: str, tag: str = DEFAULT_TAG) -> None:
        _first_use(tag)
        self.tag = tag
        self.name = run_prefix(tag) + name
        self._procs: list[subprocess.Popen[Any]] = []
        self._open = False

    def __enter__(self) -> Namespace:
        _ip("netns", "add", self.name)
        self._open = True
        try:
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exec_argv(self, *cmd: str) -> list[str]:
        """The argv that runs ``cmd`` inside this namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(
        self, *cmd: str, check: bool = True, timeout: float = 30, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``cmd`` inside the namespace and wait; output captured as bytes."""
        return subprocess.run(
            self.exec_argv(*cmd), capture_output=True, check=check, timeout=timeout, input=input
        )

    def popen(self, *cmd: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``cmd`` inside the namespace; it is terminated when the namespace closes."""
        proc = subprocess.Popen(self.exec_argv(*cmd), **kwargs)
        self._procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        """Pids of every process currently inside the namespace."""
        return [int(p) for p in _ip("netns", "pids", self.name, check=False).stdout.split()]

    def close(self) -> None:
        """Stop the processes started here (TERM, then KILL) and delete the namespace."""
        if not self._open:
            return
        self._open = False
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 3
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        _kill_namespace(self.name)


@dataclass
class VethPair:
    """A veth link: end ``a`` in ``ns_a``, end ``b`` in ``ns_b`` (None = root namespace)."""

    ns_a: Namespace
    ns_b: Namespace | None
    if_a: str
    if_b: str
    addr_a: str
    addr_b: str
    prefix: int
    addr6_a: str | None = None
    addr6_b: str | None = None

    def close(self) -> None:
        """Delete the link (deleting one end deletes both)."""
        if self.ns_b is None:
            _ip("link", "del", self.if_b, check=False)
        elif self.ns_a._open:
            self.ns_a.run("ip", "link", "del", self.if_a, check=False)


def _in(ns: Namespace | None, *cmd: str) -> None:
    if ns is None:
        subprocess.run(list(cmd), capture_output=True, check=True, timeout=30)
    else:
        ns.run(*cmd)


@contextlib.contextmanager
def veth_pair(
    ns_a: Namespace,
    ns_b: Namespace | None,
    addr_a: str,
    addr_b: str,
    prefix: int = 24,
    addr6_a: str | None = None,
    addr6_b: str | None = None,
    prefix6: int = 64,
) -> Iterator[VethPair]:
    """Create a veth link between two namespaces with IPv4 (and optional IPv6, DAD off)."""
    base = f"{ns_a.tag[:4]}-{_pid36(os.getpid())}-{next(_veth_counter)}"
    link = VethPair(ns_a, ns_b, base + "a", base + "b", addr_a, addr_b, prefix, addr6_a, addr6_b)
    _ip("link", "add", link.if_a, "type", "veth", "peer", "name", link.if_b)
    try:
        _ip("link", "set", link.if_a, "netns", ns_a.name)
        if ns_b is not None:
            _ip("link", "set", link.if_b, "netns", ns_b.name)
        ends = ((ns_a, link.if_a, addr_a, addr6_a), (ns_b, link.if_b, addr_b, addr6_b))
        for ns, ifname, a4, a6 in ends:
            if a6 is not None:
                _in(ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.accept_dad=0")
                _in(ns, "ip", "-6", "addr", "add", f"{a6}/{prefix6}", "dev", ifname, "nodad")
            _in(ns, "ip", "addr", "add", f"{a4}/{prefix}", "dev", ifname)
            _in(ns, "ip", "link", "set", ifname, "up")
        yield link
    finally:
        link.close()


def wait_port(ns: Namespace, host: str, port: int, timeout_s: float = 10.0) -> None:
    """Block until a TCP connect to ``host:port`` from inside ``ns`` succeeds (or raise)."""
    script = (
        "import socket,sys,time\n"
        "end=time.monotonic()+float(sys.argv[3])\n"
        "while True:\n"
        "  try:\n"
        "    socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=1).close();break\n"
        "  except OSError:\n"
        "    if time.monotonic()>end: sys.exit(1)\n"
        "    time.sleep(0.02)\n"
    )
    res = ns.run(sys.executable, "-c", script, host, str(port), str(timeout_s), check=False,
                 timeout=timeout_s + 10)
    if res.returncode != 0:
        raise TimeoutError(f"{host}:{port} not accepting in {ns.name} after {timeout_s}s")


@dataclass
class Server:
    """A running HTTP server inside a namespace."""

    kind: str
    url: str
    access_log: Path
    proc: subprocess.Popen[Any]
    workdir: Path

    def request_count(self) -> int:
        """Number of requests served so far (lines in the access log)."""
        try:
            return len(self.access_log.read_text().splitlines())
        except FileNotFoundError:
            return 0

    def wait_requests(self, n: int, timeout_s: float = 5.0) -> int:
        """Wait until at least ``n`` requests are logged; returns the count seen."""
        end = time.monotonic() + timeout_s
        while (count := self.request_count()) < n and time.monotonic() < end:
            time.sleep(0.02)
        return count


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root root;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 128; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/json;
    keepalive_requests 10000;
    server {{
        listen {listen};
        location = /status/404 {{ return 404 '{{"error":"not found"}}'; }}
        location / {{ return 200 '{{"ok":true,"server":"nginx"}}'; }}
    }}
}}
"""


@contextlib.contextmanager
def http_server(
    ns: Namespace, addr: str, port: int, kind: str = "python", timeout_s: float = 10.0
) -> Iterator[Server]:
    """Run a JSON HTTP/1.1 server (``python`` or real ``nginx``) in ``ns`` until exit."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{ns.name}-{kind}-"))
    log = workdir / "access.log"
    if kind == "python":
        argv = [sys.executable, str(Path(__file__).resolve()), "serve", addr, str(port), str(log)]
    elif kind == "nginx":
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=workdir, listen=_hostport(addr, port)))
        argv = ["nginx", "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
    else:
        raise ValueError(f"unknown server kind {kind!r}")
    err = open(workdir / "stderr.log", "wb")
    proc = ns.popen(*argv, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_port(ns, addr, port, timeout_s)
        yield Server(kind, f"http://{_hostport(addr, port)}", log, proc, workdir)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT if kind == "nginx" else signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        err.close()
        shutil.rmtree(workdir, ignore_errors=True)


def curl(
    ns: Namespace, *args: str, check: bool = True, timeout_s: float = 20
) -> subprocess.CompletedProcess[bytes]:
    """Run ``curl -sS --max-time`` with ``args`` inside ``ns``; stdout/stderr as bytes."""
    return ns.run("curl", "-sS", "--max-time", str(timeout_s), *args, check=check,
                  timeout=timeout_s + 10)


@contextlib.contextmanager
def two_hosts(
    tag: str = DEFAULT_TAG, v6: bool = True, subnet: str = "10.77.0", subnet6: str = "fd77::"
) -> Iterator[tuple[Namespace, Namespace, VethPair]]:
    """A client and a server namespace joined by one veth (``.1``/``.2``, v6 ``::1``/``::2``)."""
    with Namespace("cli", tag) as cli, Namespace("srv", tag) as srv:
        with veth_pair(cli, srv, f"{subnet}.1", f"{subnet}.2", 24,
                       f"{subnet6}1" if v6 else None, f"{subnet6}2" if v6 else None) as link:
            yield cli, srv, link


# ----------------------------------------------------------------------------- python server
class _JsonHandler(http.server.BaseHTTPRequestHandler):
    """GET/POST/HEAD -> JSON describing the request; ``/status/<code>`` sets the status;
    ``?bytes=N`` pads the body to about N bytes; ``?chunked=1`` uses chunked encoding."""

    protocol_version = "HTTP/1.1"
    access_log: Path

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        status = 200
        if path.startswith("/status/") and path[8:].isdigit():
            status = int(path[8:])
        doc: dict[str, Any] = {"method": self.command, "path": self.path,
                               "request_bytes": len(body_in)}
        if body_in.startswith(b"{"):
            with contextlib.suppress(ValueError):
                doc["echo"] = json.loads(body_in)
        pad = int(params.get("bytes", "0") or 0)
        if pad:
            doc["pad"] = "x" * max(0, min(pad, 50_000_000))
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        chunked = params.get("chunked") == "1"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            if chunked:
                for i in range(0, len(body), 1000):
                    part = body[i : i + 1000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(body)
        with open(self.access_log, "a") as f:
            f.write(f"{self.command} {self.path} {status}\n")

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _reply

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


def serve(addr: str, port: int, access_log: str) -> None:
    """Serve JSON on ``addr:port`` until SIGTERM (the body of ``kind="python"``)."""
    _JsonHandler.access_log = Path(access_log)

    class _Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        daemon_threads = True

    server = _Server((addr, port), _JsonHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(f"usage: {sys.argv[0]} serve ADDR PORT ACCESS_LOG")

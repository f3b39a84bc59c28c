"""HTTP servers and clients inside a network namespace, for live tests.

Strategy: ``http_server`` runs a real server in a namespace (``python``: the JSON server of
``tests/netns_server.py``; ``nginx``: nginx with a generated config and its own temporary
directory), waits until its port accepts connections, yields a ``Server`` that counts the
requests it served (its access log), and stops it on exit (SIGTERM, or SIGQUIT for nginx, then
SIGKILL after 5 s: ``stop_process``). ``curl`` runs the real curl client inside a namespace.
Nothing here creates namespaces: that is ``tests/netns.py``, which re-exports every name.
"""
from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from tests.netns import Namespace

SERVER_SCRIPT = Path(__file__).resolve().with_name("netns_server.py")
"""The python server, run as a script inside the namespace."""


def stop_process(
    proc: subprocess.Popen[Any], sig: int | None = signal.SIGTERM, timeout_s: float = 5.0
) -> None:
    """Send ``sig`` to ``proc`` if it still runs (None: it was signalled already), wait up to
    ``timeout_s`` for it to exit, then SIGKILL it; it is reaped either way."""
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


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
        argv = [sys.executable, str(SERVER_SCRIPT), "serve", addr, str(port), str(log)]
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
        stop_process(proc, signal.SIGQUIT if kind == "nginx" else signal.SIGTERM)
        err.close()
        shutil.rmtree(workdir, ignore_errors=True)


def curl(
    ns: Namespace, *args: str, check: bool = True, timeout_s: float = 20
) -> subprocess.CompletedProcess[bytes]:
    """Run ``curl -sS --max-time`` with ``args`` inside ``ns``; stdout/stderr as bytes."""
    return ns.run("curl", "-sS", "--max-time", str(timeout_s), *args, check=check,
                  timeout=timeout_s + 10)

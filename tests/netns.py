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

Servers and clients (``http_server``, ``Server``, ``curl``, ``wait_port``, ``stop_process``)
are in ``tests/netns_http.py`` and re-exported here; the python JSON server that
``http_server(kind="python")`` runs inside a namespace is the script ``tests/netns_server.py``
(``python tests/netns_server.py serve <addr> <port> <access-log>``).
"""
from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Iterator

from tests.netns_http import (NGINX_CONF, SERVER_SCRIPT, Server, curl, http_server, stop_process,
                              wait_port)

__all__ = ["DEFAULT_TAG", "NGINX_CONF", "SERVER_SCRIPT", "Namespace", "Server", "VethPair",
           "cleanup_stale", "curl", "http_server", "live_problem", "run_prefix",
           "skip_unless_live", "stop_process", "two_hosts", "veth_pair", "wait_port"]

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
            stop_process(proc, None, max(0.05, deadline - time.monotonic()))
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


@contextlib.contextmanager
def two_hosts(
    tag: str = DEFAULT_TAG, v6: bool = True, subnet: str = "10.77.0", subnet6: str = "fd77::"
) -> Iterator[tuple[Namespace, Namespace, VethPair]]:
    """A client and a server namespace joined by one veth (``.1``/``.2``, v6 ``::1``/``::2``)."""
    with Namespace("cli", tag) as cli, Namespace("srv", tag) as srv:
        with veth_pair(cli, srv, f"{subnet}.1", f"{subnet}.2", 24,
                       f"{subnet6}1" if v6 else None, f"{subnet6}2" if v6 else None) as link:
            yield cli, srv, link

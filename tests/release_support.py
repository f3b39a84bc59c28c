"""Real stand-ins for the release test: sshd build hosts, a local registry, moto's EC2 server.

Strategy: each "EC2 build host" is a network namespace (``tests.netns``) joined to the root
namespace by a veth, running a real OpenSSH ``sshd`` that accepts one generated test key for
root. Commands over SSH run ``docker`` against the machine's engine through
/var/run/docker.sock (namespaces share the filesystem), so both hosts really build. The push
target is Debian's ``docker-registry`` on 127.0.0.1:PORT, which the engine treats as an
insecure (plain-HTTP) registry. ``docker manifest`` runs in the CLI inside a namespace, where
127.0.0.1 is the namespace's own loopback, so a ``LoopbackForwarder`` thread listens on
127.0.0.1:PORT inside the namespace (socket created after ``setns``) and relays to the
registry in the root namespace. A host can get extra programs first on its PATH (sshd
``SetEnv``) to simulate a host whose build fails. Everything is torn down in ``finally``.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.netns import Namespace, veth_pair

TAG = "rel"
CLONE_NEWNET = 0x40000000
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSHD_CONFIG = """\
Port 22
ListenAddress {addr}
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
SetEnv PATH={path} DOCKER_BUILDKIT=0
"""
REGISTRY_CONFIG = """\
version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {root}}}
  delete: {{enabled: true}}
http:
  addr: 127.0.0.1:{port}
"""


def release_problem() -> str | None:
    """Why the release test cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, sshd)"
    for tool in ("ip", "sshd", "ssh-keygen", "docker", "docker-registry", "git"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} not installed"
    return None


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ssh_keygen(path: Path) -> Path:
    """Create an ed25519 key pair at ``path`` (+ ``.pub``); returns ``path``."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, timeout=30)
    return path


@dataclass
class SshHost:
    """A namespace with sshd listening on ``addr``:22."""

    name: str
    ns: Namespace
    addr: str


@contextlib.contextmanager
def ssh_hosts(workdir: Path, names: list[str], user_key: Path,
              extra_path: dict[str, Path] | None = None) -> Iterator[dict[str, SshHost]]:
    """One sshd namespace per name on 10.231.<i>.2 (root side .1); yields name -> host."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    with contextlib.ExitStack() as stack:
        hosts: dict[str, SshHost] = {}
        for i, name in enumerate(names, start=1):
            d = workdir / f"sshd-{name}"
            d.mkdir()
            ssh_keygen(d / "host_key")
            shutil.copy(f"{user_key}.pub", d / "authorized_keys")
            addr = f"10.231.{i}.2"
            path = DEFAULT_PATH
            if extra_path and name in extra_path:
                path = f"{extra_path[name]}:{path}"
            (d / "sshd_config").write_text(SSHD_CONFIG.format(addr=addr, d=d, path=path))
            ns = stack.enter_context(Namespace(name, TAG))
            stack.enter_context(veth_pair(ns, None, addr, f"10.231.{i}.1", 24))
            log = open(d / "sshd.log", "wb")
            stack.callback(log.close)
            ns.popen("/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config"),
                     stdout=log, stderr=log)
            _wait_tcp(addr, 22)
            hosts[name] = SshHost(name, ns, addr)
        yield hosts


def _wait_tcp(addr: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((addr, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{addr}:{port} not listening after {timeout_s}s") from None
            time.sleep(0.05)


@contextlib.contextmanager
def local_registry(workdir: Path) -> Iterator[str]:
    """Debian's ``docker-registry`` on 127.0.0.1:PORT with temp storage; yields host:port."""
    port = free_port()
    cfg = workdir / "registry.yml"
    cfg.write_text(REGISTRY_CONFIG.format(root=workdir / "registry-data", port=port))
    log = open(workdir / "registry.log", "wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=log, stderr=log)
    try:
        _wait_tcp("127.0.0.1", port)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])


def registry_get(registry: str, path: str) -> tuple[str, bytes]:
    """GET ``http://registry/v2/<path>`` accepting manifest lists; (content type, body)."""
    req = urllib.request.Request(f"http://{registry}/v2/{path}",
                                 headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers.get("Content-Type", ""), resp.read()


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class LoopbackForwarder:
    """Relays 127.0.0.1:``port`` inside namespace ``ns_name`` to 127.0.0.1:``port`` here."""

    def __init__(self, ns_name: str, port: int) -> None:
        self.port = port
        self._stop = threading.Event()
        root_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        ns_fd = os.open(f"/var/run/netns/{ns_name}", os.O_RDONLY)
        try:
            _setns(ns_fd)  # only this thread moves; the socket stays in the namespace
            try:
                self._listener = socket.create_server(("127.0.0.1", port))
            finally:
                _setns(root_fd)
        finally:
            os.close(ns_fd)
            os.close(root_fd)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        """Copy bytes both ways until both sides are done or we stop; close both."""
        peers = {a: b, b: a}
        open_ends = {a, b}
        try:
            with selectors.DefaultSelector() as sel:
                for s in open_ends:
                    sel.register(s, selectors.EVENT_READ)
                while open_ends and not self._stop.is_set():
                    for key, _ in sel.select(timeout=0.5):
                        src = key.fileobj
                        assert isinstance(src, socket.socket)
                        data = src.recv(65536)
                        if data:
                            peers[src].sendall(data)
                            continue
                        sel.unregister(src)
                        open_ends.discard(src)
                        with contextlib.suppress(OSError):
                            peers[src].shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    def close(self) -> None:
        """Stop accepting and relaying."""
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)


def git_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository at ``path`` with ``files`` committed (plus an uncommitted junk file)."""
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release test"]):
        subprocess.run(["git", "-C", str(path), *cmd], check=True, env=env, timeout=60,
                       capture_output=True)
    (path / "junk-not-committed.txt").write_text("must not reach the build context\n")
    return path


def repo_snapshot(repo: Path, dest: Path) -> Path:
    """Commit a copy of ``repo``'s tracked-or-not working files (minus junk) into ``dest``."""
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache",
                                    "*.egg-info", ".hypothesis", "build", "dist")
    shutil.copytree(repo, dest, ignore=ignore)
    return git_repo_in_place(dest)


def git_repo_in_place(path: Path) -> Path:
    """Initialise and commit an existing directory as a git repository."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(["git", "-C", str(path), *cmd], check=True, env=env, timeout=120,
                       capture_output=True)
    return path


TINY_DOCKERFILE = """\
# Stand-in for the real Dockerfile when the Debian base image is not available.
FROM scratch
ARG SNIFFER_VERSION=unset
LABEL org.opencontainers.image.version=$SNIFFER_VERSION
COPY hello.txt /hello.txt
"""

FAILING_DOCKER = """#!/bin/sh
# docker wrapper of the simulated broken build host: `docker ... build ...` fails.
for a in "$@"; do
  if [ "$a" = build ]; then
    echo "step 3/7: compiling pcap extension" ; echo "error: simulated arm64 compiler crash" >&2
    exit 2
  fi
done
exec {docker} "$@"
"""


def failing_docker_bin(path: Path) -> Path:
    """A directory holding a ``docker`` that fails every build and passes the rest through."""
    path.mkdir()
    real = shutil.which("docker", path=DEFAULT_PATH)
    (path / "docker").write_text(FAILING_DOCKER.format(docker=real))
    (path / "docker").chmod(0o755)
    return path

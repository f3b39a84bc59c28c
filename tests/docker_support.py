"""Docker helpers for the container tests: start dockerd, make the base image, build, run.

Strategy: the tests use the real Docker engine of the machine. When no daemon answers, one is
started in the background (own session, log in ``DOCKERD_LOG``) and left running for later
tests and runs. No registry is reachable, so the base image is made locally by
``scripts/docker-base.sh`` (debootstrap + ``docker import``) once and then cached by name.
Builds use ``--network host`` so that pip and apt inside the build reach the package index and
the Debian mirror exactly as this machine does; a non-default pip index of this machine is
passed on as the ``PIP_INDEX_URL`` build argument.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
BASE_IMAGE = os.environ.get("SNIFFER_TEST_BASE_IMAGE", "network-sniffer-base:bookworm")
TEST_IMAGE = "network-sniffer:test"
TEST_VERSION = "9.9.9-test"
DOCKERD_LOG = Path(os.environ.get("SNIFFER_TEST_DOCKERD_LOG", "/var/log/dock-dockerd.log"))
DOCKER_SOCKET = Path("/var/run/docker.sock")


def docker(*args: str, timeout_s: float = 120, check: bool = True,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS`` and capture text output; raises with the output on failure."""
    res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout_s,
                         env=env)
    if check and res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} -> {res.returncode}\n"
                           f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def docker_problem() -> str | None:
    """Why the Docker tests cannot run here (tool missing, not root), or None."""
    for tool in ("docker", "dockerd", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install docker.io debootstrap)"
    if os.geteuid() != 0:
        return "the Docker tests start dockerd and run debootstrap: they need root"
    return None


def _daemon_answers() -> bool:
    try:
        return docker("version", "--format", "{{.Server.Version}}", timeout_s=20,
                      check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_dockerd(timeout_s: float = 60.0) -> None:
    """Start ``dockerd`` in the background unless a daemon already answers; wait for it."""
    if _daemon_answers():
        return
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    # ``setsid -f`` detaches the daemon: it outlives the tests (the next test run reuses it) and
    # no Popen object is left running for the garbage collector to warn about.
    with open(DOCKERD_LOG, "ab") as log:
        subprocess.run(["setsid", "-f", "dockerd"], stdin=subprocess.DEVNULL, stdout=log,
                       stderr=log, check=True, timeout=10)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if DOCKER_SOCKET.exists() and _daemon_answers():
            return
        if subprocess.run(["pgrep", "-x", "dockerd"], stdout=subprocess.DEVNULL).returncode:
            raise RuntimeError(f"dockerd exited; see {DOCKERD_LOG}:\n"
                               + DOCKERD_LOG.read_text(errors="replace")[-2000:])
        time.sleep(0.2)
    raise TimeoutError(f"dockerd did not answer within {timeout_s}s; see {DOCKERD_LOG}")


def image_exists(name: str) -> bool:
    """True when the local engine has an image called ``name``."""
    return docker("image", "inspect", name, check=False, timeout_s=30).returncode == 0


def ensure_base_image(name: str = BASE_IMAGE, timeout_s: float = 900) -> str:
    """Make the debootstrapped base image unless it exists already; returns its name."""
    if not image_exists(name):
        res = subprocess.run([str(REPO / "scripts" / "docker-base.sh")], capture_output=True,
                             text=True, timeout=timeout_s, env={**os.environ, "BASE_IMAGE": name})
        if res.returncode != 0:
            raise RuntimeError(f"docker-base.sh failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return name


def pip_index_url() -> str | None:
    """This machine's pip index when it is not the default and reachable over the network."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        res = subprocess.run(["pip3", "config", "get", "global.index-url"], capture_output=True,
                             text=True, timeout=30) if shutil.which("pip3") else None
        url = res.stdout.strip() if res is not None and res.returncode == 0 else None
    return url if url and not url.startswith("file:") else None


_NO_OUTPUT: subprocess.CompletedProcess[str] = subprocess.CompletedProcess([], 0, "", "")


def image_id(name: str) -> str | None:
    """The short id of image ``name``, or None when there is none."""
    res = docker("image", "inspect", "--format", "{{.Id}}", name, check=False, timeout_s=30)
    return res.stdout.strip().split(":")[-1][:12] if res.returncode == 0 else None


def build_image(tag: str = TEST_IMAGE, base: str = BASE_IMAGE, version: str = TEST_VERSION,
                timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    """``docker build`` the repository's Dockerfile (host network, stamped version).

    Afterwards the untagged images this build left (the build stage, the previous ``tag``)
    are deleted; images of other builds are not touched.
    """
    previous = image_id(tag)
    args = ["build", "--network", "host", "--force-rm", "-t", tag,
            "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"SNIFFER_VERSION={version}"]
    index = pip_index_url()
    if index:
        args += ["--build-arg", f"PIP_INDEX_URL={index}"]
    # the legacy builder: Debian's docker.io has no buildx, and the Dockerfile needs no BuildKit
    env = {**os.environ, "DOCKER_BUILDKIT": os.environ.get("DOCKER_BUILDKIT", "0")}
    res = _NO_OUTPUT
    try:
        res = docker(*args, str(REPO), timeout_s=timeout_s, env=env, check=False)
    finally:
        ours = re.findall(r"^ ---> ([0-9a-f]{12})\s*$", res.stdout, re.M)
        _remove_dangling({*ours, *([previous] if previous else [])})
    if res.returncode != 0:
        raise RuntimeError(f"docker build failed ({res.returncode}):\n{res.stdout[-4000:]}\n"
                           f"{res.stderr[-3000:]}")
    return res


def _remove_dangling(candidates: set[str]) -> None:
    """``docker rmi`` those of ``candidates`` that are untagged top-level images."""
    dangling = set(docker("images", "-q", "--filter", "dangling=true", check=False).stdout.split())
    for image in sorted(candidates & dangling):
        docker("rmi", image, check=False)


# ----------------------------------------------------------------------- running containers
def run_rm(image: str, *args: str, opts: tuple[str, ...] = (), timeout_s: float = 60
           ) -> subprocess.CompletedProcess[str]:
    """``docker run --rm [opts] image args`` (never raises on the container's exit code)."""
    return docker("run", "--rm", *opts, image, *args, check=False, timeout_s=timeout_s)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sniffer_run_problem(image: str) -> str | None:
    """Why ``network-sniffer run`` cannot be used in ``image`` yet, or None."""
    res = run_rm(image, "run", "--help")
    return None if res.returncode == 0 else (
        f"`network-sniffer run --help` fails in the image (exit {res.returncode}): "
        "the run subcommand is not there yet")


def container_down(container: str) -> str | None:
    """The container's log when it is not running (exited or restarting), else None."""
    state = docker("inspect", "--format", "{{.State.Running}} {{.State.Restarting}}",
                   container, check=False).stdout.split()
    if state == ["true", "false"]:
        return None
    res = docker("logs", container, check=False)
    return res.stdout[-3000:] + res.stderr[-3000:]


def compose_project(repo: Path, dest: Path, env_overrides: dict[str, str]) -> Path:
    """A copy of docker-compose.yml, docker/ and .env (.env.example with ``env_overrides``)."""
    shutil.copy(repo / "docker-compose.yml", dest / "docker-compose.yml")
    shutil.copytree(repo / "docker", dest / "docker")
    todo = dict(env_overrides)
    lines = []
    for line in (repo / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={todo.pop(key)}" if key in todo else line)
    lines += [f"{k}={v}" for k, v in todo.items()]
    (dest / ".env").write_text("\n".join(lines) + "\n")
    return dest


class _Healthz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


@contextlib.contextmanager
def healthz_server(port: int, status: int | None) -> Iterator[None]:
    """Serve ``GET /healthz`` -> ``status`` on 127.0.0.1:``port`` (None: nothing listens)."""
    if status is None:
        yield
        return
    server = ThreadingHTTPServer(("127.0.0.1", port), type("H", (_Healthz,), {"status": status}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""The image, built and run for real: version stamp, user and capabilities, runtime contents,
health check, size and start-up time, and live capture with ``--network host --env-file``.

The image is built once per module from the repository's Dockerfile on the locally made base
image (tests/docker_support.py) and tagged ``network-sniffer:test``; it is kept afterwards,
like the base image. Every container started here is removed again.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from urllib.parse import urlsplit
from pathlib import Path
from typing import Iterator

import pytest

from tests import docker_support as ds
from tests.helpers import compiled_modules_listed

pytestmark = [pytest.mark.docker, pytest.mark.slow]
REPO = ds.REPO
TAG = "dock"
SUBNET = "10.187.5"  # own /24 for the live test's veth


@pytest.fixture(scope="module")
def image() -> str:
    """The test image, built from the Dockerfile with SNIFFER_VERSION=9.9.9-test."""
    problem = ds.docker_problem()
    if problem:
        pytest.skip(problem)
    ds.ensure_dockerd()
    ds.ensure_base_image()
    started = time.monotonic()
    ds.build_image()
    print(f"\n[docker] build of {ds.TEST_IMAGE} on {ds.BASE_IMAGE}: "
          f"{time.monotonic() - started:.1f}s")
    return ds.TEST_IMAGE


# ------------------------------------------------------------------------- version, start-up
def test_version_is_stamped_and_start_up_is_measured(image: str) -> None:
    started = time.monotonic()
    res = ds.run_rm(image, "--version")
    elapsed_s = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ds.TEST_VERSION
    label = ds.docker("image", "inspect", "--format",
                      '{{index .Config.Labels "org.opencontainers.image.version"}}', image)
    assert label.stdout.strip() == ds.TEST_VERSION
    print(f"\n[docker] start-up: `docker run --rm {image} --version` took {elapsed_s:.2f}s")


def test_image_size_is_base_plus_runtime_only(image: str) -> None:
    size = int(ds.docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    base = int(ds.docker("image", "inspect", "--format", "{{.Size}}", ds.BASE_IMAGE).stdout)
    print(f"\n[docker] image {size / 1e6:.0f} MB = base {base / 1e6:.0f} MB "
          f"+ {(size - base) / 1e6:.0f} MB")
    # the venv (numpy is most of it) plus libpcap and tini; a compiler or the build venv
    # in the runtime stage would add well over 100 MB
    assert size - base < 130e6


# ---------------------------------------------------------------------- user and capabilities
def test_runs_as_non_root_with_net_raw_file_capability(image: str) -> None:
    user = ds.docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    assert user == "sniffer"
    res = ds.run_rm(image, "-c", "id -u; getcap /opt/venv/bin/python3.* /usr/bin/python3.*",
                    opts=("--entrypoint", "sh"))
    uid, *caps = [line for line in res.stdout.splitlines() if line.strip()]
    assert uid == "10001"
    # only the venv's interpreter carries the capability, not the base image's python
    assert len(caps) == 1, res.stdout
    assert caps[0].startswith("/opt/venv/bin/python3.") and caps[0].endswith(" cap_net_raw=eip")


CAPTURE_SNIPPET = """
import os, socket, pcap
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
port = srv.getsockname()[1]
p = pcap.pcap(name="lo", promisc=True, immediate=True, timeout_ms=100)
p.setfilter("tcp port %d" % port)
c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"GET / HTTP/1.1\\r\\n\\r\\n")
got = []
for _ in range(50):
    p.dispatch(-1, lambda ts, pkt: got.append(len(pkt)))
    if len(got) >= 3:
        break
print("uid=%d captured=%d" % (os.getuid(), min(len(got), 3)))
"""


@pytest.mark.parametrize("opts, expected", [
    # Docker's default capability set has NET_RAW: nothing to add
    ((), "uid=10001 captured=3"),
    # the documented minimum: only NET_RAW (NET_ADMIN is accepted and not needed)
    (("--cap-drop", "ALL", "--cap-add", "NET_RAW"), "uid=10001 captured=3"),
    (("--cap-drop", "ALL", "--cap-add", "NET_RAW", "--cap-add", "NET_ADMIN"),
     "uid=10001 captured=3"),
    # without NET_RAW the kernel refuses to exec a file whose capability it cannot grant
    (("--cap-drop", "NET_RAW"), "operation not permitted"),
    # no-new-privileges disables file capabilities: capture fails (use --user 0 there)
    (("--security-opt", "no-new-privileges"), "Operation not permitted"),
])
def test_live_capture_as_non_root(image: str, opts: tuple[str, ...], expected: str) -> None:
    res = ds.run_rm(image, "-c", CAPTURE_SNIPPET,
                    opts=("--network", "host", "--entrypoint", "python3", *opts))
    assert expected in res.stdout + res.stderr, (res.stdout, res.stderr[-1500:])
    assert (res.returncode == 0) == expected.startswith("uid=")


# ------------------------------------------------------------------------------- contents
@pytest.mark.parametrize("command, expected", [
    ("command -v gcc cc cython pip pip3 || echo none", "none"),
    ("test -e /opt/buildenv || echo no-buildenv", "no-buildenv"),
    ("ls /usr/lib/*-linux-gnu/ | grep -c '^libpcap.so.0.8$'", "1"),
    ("test -e /usr/include/pcap.h || echo no-headers", "no-headers"),
    ("stat -c %U /var/lib/network-sniffer", "sniffer"),
])
def test_runtime_stage_has_runtime_parts_only(image: str, command: str, expected: str) -> None:
    res = ds.run_rm(image, "-c", command, opts=("--entrypoint", "sh"))
    assert res.stdout.strip().splitlines()[-1:] == [expected], (res.stdout, res.stderr)


def test_runtime_has_the_package_and_every_install_requirement(image: str) -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    wanted = sorted(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower()
                    for r in cfg["options"]["install_requires"].split() if r)
    script = ("import importlib.metadata as m, pcap, sniffer, workers\n"
              "names = [m.distribution(n).metadata['Name'].lower() for n in %r]\n"
              "print(' '.join(names))" % wanted)
    res = ds.run_rm(image, "-c", script, opts=("--entrypoint", "python3"))
    assert res.returncode == 0, res.stderr[-1500:]
    assert sorted(res.stdout.split()) == wanted


def test_the_image_runs_the_hot_path_compiled(image: str) -> None:
    script = ("import sniffer, sniffer.codec, workers.core, workers.http1, workers.scan\n"
              "print(sniffer.build_description(), workers.core.__file__.endswith('.so'),"
              " workers.http1.__file__.endswith('.so'), workers.scan.ACCELERATED,"
              " sniffer.codec.ITEMS_ACCELERATED)")
    res = ds.run_rm(image, "-c", script, opts=("--entrypoint", "python3"))
    assert res.returncode == 0, res.stderr[-1500:]
    n = len(compiled_modules_listed())
    assert res.stdout.split() == ["hot", "path", "compiled", f"({n}", "modules", "+", "2", "C",
                                  "helpers)", "True", "True", "True", "True"]


# ------------------------------------------------------------------------------ health check
@pytest.mark.parametrize("server_status, port_env, healthy", [
    (200, "port", True),
    (503, "port", False),
    (None, "port", False),     # nothing listening
    (None, "", True),          # SNIFFER_METRICS_PORT empty: endpoint off, nothing to check
])
def test_healthcheck_command_asks_healthz(image: str, server_status: int | None,
                                          port_env: str, healthy: bool) -> None:
    test = ds.docker("image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}", image)
    argv = json.loads(test.stdout)
    assert argv[0] == "CMD" and "/healthz" in argv[-1]
    port = ds.free_port()
    with ds.healthz_server(port, server_status):
        env = f"SNIFFER_METRICS_PORT={port if port_env else ''}"
        res = ds.run_rm(image, *argv[2:],
                        opts=("--network", "host", "-e", env, "--entrypoint", argv[1]))
    assert (res.returncode == 0) == healthy, res.stderr[-800:]


# ------------------------------------------------------------------------ compose and .env
def test_env_example_is_read_by_the_sniffers_env_parser() -> None:
    from sniffer.config_env import read_env_file

    values = read_env_file((REPO / ".env.example").read_text().splitlines())
    assert values["USAGE_LOGGERS_RULES"] == "include debug\\nallow_http_url"
    assert values["APP_PORTS"] == "8000" and values["NET_DEVICE"] == "sniffdemo0"


@pytest.mark.live
def test_compose_example_runs_api_and_sniffer(image: str, tmp_path: Path) -> None:
    """docker-compose.yml as the README uses it, on the test image and the local base."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    from tests.endpoint import CaptureEndpoint

    endpoint = CaptureEndpoint()
    api_port = ds.free_port()
    project = ds.compose_project(REPO, tmp_path, {
        "USAGE_LOGGERS_URL": endpoint.url, "SNIFFER_METRICS_PORT": str(ds.free_port())})
    env = {**os.environ, "BASE_IMAGE": ds.BASE_IMAGE, "SNIFFER_TAG": "test",
           "API_PORT": str(api_port), "COMPOSE_PROJECT_NAME": f"{TAG}{os.getpid()}"}

    def compose(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker-compose", *args], cwd=project, env=env, text=True,
                              capture_output=True, timeout=timeout_s)

    try:
        up = compose("up", "-d", "--no-build")
        assert up.returncode == 0, up.stderr[-2000:]
        body = b""
        for _ in range(100):  # the API container needs a moment to listen
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/hello", timeout=2) as r:
                    body = r.read()
                break
            except OSError:
                time.sleep(0.1)
        assert b'"path": "/hello"' in body
        why_not = ds.sniffer_run_problem(image)
        if why_not:
            pytest.skip(why_not)
        sniffer = compose("ps", "-q", "sniffer").stdout.strip()
        for i in range(60):  # until the sniffer captures: bounded
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/compose/{i}",
                                        timeout=2) as r:
                r.read()
            if endpoint.wait_for(1, 1.0):
                break
            if i >= 3 and (logs := ds.container_down(sniffer)) is not None:
                pytest.fail(f"the sniffer container is not running:\n{logs}")
        urls = [dict(m).get("request_url", "") for m in endpoint.messages]
        assert any("/compose/" in u for u in urls), (urls, compose("logs").stdout[-3000:])
    finally:
        down = compose("down", "-v", "--remove-orphans")
        endpoint.stop()
        assert down.returncode == 0, down.stderr[-1000:]


# ------------------------------------------------------------------------------- end to end
@pytest.fixture
def served_veth() -> Iterator[tuple[str, str]]:
    """A server namespace behind a veth whose other end is in the root namespace.

    Yields (root-side interface name, server URL). Traffic between the root namespace and the
    server namespace crosses that interface, where the container (host network) captures it.
    """
    from tests import netns

    netns.skip_unless_live()
    with netns.Namespace("srv", TAG) as srv:
        with netns.veth_pair(srv, None, f"{SUBNET}.2", f"{SUBNET}.1") as link:
            with netns.http_server(srv, f"{SUBNET}.2", 18080) as server:
                yield link.if_b, server.url


@pytest.mark.live
def test_captures_calls_with_host_network_and_env_file(
        image: str, served_veth: tuple[str, str], tmp_path: Path) -> None:
    why_not = ds.sniffer_run_problem(image)
    if why_not:
        pytest.skip(why_not)
    from tests.endpoint import CaptureEndpoint

    device, server_url = served_veth
    endpoint = CaptureEndpoint()
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"USAGE_LOGGERS_URL={endpoint.url}\n"
        "USAGE_LOGGERS_RULES=include debug\n"
        "APP_PORTS=18080\n"
        f"NET_DEVICE={device}\n"
        f"SNIFFER_METRICS_PORT={ds.free_port()}\n")  # not the image's 9179: host network
    name = f"{TAG}-e2e-{os.getpid()}"
    ds.docker("run", "-d", "--name", name, "--network", "host", "--cap-add", "NET_RAW",
              "--cap-add", "NET_ADMIN", "--env-file", str(env_file), image)
    try:
        for i in range(60):  # requests until the first call arrives: the capture is up
            with urllib.request.urlopen(f"{server_url}/warmup/{i}", timeout=5) as r:
                r.read()
            if endpoint.wait_for(1, 1.0):
                break
            if (logs := ds.container_down(name)) is not None:
                pytest.fail(f"the sniffer container stopped:\n{logs}")
        paths = [f"/e2e/{n}" for n in range(5)]
        for path in paths:
            with urllib.request.urlopen(f"{server_url}{path}", timeout=5) as r:
                assert r.status == 200
                r.read()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            calls = {urlsplit(dict(m).get("request_url", "")).path: dict(m)
                     for m in endpoint.messages}
            if all(p in calls for p in paths):
                break
            endpoint.wait_for(len(endpoint.messages) + 1, 1.0)
        logs = ds.docker("logs", name, check=False).stderr[-3000:]
        for path in paths:
            call = calls.get(path)
            assert call is not None, (path, sorted(calls), logs)
            assert call["request_method"] == "GET" and call["response_code"] == "200"
    finally:
        ds.docker("rm", "-f", name, check=False)
        endpoint.stop()


def test_container_becomes_healthy(image: str, tmp_path: Path) -> None:
    """The image's HEALTHCHECK turns the container healthy once /healthz answers 200."""
    why_not = ds.sniffer_run_problem(image)
    if why_not:
        pytest.skip(why_not)
    from tests.endpoint import CaptureEndpoint

    endpoint = CaptureEndpoint()
    metrics_port = ds.free_port()
    env_file = tmp_path / ".env"
    env_file.write_text(f"USAGE_LOGGERS_URL={endpoint.url}\nNET_DEVICE=lo\n"
                        f"APP_PORTS={ds.free_port()}\nSNIFFER_METRICS_PORT={metrics_port}\n")
    name = f"{TAG}-health-{os.getpid()}"
    ds.docker("run", "-d", "--name", name, "--network", "host", "--env-file", str(env_file),
              "--health-interval", "1s", "--health-start-period", "1s", image)
    try:
        health = ""
        for _ in range(150):  # up to ~30 s: start-up plus a few 1 s health intervals
            if (logs := ds.container_down(name)) is not None:
                pytest.fail(f"the sniffer container stopped:\n{logs}")
            health = ds.docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout
            if health.strip() not in ("", "starting"):
                break
            time.sleep(0.2)
        assert health.strip() == "healthy", ds.docker("logs", name, check=False).stderr[-3000:]
    finally:
        ds.docker("rm", "-f", name, check=False)
        endpoint.stop()

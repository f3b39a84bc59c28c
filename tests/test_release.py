"""End to end: ``fab build:TAG,VERSION`` against moto's EC2, sshd hosts, Docker and a registry.

The real task runs as ``python -m deploy`` (our ``fab``) in a subprocess. AWS calls go to
moto's EC2/SSM server; the two "instances" are network namespaces running real sshd, mapped
to the moto instances by ``connect_host``; both build with the machine's real Docker engine
(both are x86-64, so the arm64 host is configured to expect ``uname -m`` = x86_64); pushes go
to Debian's docker-registry, whose HTTP API is then read to check the manifest list. The
real Dockerfile is built when the debootstrapped base image exists, else a tiny one.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
import yaml

from tests import release_support as rs

pytestmark = [pytest.mark.release, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
TAG = "1.2.4"
VERSION = "1.3.6-Resurface"
REPOSITORY = "sniffer-test/network-sniffer"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Docker, moto, the registry and the user key (hosts are made per test)."""
    problem = rs.release_problem()
    if problem:
        pytest.skip(problem)
    from moto.server import ThreadedMotoServer

    from tests import docker_support

    docker_support.ensure_dockerd()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=rs.free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto's backends live in this process and outlive a server: start from an empty world
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset",
                                                  method="POST"), timeout=30).close()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    env.pop("AWS_PROFILE", None)
    ec2 = boto3.client("ec2", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    try:
        with rs.local_registry(tmp_path) as registry:
            yield {"tmp": tmp_path, "env": env, "ec2": ec2, "registry": registry,
                   "key": rs.ssh_keygen(tmp_path / "user_key"), "docker": docker_support}
    finally:
        server.stop()


def build_context(world: dict[str, Any], real: bool) -> tuple[Path, dict[str, Any]]:
    """The repository to release and the config that goes with it."""
    ds = world["docker"]
    if real and (REPO / "Dockerfile").exists() and ds.image_exists(ds.BASE_IMAGE) \
            and not os.environ.get("SNIFFER_RELEASE_TEST_TINY"):
        print(f"release test: building the real Dockerfile on base {ds.BASE_IMAGE}")
        extra: dict[str, Any] = {"base_image": ds.BASE_IMAGE,
                                 "docker_build_flags": ["--network", "host"]}
        if ds.pip_index_url():
            extra["build_args"] = {"PIP_INDEX_URL": ds.pip_index_url()}
        return rs.repo_snapshot(REPO, world["tmp"] / "ctx"), extra
    print("release test: base image or Dockerfile missing (or tiny asked): tiny Dockerfile")
    files = {"Dockerfile": rs.TINY_DOCKERFILE + "COPY . /ctx/\n", "hello.txt": "hi\n"}
    return rs.git_repo(world["tmp"] / "ctx", files), {}


def release_config(world: dict[str, Any], hosts: dict[str, rs.SshHost], context: Path,
                   mode: str, extra: dict[str, Any], ids: dict[str, str] | None = None) -> Path:
    """The ``fab -f`` runtime config: moto-friendly AWS settings, test hosts, local registry."""
    ids = ids or {}
    cfg = {"deploy": {
        "mode": mode, "context_dir": str(context),
        "registry": {"server": world["registry"], "repository": REPOSITORY,
                     "anonymous": True, "insecure": True},
        "aws": {"ssh_cidr": "10.231.0.0/16", "poll_s": 0.2, "running_timeout_s": 60,
                "ssh_timeout_s": 30, "name_prefix": "rel-test"},
        "ssh": {"user": "root", "key_file": str(world["key"])},
        "cleanup": {"prune_build_cache": False},  # the engine is shared with other tests
        "hosts": {name: {"connect_host": h.addr, "machine": "x86_64",
                         "instance_id": ids.get(name, "")} for name, h in hosts.items()},
        **extra}}
    path = world["tmp"] / "release.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_fab(world: dict[str, Any], cfg: Path, *words: str) -> subprocess.CompletedProcess[str]:
    """``python -m deploy -f cfg WORDS`` from the repository root; output echoed."""
    res = subprocess.run([sys.executable, "-m", "deploy", "-f", str(cfg), *words], cwd=REPO,
                         env=world["env"], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=1500)
    print(res.stdout, res.stderr, sep="\n")
    return res


@pytest.fixture
def forwarders(world: dict[str, Any]) -> Iterator[list[rs.LoopbackForwarder]]:
    """Collects forwarders started by a test and closes them."""
    started: list[rs.LoopbackForwarder] = []
    yield started
    for f in started:
        f.close()


def hosts_with_registry(world: dict[str, Any], stack: Any, forwarders: list[Any],
                        extra_path: dict[str, Path] | None = None) -> dict[str, rs.SshHost]:
    hosts = stack.enter_context(rs.ssh_hosts(world["tmp"], ["amd64", "arm64"], world["key"],
                                             extra_path))
    port = int(world["registry"].rsplit(":", 1)[1])
    for h in hosts.values():
        forwarders.append(rs.LoopbackForwarder(h.ns.name, port))
    return hosts


def assert_aws_clean(world: dict[str, Any], final_state: str) -> None:
    ec2 = world["ec2"]
    states = [i["State"]["Name"] for r in ec2.describe_instances()["Reservations"]
              for i in r["Instances"]]
    assert states and set(states) == {final_state}
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    groups = [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]]
    assert [g for g in groups if g.startswith("rel-test")] == []


def local_tag_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                          timeout=60).returncode == 0


def test_release_publishes_a_two_platform_manifest_list_and_cleans_up(world, forwarders):
    """fab build:TAG,VERSION in launch mode: both hosts build, push, publish, then terminate."""
    with contextlib.ExitStack() as stack:
        hosts = hosts_with_registry(world, stack, forwarders)
        context, extra = build_context(world, real=True)
        cfg = release_config(world, hosts, context, "launch", extra)
        res = run_fab(world, cfg, f"build:{TAG},{VERSION}")
    assert res.returncode == 0, res.stderr
    assert "build natively on all hosts in parallel" in res.stdout

    reg = world["registry"]
    ctype, body = rs.registry_get(reg, f"{REPOSITORY}/manifests/{TAG}")
    assert ctype == "application/vnd.docker.distribution.manifest.list.v2+json"
    listing = json.loads(body)
    platforms = {(m["platform"]["os"], m["platform"]["architecture"]): m["digest"]
                 for m in listing["manifests"]}
    assert set(platforms) == {("linux", "amd64"), ("linux", "arm64")}
    for arch in ("amd64", "arm64"):
        ctype, body = rs.registry_get(reg, f"{REPOSITORY}/manifests/{TAG}-{arch}")
        manifest = json.loads(body)
        assert ctype == "application/vnd.docker.distribution.manifest.v2+json"
        _, config = rs.registry_get(reg, f"{REPOSITORY}/blobs/{manifest['config']['digest']}")
        labels = json.loads(config)["config"]["Labels"]
        assert labels["org.opencontainers.image.version"] == VERSION
    if not extra:  # tiny image: its one layer is the build context, which is git HEAD only
        _, layer = rs.registry_get(reg, f"{REPOSITORY}/blobs/{manifest['layers'][-1]['digest']}")
        names = tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))).getnames()
        assert "ctx/hello.txt" in names and "ctx/junk-not-committed.txt" not in names

    assert_aws_clean(world, "terminated")
    assert "cleaned: delete key pair" in res.stdout
    for arch in ("amd64", "arm64"):
        assert not local_tag_exists(f"{reg}/{REPOSITORY}:{TAG}-{arch}")
    assert not list(Path("/tmp").glob("rel-test-*"))


@pytest.mark.parametrize("mode", ["launch", "existing"])
def test_failed_arm64_build_still_cleans_everything(world, forwarders, mode):
    """The arm64 host's build fails: error names arm64 with the log tail; all is cleaned."""
    ids: dict[str, str] = {}
    if mode == "existing":
        ec2 = world["ec2"]
        for name, itype in (("amd64", "c7i.large"), ("arm64", "c7g.large")):
            inst = ec2.run_instances(ImageId="ami-03c3da4cfa8e8943a", InstanceType=itype,
                                     MinCount=1, MaxCount=1)["Instances"][0]
            ids[name] = inst["InstanceId"]
        ec2.stop_instances(InstanceIds=list(ids.values()))
    with contextlib.ExitStack() as stack:
        broken = rs.failing_docker_bin(world["tmp"] / "broken-bin")
        hosts = hosts_with_registry(world, stack, forwarders, {"arm64": broken})
        context, extra = build_context(world, real=False)
        cfg = release_config(world, hosts, context, mode, extra, ids)
        res = run_fab(world, cfg, f"build:{TAG},{VERSION}")
    assert res.returncode == 1
    assert "docker build failed on the arm64 host" in res.stderr
    assert "simulated arm64 compiler crash" in res.stderr
    assert_aws_clean(world, "terminated" if mode == "launch" else "stopped")
    assert not local_tag_exists(f"{world['registry']}/{REPOSITORY}:{TAG}-amd64")
    assert not list(Path("/tmp").glob("rel-test-*"))
    with pytest.raises(urllib.error.HTTPError):
        rs.registry_get(world["registry"], f"{REPOSITORY}/manifests/{TAG}")

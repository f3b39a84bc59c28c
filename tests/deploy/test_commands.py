"""Exact command strings: every shell command of the release is pinned here."""
from __future__ import annotations

import pytest

from deploy import commands as c

CFG = "/tmp/w/docker-config"

CASES = [
    ("git_archive", c.git_archive(".", "/tmp/a.tar.gz"),
     "git -C . archive --format=tar.gz -o /tmp/a.tar.gz HEAD"),
    ("git_archive quotes", c.git_archive("/my repo", "/tmp/a b.tgz", "v1"),
     "git -C '/my repo' archive --format=tar.gz -o '/tmp/a b.tgz' v1"),
    ("git_describe", c.git_describe("."), "git -C . rev-parse --short HEAD"),
    ("uname", c.uname_machine(), "uname -m"),
    ("docker version", c.docker_server_version(CFG),
     "docker --config /tmp/w/docker-config version --format '{{.Server.Version}}'"),
    ("make_workdir", c.make_workdir("/tmp/w"),
     "mkdir -p -m 700 /tmp/w/context /tmp/w/docker-config"),
    ("unpack", c.unpack_context("/tmp/w/c.tgz", "/tmp/w"),
     "tar -xzf /tmp/w/c.tgz -C /tmp/w/context"),
    ("login reads stdin", c.docker_login(CFG, "docker.io", "bob"),
     "docker --config /tmp/w/docker-config login --username bob --password-stdin docker.io"),
    ("build", c.docker_build(CFG, "/tmp/w/context", "r/n:1.2.4-arm64", "Dockerfile",
                             {"SNIFFER_VERSION": "1.3.6-Resurface", "BASE_IMAGE": "deb:12"},
                             ("--network", "host")),
     "docker --config /tmp/w/docker-config build -f /tmp/w/context/Dockerfile -t r/n:1.2.4-arm64"
     " --build-arg BASE_IMAGE=deb:12 --build-arg SNIFFER_VERSION=1.3.6-Resurface"
     " --network host /tmp/w/context"),
    ("build quotes hostile values", c.docker_build(CFG, "/c", "i:t", "D", {"X": "a b;rm -rf /"}),
     "docker --config /tmp/w/docker-config build -f /c/D -t i:t --build-arg 'X=a b;rm -rf /' /c"),
    ("push", c.docker_push(CFG, "r/n:1-amd64"),
     "docker --config /tmp/w/docker-config push r/n:1-amd64"),
    ("manifest create", c.manifest_create(CFG, "r/n:1", ["r/n:1-amd64", "r/n:1-arm64"], False),
     "docker --config /tmp/w/docker-config manifest create --amend r/n:1 r/n:1-amd64 r/n:1-arm64"),
    ("manifest create insecure", c.manifest_create(CFG, "h:5/n:1", ["h:5/n:1-amd64"], True),
     "docker --config /tmp/w/docker-config manifest create --insecure --amend h:5/n:1"
     " h:5/n:1-amd64"),
    ("annotate", c.manifest_annotate(CFG, "r/n:1", "r/n:1-arm64", "linux/arm64"),
     "docker --config /tmp/w/docker-config manifest annotate --os linux --arch arm64"
     " r/n:1 r/n:1-arm64"),
    ("annotate variant", c.manifest_annotate(CFG, "r/n:1", "r/n:1-arm", "linux/arm/v7"),
     "docker --config /tmp/w/docker-config manifest annotate --os linux --arch arm --variant v7"
     " r/n:1 r/n:1-arm"),
    ("manifest push", c.manifest_push(CFG, "r/n:1", False),
     "docker --config /tmp/w/docker-config manifest push --purge r/n:1"),
    ("manifest inspect insecure", c.manifest_inspect(CFG, "r/n:1", True),
     "docker --config /tmp/w/docker-config manifest inspect --insecure r/n:1"),
    ("remove images", c.remove_images(CFG, ["r/n:1-amd64"]),
     "docker --config /tmp/w/docker-config image rm --force r/n:1-amd64 || true"),
    ("prune", c.prune_build_cache(CFG),
     "docker --config /tmp/w/docker-config image prune --force >/dev/null; "
     "docker --config /tmp/w/docker-config builder prune --force >/dev/null; true"),
    ("rm workdir", c.remove_workdir("/tmp/w"), "rm -rf /tmp/w"),
    ("cloud-init", c.wait_cloud_init(),
     "if command -v cloud-init >/dev/null; then cloud-init status --wait >/dev/null; fi; true"),
]


@pytest.mark.parametrize("got,expected", [(g, e) for _, g, e in CASES], ids=[n for n, *_ in CASES])
def test_command_string_is_exact(got, expected):
    assert got == expected


def test_no_command_ever_carries_a_password():
    """Only the login command mentions credentials, and only the user name and stdin."""
    login = c.docker_login(CFG, "r.example", "u")
    assert "--password-stdin" in login and "--password " not in login and " -p " not in login

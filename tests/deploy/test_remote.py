"""HostSession: checks, login through stdin, failure messages, cleanup that never raises."""
from __future__ import annotations

import io
import json

import pytest
from invoke import Result

from deploy.credentials import Credentials
from deploy.errors import ReleaseError
from deploy.remote import HostSession, manifest_platforms, missing_platforms, tail
from deploy.report import Reporter
from deploy.settings import HostSpec
from tests.deploy.fakes import ScriptedConnection

SPEC = HostSpec("arm64", "linux/arm64", "aarch64", "", "c7g.large", "/p", "")


def session(rules=(), dry=False):
    conn = ScriptedConnection("arm64", rules)
    out = Reporter(dry_run=dry, stream=io.StringIO())
    return HostSession(SPEC, "10.0.0.2", None if dry else conn, "/tmp/w", out), conn, out


def test_prepare_accepts_the_expected_machine():
    s, conn, out = session([(r"uname", Result(stdout="aarch64\n")),
                            (r"version", Result(stdout="25.0.8\n"))])
    s.prepare(wait_boot=False)
    assert "arm64: aarch64, Docker 25.0.8" in out.stream.getvalue()


def test_a_host_of_the_wrong_architecture_is_refused():
    s, _, _ = session([(r"uname", Result(stdout="x86_64\n"))])
    with pytest.raises(ReleaseError, match="should build linux/arm64 but is 'x86_64'"):
        s.prepare(wait_boot=False)


def test_docker_missing_is_reported_with_its_output():
    s, _, _ = session([(r"uname", Result(stdout="aarch64\n")),
                       (r"version", Result(stderr="docker: command not found", exited=127))])
    with pytest.raises(ReleaseError, match="checking Docker failed on the arm64 host 10.0.0.2 "
                                           r"\(exit 127\)(.|\n)*command not found"):
        s.prepare(wait_boot=False)


def test_first_boot_wait_reconnects_for_the_docker_group():
    s, conn, _ = session([(r"uname", Result(stdout="aarch64\n"))])
    s.prepare(wait_boot=True)
    assert conn.closed == 1 and "cloud-init status --wait" in conn.log[0][1]


def test_login_sends_the_password_on_stdin_only():
    s, conn, out = session()
    s.login("docker.io", Credentials("bob", "hunter2"))
    (cmd, sent), = conn.stdin.items()
    assert sent == "hunter2\n" and "hunter2" not in cmd
    assert "hunter2" not in out.stream.getvalue()


def test_failed_build_names_the_arch_and_shows_the_tail():
    log = "\n".join(f"line {i}" for i in range(100))
    s, _, _ = session([(r" build ", Result(stdout=log, exited=1))])
    with pytest.raises(ReleaseError) as err:
        s.build_and_push("r/n:1-arm64", "Dockerfile", {"SNIFFER_VERSION": "1.2"}, ())
    text = str(err.value)
    assert text.startswith("docker build failed on the arm64 host")
    assert "line 99" in text and "line 70" in text and "line 69" not in text


def test_cleanup_reports_failures_and_goes_on():
    s, conn, out = session([(r"image rm", RuntimeError("ssh dropped"))])
    s.images.append("r/n:1-arm64")
    done = s.cleanup(prune=True)
    assert done == ["arm64: removed dangling images and build cache",
                    "arm64: removed work directory /tmp/w (context, login)"]
    assert "FAILED to remove images r/n:1-arm64 on arm64: ssh dropped" in out.stream.getvalue()
    assert conn.closed == 1


def test_dry_run_prints_and_touches_nothing():
    s, conn, out = session(dry=True)
    s.prepare(wait_boot=True)
    s.upload("/tmp/a.tgz")
    assert conn.log == [] and "[arm64]$ uname -m" in out.stream.getvalue()


def test_manifest_platforms_and_tail():
    doc = {"manifests": [{"platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                         {"platform": {"os": "linux", "architecture": "amd64"}}]}
    assert manifest_platforms(json.dumps(doc)) == ["linux/arm64/v8", "linux/amd64"]
    assert tail("a\nb\nc\n", 2) == "      b\n      c"


@pytest.mark.parametrize("listed,missing", [
    (["linux/amd64", "linux/arm64/v8"], []),
    (["linux/amd64", "linux/arm64"], []),
    (["linux/amd64", "linux/amd64"], ["linux/arm64"]),
    (["linux/arm64v8"], ["linux/amd64", "linux/arm64"]),
])
def test_missing_platforms(listed, missing):
    assert missing_platforms(listed, ["linux/amd64", "linux/arm64"]) == missing

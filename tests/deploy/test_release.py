"""run_release ordering and its finally: parallel builds, manifest on one host, cleanup always."""
from __future__ import annotations

import copy
import io
import json
import re

import pytest
import yaml
from invoke import MockContext, Result

from deploy import DEFAULTS_FILE
from deploy.credentials import Credentials
from deploy.errors import ReleaseError
from deploy.release import DryRunFleet, run_release
from deploy.report import Reporter
from deploy.settings import load_settings
from tests.deploy.fakes import RecordingFleet, ScriptedConnection


DEFAULTS = yaml.safe_load(DEFAULTS_FILE.read_text())["deploy"]
LISTING = json.dumps({"manifests": [
    {"platform": {"os": "linux", "architecture": "amd64"}},
    {"platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]})


def local():
    """The local side: git archive and rev-parse answered (tests/test_release.py runs them)."""
    return MockContext(run={re.compile(r"git .* archive"): Result(),
                            re.compile(r"git .* rev-parse"): Result(stdout="abc1234\n")},
                       repeat=True)


def rules(arch, machine, extra=()):
    return [*extra, (r"uname", Result(stdout=machine + "\n")),
            (r"manifest inspect", Result(stdout=LISTING))]


def world(extra=None, fleet=None):
    log = []
    extra = extra or {}
    conns = {"amd64": ScriptedConnection("amd64", rules("amd64", "x86_64", extra.get("amd64", ())),
                                         log),
             "arm64": ScriptedConnection("arm64", rules("arm64", "aarch64", extra.get("arm64", ())),
                                         log)}
    return conns, log, fleet or RecordingFleet()


def release(conns, fleet, creds=None, dry=False):
    settings = load_settings(copy.deepcopy(DEFAULTS))
    out = Reporter(dry_run=dry, stream=io.StringIO())
    platforms = run_release(local(), settings, "1.2.4", "1.3.6-Resurface", fleet,
                            lambda name, addr, key: conns[name], creds, out, "r1")
    return platforms, out.stream.getvalue()


def cmds(log, host):
    return [c for h, c in log if h == host]


def test_a_full_release_builds_both_then_publishes_from_the_manifest_host():
    conns, log, fleet = world()
    platforms, text = release(conns, fleet, Credentials("bob", "pw"))
    assert platforms == ["linux/amd64", "linux/arm64/v8"]
    assert "commit abc1234" in text
    put = "put sniffer-release-r1.tar.gz /tmp/sniffer-release-r1-amd64/context.tar.gz"
    assert ("amd64", put) in log
    for arch in ("amd64", "arm64"):
        mine = cmds(log, arch)
        assert any(f"-t resurfaceio/network-sniffer:1.2.4-{arch} " in c and
                   "--build-arg SNIFFER_VERSION=1.3.6-Resurface" in c for c in mine)
        assert any(c.endswith(f"push resurfaceio/network-sniffer:1.2.4-{arch}") for c in mine)
        assert mine[-1] == f"rm -rf /tmp/sniffer-release-r1-{arch}"
        assert conns[arch].stdin and list(conns[arch].stdin.values()) == ["pw\n"]
    manifest = [c for c in cmds(log, "amd64") if " manifest " in c]
    assert [c.split(" manifest ")[1].split()[0] for c in manifest] == [
        "create", "annotate", "annotate", "push", "inspect"]
    assert not [c for c in cmds(log, "arm64") if " manifest " in c]
    assert fleet.released
    assert "lists linux/amd64, linux/arm64/v8" in text


def test_build_steps_come_after_both_hosts_are_checked_and_before_the_manifest():
    conns, log, fleet = world()
    release(conns, fleet)
    order = [c for _, c in log]
    first_build = min(i for i, c in enumerate(order) if " build " in c)
    assert all(" build " not in c for c in order[:first_build])
    assert max(i for i, c in enumerate(order) if c == "uname -m") < first_build
    assert min(i for i, c in enumerate(order) if "manifest create" in c) > max(
        i for i, c in enumerate(order) if " push " in c and "manifest" not in c)


def test_a_failed_arm64_build_stops_the_release_and_everything_is_cleaned():
    conns, log, fleet = world({"arm64": [(r" build ", Result(stderr="gcc: fatal\n", exited=1))]})
    with pytest.raises(ReleaseError, match=r"docker build failed on the arm64 host(.|\n)*gcc"):
        release(conns, fleet)
    assert fleet.released
    assert not [c for _, c in log if "manifest" in c]
    for arch in ("amd64", "arm64"):
        assert f"rm -rf /tmp/sniffer-release-r1-{arch}" in cmds(log, arch)
        assert any("image rm --force" in c for c in cmds(log, arch))


def test_ctrl_c_during_the_build_still_cleans_up():
    conns, log, fleet = world({"amd64": [(r" build ", KeyboardInterrupt())]})
    with pytest.raises(KeyboardInterrupt):
        release(conns, fleet)
    assert fleet.released
    assert "rm -rf /tmp/sniffer-release-r1-arm64" in cmds(log, "arm64")


def test_failing_to_get_hosts_still_releases_the_fleet():
    conns, log, fleet = world(fleet=RecordingFleet(fail=ReleaseError("quota")))
    with pytest.raises(ReleaseError, match="quota"):
        release(conns, fleet)
    assert fleet.released and log == []


def test_a_manifest_list_missing_a_platform_is_an_error():
    one = json.dumps({"manifests": [{"platform": {"os": "linux", "architecture": "amd64"}}]})
    conns, _, fleet = world({"amd64": [(r"manifest inspect", Result(stdout=one))]})
    with pytest.raises(ReleaseError, match="lists platforms"):
        release(conns, fleet)


def test_dry_run_prints_every_step_and_runs_nothing():
    settings = load_settings(copy.deepcopy(DEFAULTS))
    out = Reporter(dry_run=True, stream=io.StringIO())
    c = MockContext()  # any c.run would raise NotImplementedError
    run_release(c, settings, "1.2.4", "1.3.6", DryRunFleet(settings, out),
                lambda *a: pytest.fail("no connection in a dry run"), None, out, "r1")
    text = out.stream.getvalue()
    for needle in ("git -C . archive", "ec2 run-instances --instance-type c7g.large",
                   "[arm64]$ uname -m", "build -f /tmp/sniffer-release-r1-arm64/context/Dockerfile",
                   "manifest push --purge resurfaceio/network-sniffer:1.2.4",
                   "ec2 terminate-instances", "6. clean up"):
        assert needle in text

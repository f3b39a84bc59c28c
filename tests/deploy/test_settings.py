"""Argument validation and the typed view of the deploy config (defaults from fabric.yaml)."""
from __future__ import annotations

import copy

import pytest
import yaml

from deploy import DEFAULTS_FILE
from deploy.errors import ReleaseError
from deploy.settings import load_settings, validate_tag, validate_version

DEFAULTS = yaml.safe_load(DEFAULTS_FILE.read_text())["deploy"]


@pytest.mark.parametrize("tag", ["1.2.4", "latest", "v1_rc-2", "a" * 122])
def test_valid_tags_pass(tag):
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", "-1", ".x", "1.2.4:", "a/b", "a b", "a" * 123, "é"])
def test_invalid_tags_are_refused_with_a_hint(tag):
    with pytest.raises(ReleaseError, match="invalid docker tag"):
        validate_tag(tag)


@pytest.mark.parametrize("version", ["1.3.6-Resurface", "1.3.6", "1.3", "2.0.0.1", "1.4.3+b1"])
def test_valid_versions_pass(version):
    assert validate_version(version) == version


@pytest.mark.parametrize("version", ["", "1", "v1.2", "1.2.", "1.2-", "1.2.3 x", "1.2;rm"])
def test_invalid_versions_are_refused(version):
    with pytest.raises(ReleaseError, match="invalid sniffer version"):
        validate_version(version)


def tree(**changes):
    t = copy.deepcopy(DEFAULTS)
    for path, value in changes.items():
        node = t
        *parents, last = path.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return t


def test_defaults_launch_an_amd64_and_an_arm64_host_for_docker_hub():
    s = load_settings(tree())
    assert s.mode == "launch"
    assert [(h.name, h.platform, h.machine) for h in s.hosts] == [
        ("amd64", "linux/amd64", "x86_64"), ("arm64", "linux/arm64", "aarch64")]
    assert s.image_tag("1.2.4") == "resurfaceio/network-sniffer:1.2.4"
    assert s.image_tag("1.2.4", "arm64") == "resurfaceio/network-sniffer:1.2.4-arm64"


def test_a_private_registry_prefixes_the_image():
    s = load_settings(tree(registry__server="127.0.0.1:5000"))
    assert s.image_tag("1", "amd64") == "127.0.0.1:5000/resurfaceio/network-sniffer:1-amd64"


def test_existing_mode_needs_instance_ids_except_in_a_dry_run():
    with pytest.raises(ReleaseError, match="hosts.amd64.instance_id is not set"):
        load_settings(tree(mode="existing"))
    assert load_settings(tree(mode="existing"), require_ids=False).mode == "existing"


@pytest.mark.parametrize("changes,message", [
    ({"mode": "spot"}, "deploy.mode must be one of"),
    ({"hosts__arm64__platform": "arm64"}, "is not linux/ARCH"),
    ({"hosts__arm64__platform": "linux/amd64"}, "two hosts of different platforms"),
    ({"manifest_host": "x86"}, "manifest_host 'x86' is not one of"),
])
def test_bad_config_is_reported_before_anything_starts(changes, message):
    with pytest.raises(ReleaseError, match=message):
        load_settings(tree(**changes))

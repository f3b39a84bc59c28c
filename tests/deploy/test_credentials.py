"""Where registry credentials come from: env, config.json inline auth, a credential helper."""
from __future__ import annotations

import base64
import json

import pytest

from deploy.credentials import Credentials, find_credentials, from_docker_config
from deploy.errors import ReleaseError


def auth(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def write(tmp_path, doc):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return path


def test_environment_wins(tmp_path):
    env = {"SNIFFER_REGISTRY_USERNAME": "ci", "SNIFFER_REGISTRY_PASSWORD": "s3cret"}
    assert find_credentials("docker.io", "", env, tmp_path / "none") == Credentials("ci", "s3cret")


def test_configured_username_with_password_from_env(tmp_path):
    env = {"SNIFFER_REGISTRY_PASSWORD": "tok"}
    assert find_credentials("docker.io", "bob", env, tmp_path / "x") == Credentials("bob", "tok")


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "docker.io"])
def test_docker_hub_login_is_found_under_either_key(tmp_path, key):
    path = write(tmp_path, {"auths": {key: {"auth": auth("alice", "pw:with:colons")}}})
    assert find_credentials("docker.io", "", {}, path) == Credentials("alice", "pw:with:colons")


def test_private_registry_login(tmp_path):
    path = write(tmp_path, {"auths": {"reg.example:5000": {"auth": auth("a", "b")}}})
    assert find_credentials("reg.example:5000", "", {}, path) == Credentials("a", "b")


def test_credential_helper_is_asked_on_stdin(tmp_path, monkeypatch):
    helper = tmp_path / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread server\n'
                      'echo "{\\"Username\\": \\"h-$server\\", \\"Secret\\": \\"t\\"}"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    doc = {"auths": {"reg.example": {}}, "credsStore": "fake"}
    assert from_docker_config(doc, "reg.example") == Credentials("h-reg.example", "t")


def test_a_missing_helper_means_not_logged_in(tmp_path):
    doc = {"credHelpers": {"reg.example": "does-not-exist-anywhere"}}
    assert from_docker_config(doc, "reg.example") is None


def test_not_logged_in_is_a_clear_error(tmp_path):
    path = write(tmp_path, {"auths": {"other.example": {"auth": auth("a", "b")}}})
    with pytest.raises(ReleaseError, match="not logged in to the registry docker.io: run "
                                           "`docker login docker.io`"):
        find_credentials("docker.io", "", {}, path)


def test_a_login_for_another_user_does_not_count(tmp_path):
    path = write(tmp_path, {"auths": {"docker.io": {"auth": auth("alice", "pw")}}})
    with pytest.raises(ReleaseError, match="not logged in"):
        find_credentials("docker.io", "bob", {}, path)


def test_password_never_shows_in_repr():
    assert "hunter2" not in repr(Credentials("u", "hunter2"))

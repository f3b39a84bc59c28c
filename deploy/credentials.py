"""Where the registry login for the build hosts comes from (never from a command line).

Strategy: the maintainer is already logged in locally (``docker login``), so we reuse that:
first ``SNIFFER_REGISTRY_USERNAME``/``SNIFFER_REGISTRY_PASSWORD`` (or ``deploy.registry.username``
plus the password variable), then ``~/.docker/config.json``: an inline ``auths[server].auth``
or a credential helper (``credsStore``/``credHelpers``) asked through stdin, the protocol
``docker-credential-*`` helpers speak. The password is later fed to ``docker login
--password-stdin`` on each host. Nothing found means "not logged in", a clear error.
"""
from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from deploy.errors import ReleaseError

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
                   "registry-1.docker.io")


class Credentials(NamedTuple):
    """A registry user name and its password or token."""

    username: str
    password: str

    def __repr__(self) -> str:  # keep secrets out of tracebacks and logs
        return f"Credentials(username={self.username!r}, password='***')"


def server_keys(server: str) -> tuple[str, ...]:
    """The keys ``docker login`` may have used for ``server`` in config.json."""
    if server in DOCKER_HUB_KEYS:
        return DOCKER_HUB_KEYS
    return (server, f"https://{server}", f"http://{server}")


def from_docker_config(doc: Mapping[str, object], server: str,
                       helper_timeout_s: float = 30.0) -> Credentials | None:
    """Credentials for ``server`` from a parsed ``config.json`` (inline auth or helper)."""
    auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
    helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
    for key in server_keys(server):
        entry = auths.get(key) or {}
        if isinstance(entry, dict) and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            if user and password:
                return Credentials(user, password)
        helper = helpers.get(key) or (doc.get("credsStore") if key in auths else None)
        if helper:
            found = _ask_helper(str(helper), key, helper_timeout_s)
            if found:
                return found
    return None


def _ask_helper(helper: str, key: str, timeout_s: float) -> Credentials | None:
    try:
        res = subprocess.run([f"docker-credential-{helper}", "get"], input=key.encode(),
                             capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    data = json.loads(res.stdout or b"{}")
    if data.get("Username") and data.get("Secret"):
        return Credentials(data["Username"], data["Secret"])
    return None


def find_credentials(server: str, username: str, env: Mapping[str, str],
                     docker_config_file: Path) -> Credentials:
    """Registry credentials for ``server``, or ``ReleaseError`` saying how to log in."""
    user = env.get("SNIFFER_REGISTRY_USERNAME") or username
    password = env.get("SNIFFER_REGISTRY_PASSWORD", "")
    if user and password:
        return Credentials(user, password)
    if docker_config_file.is_file():
        try:
            doc = json.loads(docker_config_file.read_text())
        except ValueError as exc:
            raise ReleaseError(f"cannot read {docker_config_file}: {exc}") from None
        found = from_docker_config(doc, server)
        if found and (not user or found.username == user):
            return found
    raise ReleaseError(
        f"not logged in to the registry {server}: run `docker login {server}` here, or set "
        "SNIFFER_REGISTRY_USERNAME and SNIFFER_REGISTRY_PASSWORD (the password is passed to "
        "the build hosts on stdin, never on a command line)"
    )

"""Typed views of the ``deploy`` config tree and validation of the task's two arguments.

Strategy: invoke's config (``deploy/fabric.yaml`` defaults, ``FABRIC_DEPLOY_*`` env vars,
``fab -f file.yaml``) is read once into frozen dataclasses, so the rest of the code never
touches loose dicts and every mistake is reported before any instance starts. Docker tag
syntax follows the distribution reference grammar (``[\\w][\\w.-]{0,127}``), shortened by the
``-arm64``/``-amd64`` suffix the per-architecture tags add.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deploy.errors import ReleaseError

ARCH_SUFFIX_MAX = len("-arm64")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,%d}$" % (127 - ARCH_SUFFIX_MAX))
VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){1,3}([-+][0-9A-Za-z][0-9A-Za-z.+-]{0,40})?$")
PLATFORM_RE = re.compile(r"^linux/(amd64|arm64|arm|386|ppc64le|s390x|riscv64)(/v[5-8])?$")
MODES = ("existing", "launch")


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid docker tag (room left for ``-arm64``), else raise."""
    if not TAG_RE.match(tag or ""):
        raise ReleaseError(
            f"invalid docker tag {tag!r}: use letters, digits, '_', '.', '-' (not first), "
            f"at most {128 - ARCH_SUFFIX_MAX} characters, e.g. 1.2.4"
        )
    return tag


def validate_version(version: str) -> str:
    """Return ``version`` if it looks like ``1.3.6`` or ``1.3.6-Resurface``, else raise."""
    if not VERSION_RE.match(version or ""):
        raise ReleaseError(
            f"invalid sniffer version {version!r}: expected N.N[.N[.N]] with an optional "
            "-suffix, e.g. 1.3.6-Resurface"
        )
    return version


@dataclass(frozen=True)
class HostSpec:
    """One build host: the platform it builds and how to find or create it."""

    name: str
    platform: str
    machine: str
    instance_id: str
    instance_type: str
    ami_parameter: str
    connect_host: str

    @property
    def arch(self) -> str:
        """The architecture part of the platform (``amd64``), used in per-arch tags."""
        return self.platform.split("/")[1]


@dataclass(frozen=True)
class Settings:
    """Everything the release needs from config, validated."""

    mode: str
    context_dir: str
    git_ref: str
    dockerfile: str
    base_image: str
    build_args: Mapping[str, str]
    docker_build_flags: tuple[str, ...]
    manifest_host: str
    registry: Mapping[str, Any]
    aws: Mapping[str, Any]
    ssh: Mapping[str, Any]
    prune_build_cache: bool
    hosts: tuple[HostSpec, ...]

    @property
    def image(self) -> str:
        """``[server/]repository`` as docker names it (no server part for Docker Hub)."""
        server = str(self.registry["server"])
        repo = str(self.registry["repository"])
        return repo if server in ("docker.io", "index.docker.io", "") else f"{server}/{repo}"

    def image_tag(self, tag: str, arch: str | None = None) -> str:
        """``image:tag`` or the per-architecture ``image:tag-arch``."""
        return f"{self.image}:{tag}-{arch}" if arch else f"{self.image}:{tag}"

    def host(self, name: str) -> HostSpec:
        """The host called ``name`` (a key of ``deploy.hosts``)."""
        for spec in self.hosts:
            if spec.name == name:
                return spec
        raise ReleaseError(f"deploy.manifest_host {name!r} is not one of deploy.hosts")


def _get(tree: Mapping[str, Any], key: str) -> Any:
    return tree[key] if key in tree else None


def load_settings(tree: Mapping[str, Any], require_ids: bool = True) -> Settings:
    """Build ``Settings`` from ``c.config.deploy``; raise ``ReleaseError`` on bad values.

    ``require_ids=False`` (dry runs) accepts missing instance ids in mode ``existing``.
    """
    mode = str(_get(tree, "mode"))
    if mode not in MODES:
        raise ReleaseError(f"deploy.mode must be one of {MODES}, not {mode!r}")
    hosts = []
    for name in sorted(tree["hosts"]):
        h = tree["hosts"][name]
        spec = HostSpec(name, str(h["platform"]), str(h["machine"]), str(h["instance_id"] or ""),
                        str(h["instance_type"]), str(h["ami_parameter"]),
                        str(h["connect_host"] or ""))
        if not PLATFORM_RE.match(spec.platform):
            raise ReleaseError(f"deploy.hosts.{name}.platform {spec.platform!r} is not linux/ARCH")
        if mode == "existing" and not spec.instance_id and require_ids:
            raise ReleaseError(f"deploy.hosts.{name}.instance_id is not set (mode 'existing'); "
                               f"set FABRIC_DEPLOY_HOSTS_{name.upper()}_INSTANCE_ID or use "
                               "FABRIC_DEPLOY_MODE=launch")
        hosts.append(spec)
    if len({h.arch for h in hosts}) != len(hosts) or len(hosts) < 2:
        raise ReleaseError("deploy.hosts needs at least two hosts of different platforms")
    settings = Settings(
        mode=mode,
        context_dir=str(tree["context_dir"]),
        git_ref=str(tree["git_ref"]),
        dockerfile=str(tree["dockerfile"]),
        base_image=str(tree["base_image"] or ""),
        build_args={str(k): str(v) for k, v in dict(tree["build_args"] or {}).items()},
        docker_build_flags=tuple(str(f) for f in tree["docker_build_flags"] or ()),
        manifest_host=str(tree["manifest_host"]),
        registry=dict(tree["registry"]),
        aws=dict(tree["aws"]),
        ssh=dict(tree["ssh"]),
        prune_build_cache=bool(tree["cleanup"]["prune_build_cache"]),
        hosts=tuple(hosts),
    )
    settings.host(settings.manifest_host)
    return settings

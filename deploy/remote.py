"""What happens on one build host, over one fabric ``Connection``.

Strategy: ``HostSession`` owns a host's private work directory
(``/tmp/<prefix>-<run id>-<host>``: the unpacked build context plus a ``docker --config``
directory holding the login and manifest scratch state) and runs only commands from
``deploy.commands``. Each call prints the command first; in a dry run nothing else happens.
Failures become ``ReleaseError`` naming the host, its architecture and the tail of the
output. ``cleanup()`` never raises: it reports what it removed or could not remove.
"""
from __future__ import annotations

import io
import json
import time
from typing import Any

from deploy import commands
from deploy.credentials import Credentials
from deploy.errors import ReleaseError
from deploy.report import Reporter
from deploy.settings import HostSpec

LOG_TAIL_LINES = 30


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``, indented for the report."""
    return "\n".join("      " + line for line in text.rstrip().splitlines()[-lines:])


def manifest_platforms(manifest_json: str) -> list[str]:
    """``os/arch[/variant]`` of every entry of a manifest list (``docker manifest inspect``)."""
    doc = json.loads(manifest_json)
    out = []
    for entry in doc.get("manifests", []):
        p = entry.get("platform", {})
        out.append("/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x))
    return out


def missing_platforms(listed: list[str], wanted: list[str]) -> list[str]:
    """Wanted platforms absent from ``listed``; ``linux/arm64`` is met by ``linux/arm64/v8``."""
    return [w for w in wanted
            if not any(p == w or p.startswith(w + "/") for p in listed)]


class HostSession:
    """One build host during one run (``conn`` is a fabric Connection, or None when dry)."""

    def __init__(self, spec: HostSpec, address: str, conn: Any, workdir: str,
                 out: Reporter) -> None:
        self.spec = spec
        self.address = address
        self.conn = conn
        self.workdir = workdir
        self.docker_config = f"{workdir}/docker-config"
        self.out = out
        self.dry_run = out.dry_run
        self.images: list[str] = []

    def _run(self, cmd: str, what: str, **kwargs: Any) -> str:
        self.out.command(self.spec.name, cmd)
        if self.dry_run:
            return ""
        res = self.conn.run(cmd, hide=True, warn=True, in_stream=kwargs.pop("in_stream", False),
                            **kwargs)
        if res.exited != 0:
            raise ReleaseError(f"{what} failed on the {self.spec.arch} host {self.address} "
                               f"(exit {res.exited}); last lines:\n"
                               + tail(res.stdout + res.stderr))
        return str(res.stdout)

    def prepare(self, wait_boot: bool) -> None:
        """Wait for first boot if asked, then check the architecture and Docker."""
        if wait_boot:
            self._run(commands.wait_cloud_init(), "waiting for first boot")
            if not self.dry_run:
                self.conn.close()  # reconnect so a fresh login picks up the docker group
        machine = self._run(commands.uname_machine(), "uname").strip()
        if not self.dry_run and machine != self.spec.machine:
            raise ReleaseError(f"host {self.address} should build {self.spec.platform} but is "
                               f"{machine!r} (expected {self.spec.machine!r}); check "
                               f"deploy.hosts.{self.spec.name}")
        self._run(commands.make_workdir(self.workdir), "creating the work directory")
        version = self._run(commands.docker_server_version(self.docker_config),
                            "checking Docker").strip()
        if not self.dry_run:
            self.out.note(f"{self.spec.name}: {machine}, Docker {version}")

    def upload(self, archive: str) -> None:
        """Copy the ``git archive`` tarball over SFTP and unpack it."""
        remote = f"{self.workdir}/context.tar.gz"
        self.out.command(self.spec.name, f"put {archive} -> {remote}")
        if not self.dry_run:
            self.conn.put(archive, remote)
        self._run(commands.unpack_context(remote, self.workdir), "unpacking the build context")

    def login(self, server: str, creds: Credentials) -> None:
        """``docker login --password-stdin`` into the run's own docker config."""
        self._run(commands.docker_login(self.docker_config, server, creds.username),
                  f"docker login to {server}", in_stream=io.StringIO(creds.password + "\n"))

    def build_and_push(self, image: str, dockerfile: str, build_args: dict[str, str],
                       flags: tuple[str, ...]) -> None:
        """Build natively, then push the per-architecture tag."""
        started = time.monotonic()
        self.images.append(image)
        self._run(commands.docker_build(self.docker_config, f"{self.workdir}/context", image,
                                        dockerfile, build_args, flags), "docker build")
        if not self.dry_run:
            self.out.note(f"{self.spec.name}: built {image} in {time.monotonic() - started:.0f}s")
        self._run(commands.docker_push(self.docker_config, image), f"docker push {image}")

    def publish_manifest(self, target: str, entries: list[tuple[str, str]],
                         insecure: bool) -> list[str]:
        """Create, annotate, push and read back the manifest list; return its platforms."""
        cfg = self.docker_config
        self._run(commands.manifest_create(cfg, target, [i for i, _ in entries], insecure),
                  "docker manifest create")
        for image, platform in entries:
            self._run(commands.manifest_annotate(cfg, target, image, platform),
                      "docker manifest annotate")
        self._run(commands.manifest_push(cfg, target, insecure), "docker manifest push")
        listing = self._run(commands.manifest_inspect(cfg, target, insecure),
                            "docker manifest inspect")
        return [] if self.dry_run else manifest_platforms(listing)

    def cleanup(self, prune: bool) -> list[str]:
        """Remove this run's images, the work directory (and credentials); never raises."""
        done: list[str] = []
        steps = []
        if self.images:
            steps.append((f"images {' '.join(self.images)}",
                          commands.remove_images(self.docker_config, self.images)))
        if prune:
            steps.append(("dangling images and build cache",
                          commands.prune_build_cache(self.docker_config)))
        steps.append((f"work directory {self.workdir} (context, login)",
                      commands.remove_workdir(self.workdir)))
        for what, cmd in steps:
            try:
                self._run(cmd, f"removing {what}")
            except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - report and go on
                self.out.note(f"FAILED to remove {what} on {self.spec.name}: {exc}")
                continue
            done.append(f"{self.spec.name}: removed {what}")
        if self.conn is not None:
            self.conn.close()
        return done

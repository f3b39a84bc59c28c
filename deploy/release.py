"""The release sequence: context, hosts, parallel native builds, manifest list, cleanup.

Strategy: ``run_release`` is the only place that orders the steps. Everything acquired
(instances, key pair, security group, host work directories, images, the local archive) is
handed back in one ``finally``, which runs on success, on any error and on Ctrl-C, and
prints what it cleaned. The two builds run at the same time in worker threads, one per host;
the first failure is reported with its architecture and log tail. The fleet (EC2 or a dry-run
stand-in) and the connection factory are arguments, so tests can drive this with real sshd
hosts and moto, and a dry run touches nothing.
"""
from __future__ import annotations

import concurrent.futures
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from deploy import commands
from deploy.credentials import Credentials
from deploy.errors import ReleaseError
from deploy.remote import HostSession, missing_platforms
from deploy.report import Reporter
from deploy.settings import Settings


class Fleet(Protocol):
    """What the release needs from the machines' provider (``aws.Ec2Fleet``)."""

    key_file: Path | None

    def acquire(self) -> dict[str, str]: ...  # noqa: D102
    def wait_ssh(self, addresses: dict[str, str]) -> None: ...  # noqa: D102
    def release(self) -> list[str]: ...  # noqa: D102


class DryRunFleet:
    """Prints the AWS actions of each mode instead of calling AWS."""

    key_file: Path | None = None

    def __init__(self, settings: Settings, out: Reporter) -> None:
        self.settings = settings
        self.out = out

    def acquire(self) -> dict[str, str]:
        """Describe what would be started or launched; addresses are placeholders."""
        s = self.settings
        if s.mode == "existing":
            ids = " ".join(h.instance_id or f"<{h.name} instance id unset>" for h in s.hosts)
            self.out.command("aws", f"ec2 start-instances --instance-ids {ids}")
        else:
            self.out.command("aws", f"ec2 create-key-pair + create-security-group "
                                    f"(tcp/22 from {s.aws['ssh_cidr'] or 'this machine /32'})")
            for h in s.hosts:
                self.out.command("aws", f"ec2 run-instances --instance-type {h.instance_type} "
                                        f"--image-id $(ssm {h.ami_parameter})  # {h.name}")
        self.out.command("aws", "ec2 describe-instances  # until running")
        return {h.name: h.connect_host or f"<{h.name} public DNS>" for h in s.hosts}

    def wait_ssh(self, addresses: dict[str, str]) -> None:
        """Say that SSH would be awaited."""
        self.out.note("wait for SSH on " + ", ".join(addresses.values()))

    def release(self) -> list[str]:
        """Describe the cleanup of each mode."""
        if self.settings.mode == "existing":
            self.out.command("aws", "ec2 stop-instances  # only those this run started")
        else:
            self.out.command("aws", "ec2 terminate-instances; delete-security-group; "
                                    "delete-key-pair")
        return []


Connect = Callable[[str, str, Path | None], Any]  # (host name, address, key file) -> Connection


def run_release(c: Any, settings: Settings, tag: str, version: str, fleet: Fleet,
                connect: Connect, creds: Credentials | None, out: Reporter,
                run_id: str) -> list[str]:
    """Build, push and publish ``image:tag`` for every host; return the manifest platforms."""
    target = settings.image_tag(tag)
    sessions: dict[str, HostSession] = {}
    cleaned: list[str] = []
    archive = os.path.join(tempfile.gettempdir(), f"sniffer-release-{run_id}.tar.gz")
    try:
        out.step(f"pack the build context ({settings.git_ref} of {settings.context_dir})")
        cmd = commands.git_archive(settings.context_dir, archive, settings.git_ref)
        out.command("local", cmd)
        if not out.dry_run:
            c.run(cmd, hide=True, in_stream=False)
            rev = c.run(commands.git_describe(settings.context_dir, settings.git_ref),
                        hide=True, in_stream=False).stdout.strip()
            size = os.path.getsize(archive) if os.path.exists(archive) else 0
            out.note(f"commit {rev}, {size} bytes")

        out.step(f"get the build hosts (mode {settings.mode})")
        addresses = fleet.acquire()
        fleet.wait_ssh(addresses)
        key_file = (Path(settings.ssh["key_file"]) if settings.ssh["key_file"]
                    else fleet.key_file)
        for spec in settings.hosts:
            conn = None if out.dry_run else connect(spec.name, addresses[spec.name], key_file)
            workdir = f"/tmp/{settings.aws['name_prefix']}-{run_id}-{spec.name}"
            sessions[spec.name] = HostSession(spec, addresses[spec.name], conn, workdir, out)

        out.step("check each host's architecture and Docker; upload the context")
        for s in sessions.values():
            s.prepare(wait_boot=settings.mode == "launch")
            s.upload(archive)
            if creds is not None:
                s.login(str(settings.registry["server"]), creds)

        out.step("build natively on all hosts in parallel, push per-architecture tags")
        build_args = {**settings.build_args, "SNIFFER_VERSION": version}
        if settings.base_image:
            build_args["BASE_IMAGE"] = settings.base_image
        _parallel(out, {n: (lambda s=s: s.build_and_push(
            settings.image_tag(tag, s.spec.arch), settings.dockerfile, build_args,
            settings.docker_build_flags)) for n, s in sessions.items()})

        out.step(f"publish the multi-arch manifest list {target}")
        entries = [(settings.image_tag(tag, h.arch), h.platform) for h in settings.hosts]
        platforms = sessions[settings.manifest_host].publish_manifest(
            target, entries, bool(settings.registry["insecure"]))
        wanted = sorted(h.platform for h in settings.hosts)
        if not out.dry_run:
            missing = missing_platforms(platforms, wanted)
            if missing or len(platforms) != len(wanted):
                raise ReleaseError(f"{target} lists platforms {platforms}, expected {wanted}")
            out.note(f"{target} lists {', '.join(sorted(platforms))}")
        return sorted(platforms)
    finally:
        out.step("clean up")
        for s in sessions.values():
            cleaned += s.cleanup(settings.prune_build_cache)
        cleaned += fleet.release()
        Path(archive).unlink(missing_ok=True)
        out.note(f"cleaned {len(cleaned)} item(s)" + ("" if out.dry_run else
                 "; nothing left running by this run"))


def _parallel(out: Reporter, jobs: dict[str, Callable[[], None]]) -> None:
    """Run the per-host jobs at once; raise the first failure after all have finished."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs),
                                                 thread_name_prefix="build")
    try:
        futures = {pool.submit(job): name for name, job in jobs.items()}
        errors = []
        for fut in concurrent.futures.as_completed(futures):
            exc = fut.exception()
            if exc is not None:
                errors.append(exc)
        if errors:
            for extra in errors[1:]:
                out.note(f"also failed: {extra}")
            raise errors[0]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

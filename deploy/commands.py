"""Pure builders of every shell command the release runs (locally or on a build host).

Strategy: tasks never format shell strings themselves; they call these functions, which only
quote and join, so ``tests/deploy/test_commands.py`` can pin every command exactly. Every
value that comes from config or the user goes through ``shlex.quote``. Docker commands take
``docker_config`` (a per-run ``--config`` directory on the host) so registry credentials and
the manifest-list scratch state live in the run's work directory and vanish with it.
Secrets never appear here: ``docker_login`` reads the password from stdin.
"""
from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

q = shlex.quote


def _docker(docker_config: str) -> str:
    return f"docker --config {q(docker_config)}"


def git_archive(context_dir: str, out_path: str, ref: str = "HEAD") -> str:
    """Tar.gz of the committed tree at ``ref`` (no untracked or ignored junk)."""
    return f"git -C {q(context_dir)} archive --format=tar.gz -o {q(out_path)} {q(ref)}"


def git_describe(context_dir: str, ref: str = "HEAD") -> str:
    """The commit id that ``git_archive`` packs (printed in the progress output)."""
    return f"git -C {q(context_dir)} rev-parse --short {q(ref)}"


def uname_machine() -> str:
    """Print the kernel's machine name (``x86_64``, ``aarch64``)."""
    return "uname -m"


def docker_server_version(docker_config: str) -> str:
    """Ask the host's Docker daemon for its version (fails when Docker is missing or down)."""
    return f"{_docker(docker_config)} version --format '{{{{.Server.Version}}}}'"


def wait_cloud_init() -> str:
    """Wait for first-boot user data (Docker install) to finish; harmless without cloud-init."""
    return "if command -v cloud-init >/dev/null; then cloud-init status --wait >/dev/null; fi; true"


def make_workdir(workdir: str) -> str:
    """Create the run's private work directory with its docker config sub-directory."""
    return f"mkdir -p -m 700 {q(workdir)}/context {q(workdir)}/docker-config"


def unpack_context(archive: str, workdir: str) -> str:
    """Unpack the uploaded ``git archive`` into ``<workdir>/context``."""
    return f"tar -xzf {q(archive)} -C {q(workdir)}/context"


def docker_login(docker_config: str, server: str, username: str) -> str:
    """Log in with the password on stdin (never on the command line)."""
    return f"{_docker(docker_config)} login --username {q(username)} --password-stdin {q(server)}"


def docker_build(
    docker_config: str,
    context: str,
    image: str,
    dockerfile: str,
    build_args: Mapping[str, str],
    extra_args: Sequence[str] = (),
) -> str:
    """Native ``docker build`` of ``context`` tagged ``image`` with sorted ``--build-arg``s."""
    parts = [_docker(docker_config), "build", "-f", q(f"{context}/{dockerfile}"), "-t", q(image)]
    for key in sorted(build_args):
        parts += ["--build-arg", q(f"{key}={build_args[key]}")]
    parts += [q(a) for a in extra_args]
    parts.append(q(context))
    return " ".join(parts)


def docker_push(docker_config: str, image: str) -> str:
    """Push one per-architecture tag."""
    return f"{_docker(docker_config)} push {q(image)}"


def _insecure(insecure: bool) -> str:
    return " --insecure" if insecure else ""


def manifest_create(docker_config: str, target: str, images: Sequence[str], insecure: bool) -> str:
    """Create the local manifest list ``target`` from the pushed per-arch ``images``."""
    srcs = " ".join(q(i) for i in images)
    create = f"{_docker(docker_config)} manifest create{_insecure(insecure)}"
    return f"{create} --amend {q(target)} {srcs}"


def manifest_annotate(docker_config: str, target: str, image: str, platform: str) -> str:
    """Set the platform of ``image`` inside ``target`` to ``os/arch[/variant]`` explicitly."""
    os_, arch, *variant = platform.split("/")
    cmd = f"{_docker(docker_config)} manifest annotate --os {q(os_)} --arch {q(arch)}"
    if variant:
        cmd += f" --variant {q(variant[0])}"
    return f"{cmd} {q(target)} {q(image)}"


def manifest_push(docker_config: str, target: str, insecure: bool) -> str:
    """Push the manifest list and drop the local copy (``--purge``)."""
    return f"{_docker(docker_config)} manifest push{_insecure(insecure)} --purge {q(target)}"


def manifest_inspect(docker_config: str, target: str, insecure: bool) -> str:
    """Read the published manifest list back from the registry as JSON."""
    return f"{_docker(docker_config)} manifest inspect{_insecure(insecure)} {q(target)}"


def remove_images(docker_config: str, images: Sequence[str]) -> str:
    """Delete the run's tags from the host's engine (missing tags are not an error)."""
    return f"{_docker(docker_config)} image rm --force {' '.join(q(i) for i in images)} || true"


def prune_build_cache(docker_config: str) -> str:
    """Drop the host's dangling images and build cache (for long-lived build hosts)."""
    d = _docker(docker_config)
    return f"{d} image prune --force >/dev/null; {d} builder prune --force >/dev/null; true"


def remove_workdir(workdir: str) -> str:
    """Delete the work directory: build context, credentials, manifest scratch state."""
    return f"rm -rf {q(workdir)}"

"""The fab tasks: thin wrappers that validate arguments, read config and call the release.

Strategy: no logic lives here beyond choosing real or dry-run parts; ``release.run_release``
orders the steps and ``commands`` builds every command string. ``ReleaseError`` becomes
``invoke.Exit`` (message, exit code 1, no traceback); Ctrl-C exits 130 after cleanup ran.
"""
from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from fabric import Connection
from invoke import Exit, task

from deploy import aws
from deploy.credentials import Credentials, find_credentials
from deploy.errors import ReleaseError
from deploy.release import DryRunFleet, run_release
from deploy.report import Reporter
from deploy.settings import load_settings, validate_tag, validate_version

PROFILE_PROMPT = "Enter your AWS profile [default]: "


def choose_profile(flag: str, env: dict[str, str], interactive: bool) -> str | None:
    """``--profile``, else the prompt on a terminal, else ``AWS_PROFILE``, else boto's default."""
    if flag:
        return flag
    if interactive:
        return input(PROFILE_PROMPT).strip() or env.get("AWS_PROFILE") or "default"
    return env.get("AWS_PROFILE") or None


def _connect(settings: Any) -> Any:
    def connect(name: str, address: str, key_file: Path | None) -> Connection:
        kwargs = {"key_filename": [str(key_file)]} if key_file else {}
        return Connection(address, user=str(settings.ssh["user"]), port=int(settings.ssh["port"]),
                          connect_timeout=int(settings.ssh["connect_timeout_s"]),
                          connect_kwargs={**kwargs, "look_for_keys": not key_file})
    return connect


@task(
    help={
        "tag": "docker tag to publish, e.g. 1.2.4 (per-arch tags get -amd64/-arm64)",
        "version": "sniffer version built into the image, e.g. 1.3.6-Resurface",
        "profile": "AWS profile (default: prompt on a terminal, else AWS_PROFILE)",
        "dry-run": "print every step and command; touch nothing, need no credentials",
    },
)
def build(c: Any, tag: str, version: str, profile: str = "", dry_run: bool = False) -> None:
    """Build TAG natively on an arm64 and an amd64 EC2 host and publish the multi-arch image.

    Usage: fab build:1.2.4,1.3.6-Resurface  |  fab build 1.2.4 1.3.6-Resurface [--dry-run]
    """
    out = Reporter(dry_run=dry_run)
    run_id = secrets.token_hex(4)
    try:
        validate_tag(tag)
        validate_version(version)
        settings = load_settings(c.config.deploy, require_ids=not dry_run)
        out.note(f"release {settings.image_tag(tag)} (sniffer {version}), run {run_id}")
        creds: Credentials | None = None
        if dry_run:
            fleet: Any = DryRunFleet(settings, out)
            if not settings.registry["anonymous"]:
                creds = Credentials(settings.registry["username"] or "<user>", "")
        else:
            if not settings.registry["anonymous"]:
                creds = find_credentials(str(settings.registry["server"]),
                                         str(settings.registry["username"] or ""), os.environ,
                                         Path.home() / ".docker" / "config.json")
            chosen = choose_profile(profile, dict(os.environ), sys.stdin.isatty())
            session = aws.open_session(chosen, str(settings.aws["region"] or ""))
            out.note(f"AWS profile {chosen or '(default chain)'}, region {session.region_name}")
            key_dir = Path(tempfile.gettempdir()) / "sniffer-release-keys"
            fleet = aws.Ec2Fleet(session, settings, out, run_id, key_dir)
        platforms = run_release(c, settings, tag, version, fleet, _connect(settings), creds,
                                out, run_id)
    except ReleaseError as exc:
        raise Exit(f"error: {exc}", code=1) from None
    except KeyboardInterrupt:
        raise Exit("interrupted; cleanup above", code=130) from None
    if not dry_run:
        out.note(f"published {settings.image_tag(tag)} for {', '.join(platforms)}")

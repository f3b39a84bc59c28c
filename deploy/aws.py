"""EC2 side of a release: get two build hosts running, then give everything back.

Strategy: ``Ec2Fleet`` records every resource the moment AWS creates or starts it (instance
ids, key pair, security group), so ``release()`` can undo exactly that much from a
``finally``, whichever call failed. Mode ``existing`` starts the configured instances and stops
only those it started; mode ``launch`` creates a temporary key pair, a security group open on
port 22 to one CIDR only, and one instance per host from the public SSM AMI parameters, with
user data that installs Docker and powers the machine off after ``max_lifetime_min``
(shutdown behaviour ``terminate``), a dead-man's switch if this process is killed. Waits are
polls bounded by ``running_timeout_s``/``ssh_timeout_s`` that print progress.
"""
from __future__ import annotations

import os
import socket
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from deploy.errors import ReleaseError
from deploy.report import Reporter
from deploy.settings import HostSpec, Settings

USER_DATA = """#!/bin/bash
shutdown -h +{lifetime_min}
dnf install -y docker || yum install -y docker || (apt-get update && apt-get install -y docker.io)
systemctl enable --now docker
usermod -aG docker {user}
"""


def open_session(profile: str | None, region: str | None) -> Any:
    """A boto3 session with usable credentials, or ``ReleaseError`` saying what is missing."""
    try:
        session = boto3.Session(profile_name=profile or None, region_name=region or None)
    except botocore.exceptions.ProfileNotFound:
        raise ReleaseError(f"AWS profile {profile!r} not found in ~/.aws/config or "
                           "~/.aws/credentials (see `aws configure list-profiles`)") from None
    if session.get_credentials() is None:
        raise ReleaseError(f"no AWS credentials for profile {profile or 'default'!r}: run "
                           "`aws configure` (or `aws sso login`) or set AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY")
    if not session.region_name:
        raise ReleaseError("no AWS region: set deploy.aws.region, AWS_REGION, or the "
                           "profile's region")
    return session


def public_cidr(timeout_s: float = 10.0) -> str:
    """This machine's public IPv4 address as a /32 (what the security group lets in)."""
    try:
        with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=timeout_s) as r:
            ip = r.read().decode().strip()
        socket.inet_aton(ip)
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot find this machine's public IP ({exc}); set "
                           "deploy.aws.ssh_cidr (FABRIC_DEPLOY_AWS_SSH_CIDR)") from None
    return f"{ip}/32"


def _aws_error(exc: Exception) -> ReleaseError:
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ReleaseError("no AWS credentials: run `aws configure` or set AWS_PROFILE")
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        return ReleaseError(f"AWS refused {exc.operation_name}: {err.get('Code')}: "
                            f"{err.get('Message')}")
    return ReleaseError(f"AWS call failed: {exc}")


class Ec2Fleet:
    """Two build hosts on EC2 for one run; ``acquire()`` then always ``release()``."""

    def __init__(self, session: Any, settings: Settings, out: Reporter, run_id: str,
                 key_dir: Path, sleep: Callable[[float], None] = time.sleep) -> None:
        self.ec2 = session.client("ec2")
        self.ssm = session.client("ssm")
        self.settings = settings
        self.out = out
        self.run_id = run_id
        self.key_dir = key_dir
        self.sleep = sleep
        self.aws: Mapping[str, Any] = settings.aws
        self.instances: dict[str, str] = {}  # host name -> instance id we must give back
        self.key_name = ""
        self.key_file: Path | None = None
        self.group_id = ""

    # ------------------------------------------------------------------ acquire
    def acquire(self) -> dict[str, str]:
        """Start or launch the hosts and wait until running; return host name -> address."""
        try:
            if self.settings.mode == "existing":
                self._start_existing()
            else:
                self._launch()
            described = self._wait_state({self._id(h): h.name for h in self.settings.hosts},
                                         "running")
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _aws_error(exc) from None
        addresses = {}
        for spec in self.settings.hosts:
            inst = described[self._id(spec)]
            addr = (spec.connect_host or inst.get("PublicDnsName") or
                    inst.get("PublicIpAddress") or inst.get("PrivateIpAddress") or "")
            if not addr:
                raise ReleaseError(f"instance {self._id(spec)} ({spec.name}) has no address")
            self.out.note(f"{spec.name}: {self._id(spec)} running at {addr}")
            addresses[spec.name] = addr
        return addresses

    def _id(self, spec: HostSpec) -> str:
        return self.instances.get(spec.name) or spec.instance_id

    def _start_existing(self) -> None:
        ids = [h.instance_id for h in self.settings.hosts]
        states = {i["InstanceId"]: i["State"]["Name"] for i in self._describe(ids).values()}
        to_start = []
        for spec in self.settings.hosts:
            state = states.get(spec.instance_id)
            if state is None:
                raise ReleaseError(f"instance {spec.instance_id} ({spec.name}) not found")
            if state == "running":
                self.out.note(f"{spec.name}: {spec.instance_id} already running; "
                              "it will be left running")
                continue
            if state not in ("stopped", "stopping"):
                raise ReleaseError(f"instance {spec.instance_id} ({spec.name}) is {state}")
            to_start.append(spec)
        if to_start:
            if any(states[s.instance_id] == "stopping" for s in to_start):
                self._wait_state({s.instance_id: s.name for s in to_start}, "stopped")
            self.out.note("aws ec2 start-instances --instance-ids "
                          + " ".join(s.instance_id for s in to_start))
            self.ec2.start_instances(InstanceIds=[s.instance_id for s in to_start])
            for spec in to_start:
                self.instances[spec.name] = spec.instance_id

    def _launch(self) -> None:
        name = f"{self.aws['name_prefix']}-{self.run_id}"
        cidr = str(self.aws["ssh_cidr"] or "") or public_cidr()
        key = self.ec2.create_key_pair(KeyName=name, KeyType="ed25519")
        self.key_name = name
        self.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.key_file = self.key_dir / f"{name}.pem"
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key["KeyMaterial"])
        self.out.note(f"created key pair {name} (private key in {self.key_file})")
        vpcs = self.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])
        vpc_args = {"VpcId": vpcs["Vpcs"][0]["VpcId"]} if vpcs["Vpcs"] else {}
        group = self.ec2.create_security_group(
            GroupName=name, Description="temporary: SSH to network-sniffer build hosts", **vpc_args)
        self.group_id = group["GroupId"]
        self.ec2.authorize_security_group_ingress(
            GroupId=self.group_id, IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                "IpRanges": [{"CidrIp": cidr, "Description": "release machine"}]}])
        self.out.note(f"created security group {self.group_id} ({name}): tcp/22 from {cidr} only")
        user_data = USER_DATA.format(lifetime_min=int(self.aws["max_lifetime_min"]),
                                     user=self.settings.ssh["user"])
        for spec in self.settings.hosts:
            ami = self.ssm.get_parameter(Name=spec.ami_parameter)["Parameter"]["Value"]
            res = self.ec2.run_instances(
                ImageId=ami, InstanceType=spec.instance_type, MinCount=1, MaxCount=1,
                KeyName=name, SecurityGroupIds=[self.group_id], UserData=user_data,
                InstanceInitiatedShutdownBehavior="terminate",
                TagSpecifications=[{"ResourceType": "instance", "Tags": [
                    {"Key": "Name", "Value": f"{name}-{spec.name}"},
                    {"Key": "purpose", "Value": "network-sniffer release build"}]}])
            self.instances[spec.name] = res["Instances"][0]["InstanceId"]
            self.out.note(f"launched {self.instances[spec.name]} ({spec.name}: "
                          f"{spec.instance_type}, {ami})")

    def _describe(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        res = self.ec2.describe_instances(InstanceIds=ids)
        return {i["InstanceId"]: i for r in res["Reservations"] for i in r["Instances"]}

    def _wait_state(self, names: Mapping[str, str], state: str) -> dict[str, dict[str, Any]]:
        timeout_s = float(self.aws["running_timeout_s"])
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        while True:
            described = self._describe(list(names))
            now = {i: d["State"]["Name"] for i, d in described.items()}
            if all(s == state for s in now.values()):
                return described
            elapsed = time.monotonic() - started
            self.out.note(f"waiting for {state}: " + ", ".join(
                f"{names[i]}={s}" for i, s in sorted(now.items())) + f" ({elapsed:.0f}s)")
            if time.monotonic() > deadline:
                raise ReleaseError(f"instances not {state} after {timeout_s:.0f}s: {now}")
            self.sleep(float(self.aws["poll_s"]))

    # ------------------------------------------------------------------ ssh
    def wait_ssh(self, addresses: Mapping[str, str]) -> None:
        """Poll each address until its SSH server sends a banner, or time out."""
        port = int(self.settings.ssh["port"])
        timeout_s = float(self.aws["ssh_timeout_s"])
        deadline = time.monotonic() + timeout_s
        for name, addr in addresses.items():
            while not _ssh_banner(addr, port):
                if time.monotonic() > deadline:
                    raise ReleaseError(f"no SSH on {addr}:{port} ({name}) after {timeout_s:.0f}s")
                self.out.note(f"waiting for SSH on {name} ({addr}:{port})")
                self.sleep(float(self.aws["poll_s"]))
            self.out.note(f"SSH is up on {name} ({addr}:{port})")

    # ------------------------------------------------------------------ release
    def release(self) -> list[str]:
        """Stop/terminate what we started, delete key pair and group; return what was done."""
        done: list[str] = []
        ids = list(self.instances.values())
        if ids:
            terminate = self.settings.mode == "launch"
            verb = "terminate" if terminate else "stop"
            self._attempt(done, f"{verb} instances {' '.join(ids)}", lambda: (
                self.ec2.terminate_instances(InstanceIds=ids) if terminate
                else self.ec2.stop_instances(InstanceIds=ids)))
            final = "terminated" if terminate else "stopped"
            names = {i: n for n, i in self.instances.items()}
            self._attempt(done, f"instances {final}", lambda: self._wait_state(names, final))
        if self.group_id:
            self._attempt(done, f"delete security group {self.group_id}",
                          lambda: self.ec2.delete_security_group(GroupId=self.group_id))
        if self.key_name:
            self._attempt(done, f"delete key pair {self.key_name}",
                          lambda: self.ec2.delete_key_pair(KeyName=self.key_name))
        if self.key_file is not None:
            self._attempt(done, f"delete {self.key_file}",
                          lambda: self.key_file.unlink(missing_ok=True)
                          if self.key_file else None)
        return done

    def _attempt(self, done: list[str], what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except KeyboardInterrupt:
            self.out.note(f"FAILED to {what}: interrupted; clean up by hand")
            return
        except Exception as exc:  # noqa: BLE001 - cleanup must go on and report
            self.out.note(f"FAILED to {what}: {exc}")
            return
        self.out.note(f"cleaned: {what}")
        done.append(what)


def _ssh_banner(addr: str, port: int, timeout_s: float = 5.0) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=timeout_s) as sock:
            return sock.recv(4) == b"SSH-"
    except OSError:
        return False

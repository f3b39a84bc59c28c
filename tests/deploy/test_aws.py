"""Ec2Fleet against moto's in-process EC2/SSM: what is created is exactly what is given back."""
from __future__ import annotations

import copy
import io
import socket
import threading

import boto3
import pytest
import yaml
from moto import mock_aws

from deploy import DEFAULTS_FILE, aws
from deploy.errors import ReleaseError
from deploy.report import Reporter
from deploy.settings import load_settings

DEFAULTS = yaml.safe_load(DEFAULTS_FILE.read_text())["deploy"]


@pytest.fixture
def session(monkeypatch):
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def settings(**deploy):
    tree = copy.deepcopy(DEFAULTS)
    tree["aws"].update(ssh_cidr="192.0.2.7/32", poll_s=0.0, running_timeout_s=5)
    for key, value in deploy.items():
        tree[key] = value
    return load_settings(tree)


def fleet(session, tmp_path, **deploy):
    out = Reporter(stream=io.StringIO())
    return aws.Ec2Fleet(session, settings(**deploy), out, "run1", tmp_path / "keys",
                        sleep=lambda s: None), out


def instance_states(ec2):
    return {i["InstanceId"]: i["State"]["Name"]
            for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}


def test_launch_creates_key_group_and_two_instances_then_removes_them(session, tmp_path):
    f, out = fleet(session, tmp_path)
    ec2 = session.client("ec2")
    addresses = f.acquire()
    assert set(addresses) == {"amd64", "arm64"} and all(addresses.values())
    assert f.key_file is not None and f.key_file.stat().st_mode & 0o777 == 0o600
    group = ec2.describe_security_groups(GroupIds=[f.group_id])["SecurityGroups"][0]
    assert [r["CidrIp"] for p in group["IpPermissions"] for r in p["IpRanges"]] == ["192.0.2.7/32"]
    assert group["IpPermissions"][0]["FromPort"] == 22
    types = {i["InstanceType"] for r in ec2.describe_instances()["Reservations"]
             for i in r["Instances"]}
    assert types == {"c7i.large", "c7g.large"}
    done = f.release()
    assert set(instance_states(ec2).values()) == {"terminated"}
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert not [g for g in ec2.describe_security_groups()["SecurityGroups"]
                if g["GroupName"].startswith("sniffer-release")]
    assert not f.key_file.exists()
    assert len(done) == 5
    assert "cleaned: delete key pair sniffer-release-run1" in out.stream.getvalue()


def test_user_data_installs_docker_and_sets_a_lifetime(session, tmp_path):
    f, _ = fleet(session, tmp_path)
    f.acquire()
    ec2 = session.client("ec2")
    iid = next(iter(f.instances.values()))
    import base64
    data = base64.b64decode(ec2.describe_instance_attribute(
        InstanceId=iid, Attribute="userData")["UserData"]["Value"]).decode()
    assert "shutdown -h +180" in data and "systemctl enable --now docker" in data
    f.release()


def existing(ec2, stop=("amd64", "arm64")):
    ids = {}
    for name in ("amd64", "arm64"):
        ids[name] = ec2.run_instances(ImageId="ami-03c3da4cfa8e8943a", MinCount=1,
                                      MaxCount=1)["Instances"][0]["InstanceId"]
    to_stop = [ids[n] for n in stop]
    if to_stop:
        ec2.stop_instances(InstanceIds=to_stop)
    hosts = copy.deepcopy(DEFAULTS["hosts"])
    for name, iid in ids.items():
        hosts[name]["instance_id"] = iid
    return ids, hosts


def test_existing_mode_starts_then_stops_only_what_it_started(session, tmp_path):
    ec2 = session.client("ec2")
    ids, hosts = existing(ec2, stop=("arm64",))
    f, out = fleet(session, tmp_path, mode="existing", hosts=hosts)
    f.acquire()
    assert set(instance_states(ec2).values()) == {"running"}
    f.release()
    assert instance_states(ec2) == {ids["amd64"]: "running", ids["arm64"]: "stopped"}
    assert "already running; it will be left running" in out.stream.getvalue()


def test_existing_mode_unknown_instance_is_a_clear_error(session, tmp_path):
    hosts = copy.deepcopy(DEFAULTS["hosts"])
    hosts["amd64"]["instance_id"] = "i-0123456789abcdef0"
    hosts["arm64"]["instance_id"] = "i-0123456789abcdef1"
    f, _ = fleet(session, tmp_path, mode="existing", hosts=hosts)
    with pytest.raises(ReleaseError, match="AWS refused DescribeInstances"):
        f.acquire()


def test_connect_host_overrides_the_public_name(session, tmp_path):
    hosts = copy.deepcopy(DEFAULTS["hosts"])
    hosts["arm64"]["connect_host"] = "10.9.9.9"
    f, _ = fleet(session, tmp_path, hosts=hosts)
    addresses = f.acquire()
    assert addresses["arm64"] == "10.9.9.9" and addresses["amd64"].startswith("ec2-")
    f.release()


def test_profile_not_found_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(ReleaseError, match="AWS profile 'nope' not found"):
        aws.open_session("nope", "us-east-1")


def test_no_credentials_is_a_clear_error(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    with pytest.raises(ReleaseError, match="no AWS credentials"):
        aws.open_session(None, "us-east-1")


def banner_server(payload):
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = srv.accept()
        conn.sendall(payload)
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_wait_ssh_accepts_an_ssh_banner(session, tmp_path):
    srv = banner_server(b"SSH-2.0-test\r\n")
    f, out = fleet(session, tmp_path, ssh={**DEFAULTS["ssh"], "port": srv.getsockname()[1]})
    f.wait_ssh({"amd64": "127.0.0.1"})
    srv.close()
    assert "SSH is up on amd64" in out.stream.getvalue()


def test_wait_ssh_times_out_on_a_silent_port(session, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        f, _ = fleet(session, tmp_path, ssh={**DEFAULTS["ssh"], "port": port},
                     aws={**DEFAULTS["aws"], "ssh_timeout_s": 0, "poll_s": 0})
        with pytest.raises(ReleaseError, match=f"no SSH on 127.0.0.1:{port}"):
            f.wait_ssh({"amd64": "127.0.0.1"})

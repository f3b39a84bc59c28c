"""Tests for sniffer/config.py: sources, precedence, YAML errors, "auto" values, rules files.

The settings themselves are tested in test_config_schema.py, the value parsers in
test_config_values.py, the environment in test_config_env.py, the BPF filter in
test_config_bpf.py; the helpers below (``load`` ...) serve them all.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sniffer.config import Config, ConfigError, HostFacts, flatten, load_config

ROOT = Path(__file__).resolve().parents[2]
FACTS = HostFacts(cpus=4, euid=1000, hostname="box", cwd="/srv")
MiB = 1024 * 1024


def load(env=None, overrides=None, path=None, facts=FACTS, **kw) -> Config:
    return load_config(path, env or {}, overrides or {}, facts=facts, **kw)


def get(cfg: Config, key: str):
    return flatten(cfg)[key]


def source(cfg: Config, key: str) -> str:
    return dict(cfg.sources)[key]


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# ---------------------------------------------------------------- precedence


PRECEDENCE = [
    # (yaml text, env, overrides, key, expected value, expected source prefix)
    ("", {}, {}, "capture.snaplen", 262144, "default"),
    ("capture:\n  snaplen: 1500\n", {}, {}, "capture.snaplen", 1500, "c.yaml:2"),
    (
        "capture:\n  snaplen: 1500\n",
        {"SNIFFER_CAPTURE_SNAPLEN": "9000"},
        {},
        "capture.snaplen",
        9000,
        "env SNIFFER_CAPTURE_SNAPLEN",
    ),
    (
        "capture:\n  snaplen: 1500\n",
        {"SNIFFER_CAPTURE_SNAPLEN": "9000"},
        {"capture.snaplen": 128},
        "capture.snaplen",
        128,
        "command line",
    ),
    (
        "workers: 3\n",
        {"SNIFFER_WORKERS": "5"},
        {"workers": None},
        "workers",
        5,
        "env SNIFFER_WORKERS",
    ),
    (
        "capture:\n  ports: [1, 2]\n",
        {"APP_PORTS": "80"},
        {},
        "capture.ports",
        (80,),
        "env APP_PORTS",
    ),
    (
        "",
        {"APP_PORTS": "80", "SNIFFER_CAPTURE_PORTS": "81"},
        {},
        "capture.ports",
        (81,),
        "env SNIFFER_CAPTURE_PORTS",
    ),
    (
        "capture:\n  interfaces: eth1\n",
        {"NET_DEVICE": ""},
        {},
        "capture.interfaces",
        ("eth1",),
        "c.yaml:2",
    ),
    ("output:\n  path: /x\n", {}, {"output.path": "-"}, "output.path", "-", "command line"),
    (
        "limits:\n  max_body_bytes: 2MiB\n",
        {"USAGE_LOGGERS_BODY_LIMIT": "4096"},
        {},
        "limits.max_body_bytes",
        4096,
        "env USAGE_LOGGERS_BODY_LIMIT",
    ),
    (
        "capture:\n  promisc: true\n",
        {"SNIFFER_PROMISC_ENABLED": "false"},
        {},
        "capture.promisc",
        False,
        "env SNIFFER_PROMISC_ENABLED",
    ),
]


@pytest.mark.parametrize("yaml_text,env,overrides,key,value,src", PRECEDENCE)
def test_precedence(tmp_path, yaml_text, env, overrides, key, value, src):
    cfg = load(env, overrides, path=write(tmp_path, yaml_text))
    assert get(cfg, key) == value
    assert source(cfg, key).startswith(src) or src in source(cfg, key)


def test_config_file_from_env_and_flag_wins(tmp_path):
    a = write(tmp_path, "workers: 2\n", "a.yaml")
    b = write(tmp_path, "workers: 3\n", "b.yaml")
    assert load({"NETWORK_SNIFFER_CONFIG": a}).workers == 2
    assert load({"NETWORK_SNIFFER_CONFIG": a}, path=b).workers == 3


def test_override_sources_name_the_flag():
    cfg = load(overrides={"workers": 2}, override_sources={"workers": "--workers"})
    assert source(cfg, "workers") == "--workers"
    with pytest.raises(
        ConfigError, match=r'^--workers: workers: expected "auto" or a whole number'
    ):
        load(overrides={"workers": "lots"}, override_sources={"workers": "--workers"})


# ---------------------------------------------------------------- YAML structure errors


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "capture:\n  snaplenn: 100\n",
            r"c\.yaml:2: capture\.snaplenn: unknown setting; did you mean capture\.snaplen\?$",
        ),
        (
            "captures:\n  snaplen: 100\n",
            r"c\.yaml:1: captures: unknown setting; did you mean capture\?$",
        ),
        (
            "verbose: 1\n",
            r"c\.yaml:1: verbose: unknown setting; see config.yaml for the known keys$",
        ),
        ("workers: 2\nworkers: 3\n", r"c\.yaml:2: workers: duplicate key; keep only one$"),
        ("capture: [1]\n", r"c\.yaml:1: capture: expected a mapping of settings under capture:$"),
        ("- a\n- b\n", r"c\.yaml:1: expected a mapping of sections"),
        (
            "capture:\n  ports: [80\n",
            r"c\.yaml:3: not valid YAML \(.*\); check indentation and quoting$",
        ),
        (
            "output:\n  url: http://user:secret@host/message\n",
            r"c\.yaml:2: output\.url: credentials do not belong in a config file; "
            r"set USAGE_LOGGERS_URL",
        ),
        (
            "capture:\n  interfaces: [any, eth0]\n",
            r'c\.yaml:2: capture\.interfaces: "any" already covers every interface; '
            r"use either any or eth0$",
        ),
        (
            "capture:\n  interfaces: []\n",
            r"c\.yaml:2: capture\.interfaces: expected at least 1 item",
        ),
        (
            "capture:\n  no_filter: true\n  bpf_filter: tcp\n",
            r"c\.yaml:3: capture\.bpf_filter: conflicts with capture\.no_filter",
        ),
        (
            "output:\n  rotate_bytes: 10MiB\n  max_total_bytes: 1MiB\n",
            r"c\.yaml:3: output\.max_total_bytes: must be 0",
        ),
    ],
)
def test_yaml_errors_name_file_line_key_and_fix(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as exc:
        load(path=write(tmp_path, text))
    assert "\n" not in str(exc.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(
        ConfigError, match=r"nope\.yaml: cannot read the config file \(No such file or directory\)"
    ):
        load(path=str(tmp_path / "nope.yaml"))


def test_empty_yaml_and_null_sections_are_defaults(tmp_path):
    assert load(path=write(tmp_path, "")) == load()
    assert load(path=write(tmp_path, "capture:\noutput: ~\n")) == load()


def test_url_in_secret_error_messages_is_masked():
    with pytest.raises(ConfigError) as exc:
        load({"USAGE_LOGGERS_URL": "ftp://user:hunter2@host/x"})
    assert "hunter2" not in str(exc.value) and "***@host" in str(exc.value)


# ------------------------------------------------------------ auto values, rules files, describe


@pytest.mark.parametrize("cpus,workers", [(1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (16, 15)])
def test_workers_auto(cpus, workers):
    assert load(facts=dataclasses.replace(FACTS, cpus=cpus)).workers == workers


def test_data_dir_spool_and_host_defaults():
    root = load(facts=dataclasses.replace(FACTS, euid=0)).output
    user = load().output
    assert (root.data_dir, root.spool_dir) == (
        "/var/lib/network-sniffer",
        "/var/lib/network-sniffer/spool",
    )
    assert (user.data_dir, user.spool_dir, user.host_name) == (
        "/srv/sniffer-data",
        "/srv/sniffer-data/spool",
        "box",
    )
    assert load({"DYNO": "web.2"}).output.host_name == "web.2"


def test_real_host_facts_are_usable():
    facts = HostFacts.current()
    assert facts.cpus >= 1 and facts.hostname
    assert load(facts=None).workers >= 1


def test_rules_from_file(tmp_path):
    rules = tmp_path / "rules.txt"
    rules.write_text("include debug\nallow_http_url\n")
    cfg = load({"USAGE_LOGGERS_RULES": f"file://{rules}"})
    assert cfg.output.rules == "include debug\nallow_http_url\n"
    assert source(cfg, "output.rules") == f"env USAGE_LOGGERS_RULES, file://{rules}"
    with pytest.raises(
        ConfigError, match=r"^env USAGE_LOGGERS_RULES: output.rules: cannot read file://.*missing"
    ):
        load({"USAGE_LOGGERS_RULES": f"file://{tmp_path}/missing"})

"""Tests for sniffer/config.py and sniffer/config_env.py: sources, precedence, errors, BPF."""

from __future__ import annotations

import dataclasses
import pickle
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sniffer.config import (
    Config,
    ConfigError,
    HostFacts,
    build_bpf,
    flatten,
    load_config,
    read_yaml,
    schema,
)
from sniffer.config_env import generic_name, read_env_file
from workers.limits import CoreLimits

ROOT = Path(__file__).resolve().parents[2]
ENV_DIR = ROOT / "tests" / "data" / "env"
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


# ---------------------------------------------------------------- config.yaml <-> dataclasses


def test_repo_yaml_has_every_field_and_nothing_else():
    yaml_keys = [key for key, _, _ in read_yaml(str(ROOT / "config.yaml"))]
    assert yaml_keys == list(schema())  # same keys, same order
    limits_keys = {f"limits.{f.name}" for f in dataclasses.fields(CoreLimits)}
    assert limits_keys <= set(yaml_keys)


def test_repo_yaml_values_are_the_builtin_defaults():
    parsers = schema()
    defaults = flatten(Config())
    for key, raw, where in read_yaml(str(ROOT / "config.yaml")):
        assert parsers[key](raw) == defaults[key], where
    assert load(path=str(ROOT / "config.yaml")) == load()


def test_repo_yaml_documents_every_key_with_a_comment_above():
    lines = (ROOT / "config.yaml").read_text().splitlines()
    for key, _, where in read_yaml(str(ROOT / "config.yaml")):
        n = int(where.rsplit(":", 1)[1]) - 1
        assert lines[n - 1].lstrip().startswith("#"), f"{key} at {where} has no comment above it"


def test_config_pickles_and_compares_equal():
    cfg = load({"APP_PORTS": "80"})
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.workers = 3  # type: ignore[misc]


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


# ---------------------------------------------------------------- environment (resurface.md 1.3)


ENV_CASES = [
    (
        {"USAGE_LOGGERS_URL": "http://localhost:7701/message"},
        "output.url",
        "http://localhost:7701/message",
    ),
    ({"USAGE_LOGGERS_RULES": "include debug"}, "output.rules", "include debug"),
    ({"NET_DEVICE": "docker0"}, "capture.interfaces", ("docker0",)),
    ({"VPC_MIRROR_DEVICE": "ens5"}, "capture.interfaces", ("ens5",)),
    ({"NET_DEVICE": "eth0", "VPC_MIRROR_DEVICE": "ens5"}, "capture.interfaces", ("eth0",)),
    ({"NET_DEVICE": "eth0,eth1"}, "capture.interfaces", ("eth0", "eth1")),
    ({"APP_PORTS": "80, 8000,3000"}, "capture.ports", (80, 8000, 3000)),
    ({"APP_PORT": "8080"}, "capture.ports", (8080,)),
    ({"APP_PORTS": "81", "APP_PORT": "8080"}, "capture.ports", (81,)),
    ({"SNIFFER_ENGINE": "mirror"}, "capture.engine", "mirror"),
    ({"SNIFFER_ENGINE": "vxlan"}, "capture.engine", "mirror"),
    ({"SNIFFER_ENGINE": "pcap"}, "capture.engine", "pcap"),
    ({"SNIFFER_MIRROR_VXLANPORT": "4790"}, "capture.vxlan_ports", (4790,)),
    ({"SNIFFER_MIRROR_VNIS": "1,2,16777215"}, "capture.vni_allow", (1, 2, 16777215)),
    ({"SNIFFER_PCAP_BUFFER_SIZE": "1048576"}, "capture.buffer_bytes", 1048576),
    ({"SNIFFER_PCAP_BUFFER_SIZE": "0"}, "capture.buffer_bytes", 32 * MiB),
    ({"SNIFFER_PROMISC_ENABLED": "true"}, "capture.promisc", True),
    ({"SNIFFER_REALIP_HEADER": "X-Real-IP"}, "capture.realip_header", "X-Real-IP"),
    ({"SNIFFER_NOFILTER": "true"}, "capture.no_filter", True),
    ({"SNIFFER_DEBUG_ENABLED": "true", "SNIFFER_DEBUG_VERBOSITY": "1"}, "debug.log_level", "debug"),
    ({"SNIFFER_DEBUG_ENABLED": "true", "SNIFFER_DEBUG_VERBOSITY": "0"}, "debug.log_level", "info"),
    ({"SNIFFER_DEBUG_ENABLED": "false", "SNIFFER_DEBUG_VERBOSITY": "3"}, "debug.log_level", "info"),
    ({"SNIFFER_DEBUG_ENABLED": "true", "SNIFFER_DEBUG_EXPORT": "local"}, "debug.export", "local"),
    ({"SNIFFER_DEBUG_ENABLED": "true", "SNIFFER_DEBUG_EXPORT": "none"}, "debug.export", "none"),
    ({"SNIFFER_DEBUG_EXPORT": "local"}, "debug.export", "none"),
    ({"USAGE_LOGGERS_DISABLE": "true"}, "output.disable", True),
    ({"USAGE_LOGGERS_DISABLE": "1"}, "output.disable", True),
    ({"USAGE_LOGGERS_DISABLE": "TRUE"}, "output.disable", True),
    ({"USAGE_LOGGERS_DISABLE": "false"}, "output.disable", False),
    ({"USAGE_LOGGERS_DISABLE": "nope"}, "output.disable", False),
    ({"USAGE_LOGGERS_BODY_LIMIT": "2048"}, "limits.max_body_bytes", 2048),
    ({"USAGE_LOGGERS_BUNDLE_SIZE": "1048576"}, "output.bundle_bytes", 1048576),
    ({"USAGE_LOGGERS_MESSAGE_QUEUE_SIZE": "50"}, "output.message_queue_size", 50),
    ({"USAGE_LOGGERS_BUNDLE_QUEUE_SIZE": "7"}, "output.bundle_queue_size", 7),
    ({"DYNO": "web.1"}, "output.host_name", "web.1"),
    ({"SNIFFER_METRICS_PORT": "9100"}, "status.metrics_port", 9100),
    ({"SNIFFER_WORKERS": "auto"}, "workers", 3),
    ({"SNIFFER_OUTPUT_DATA_DIR": "/d"}, "output.spool_dir", "/d/spool"),
]


@pytest.mark.parametrize(
    "env,key,value",
    ENV_CASES,
    ids=[" ".join(f"{k}={v}" for k, v in c[0].items()) for c in ENV_CASES],
)
def test_env_variable(env, key, value):
    assert get(load(env), key) == value


@pytest.mark.parametrize(
    "value,on",
    [
        ("true", True),
        ("false", False),
        ("TRUE", False),
        ("True", False),
        ("1", False),
        ("yes", False),
        (" true", False),
        ("", False),
    ],
)
def test_sniffer_flags_need_the_literal_text_true(value, on):
    cfg = load({"SNIFFER_PROMISC_ENABLED": value, "SNIFFER_NOFILTER": value})
    assert (cfg.capture.promisc, cfg.capture.no_filter) == (on, on)
    if value.strip().lower() in ("1", "yes", "true") and value != "true":
        assert any("only the exact text true" in n for n in cfg.notes)


@pytest.mark.parametrize(
    "raw,rules",
    [
        (r"include debug\nallow_http_url", "include debug\nallow_http_url"),
        (
            r"/request_body/ remove_if  /.*  x/",
            "/request_body/ remove_if  /.*  x/",
        ),  # no splitting, no glob
        (r"a\tb\\nc", "a\\tb\\\nc"),  # only the two characters \n change
        ("already\nreal", "already\nreal"),
    ],
)
def test_rules_env_turns_backslash_n_into_newline_and_nothing_else(raw, rules):
    assert load({"USAGE_LOGGERS_RULES": raw}).output.rules == rules


def test_original_env_file():
    env = read_env_file((ENV_DIR / "original.env").read_text().splitlines(True))
    assert env == {
        "USAGE_LOGGERS_URL": "http://localhost:7701/message",
        "USAGE_LOGGERS_RULES": "include debug\\nallow_http_url",
        "APP_PORT": "80,8000,3000",
        "NET_DEVICE": "docker0",
    }
    cfg = load(env)
    assert cfg.output.url == "http://localhost:7701/message"
    assert cfg.output.rules == "include debug\nallow_http_url"
    assert cfg.capture.ports == (80, 8000, 3000)
    assert cfg.capture.interfaces == ("docker0",)
    assert build_bpf(cfg.capture).startswith("tcp and (port 80 or port 8000 or port 3000) and (")
    assert cfg.notes == ()


def test_mirror_env_file_keeps_quotes_and_trims_leading_space():
    env = read_env_file((ENV_DIR / "mirror.env").read_text().splitlines(True))
    assert env["USAGE_LOGGERS_RULES"] == '"include default"'  # docker does no quote processing
    assert "USAGE_LOGGERS_URL" in env
    cfg = load(env)
    assert (cfg.capture.engine, cfg.capture.vni_allow, cfg.capture.interfaces) == (
        "mirror",
        (123, 456),
        ("ens5",),
    )
    assert (cfg.capture.promisc, cfg.capture.realip_header, cfg.capture.buffer_bytes) == (
        True,
        "X-Real-IP",
        32 * MiB,
    )
    assert build_bpf(cfg.capture).endswith("or (udp and (dst port 4789 or dst port 6081))")


def test_debug_env_file():
    cfg = load(read_env_file((ENV_DIR / "debug.env").read_text().splitlines(True)))
    assert (cfg.debug.log_level, cfg.debug.export, cfg.output.disable) == ("debug", "local", True)
    assert (cfg.output.host_name, cfg.capture.no_filter, build_bpf(cfg.capture)) == (
        "web.1",
        True,
        None,
    )


def test_env_file_rejects_names_with_spaces():
    with pytest.raises(ConfigError, match="env file line 2"):
        read_env_file(["A=1\n", "B C=2\n"])


@pytest.mark.parametrize(
    "env,message",
    [
        (
            {"SNIFFER_ENGINE": "k8s"},
            r"^env SNIFFER_ENGINE=k8s: Kubernetes discovery is not supported yet: .*NET_DEVICE",
        ),
        (
            {"K8S_INPUT": "--input-raw eth0:80"},
            r"^env K8S_INPUT: Kubernetes discovery is not supported yet",
        ),
        (
            {"SNIFFER_ENGINE": "gor"},
            r'^env SNIFFER_ENGINE: capture.engine: expected "pcap" or "mirror" .*got "gor"$',
        ),
        (
            {"SNIFFER_DEBUG_ENABLED": "true", "SNIFFER_DEBUG_EXPORT": "s3"},
            r'^env SNIFFER_DEBUG_EXPORT: debug.export: expected "none" or "local" '
            r"\(s3 and http export are not supported",
        ),
        (
            {"SNIFFER_DEBUG_ENABLED": "true", "SNIFFER_DEBUG_EXPORT": "http"},
            r"s3 and http export are not supported",
        ),
        (
            {"SNIFFER_DEBUG_ENABLED": "true", "SNIFFER_DEBUG_VERBOSITY": "high"},
            r'^env SNIFFER_DEBUG_VERBOSITY: expected a whole number from 0 to 100, got "high"$',
        ),
        (
            {"APP_PORTS": "80,http"},
            r"^env APP_PORTS: capture.ports: expected a list \(or comma-separated text\), "
            r'each item a whole number from 1 to 65535, got "80,http"$',
        ),
        ({"APP_PORT": "70000"}, r"^env APP_PORT: capture.ports: expected"),
        (
            {"SNIFFER_PCAP_BUFFER_SIZE": "big"},
            r"^env SNIFFER_PCAP_BUFFER_SIZE: capture.buffer_bytes: expected a size",
        ),
        (
            {"USAGE_LOGGERS_URL": "localhost:7701"},
            r"^env USAGE_LOGGERS_URL: output.url: expected an http:// or https:// URL",
        ),
        (
            {"SNIFFER_REALIP_HEADER": "X Real"},
            r"^env SNIFFER_REALIP_HEADER: capture.realip_header: expected an HTTP header name",
        ),
        (
            {"SNIFFER_MIRROR_VNIS": "16777216"},
            r"^env SNIFFER_MIRROR_VNIS: capture.vni_allow: expected",
        ),
        (
            {"SNIFFER_CAPTURE_SNAPLN": "1"},
            r"^env SNIFFER_CAPTURE_SNAPLN: unknown variable; "
            r"did you mean SNIFFER_CAPTURE_SNAPLEN\?$",
        ),
        (
            {"USAGE_LOGGERS_URLL": "http://x/"},
            r"^env USAGE_LOGGERS_URLL: unknown variable; did you mean USAGE_LOGGERS_URL\?$",
        ),
        ({"SNIFFER_PROMISC_ENABLE": "true"}, r"did you mean SNIFFER_PROMISC_ENABLED\?"),
    ],
)
def test_env_errors_are_one_line(env, message):
    with pytest.raises(ConfigError, match=message) as exc:
        load(env)
    assert "\n" not in str(exc.value)


def test_env_notes_for_ignored_variables():
    cfg = load(
        {
            "SNIFFER_RF_MONITOR_ENABLED": "true",
            "SNIFFER_DEBUG_VERBOSITY": "2",
            "SNIFFER_SOMETHING_ELSE_ENTIRELY": "1",
            "SNIFFER_SERVICE_HOST": "10.0.0.1",
            "SNIFFER_PORT_8080_TCP_ADDR": "10.0.0.1",
            "SNIFFER_METRICS_PORT": "tcp://10.0.0.1:9100",
            "USAGE_LOGGERS_DISABLE": "maybe",
            "SNIFFER_PORT": "tcp://10.0.0.2:80",
            "SNIFFER_CAPTURE_PORT": "tcp://10.0.0.3:80",
        }
    )
    notes = "\n".join(cfg.notes)
    assert "SNIFFER_RF_MONITOR_ENABLED=true: ignored, pypcap cannot switch on monitor mode" in notes
    assert "SNIFFER_DEBUG_VERBOSITY: ignored because SNIFFER_DEBUG_ENABLED is not true" in notes
    assert "SNIFFER_SOMETHING_ELSE_ENTIRELY: unknown variable, ignored" in notes
    assert "SNIFFER_METRICS_PORT: looks like a Kubernetes service link" in notes
    assert "SERVICE_HOST" not in notes and "8080_TCP" not in notes
    assert "USAGE_LOGGERS_DISABLE=maybe: not a boolean" in notes
    assert cfg.status.metrics_port is None
    assert "SNIFFER_PORT" not in notes and "SNIFFER_CAPTURE_PORT" not in notes
    assert len(cfg.notes) == len(set(cfg.notes)) == 5


# ---------------------------------------------------------------- bad values for every typed key


BAD_CANDIDATES = ["lots", -1, 0, ["a b", 1], {"k": 1}, True, "x\ny", 10**12, "1 PB"]


@pytest.mark.parametrize("key", list(schema()))
def test_every_key_rejects_a_bad_value_from_every_source(tmp_path, key):
    bad = next(b for b in BAD_CANDIDATES if _rejects(key, b))
    with pytest.raises(
        ConfigError, match=rf"^command line \({re.escape(key)}\): {re.escape(key)}: expected "
    ):
        load(overrides={key: bad})
    env_bad = next(
        (b for b in BAD_CANDIDATES if isinstance(b, str) and b.strip() and _rejects(key, b)), None
    )
    if env_bad is not None:
        name = generic_name(key)
        enabled = {"SNIFFER_DEBUG_ENABLED": "true"} if key == "debug.export" else {}  # legacy gate
        with pytest.raises(ConfigError, match=rf"^env {name}: {re.escape(key)}: expected "):
            load({name: env_bad, **enabled})
    section, _, name = key.partition(".")
    yaml_text = f"{section}:\n  {name}: {_yaml(bad)}\n" if name else f"{section}: {_yaml(bad)}\n"
    with pytest.raises(
        ConfigError, match=rf"^.*c\.yaml:{2 if name else 1}: {re.escape(key)}: expected .*, got "
    ):
        load(path=write(tmp_path, yaml_text))


def _rejects(key: str, value: object) -> bool:
    try:
        schema()[key](value)
    except ValueError:
        return True
    return False


def _yaml(value: object) -> str:
    import json

    return json.dumps(value)


def test_brief_example_message(tmp_path):
    path = write(tmp_path, "# comment\nworkers: lots\n", "config.yaml")
    with pytest.raises(ConfigError) as exc:
        load(path=path)
    assert (
        str(exc.value)
        == f'{path}:2: workers: expected "auto" or a whole number from 1 to 1024, got "lots"'
    )


@pytest.mark.parametrize(
    "text,value",
    [
        ("32MiB", 32 * MiB),
        ("64 KiB", 65536),
        ("1gib", 1024 * MiB),
        ("1048576", MiB),
        (2 * MiB, 2 * MiB),
    ],
)
def test_sizes(text, value):
    assert load(overrides={"capture.buffer_bytes": text}).capture.buffer_bytes == value


@pytest.mark.parametrize("text", ["32MB", "32 M", "-1", "1.5MiB", "0"])
def test_bad_sizes(text):
    with pytest.raises(
        ConfigError, match="capture.buffer_bytes: expected a size in bytes from 65536"
    ):
        load(overrides={"capture.buffer_bytes": text})


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


@pytest.mark.parametrize("cpus,workers", [(1, 1), (2, 1), (3, 2), (16, 15)])
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


def test_describe_one_line_per_setting_with_sources_and_masked_secrets():
    cfg = load(
        {
            "USAGE_LOGGERS_URL": "https://me:s3cret@capture.example.com:8443/fluke/msg?token=abc",
            "APP_PORTS": "80",
        },
        {"workers": 2},
        override_sources={"workers": "--workers"},
    )
    lines = cfg.describe()
    assert len(lines) == len(schema()) + 1
    text = "\n".join(lines)
    assert "s3cret" not in text and "abc" not in text and "me:" not in text
    assert (
        "output.url = https://***@capture.example.com:8443/fluke/msg?***  (env USAGE_LOGGERS_URL)"
        in lines
    )
    assert "workers = 2  (--workers)" in lines
    assert "capture.ports = 80  (env APP_PORTS)" in lines
    assert "capture.buffer_bytes = 33554432 (32 MiB)  (default)" in lines
    assert lines[-1].startswith("(derived) capture BPF filter = tcp and (port 80) and ")


# ---------------------------------------------------------------- BPF


def cap(**kw):
    return dataclasses.replace(Config().capture, **kw)


V4 = "(ip and (tcp[13] & 7 != 0 or ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0))"
V6 = "(ip6 and (ip6[6] != 6 or ip6[53] & 7 != 0 or ip6[4:2] - ((ip6[52] & 0xf0) >> 2) != 0))"

BPF_CASES = [
    ("all-tcp", cap(drop_pure_acks=False), "tcp"),
    ("ports", cap(ports=(80, 8080), drop_pure_acks=False), "tcp and (port 80 or port 8080)"),
    ("acks", cap(), f"tcp and ({V4} or {V6})"),
    ("ports+acks", cap(ports=(80,)), f"tcp and (port 80) and ({V4} or {V6})"),
    (
        "mirror",
        cap(ports=(80,), drop_pure_acks=False, engine="mirror"),
        "(tcp and (port 80)) or (udp and (dst port 4789 or dst port 6081))",
    ),
    (
        "mirror-no-tunnels",
        cap(engine="mirror", vxlan_ports=(), geneve_ports=(), drop_pure_acks=False),
        "tcp",
    ),
    ("user", cap(bpf_filter="host 10.0.0.1", ports=(80,)), "host 10.0.0.1"),
    ("none", cap(no_filter=True, ports=(80,)), None),
]


@pytest.mark.parametrize("name,capture,expected", BPF_CASES, ids=[c[0] for c in BPF_CASES])
def test_bpf_strings(name, capture, expected):
    assert build_bpf(capture) == expected


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
@pytest.mark.parametrize(
    "name,capture,expected", BPF_CASES[:-1], ids=[c[0] for c in BPF_CASES[:-1]]
)
def test_bpf_compiles_with_tcpdump(name, capture, expected):
    run = subprocess.run(
        ["tcpdump", "-d", "-i", "lo", build_bpf(capture)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode == 0, run.stderr
    assert "ret" in run.stdout


# Packets for the pass/drop check: (id, description). Built with dpkt in _frames().
PKT_IDS = {
    "v4-data-80": 0,
    "v4-pure-ack-80-padded": 1,
    "v4-syn-80": 2,
    "v4-fin-80": 3,
    "v4-rst-80": 4,
    "v4-pure-ack-80-options": 5,
    "v4-data-9999": 6,
    "v6-data-80": 7,
    "v6-pure-ack-80": 8,
    "v6-syn-80": 9,
    "v6-fin-80": 10,
    "udp-vxlan-4789": 11,
    "udp-geneve-6081": 12,
    "udp-dns-53": 13,
    "v4-data-8080": 14,
    "v4-synack-from-80": 15,
    "v4-pure-ack-9999": 16,
}
FILTER_EXPECT = [
    ("acks", cap(), {0, 2, 3, 4, 6, 7, 9, 10, 14, 15}),
    ("ports+acks", cap(ports=(80, 8080)), {0, 2, 3, 4, 7, 9, 10, 14, 15}),
    ("ports", cap(ports=(80,), drop_pure_acks=False), {0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 15}),
    ("mirror", cap(ports=(80,), engine="mirror"), {0, 2, 3, 4, 7, 9, 10, 15, 11, 12}),
]


def _frames(sll: bool):
    dpkt = pytest.importorskip("dpkt")
    from dpkt.tcp import TH_ACK, TH_FIN, TH_PUSH, TH_RST, TH_SYN

    def tcp(sport, dport, flags, data=b"", opts=b""):
        return dpkt.tcp.TCP(
            sport=sport, dport=dport, flags=flags, data=data, opts=opts, off=(20 + len(opts)) // 4
        )

    def v4(payload, proto=6):
        return dpkt.ip.IP(src=b"\x0a\0\0\x01", dst=b"\x0a\0\0\x02", p=proto, data=payload)

    def v6(t):
        return dpkt.ip6.IP6(
            src=b"\0" * 15 + b"\1",
            dst=b"\0" * 15 + b"\2",
            nxt=6,
            hlim=64,
            data=t,
            plen=len(bytes(t)),
        )

    def udp(dport):
        return v4(
            dpkt.udp.UDP(sport=5000, dport=dport, data=b"\x08\0\0\0\0\0\x01\0" + b"x" * 20),
            proto=17,
        )

    get_ = b"GET / HTTP/1.1\r\n\r\n"
    packets = {
        0: v4(tcp(40000, 80, TH_PUSH | TH_ACK, get_)),
        1: v4(tcp(40000, 80, TH_ACK)),
        2: v4(tcp(40000, 80, TH_SYN)),
        3: v4(tcp(40000, 80, TH_FIN | TH_ACK)),
        4: v4(tcp(40000, 80, TH_RST)),
        5: v4(tcp(40000, 80, TH_ACK, opts=b"\x01\x01\x08\x0a" + b"\0" * 8)),
        6: v4(tcp(40000, 9999, TH_ACK, get_)),
        7: v6(tcp(40000, 80, TH_PUSH | TH_ACK, get_)),
        8: v6(tcp(40000, 80, TH_ACK)),
        9: v6(tcp(40000, 80, TH_SYN)),
        10: v6(tcp(40000, 80, TH_FIN)),
        11: udp(4789),
        12: udp(6081),
        13: udp(53),
        14: v4(tcp(40000, 8080, TH_ACK, get_)),
        15: v4(tcp(80, 40000, TH_SYN | TH_ACK)),
        16: v4(tcp(40000, 9999, TH_ACK)),
    }
    frames = []
    for n, ip in packets.items():
        etype = 0x86DD if isinstance(ip, dpkt.ip6.IP6) else 0x0800
        if sll:
            frame = bytes(
                dpkt.sll.SLL(type=0, hrd=1, hlen=6, hdr=b"\0" * 8, ethtype=etype, data=ip)
            )
        else:
            frame = bytes(
                dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=etype, data=ip)
            )
            frame += b"\0" * max(0, 60 - len(frame))  # Ethernet minimum frame: padding
        frames.append((n, frame))
    return dpkt, frames


def _pcap_file(tmp_path: Path, sll: bool) -> str:
    dpkt, frames = _frames(sll)
    path = tmp_path / ("sll.pcap" if sll else "eth.pcap")
    with open(path, "wb") as fh:
        writer = dpkt.pcap.Writer(
            fh, linktype=dpkt.pcap.DLT_LINUX_SLL if sll else dpkt.pcap.DLT_EN10MB
        )
        for n, frame in frames:
            writer.writepkt(frame, ts=n + 1)
    return str(path)


@pytest.mark.parametrize("sll", [False, True], ids=["ethernet", "linux-sll"])
@pytest.mark.parametrize("name,capture,expected", FILTER_EXPECT, ids=[c[0] for c in FILTER_EXPECT])
def test_bpf_passes_data_and_control_and_drops_pure_acks(tmp_path, sll, name, capture, expected):
    pcap = pytest.importorskip("pcap")
    handle = pcap.pcap(name=_pcap_file(tmp_path, sll), timestamp_in_ns=True)
    handle.setfilter(build_bpf(capture))
    passed = {ts // 10**9 - 1 for ts, _ in handle.readpkts()}
    assert passed == expected, {k: v for k, v in PKT_IDS.items() if v in passed ^ expected}


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_bpf_with_tcpdump_read(tmp_path):
    path = _pcap_file(tmp_path, sll=False)
    run = subprocess.run(
        ["tcpdump", "-nn", "-r", path, build_bpf(cap(ports=(80,)))],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 8  # v4 data/SYN/FIN/RST/SYN-ACK, v6 data/SYN/FIN

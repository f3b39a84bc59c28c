"""Tests for sniffer/config_env.py: the original container's variables, generic names,
``docker --env-file`` files, one-line errors and notes for ignored variables."""

from __future__ import annotations

import pytest

from sniffer.config import ConfigError, build_bpf
from sniffer.config_env import read_env_file
from tests.sniffer.test_config import ROOT, MiB, get, load

ENV_DIR = ROOT / "tests" / "data" / "env"


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
    ({"SNIFFER_WORKERS": "auto"}, "workers", 4),
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

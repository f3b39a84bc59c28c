"""Tests for sniffer/config_schema.py: config.yaml and the dataclasses in step, Config, describe."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from sniffer.config import Config, flatten, read_yaml, schema
from sniffer.config_schema import display
from tests.sniffer.test_config import ROOT, load
from workers.limits import CoreLimits


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


# ---------------------------------------------------------------- describe


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


@pytest.mark.parametrize("key,value,shown", [
    ("capture.ports", (), "(none)"),
    ("output.path", None, "(none)"),
    ("capture.promisc", False, "false"),
    ("capture.interfaces", ("eth0", "eth1"), "eth0, eth1"),
    ("output.bundle_bytes", 1024, "1024 (1 KiB)"),
    ("output.bundle_bytes", 1000, "1000"),
    ("limits.max_body_bytes", 3 * 1024 * 1024, "3145728 (3 MiB)"),
    ("output.rules", "include debug\nallow_http_url", '"include debug\\nallow_http_url"'),
    ("output.url", "https://u:p@h/x?k=1", "https://***@h/x?***"),
    ("output.path", "p" * 200, "p" * 117 + "..."),
])
def test_display(key, value, shown):
    assert display(key, value) == shown

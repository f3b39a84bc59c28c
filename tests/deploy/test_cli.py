"""Fabric 1 ``task:args`` words rewritten for fabric 3, and the real ``fab`` program run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploy.cli import rewrite_argv, split_task_word

REPO = Path(__file__).resolve().parents[2]
TASKS = {"build"}
VALUE_FLAGS = {"-H", "--hosts", "-f", "--config", "-c", "--collection"}

CASES = [
    ("positional", ["build:1.2.4,1.3.6-Resurface"], ["build", "1.2.4", "1.3.6-Resurface"]),
    ("keywords", ["build:tag=1.2.4,version=1.3.6"], ["build", "--tag=1.2.4", "--version=1.3.6"]),
    ("underscore key", ["build:1,2,dry_run=yes"], ["build", "1", "2", "--dry-run=yes"]),
    ("trailing flag", ["build:1,2", "--dry-run"], ["build", "1", "2", "--dry-run"]),
    ("escaped comma", [r"build:a\,b,2"], ["build", "a,b", "2"]),
    ("escaped equals", [r"build:a\=b,2"], ["build", "a=b", "2"]),
    ("invoke style untouched", ["build", "1", "2"], ["build", "1", "2"]),
    ("flag value kept", ["-H", "build:22", "build:1,2"], ["-H", "build:22", "build", "1", "2"]),
    ("unknown task untouched", ["deploy:1,2"], ["deploy:1,2"]),
    ("core flag before", ["-f", "x.yaml", "build:1,2"], ["-f", "x.yaml", "build", "1", "2"]),
]


@pytest.mark.parametrize("argv,expected", [(a, e) for _, a, e in CASES],
                         ids=[n for n, *_ in CASES])
def test_rewrite_argv(argv, expected):
    assert rewrite_argv(argv, TASKS, VALUE_FLAGS) == expected


def test_split_task_word_without_arguments():
    assert split_task_word("build:") == ("build", [])


def fab(*words):
    return subprocess.run([sys.executable, "-m", "deploy", *words], cwd=REPO, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_the_exact_fabric1_command_runs_as_a_dry_run_without_aws():
    res = fab("build:1.2.4,1.3.6-Resurface", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "resurfaceio/network-sniffer:1.2.4 (sniffer 1.3.6-Resurface)" in res.stdout
    assert "--build-arg SNIFFER_VERSION=1.3.6-Resurface" in res.stdout
    assert "manifest push --purge resurfaceio/network-sniffer:1.2.4" in res.stdout


def test_list_documents_the_build_task():
    res = fab("--list")
    assert res.returncode == 0 and "build" in res.stdout and "multi-arch" in res.stdout


def test_a_bad_tag_exits_1_with_the_reason():
    res = fab("build:1.2.4:,1.3.6", "--dry-run")
    assert res.returncode == 1
    assert "invalid docker tag '1.2.4:'" in res.stderr

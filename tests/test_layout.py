"""The architecture's rules, checked: a sans-IO core, shells outside it, deploy apart.

- ``workers/`` (the core) imports nothing that does IO, keeps time or starts processes, and
  nothing from ``sniffer`` or ``deploy``.
- ``deploy/`` imports neither ``sniffer`` nor ``workers``.
- Every module of ``workers/`` and ``sniffer/`` has a test module that exercises it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE_BANNED = {"multiprocessing", "threading", "socket", "select", "pcap", "mmap", "time",
               "asyncio", "urllib", "http", "subprocess", "logging", "sniffer", "deploy",
               "requests", "os", "signal"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "workers").glob("*.py")), ids=lambda p: p.name)
def test_core_modules_do_no_io(path: Path) -> None:
    assert not imports(path) & CORE_BANNED


@pytest.mark.parametrize("path", sorted((ROOT / "deploy").glob("*.py")), ids=lambda p: p.name)
def test_deploy_stands_apart(path: Path) -> None:
    assert not imports(path) & {"sniffer", "workers"}


# Modules whose behaviour is exercised through another module's tests (named here).
COVERED_ELSEWHERE = {
    "workers/__init__.py": "package marker",
    "workers/segment.py": "tests/workers/test_tcp.py",
    "workers/message.py": "tests/workers/test_http1.py",
    "workers/limits.py": "tests/sniffer/test_config.py",
    "workers/anomalies.py": "tests/workers/test_decode.py (registry checks)",
    "workers/framing.py": "tests/workers/test_http1.py",
    "workers/connection.py": "tests/workers/test_http1.py",
    "workers/core.py": "tests/workers/test_tcp.py",
    "workers/decode_link.py": "tests/workers/test_decode.py",
    "workers/decode_tunnel.py": "tests/workers/test_decode.py",
    "sniffer/__init__.py": "package marker",
    "sniffer/__main__.py": "tests/sniffer/test_read_cmd.py",
    "sniffer/VERSION": "data",
    "sniffer/cli.py": "tests/sniffer/test_read_cmd.py",
    "sniffer/commands.py": "tests/sniffer/test_read_cmd.py",
    "sniffer/outputs.py": "tests/sniffer/test_read_cmd.py, tests/test_live.py",
    "sniffer/worker_loop.py": "tests/sniffer/test_read_cmd.py",
    "sniffer/pipeline.py": "tests/test_live.py",
    "sniffer/capture_proc.py": "tests/test_live.py",
    "sniffer/worker_proc.py": "tests/test_live.py",
    "sniffer/aggregator_proc.py": "tests/test_live.py",
    "sniffer/supervisor.py": "tests/test_live.py",
}


@pytest.mark.parametrize("path", sorted([*(ROOT / "workers").glob("*.py"),
                                          *(ROOT / "sniffer").glob("*.py")]),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_module_has_tests(path: Path) -> None:
    rel = f"{path.parent.name}/{path.name}"
    own = ROOT / "tests" / path.parent.name / f"test_{path.stem}.py"
    elsewhere = COVERED_ELSEWHERE.get(rel)
    assert own.exists() or elsewhere, f"{rel} has no tests/{path.parent.name}/test_{path.name}"
    if elsewhere and elsewhere.startswith("tests/"):
        assert (ROOT / elsewhere.split()[0].rstrip(",")).exists()

"""Python 3.11, 3.12 and 3.13 all work: the set-up script builds pypcap (regenerating its
``pcap.c`` with Cython 3) and the sniffer reads a capture the same way on each.

Each interpreter found on PATH gets a fresh venv made by ``scripts/setup.sh``; an interpreter
that is not installed is skipped (and says so).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import C2S, S2C, conversation
from tests.pcapgen import write_pcap

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def find_python(version: str) -> str | None:
    """A working ``python<version>``: on PATH, or in a pyenv installation."""
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{version}*/bin/"
                                                           f"python{version}"))
    for c in candidates:
        if c and subprocess.run([c, "-V"], capture_output=True).returncode == 0:
            return c
    return None


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_setup_and_read_on_other_pythons(version: str, tmp_path: Path) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"python{version} is not installed here")
    pcap = tmp_path / "c.pcap"
    write_pcap(str(pcap), conversation([
        (C2S, b"POST /v HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"),
        (S2C, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")]))
    venv = tmp_path / "venv"
    env = {**os.environ, "PYTHON": python, "VENV": str(venv), "SETUP_PROFILE": "run"}
    env.pop("VIRTUAL_ENV", None)
    r = subprocess.run([str(ROOT / "scripts" / "setup.sh")], env=env, capture_output=True,
                       text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import sys, pcap; print(sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(tuple(int(x) for x in version.split(".")))
    args = ["read", str(pcap), "-o", "-", "--rules", "include debug", "--workers", "1"]
    theirs = subprocess.run([str(venv / "bin" / "network-sniffer"), *args],
                            capture_output=True, text=True, timeout=120)
    ours = subprocess.run([sys.executable, "-m", "sniffer", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert theirs.returncode == 0, theirs.stderr
    assert theirs.stdout == ours.stdout and '"response_body","ok"' in ours.stdout

"""The compiled hot path (setup.py, mypyc): what runs is compiled, current, and the same.

- In a normal install every module setup.py lists is loaded from its extension, so the suite
  tests the code that ships (unless the install was pure: ``NETWORK_SNIFFER_PURE=1``).
- No compiled code is older than its source (an edited ``.py`` needs ``scripts/setup.sh``).
- The interpreted sources and the compiled modules give byte-identical calls over every
  golden scenario (and the shared corpus when it is there), run side by side.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from importlib import machinery
from pathlib import Path

import pytest

import sniffer
from tests.helpers import compiled_modules_listed, native_helpers_listed

ROOT = Path(__file__).resolve().parent.parent
PURE = os.environ.get("NETWORK_SNIFFER_PURE", "") not in ("", "0")
CORPUS = ROOT.parent / "shared" / "corpus"


COMPILED = compiled_modules_listed()
NATIVE = native_helpers_listed()


def test_setup_lists_the_core_and_the_per_packet_shell_modules() -> None:
    assert {"workers.core", "workers.tcp", "workers.http1", "workers.record_line",
            "sniffer.codec", "sniffer.worker_loop"} <= set(COMPILED)
    assert "workers.limits" not in COMPILED  # pickled to the children: stays interpreted


@pytest.mark.skipif(PURE, reason="pure-Python install (NETWORK_SNIFFER_PURE)")
@pytest.mark.parametrize("name", COMPILED)
def test_listed_modules_load_compiled(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert module.__file__.endswith(tuple(machinery.EXTENSION_SUFFIXES)), module.__file__
    assert name in sniffer.compiled_modules()


def test_compiled_modules_and_the_build_description_agree() -> None:
    found = sniffer.compiled_modules()
    assert found == ([] if PURE else COMPILED)
    assert sniffer.native_helpers() == ([] if PURE else NATIVE)
    assert NATIVE == ["sniffer._items", "workers._scan"]
    assert sniffer.build_description() == (
        "hot path interpreted (pure Python)" if PURE
        else f"hot path compiled ({len(COMPILED)} modules + 2 C helpers)")


def test_only_this_interpreters_extensions_count(tmp_path: Path) -> None:
    ours = machinery.EXTENSION_SUFFIXES[0]
    for package in ("sniffer", "workers"):
        (tmp_path / package).mkdir()
    for name in (f"sniffer/codec{ours}", f"workers/__init__{ours}", "workers/tcp.py",
                 "workers/http1.cpython-399-x86_64-linux-gnu.so", "sniffer/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / f"workers/_scan{ours}").write_bytes(b"")
    assert sniffer.compiled_modules(tmp_path) == ["sniffer.codec", "workers"]
    assert sniffer.native_helpers(tmp_path) == ["workers._scan"]


@pytest.mark.skipif(PURE, reason="pure-Python install (NETWORK_SNIFFER_PURE)")
@pytest.mark.parametrize("name", COMPILED)
def test_no_compiled_code_is_older_than_its_source(name: str) -> None:
    # the code of every module is in the group's shared library (setup.py group_name);
    # the per-module extensions only load it, so a rebuild need not touch them
    lib = ROOT / ("network_sniffer_core__mypyc" + machinery.EXTENSION_SUFFIXES[0])
    assert lib.exists(), lib
    source = ROOT / (name.replace(".", "/") + ("/__init__.py" if "." not in name else ".py"))
    assert lib.stat().st_mtime >= source.stat().st_mtime, (
        f"the compiled {name} is older than {source.name}: run scripts/setup.sh to rebuild")


_DIGESTS = """
import hashlib, json, sys
from pathlib import Path
import workers.core
from tests.test_golden import read_lines
out = {"core": workers.core.__file__}
for path in sys.argv[1:]:
    out[Path(path).name] = hashlib.sha256(b"\\n".join(read_lines(Path(path)))).hexdigest()
print(json.dumps(out))
"""


def _digests(tree: Path, captures: list[Path]) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(ROOT)])}
    r = subprocess.run([sys.executable, "-c", _DIGESTS, *map(str, captures)], cwd=tree,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow
@pytest.mark.skipif(PURE, reason="pure-Python install: nothing compiled to compare")
def test_interpreted_and_compiled_give_identical_calls(tmp_path: Path) -> None:
    from tests.pcapgen import write_pcap
    from tests.test_golden import scenarios

    captures = []
    for name, packets in sorted(scenarios().items()):
        captures.append(tmp_path / f"{name}.pcap")
        write_pcap(str(captures[-1]), packets)
    if CORPUS.is_dir():
        captures += sorted((CORPUS / "pcaps").iterdir())
    pure_tree = tmp_path / "pure"
    for package in ("sniffer", "workers"):
        shutil.copytree(ROOT / package, pure_tree / package,
                        ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    interpreted, compiled = _digests(pure_tree, captures), _digests(ROOT, captures)
    assert interpreted.pop("core").endswith("core.py")
    assert compiled.pop("core").endswith(tuple(machinery.EXTENSION_SUFFIXES))
    assert len(interpreted) == len(captures) > 30
    assert interpreted == compiled

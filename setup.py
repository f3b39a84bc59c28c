"""Build script: the metadata lives in setup.cfg; this adds the compiled hot path.

The modules in ``COMPILED`` (the sans-IO core and the per-packet / per-call parts of the
process shells) are compiled to C extensions with mypyc, which uses their type annotations:
the same Python source, without the interpreter's cost per bytecode. The ``.py`` files stay
the source of truth and the fallback: ``NETWORK_SNIFFER_PURE=1`` builds a pure-Python
package (any platform, no C compiler), and an import finds the extension first when both
are there. ``scripts/setup.sh`` rebuilds the extensions in place when a source changes.
"""
from __future__ import annotations

import glob
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))

#: Not compiled: frozen configuration records that are pickled to the child processes
#: (mypyc's frozen dataclasses cannot be unpickled).
INTERPRETED = ["workers/limits.py"]
#: Compiled modules: every module of workers/ plus the sniffer modules on per-packet and
#: per-call paths. The process entry points, configuration and IO shells stay interpreted.
COMPILED = sorted(set(glob.glob("workers/*.py", root_dir=HERE)) - set(INTERPRETED)) + [
    "sniffer/codec.py",
    "sniffer/flowhash.py",
    "sniffer/merger.py",
    "sniffer/pcapfile.py",
    "sniffer/sharder.py",
    "sniffer/worker_loop.py",
]

#: Hand-written C helpers, built with the compiled hot path (each module has its definition
#: in Python beside it, which a pure install uses): ``workers._scan`` (``workers/scan.py``)
#: and ``sniffer._items`` (``sniffer/codec.py`` ``item_v4_py``).
NATIVE = [("workers._scan", "workers/_scan.c"), ("sniffer._items", "sniffer/_items.c")]


def pure() -> bool:
    """Whether NETWORK_SNIFFER_PURE asks for a pure-Python build."""
    return os.environ.get("NETWORK_SNIFFER_PURE", "") not in ("", "0")


def ext_modules() -> list:
    """The mypyc extensions and the C helpers, or none for a pure-Python build
    (NETWORK_SNIFFER_PURE=1)."""
    if pure():
        return []
    from mypyc.build import mypycify  # the build requirement (pyproject.toml, setup.sh)

    helpers = [Extension(name, [source]) for name, source in NATIVE]
    return mypycify(COMPILED, opt_level="3", group_name="network_sniffer_core") + helpers


if __name__ == "__main__":  # how pip and setuptools run it; tests import the lists above
    setup(ext_modules=ext_modules())

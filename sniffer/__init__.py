"""network-sniffer: passive capture of HTTP/1.x API calls (capture, process plumbing, CLI)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def _read_version() -> str:
    # a plain file read: importlib.resources (and pathlib, zipfile) would cost every process
    # about 14 ms of start-up, and the package is never installed zipped
    try:
        with open(os.path.join(os.path.dirname(__file__), "VERSION"), encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:  # pragma: no cover - only when the package data is missing
        return "0+unknown"


#: The sniffer's version; the image build stamps it into sniffer/VERSION (SNIFFER_VERSION).
__version__ = _read_version()


def _extensions(root: Path | None) -> list[str]:
    """The dotted names of this interpreter's extension modules in ``sniffer`` and
    ``workers`` under ``root`` (default: where this package is installed)."""
    from importlib import machinery
    from pathlib import Path

    root = root or Path(__file__).resolve().parent.parent
    suffixes = sorted(machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    found = set()
    for package in ("sniffer", "workers"):
        for path in (root / package).iterdir():
            suffix = next((x for x in suffixes if path.name.endswith(x)), None)
            name = path.name[: -len(suffix)] if suffix else ""
            if name.isidentifier():  # not another interpreter's (codec.cpython-312-...)
                found.add(package if name == "__init__" else f"{package}.{name}")
    return sorted(found)


def _is_helper(name: str) -> bool:
    last = name.rpartition(".")[2]
    return last.startswith("_") and not last.startswith("__")


def compiled_modules(root: Path | None = None) -> list[str]:
    """The modules of ``sniffer`` and ``workers`` that an import loads compiled (mypyc
    extensions beside their sources, see setup.py), as dotted names, sorted. ``root``: the
    folder holding both packages (default: where this one is installed)."""
    return [name for name in _extensions(root) if not _is_helper(name)]


def native_helpers(root: Path | None = None) -> list[str]:
    """The hand-written C helper modules installed (private names, ``workers._scan``; each
    has its definition in Python beside it, see setup.py ``NATIVE``), sorted."""
    return [name for name in _extensions(root) if _is_helper(name)]


def build_description() -> str:
    """How the hot path runs, for the logs: ``hot path compiled (N modules + M C helpers)``
    or ``hot path interpreted (pure Python)``."""
    n, helpers = len(compiled_modules()), len(native_helpers())
    if not n:
        return "hot path interpreted (pure Python)"
    return f"hot path compiled ({n} modules + {helpers} C helper{'' if helpers == 1 else 's'})"

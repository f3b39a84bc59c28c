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


def compiled_modules(root: Path | None = None) -> list[str]:
    """The modules of ``sniffer`` and ``workers`` that an import loads compiled (mypyc
    extensions beside their sources, see setup.py), as dotted names, sorted. ``root``: the
    folder holding both packages (default: where this one is installed)."""
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


def build_description() -> str:
    """``compiled (N modules)`` or ``interpreted``: how the hot path runs, for the logs."""
    n = len(compiled_modules())
    return f"hot path compiled ({n} modules)" if n else "hot path interpreted (pure Python)"

"""network-sniffer: passive capture of HTTP/1.x API calls (capture, process plumbing, CLI)."""
from __future__ import annotations

from importlib import resources


def _read_version() -> str:
    try:
        return resources.files(__name__).joinpath("VERSION").read_text().strip()
    except OSError:  # pragma: no cover - only when the package data is missing
        return "0+unknown"


#: The sniffer's version; the image build stamps it into sniffer/VERSION (SNIFFER_VERSION).
__version__ = _read_version()

"""Loading the hand-written C helpers (setup.py ``NATIVE``).

Strategy: each helper module has its definition in Python beside it; a pure install
(``NETWORK_SNIFFER_PURE=1``) has no helper modules and runs the definitions. ``native_or``
is the one place that decides which runs, so each caller names the helper and its
definition and gets back which one it has.
"""
from __future__ import annotations

import importlib
from typing import TypeVar

T = TypeVar("T")


def native_or(module: str, name: str, definition: T) -> tuple[T, bool]:
    """``module.name`` and True when the C helper module imports, else ``definition`` and
    False."""
    try:
        return getattr(importlib.import_module(module), name), True
    except ImportError:  # a pure install: no C helper
        return definition, False

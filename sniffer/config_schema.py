"""The settings: one frozen dataclass per config.yaml section, and the whole ``Config``.

Strategy: every setting is one field of a frozen dataclass and one documented key of the
repository's ``config.yaml`` (a test keeps the two in step, and keeps the file's values equal
to the built-in defaults). Each field carries its parser in ``metadata["parse"]``; the
``limits`` section reuses ``workers.limits.CoreLimits`` and derives its parsers from names
and types (``config_values.parser_for``). ``schema`` lists every dotted key with its parser
in config.yaml order; ``flatten`` reads a ``Config`` back by the same keys; ``describe``
renders the effective settings with their sources for the start-up log, credentials masked.
Loading (sources, precedence, "auto" values) is ``sniffer/config.py``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from sniffer import config_values as v
from sniffer.config_bpf import build_bpf
from sniffer.config_values import parser_for
from workers.limits import CoreLimits

MiB = 1024 * 1024
_PORT = v.whole(1, 65535)


def _p(parse: Any) -> dict[str, Any]:
    return {"parse": parse}


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """Where and what to capture; see config.yaml for every key."""

    interfaces: tuple[str, ...] = field(default=("any",), metadata=_p(v.listof(v.iface, 1)))
    ports: tuple[int, ...] = field(default=(), metadata=_p(v.listof(_PORT)))
    bpf_filter: str | None = field(default=None, metadata=_p(v.optional(v.text())))
    no_filter: bool = field(default=False, metadata=_p(v.boolean))
    snaplen: int = field(default=262144, metadata=_p(v.whole(64, 262144)))
    promisc: bool = field(default=False, metadata=_p(v.boolean))
    buffer_bytes: int = field(default=32 * MiB, metadata=_p(v.size(64 * 1024, 2**31 - 1)))
    timeout_ms: int = field(default=100, metadata=_p(v.whole(1, 10_000)))
    drop_pure_acks: bool = field(default=True, metadata=_p(v.boolean))
    ring_bytes: int = field(default=8 * MiB, metadata=_p(v.size(1 * MiB, 1024 * MiB)))
    engine: str = field(default="pcap", metadata=_p(v.engine))
    vxlan_ports: tuple[int, ...] = field(default=(4789,), metadata=_p(v.listof(_PORT)))
    vni_allow: tuple[int, ...] = field(default=(), metadata=_p(v.listof(v.whole(0, 2**24 - 1))))
    geneve_ports: tuple[int, ...] = field(default=(6081,), metadata=_p(v.listof(_PORT)))
    realip_header: str | None = field(default=None, metadata=_p(v.optional(v.token)))


@dataclass(frozen=True, slots=True)
class OutputConfig:
    """Where API calls go (capture URL and/or NDJSON files) and the shipping bounds."""

    path: str | None = field(default=None, metadata=_p(v.optional(v.text())))
    url: str | None = field(default=None, metadata=_p(v.optional(v.url)))
    rules: str | None = field(default=None, metadata=_p(v.optional(v.text(multiline=True))))
    disable: bool = field(default=False, metadata=_p(v.boolean))
    data_dir: str | None = field(default=None, metadata=_p(v.optional(v.text())))
    rotate_bytes: int = field(default=64 * MiB, metadata=_p(v.size(0)))
    rotate_s: float = field(default=3600.0, metadata=_p(v.seconds()))
    max_total_bytes: int = field(default=1024 * MiB, metadata=_p(v.size(0)))
    bundle_bytes: int = field(default=5 * MiB, metadata=_p(v.size(1024, 1024 * MiB)))
    bundle_interval_s: float = field(default=1.0, metadata=_p(v.seconds(0.01)))
    message_queue_size: int | None = field(
        default=None, metadata=_p(v.optional(v.whole(1, 10_000_000))))
    bundle_queue_size: int = field(default=12, metadata=_p(v.whole(1, 100_000)))
    request_timeout_s: float = field(default=10.0, metadata=_p(v.seconds(0.1)))
    spool_dir: str | None = field(default=None, metadata=_p(v.optional(v.text())))
    spool_max_bytes: int = field(default=256 * MiB, metadata=_p(v.size(0)))
    read_deadline_s: float = field(default=60.0, metadata=_p(v.seconds()))
    host_name: str | None = field(default=None, metadata=_p(v.optional(v.text())))
    capture_details: bool = field(default=True, metadata=_p(v.boolean))
    compress_level: int = field(default=1, metadata=_p(v.whole(1, 9)))
    ring_bytes: int = field(default=16 * MiB, metadata=_p(v.size(1 * MiB, 1024 * MiB)))


@dataclass(frozen=True, slots=True)
class StatusConfig:
    """The periodic stderr status line and the optional metrics endpoint."""

    interval_s: float = field(default=10.0, metadata=_p(v.seconds()))
    metrics_port: int | None = field(default=None, metadata=_p(v.optional(_PORT)))
    metrics_address: str = field(default="127.0.0.1", metadata=_p(v.text()))


@dataclass(frozen=True, slots=True)
class DebugConfig:
    """Logging level and the local debug export of calls."""

    log_level: str = field(
        default="info", metadata=_p(v.choice("debug", "info", "warning", "error"))
    )
    export: str = field(default="none", metadata=_p(v.export))


SECTIONS: dict[str, type] = {
    "capture": CaptureConfig,
    "limits": CoreLimits,
    "output": OutputConfig,
    "status": StatusConfig,
    "debug": DebugConfig,
}


@dataclass(frozen=True, slots=True)
class Config:
    """The whole effective configuration; picklable, handed to every process."""

    capture: CaptureConfig = field(default_factory=CaptureConfig)
    workers: int | str = field(default="auto", metadata=_p(v.workers))
    start_method: str = field(default="forkserver",
                              metadata=_p(v.choice("forkserver", "spawn")))
    limits: CoreLimits = field(default_factory=CoreLimits)
    output: OutputConfig = field(default_factory=OutputConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    sources: tuple[tuple[str, str], ...] = field(
        default=(), compare=False, metadata={"internal": 1}
    )
    """(dotted key, where its value came from), for ``describe``."""
    notes: tuple[str, ...] = field(default=(), compare=False, metadata={"internal": 1})
    """Warnings found while loading (ignored legacy variables...); log them at start-up."""

    def describe(self) -> list[str]:
        """One line per effective setting with its source; URL credentials masked."""
        src = dict(self.sources)
        lines = [
            f"{k} = {display(k, val)}  ({src.get(k, 'default')})"
            for k, val in flatten(self).items()
        ]
        bpf = build_bpf(self.capture)
        lines.append(f"(derived) capture BPF filter = {bpf if bpf is not None else 'none'}")
        return lines


def schema() -> dict[str, Any]:
    """Dotted key -> parser for every setting, in config.yaml order."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        if f.metadata.get("internal"):
            continue
        if f.name in SECTIONS:
            for sub in dataclasses.fields(SECTIONS[f.name]):
                out[f"{f.name}.{sub.name}"] = parser_for(sub)
        else:
            out[f.name] = parser_for(f)
    return out


def flatten(cfg: Config) -> dict[str, Any]:
    """Dotted key -> value of every setting of ``cfg``."""
    out: dict[str, Any] = {}
    for key in schema():
        section, _, name = key.partition(".")
        out[key] = getattr(getattr(cfg, section), name) if name else getattr(cfg, section)
    return out


def display(key: str, value: object) -> str:
    """A human rendering of an effective setting for ``Config.describe``."""
    if value is None or value == ():
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(str(i) for i in value)
    if key == "output.url":
        return v.mask_url(str(value))
    if isinstance(value, int) and "_bytes" in key and value >= 1024:
        return (
            f"{value} ({value / 1024**2:g} MiB)"
            if value >= 1024**2
            else f"{value} ({value / 1024:g} KiB)"
        )
    out = (
        json.dumps(value, ensure_ascii=False)
        if isinstance(value, str) and "\n" in value
        else str(value)
    )
    return out if len(out) <= 120 else out[:117] + "..."

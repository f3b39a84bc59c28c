"""Configuration: built-in defaults < config.yaml < environment < command line.

Strategy: every setting is one field of a frozen dataclass and one documented key of the
repository's ``config.yaml`` (a test keeps the two in step, and keeps the file's values equal
to the built-in defaults). Each field carries its parser in ``metadata["parse"]`` (the
``limits`` section reuses ``workers.limits.CoreLimits`` and derives parsers from names and
types). Each source is turned into ``(dotted key, raw value, source label)`` entries, every
entry is parsed where it comes from, so an error names its origin
(``config.yaml:12``, ``env APP_PORTS``, ``--workers``) and the fix in ONE line of
``ConfigError``. "auto" values (workers, data_dir, spool_dir, host_name) and ``file://`` rules
are resolved once here, so every process gets the same concrete ``Config``. The environment
mapping (original container variables, legacy names) and the value parsers shared by YAML,
environment and CLI live in ``sniffer/config_env.py``. ``build_bpf`` turns the capture section
into the kernel filter.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from sniffer import config_env as v
from sniffer.config_env import ConfigError, env_layer, parser_for
from workers.limits import CoreLimits

__all__ = ["Config", "ConfigError", "HostFacts", "build_bpf", "load_config", "CONFIG_ENV"]

CONFIG_ENV = "NETWORK_SNIFFER_CONFIG"
"""Environment variable naming the YAML file when ``--config`` is not given."""

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
    message_queue_size: int = field(default=1000, metadata=_p(v.whole(1, 10_000_000)))
    bundle_queue_size: int = field(default=128, metadata=_p(v.whole(1, 100_000)))
    request_timeout_s: float = field(default=10.0, metadata=_p(v.seconds(0.1)))
    spool_dir: str | None = field(default=None, metadata=_p(v.optional(v.text())))
    spool_max_bytes: int = field(default=256 * MiB, metadata=_p(v.size(0)))
    read_deadline_s: float = field(default=60.0, metadata=_p(v.seconds()))
    host_name: str | None = field(default=None, metadata=_p(v.optional(v.text())))
    capture_details: bool = field(default=True, metadata=_p(v.boolean))


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


_SECTIONS: dict[str, type] = {
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
            f"{k} = {v.display(k, val)}  ({src.get(k, 'default')})"
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
        if f.name in _SECTIONS:
            for sub in dataclasses.fields(_SECTIONS[f.name]):
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


@dataclass(frozen=True, slots=True)
class HostFacts:
    """Facts about the machine that "auto" settings depend on (injectable for tests)."""

    cpus: int
    euid: int
    hostname: str
    cwd: str

    @classmethod
    def current(cls) -> HostFacts:
        """Read the facts of this process (CPU affinity and cgroup quota, euid, hostname)."""
        return cls(v.available_cpus(), os.geteuid(), socket.gethostname(), os.getcwd())


Entry = tuple[str, object, str]


def load_config(
    path: str | None,
    env: Mapping[str, str],
    overrides: Mapping[str, object],
    *,
    override_sources: Mapping[str, str] | None = None,
    facts: HostFacts | None = None,
) -> Config:
    """Build the effective Config; raises ConfigError (one line) on any bad key or value.

    ``path`` is ``--config`` (else ``$NETWORK_SNIFFER_CONFIG``, else built-in defaults only).
    ``overrides`` maps dotted keys to CLI values (None = not given); ``override_sources``
    names the flag for each key in error messages and ``describe``.
    """
    facts = facts or HostFacts.current()
    entries: list[Entry] = []
    path = path or env.get(CONFIG_ENV) or None
    if path:
        entries += read_yaml(path)
    env_entries, notes = env_layer(env, list(schema()))
    entries += env_entries
    names = override_sources or {}
    entries += [
        (k, val, names.get(k, f"command line ({k})"))
        for k, val in overrides.items()
        if val is not None
    ]
    values, sources = _merge(entries)
    return _resolve(values, sources, notes, facts)


def _merge(entries: list[Entry]) -> tuple[dict[str, Any], dict[str, str]]:
    parsers = schema()
    values = flatten(Config())
    sources = {k: "default" for k in values}
    for key, raw, source in entries:
        if key not in parsers:
            raise ConfigError(f"{source}: {key}: unknown setting{_did_you_mean(key, parsers)}")
        try:
            values[key] = parsers[key](raw)
        except v.Bad as bad:
            raise ConfigError(f"{source}: {key}: expected {bad}, got {v.show(key, raw)}") from None
        sources[key] = source
    return values, sources


def _did_you_mean(key: str, known: Mapping[str, object]) -> str:
    names = list(known) if "." in key else [k for k in known if "." not in k] + list(_SECTIONS)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else "; see config.yaml for the known keys"


def _resolve(
    values: dict[str, Any], sources: dict[str, str], notes: list[str], facts: HostFacts
) -> Config:
    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{sources[key]}: {key}: {problem}")

    ifaces = values["capture.interfaces"]
    if "any" in ifaces and len(ifaces) > 1:
        raise fail(
            "capture.interfaces",
            '"any" already covers every interface; use either any or '
            + ", ".join(i for i in ifaces if i != "any"),
        )
    if values["capture.no_filter"] and values["capture.bpf_filter"]:
        raise fail(
            "capture.bpf_filter", "conflicts with capture.no_filter: true; set only one of them"
        )
    if 0 < values["output.max_total_bytes"] < values["output.rotate_bytes"]:
        raise fail("output.max_total_bytes", "must be 0 (no cap) or at least output.rotate_bytes")
    if values["workers"] == "auto":
        values["workers"] = max(1, facts.cpus - 1)
        sources["workers"] += f", auto: {facts.cpus} CPUs minus 1 for capture+aggregator"
    if values["output.data_dir"] is None:
        values["output.data_dir"] = (
            "/var/lib/network-sniffer"
            if facts.euid == 0
            else os.path.join(facts.cwd, "sniffer-data")
        )
        sources["output.data_dir"] += ", auto: " + ("root" if facts.euid == 0 else "not root")
    if values["output.spool_dir"] is None:
        values["output.spool_dir"] = os.path.join(values["output.data_dir"], "spool")
        sources["output.spool_dir"] += ", auto: output.data_dir/spool"
    if values["output.host_name"] is None:
        values["output.host_name"] = facts.hostname
        sources["output.host_name"] += ", auto: host name"
    rules = values["output.rules"]
    if rules is not None and rules.startswith("file://"):
        values["output.rules"] = v.read_rules_file(rules[len("file://") :], sources["output.rules"])
        sources["output.rules"] += f", {rules}"
    built: dict[str, Any] = {name: {} for name in _SECTIONS}
    top: dict[str, Any] = {}
    for key, val in values.items():
        section, _, name = key.partition(".")
        (built[section].__setitem__(name, val) if name else top.__setitem__(section, val))
    kwargs = {name: cls(**built[name]) for name, cls in _SECTIONS.items()}
    return Config(**kwargs, **top, sources=tuple(sources.items()), notes=tuple(notes))


def read_yaml(path: str) -> list[Entry]:
    """Entries of a YAML config file, each labelled ``path:line``; structure errors raise."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(4 * MiB)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the config file ({exc.strerror}); pass an existing file"
            f" with --config or fix ${CONFIG_ENV}"
        ) from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return list(_walk(loader, root, path)) if root is not None else []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise ConfigError(
            f"{where}: not valid YAML ({getattr(exc, 'problem', exc)});"
            " check indentation and quoting"
        ) from None
    finally:
        loader.dispose()


def _walk(loader: yaml.SafeLoader, root: yaml.Node, path: str) -> Any:
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            f"{path}:{root.start_mark.line + 1}: expected a mapping of sections"
            " (capture:, output:, ...)"
        )
    seen: set[str] = set()
    for knode, vnode in root.value:
        where, name = f"{path}:{knode.start_mark.line + 1}", str(knode.value)
        if name in _SECTIONS:
            if isinstance(vnode, yaml.ScalarNode) and vnode.tag.endswith(":null"):
                continue
            if not isinstance(vnode, yaml.MappingNode):
                raise ConfigError(f"{where}: {name}: expected a mapping of settings under {name}:")
            pairs = [(f"{name}.{k.value}", k, val) for k, val in vnode.value]
        else:
            pairs = [(name, knode, vnode)]
        for key, kn, vn in pairs:
            line = f"{path}:{kn.start_mark.line + 1}"
            if key in seen:
                raise ConfigError(f"{line}: {key}: duplicate key; keep only one")
            seen.add(key)
            value = loader.construct_object(vn, deep=True)
            if key == "output.url" and v.has_credentials(value):
                raise ConfigError(
                    f"{line}: output.url: credentials do not belong in a config file;"
                    " set USAGE_LOGGERS_URL in the environment instead"
                )
            yield key, value, line


# BPF: libpcap's ``tcp[...]`` indexing is IPv4-only (on ``ip6`` it rejects everything), so
# IPv6 offsets are spelled out from the fixed 40-byte header. A segment is kept when it has
# SYN/FIN/RST (flags & 7) or a payload: IPv4 total length - IP header - TCP header, IPv6
# payload length - TCP header. IPv6 with extension headers (next header != 6) is kept
# unfiltered, since its TCP header offset is unknown in BPF. IP lengths, not frame lengths,
# so Ethernet padding never makes a pure ACK look like data.
_V4_KEEP = (
    "(ip and (tcp[13] & 7 != 0 or ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0))"
)
_V6_KEEP = "(ip6 and (ip6[6] != 6 or ip6[53] & 7 != 0 or ip6[4:2] - ((ip6[52] & 0xf0) >> 2) != 0))"


def build_bpf(capture: CaptureConfig) -> str | None:
    """The kernel filter for ``capture``: None with no_filter, else the user's or ours.

    Ours: ``tcp [and (port P or ...)] [and <not a pure ACK>]``; in mirror mode that,
    or the VXLAN/Geneve tunnel traffic (``udp and (dst port 4789 or dst port 6081)``).
    """
    if capture.no_filter:
        return None
    if capture.bpf_filter:
        return capture.bpf_filter
    tcp = "tcp"
    if capture.ports:
        tcp += " and (" + " or ".join(f"port {p}" for p in capture.ports) + ")"
    if capture.drop_pure_acks:
        tcp += f" and ({_V4_KEEP} or {_V6_KEEP})"
    tunnel_ports = capture.vxlan_ports + capture.geneve_ports
    if capture.engine != "mirror" or not tunnel_ports:
        return tcp
    return f"({tcp}) or (udp and (" + " or ".join(f"dst port {p}" for p in tunnel_ports) + "))"

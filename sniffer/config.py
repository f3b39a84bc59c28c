"""Configuration loading: built-in defaults < config.yaml < environment < command line.

Strategy: each source is turned into ``(dotted key, raw value, source label)`` entries and
every entry is parsed where it comes from, so an error names its origin (``config.yaml:12``,
``env APP_PORTS``, ``--workers``) and the fix in ONE line of ``ConfigError``. "auto" values
(workers, data_dir, spool_dir, host_name) and ``file://`` rules are resolved once here, from
``HostFacts``, so every process gets the same concrete, picklable ``Config``. This module owns
the sources that touch the machine (the YAML file, rules files, CPU count, host name).

Where the rest lives (all re-exported here, the names other modules import):
``sniffer/config_schema.py`` the settings (``Config`` and its sections, ``schema``,
``flatten``); ``sniffer/config_values.py`` the value parsers and ``ConfigError``;
``sniffer/config_env.py`` the environment variables; ``sniffer/config_bpf.py`` ``build_bpf``,
the kernel filter derived from the capture section.
"""

from __future__ import annotations

import difflib
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sniffer import config_values as v
from sniffer.config_bpf import build_bpf
from sniffer.config_env import env_layer
from sniffer.config_schema import (
    MiB,
    SECTIONS,
    CaptureConfig,
    Config,
    DebugConfig,
    OutputConfig,
    StatusConfig,
    flatten,
    schema,
)
from sniffer.config_values import ConfigError

if TYPE_CHECKING:  # imported where a file is read (read_yaml), not at start-up
    import yaml

__all__ = [
    "CONFIG_ENV",
    "CaptureConfig",
    "Config",
    "ConfigError",
    "DebugConfig",
    "HostFacts",
    "OutputConfig",
    "StatusConfig",
    "build_bpf",
    "flatten",
    "load_config",
    "read_yaml",
    "schema",
]

CONFIG_ENV = "NETWORK_SNIFFER_CONFIG"
"""Environment variable naming the YAML file when ``--config`` is not given."""


def auto_workers(cpus: int) -> int:
    """Workers for ``workers: auto``: every CPU up to 4, then one CPU left to the others.

    The capture process and the aggregator together use 15-20% of one core at full load
    (bench/README.md), so on small machines a worker on every core wins (2 workers on 2 cores
    read 1.35x faster than 1); on larger ones one core stays for capture and aggregator.
    """
    return max(1, cpus if cpus <= 4 else cpus - 1)


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
        return cls(available_cpus(), os.geteuid(), socket.gethostname(), os.getcwd())


def available_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


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
    names = list(known) if "." in key else [k for k in known if "." not in k] + list(SECTIONS)
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
        values["workers"] = auto_workers(facts.cpus)
        sources["workers"] += f", auto: {values['workers']} for {facts.cpus} CPUs"
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
        values["output.rules"] = read_rules_file(rules[len("file://") :], sources["output.rules"])
        sources["output.rules"] += f", {rules}"
    built: dict[str, Any] = {name: {} for name in SECTIONS}
    top: dict[str, Any] = {}
    for key, val in values.items():
        section, _, name = key.partition(".")
        (built[section].__setitem__(name, val) if name else top.__setitem__(section, val))
    kwargs = {name: cls(**built[name]) for name, cls in SECTIONS.items()}
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
    import yaml  # here: a process that reads no config file need not import it

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
    import yaml

    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            f"{path}:{root.start_mark.line + 1}: expected a mapping of sections"
            " (capture:, output:, ...)"
        )
    seen: set[str] = set()
    for knode, vnode in root.value:
        where, name = f"{path}:{knode.start_mark.line + 1}", str(knode.value)
        if name in SECTIONS:
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


def read_rules_file(path: str, source: str) -> str:
    """The text of a ``file://`` rules file (at most 1 MiB)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read(1024 * 1024)
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(
            f"{source}: output.rules: cannot read file://{path} ({why}); fix the path"
            " or give the rules inline"
        ) from None

"""Configuration values: text -> typed value parsers, and the environment-variable mapping.

Strategy: every parser takes whatever YAML, an environment variable or the CLI gave (a str
or an already typed value) and returns the typed value or raises ``Bad(expected)``; the
loader adds the source and key, so each error is one line. ``env_layer`` maps the original
container's variables (resurface.md 1.3, 4.6, 4.7) with their exact semantics: only the
literal ``true`` enables a ``SNIFFER_*`` flag (USAGE_LOGGERS_DISABLE follows logger-go's
ParseBool instead: 1/t/T/TRUE/true/True, so a value that disabled the original still does);
empty variables count as unset; ``APP_PORTS`` falls back to ``APP_PORT``, ``NET_DEVICE`` to
``VPC_MIRROR_DEVICE``; ``USAGE_LOGGERS_RULES`` turns the two characters ``\\n`` into a
newline and nothing else. Every setting also has a generic name ``SNIFFER_<SECTION>_<KEY>``
(``SNIFFER_CAPTURE_SNAPLEN``, ``SNIFFER_WORKERS``), which wins over the legacy names.
Unknown ``SNIFFER_*``/``USAGE_LOGGERS_*`` names close to a known one are errors (typos);
Kubernetes service-link variables (``SNIFFER_PORT=tcp://...``) are ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

Parser = Callable[[object], Any]


class ConfigError(Exception):
    """A bad configuration: one line naming the key, its source and the fix (CLI exit 2)."""


class Bad(ValueError):
    """Raised by a parser; the message says what was expected."""


def whole(lo: int, hi: int | None = None) -> Parser:
    """A whole number in [lo, hi] (from an int or its decimal text)."""
    expected = f"a whole number from {lo} to {hi}" if hi is not None else f"a whole number >= {lo}"

    def parse(value: object) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*\+?\d+\s*", value):
            value = int(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < lo
            or (hi is not None and value > hi)
        ):
            raise Bad(expected)
        return value

    return parse


_UNITS = {"": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def size(lo: int, hi: int | None = None) -> Parser:
    """Bytes: a whole number, or one with a KiB/MiB/GiB suffix (``32MiB``)."""
    span = f" from {lo} to {hi}" if hi is not None else f" >= {lo}"
    expected = f"a size in bytes{span} (a whole number, or with KiB/MiB/GiB like 32MiB)"

    def parse(value: object) -> int:
        if isinstance(value, str):
            m = re.fullmatch(r"\s*(\d+)\s*([kmg]i?b)?\s*", value, re.IGNORECASE)
            unit = (m.group(2) or "").lower() if m else "?"
            if not m or unit not in _UNITS:
                raise Bad(expected)
            value = int(m.group(1)) * _UNITS[unit]
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < lo
            or (hi is not None and value > hi)
        ):
            raise Bad(expected)
        return value

    return parse


def seconds(lo: float = 0.0) -> Parser:
    """Seconds as a number >= lo (int, float or their text)."""
    expected = f"a number of seconds >= {lo:g}"

    def parse(value: object) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise Bad(expected) from None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < lo
        ):
            raise Bad(expected)
        return float(value)

    return parse


def boolean(value: object) -> bool:
    """true/false (YAML booleans, or exactly the text ``true``/``false``)."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise Bad("true or false")


def choice(*names: str, aliases: Mapping[str, str] | None = None, hint: str = "") -> Parser:
    """One of ``names`` (aliases are mapped to their canonical name)."""
    expected = " or ".join(f'"{n}"' for n in names) + hint

    def parse(value: object) -> str:
        if isinstance(value, str) and (aliases or {}).get(value, value) in names:
            return (aliases or {}).get(value, value)
        raise Bad(expected)

    return parse


_K8S_HINT = (
    "Kubernetes discovery is not supported yet: list the node's interfaces in capture.interfaces"
    " (NET_DEVICE) and the service ports in capture.ports (APP_PORTS) instead"
)
engine = choice(
    "pcap",
    "mirror",
    aliases={"vxlan": "mirror", "libpcap": "pcap"},
    hint=f" (vxlan means mirror; {_K8S_HINT})",
)
export = choice(
    "none",
    "local",
    hint=(
        " (s3 and http export are not supported: use local and ship"
        " the files yourself, or set output.url to send calls to a capture URL)"
    ),
)


def workers(value: object) -> int | str:
    """``auto`` or a whole number of worker processes."""
    if value == "auto":
        return "auto"
    try:
        count: int = whole(1, 1024)(value)
        return count
    except Bad:
        raise Bad('"auto" or a whole number from 1 to 1024') from None


def text(multiline: bool = False) -> Parser:
    """Non-empty text (one line unless ``multiline``)."""
    expected = "non-empty text" + ("" if multiline else " on one line")

    def parse(value: object) -> str:
        if not isinstance(value, str) or not value.strip() or (not multiline and "\n" in value):
            raise Bad(expected)
        return value

    return parse


def optional(parse: Parser) -> Parser:
    """None (YAML null, or empty text) or whatever ``parse`` accepts."""

    def parse_optional(value: object) -> Any:
        return None if value is None or value == "" else parse(value)

    return parse_optional


def iface(value: object) -> str:
    """An interface name (``any``, ``eth0``, ``docker0``...)."""
    if isinstance(value, str) and re.fullmatch(r"[^\s,/]{1,64}", value.strip()):
        return value.strip()
    raise Bad("interface names such as any, eth0 or docker0")


def token(value: object) -> str:
    """An HTTP header name (an RFC 9110 token)."""
    if isinstance(value, str) and re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", value):
        return value
    raise Bad("an HTTP header name such as X-Real-IP")


def url(value: object) -> str:
    """An http:// or https:// URL with a host."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise Bad("an http:// or https:// URL such as http://localhost:7701/message")
    return value  # type: ignore[return-value]


def listof(item: Parser, min_len: int = 0) -> Parser:
    """A list (YAML list, a single item, or comma-separated text) of unique items."""

    def parse(value: object) -> tuple[Any, ...]:
        if isinstance(value, str):
            items: list[object] = [p.strip() for p in value.split(",") if p.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = [value]
        try:
            out = tuple(dict.fromkeys(item(i) for i in items))
        except Bad as bad:
            raise Bad(f"a list (or comma-separated text), each item {bad}") from None
        if len(out) < min_len:
            raise Bad(f"at least {min_len} item(s)")
        return out

    return parse


_CHOICES = {"binary_bodies": ("skip", "base64", "lossy")}  # CoreLimits' documented policies


def parser_for(f: dataclasses.Field[Any]) -> Parser:
    """The parser of a dataclass field: its metadata, else one derived from name and type."""
    if "parse" in f.metadata:
        return f.metadata["parse"]  # type: ignore[no-any-return]
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    if kind == "int":
        return size(0) if "_bytes" in f.name else whole(1)
    if kind == "float":
        return seconds(0.001)
    if kind == "bool":
        return boolean
    if kind == "str":
        return choice(*_CHOICES[f.name]) if f.name in _CHOICES else text()
    raise TypeError(f"no parser for {f.name}: {kind}")  # a new CoreLimits type: add it here


def has_credentials(value: object) -> bool:
    """True for a URL carrying a user name or password."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return bool(parts.username or parts.password)


def mask_url(value: str) -> str:
    """The URL with user info and query replaced by ``***``."""
    p = urlsplit(value)
    host = (p.hostname or "") + (f":{p.port}" if p.port else "") if "@" in p.netloc else p.netloc
    netloc = ("***@" if "@" in p.netloc else "") + host
    return urlunsplit((p.scheme, netloc, p.path, "***" if p.query else "", ""))


def show(key: str, value: object) -> str:
    """A short, quoted rendering of a bad value for an error line (URLs masked)."""
    if key == "output.url" and isinstance(value, str):
        value = mask_url(value)
    out = json.dumps(value, default=str, ensure_ascii=False)
    return out if len(out) <= 80 else out[:77] + "..."


def display(key: str, value: object) -> str:
    """A human rendering of an effective setting for ``Config.describe``."""
    if value is None or value == ():
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(str(i) for i in value)
    if key == "output.url":
        return mask_url(str(value))
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


def read_env_file(lines: Iterable[str]) -> dict[str, str]:
    """Parse ``docker --env-file`` text: KEY=VALUE per line, verbatim values, ``#`` comments.

    A bare ``KEY`` (no ``=``) is skipped here (docker copies it from the host environment).
    """
    out: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        line = line.lstrip("\ufeff" if n == 1 else "").rstrip("\r\n").lstrip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if not key or re.search(r"\s", key):
            raise ConfigError(
                f"env file line {n}: {key!r}: variable names cannot be empty or contain spaces"
            )
        out[key] = value
    return out


# (dotted key, variable names: the first one set wins)
_LEGACY: list[tuple[str, tuple[str, ...]]] = [
    ("capture.interfaces", ("NET_DEVICE", "VPC_MIRROR_DEVICE")),
    ("capture.ports", ("APP_PORTS", "APP_PORT")),
    ("capture.engine", ("SNIFFER_ENGINE",)),
    ("capture.vxlan_ports", ("SNIFFER_MIRROR_VXLANPORT",)),
    ("capture.vni_allow", ("SNIFFER_MIRROR_VNIS",)),
    ("capture.realip_header", ("SNIFFER_REALIP_HEADER",)),
    ("output.url", ("USAGE_LOGGERS_URL",)),
    ("limits.max_body_bytes", ("USAGE_LOGGERS_BODY_LIMIT",)),
    ("output.bundle_bytes", ("USAGE_LOGGERS_BUNDLE_SIZE",)),
    ("output.message_queue_size", ("USAGE_LOGGERS_MESSAGE_QUEUE_SIZE",)),
    ("output.bundle_queue_size", ("USAGE_LOGGERS_BUNDLE_QUEUE_SIZE",)),
    ("output.host_name", ("DYNO",)),
    ("status.metrics_port", ("SNIFFER_METRICS_PORT",)),
]
_FLAGS = [("capture.promisc", "SNIFFER_PROMISC_ENABLED"), ("capture.no_filter", "SNIFFER_NOFILTER")]
_SPECIAL = (
    "USAGE_LOGGERS_RULES",
    "USAGE_LOGGERS_DISABLE",
    "SNIFFER_PCAP_BUFFER_SIZE",
    "K8S_INPUT",
    "SNIFFER_RF_MONITOR_ENABLED",
    "SNIFFER_DEBUG_ENABLED",
    "SNIFFER_DEBUG_VERBOSITY",
    "SNIFFER_DEBUG_EXPORT",
    "SNIFFER_DEBUG_DEAL_ID",
    "SNIFFER_DEBUG_HTTP_ENDPOINT",
)
_GO_TRUE, _GO_FALSE = ("1", "t", "T", "TRUE", "true", "True"), (
    "0",
    "f",
    "F",
    "FALSE",
    "false",
    "False",
)
_SERVICE_LINK = re.compile(r".*_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT_\d+_(TCP|UDP|SCTP)(_\w+)?)")
_OURS = ("SNIFFER_", "USAGE_LOGGERS_")


def generic_name(key: str) -> str:
    """The ``SNIFFER_<SECTION>_<KEY>`` variable of a dotted key."""
    return "SNIFFER_" + key.replace(".", "_").upper()


def env_layer(
    env: Mapping[str, str], keys: list[str]
) -> tuple[list[tuple[str, object, str]], list[str]]:
    """(entries, notes) from the environment; raises ConfigError for unsupported modes and typos."""
    entries: list[tuple[str, object, str]] = []
    notes: list[str] = []

    def val(name: str) -> str | None:
        raw = env.get(name)
        if raw is None or not raw.strip():
            return None
        if name.endswith("_PORT") and re.match(r"(tcp|udp|sctp)://", raw):
            notes.append(f"env {name}: looks like a Kubernetes service link ({raw}), ignored")
            return None
        return raw

    def flag(name: str) -> bool | None:
        raw = val(name)
        if (
            raw is not None
            and raw != "true"
            and raw.strip().lower() in ("1", "yes", "on", "true", "y", "t")
        ):
            notes.append(
                f"env {name}={raw}: only the exact text true switches it on"
                " (as in the original image); treated as off"
            )
        return None if raw is None else raw == "true"

    if val("K8S_INPUT") or (val("SNIFFER_ENGINE") or "").strip() == "k8s":
        name = "K8S_INPUT" if val("K8S_INPUT") else "SNIFFER_ENGINE=k8s"
        raise ConfigError(f"env {name}: {_K8S_HINT}")
    for key, names in _LEGACY:
        found = next((n for n in names if val(n) is not None), None)
        if found:
            entries.append((key, val(found), f"env {found}"))
    for key, name in _FLAGS:
        if (on := flag(name)) is not None:
            entries.append((key, on, f"env {name}"))
    if (rules := val("USAGE_LOGGERS_RULES")) is not None:
        entries.append(("output.rules", rules.replace("\\n", "\n"), "env USAGE_LOGGERS_RULES"))
    if (disable := val("USAGE_LOGGERS_DISABLE")) is not None:
        if disable not in _GO_TRUE + _GO_FALSE:
            notes.append(
                f"env USAGE_LOGGERS_DISABLE={disable}: not a boolean, treated as false (use true)"
            )
        entries.append(("output.disable", disable in _GO_TRUE, "env USAGE_LOGGERS_DISABLE"))
    if (buf := val("SNIFFER_PCAP_BUFFER_SIZE")) is not None and buf.strip() != "0":  # 0 = default
        entries.append(("capture.buffer_bytes", buf, "env SNIFFER_PCAP_BUFFER_SIZE"))
    if flag("SNIFFER_RF_MONITOR_ENABLED"):
        notes.append(
            "env SNIFFER_RF_MONITOR_ENABLED=true: ignored, pypcap cannot switch on monitor mode;"
            " put the Wi-Fi interface in monitor mode first (iw dev IFACE set type monitor)"
        )
    _debug_env(val, flag, entries, notes)
    generic = {generic_name(k): k for k in keys if generic_name(k) not in _SPECIAL}
    for name, key in generic.items():
        if (raw := val(name)) is not None:
            entries.append((key, raw, f"env {name}"))
    known = (
        set(generic) | set(_SPECIAL) | {n for _, ns in _LEGACY for n in ns} | {n for _, n in _FLAGS}
    )
    for name in sorted(env):
        if not name.startswith(_OURS) or name in known or _SERVICE_LINK.fullmatch(name):
            continue
        if not re.match(r"(tcp|udp|sctp)://", env[name]):  # else a k8s service link: skip
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            if close:
                raise ConfigError(f"env {name}: unknown variable; did you mean {close[0]}?")
            notes.append(f"env {name}: unknown variable, ignored")
    return entries, list(dict.fromkeys(notes))  # val() may note a name twice


def _debug_env(
    val: Callable[[str], str | None],
    flag: Callable[[str], bool | None],
    entries: list[tuple[str, object, str]],
    notes: list[str],
) -> None:
    """SNIFFER_DEBUG_*: verbosity >= 1 -> log level debug; export; all only when ENABLED=true."""
    names = (
        "SNIFFER_DEBUG_VERBOSITY",
        "SNIFFER_DEBUG_EXPORT",
        "SNIFFER_DEBUG_DEAL_ID",
        "SNIFFER_DEBUG_HTTP_ENDPOINT",
    )
    if not flag("SNIFFER_DEBUG_ENABLED"):
        notes += [
            f"env {n}: ignored because SNIFFER_DEBUG_ENABLED is not true" for n in names if val(n)
        ]
        return
    if (verbosity := val("SNIFFER_DEBUG_VERBOSITY")) is not None:
        try:
            level = whole(0, 100)(verbosity)
        except Bad as bad:
            raise ConfigError(
                f"env SNIFFER_DEBUG_VERBOSITY: expected {bad}, got {show('', verbosity)}"
            ) from None
        if level >= 1:
            entries.append(("debug.log_level", "debug", "env SNIFFER_DEBUG_VERBOSITY"))
    if (exp := val("SNIFFER_DEBUG_EXPORT")) is not None:
        entries.append(("debug.export", exp, "env SNIFFER_DEBUG_EXPORT"))
    notes += [
        f"env {n}: ignored (s3/http debug export is not supported)" for n in names[2:] if val(n)
    ]

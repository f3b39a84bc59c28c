"""The environment-variable layer of the configuration, and ``docker --env-file`` parsing.

Strategy: ``env_layer`` maps the original container's variables (resurface.md 1.3, 4.6, 4.7)
with their exact semantics: only the literal ``true`` enables a ``SNIFFER_*`` flag
(USAGE_LOGGERS_DISABLE follows logger-go's ParseBool instead: 1/t/T/TRUE/true/True, so a value
that disabled the original still does); empty variables count as unset; ``APP_PORTS`` falls
back to ``APP_PORT``, ``NET_DEVICE`` to ``VPC_MIRROR_DEVICE``; ``USAGE_LOGGERS_RULES`` turns
the two characters ``\\n`` into a newline and nothing else. Every setting also has a generic
name ``SNIFFER_<SECTION>_<KEY>`` (``SNIFFER_CAPTURE_SNAPLEN``, ``SNIFFER_WORKERS``), which wins
over the legacy names. Unknown ``SNIFFER_*``/``USAGE_LOGGERS_*`` names close to a known one are
errors (typos); Kubernetes service-link variables (``SNIFFER_PORT=tcp://...``) are ignored.
The layer yields raw ``(dotted key, value, "env NAME")`` entries; ``sniffer/config.py`` parses
them with the parsers of ``sniffer/config_values.py``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping

from sniffer.config_values import GO_FALSE, GO_TRUE, K8S_HINT, Bad, ConfigError, show, whole

__all__ = ["ConfigError", "env_layer", "generic_name", "read_env_file"]


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
        raise ConfigError(f"env {name}: {K8S_HINT}")
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
        if disable not in GO_TRUE | GO_FALSE:
            notes.append(
                f"env USAGE_LOGGERS_DISABLE={disable}: not a boolean, treated as false (use true)"
            )
        entries.append(("output.disable", disable in GO_TRUE, "env USAGE_LOGGERS_DISABLE"))
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

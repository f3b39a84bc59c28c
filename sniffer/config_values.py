"""Configuration values: text -> typed value parsers, and how a bad value is shown.

Strategy: every parser takes whatever YAML, an environment variable or the CLI gave (a str
or an already typed value) and returns the typed value or raises ``Bad(expected)``, where
``expected`` says what would have been accepted; the loader (``sniffer/config.py``) adds the
source and key, so each error is one line of ``ConfigError``. Parsers never read files or
the environment. ``parser_for`` gives a dataclass field its parser (from metadata, or derived
from its name and type for ``workers.limits.CoreLimits``). ``show``/``mask_url`` render a
value for an error line without leaking URL credentials or query tokens.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
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
        return _int_within(value, lo, hi, expected)

    return parse


def _int_within(value: object, lo: int, hi: int | None, expected: str) -> int:
    """``value`` when it is an int (not a bool) in [lo, hi], else ``Bad(expected)``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise Bad(expected)
    if hi is not None and value > hi:
        raise Bad(expected)
    return value


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
        return _int_within(value, lo, hi, expected)

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


GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
"""Texts Go's ``strconv.ParseBool`` reads as true: USAGE_LOGGERS_DISABLE follows it, like the
Go sniffer (Java/Python loggers take only ``true``, a subset)."""
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
"""Texts Go's ``strconv.ParseBool`` reads as false."""


def choice(*names: str, aliases: Mapping[str, str] | None = None, hint: str = "") -> Parser:
    """One of ``names`` (aliases are mapped to their canonical name)."""
    expected = " or ".join(f'"{n}"' for n in names) + hint

    def parse(value: object) -> str:
        if isinstance(value, str) and (aliases or {}).get(value, value) in names:
            return (aliases or {}).get(value, value)
        raise Bad(expected)

    return parse


K8S_HINT = (
    "Kubernetes discovery is not supported yet: list the node's interfaces in capture.interfaces"
    " (NET_DEVICE) and the service ports in capture.ports (APP_PORTS) instead"
)
engine = choice(
    "pcap",
    "mirror",
    aliases={"vxlan": "mirror", "libpcap": "pcap"},
    hint=f" (vxlan means mirror; {K8S_HINT})",
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
        return f.metadata["parse"]
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

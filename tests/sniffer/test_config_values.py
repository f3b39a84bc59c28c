"""Tests for sniffer/config_values.py: each parser's accepted and rejected values, the one-line
error every source gets for a bad value, and how bad values are shown (secrets masked)."""

from __future__ import annotations

import re

import pytest

from sniffer import config_values as v
from sniffer.config import ConfigError, schema
from sniffer.config_env import generic_name
from tests.sniffer.test_config import MiB, load, write


# ---------------------------------------------------------------- bad values for every typed key


BAD_CANDIDATES = ["lots", -1, 0, ["a b", 1], {"k": 1}, True, "x\ny", 10**12, "1 PB"]


@pytest.mark.parametrize("key", list(schema()))
def test_every_key_rejects_a_bad_value_from_every_source(tmp_path, key):
    bad = next(b for b in BAD_CANDIDATES if _rejects(key, b))
    with pytest.raises(
        ConfigError, match=rf"^command line \({re.escape(key)}\): {re.escape(key)}: expected "
    ):
        load(overrides={key: bad})
    env_bad = next(
        (b for b in BAD_CANDIDATES if isinstance(b, str) and b.strip() and _rejects(key, b)), None
    )
    if env_bad is not None:
        name = generic_name(key)
        enabled = {"SNIFFER_DEBUG_ENABLED": "true"} if key == "debug.export" else {}  # legacy gate
        with pytest.raises(ConfigError, match=rf"^env {name}: {re.escape(key)}: expected "):
            load({name: env_bad, **enabled})
    section, _, name = key.partition(".")
    yaml_text = f"{section}:\n  {name}: {_yaml(bad)}\n" if name else f"{section}: {_yaml(bad)}\n"
    with pytest.raises(
        ConfigError, match=rf"^.*c\.yaml:{2 if name else 1}: {re.escape(key)}: expected .*, got "
    ):
        load(path=write(tmp_path, yaml_text))


def _rejects(key: str, value: object) -> bool:
    try:
        schema()[key](value)
    except ValueError:
        return True
    return False


def _yaml(value: object) -> str:
    import json

    return json.dumps(value)


def test_brief_example_message(tmp_path):
    path = write(tmp_path, "# comment\nworkers: lots\n", "config.yaml")
    with pytest.raises(ConfigError) as exc:
        load(path=path)
    assert (
        str(exc.value)
        == f'{path}:2: workers: expected "auto" or a whole number from 1 to 1024, got "lots"'
    )


@pytest.mark.parametrize(
    "text,value",
    [
        ("32MiB", 32 * MiB),
        ("64 KiB", 65536),
        ("1gib", 1024 * MiB),
        ("1048576", MiB),
        (2 * MiB, 2 * MiB),
    ],
)
def test_sizes(text, value):
    assert load(overrides={"capture.buffer_bytes": text}).capture.buffer_bytes == value


@pytest.mark.parametrize("text", ["32MB", "32 M", "-1", "1.5MiB", "0"])
def test_bad_sizes(text):
    with pytest.raises(
        ConfigError, match="capture.buffer_bytes: expected a size in bytes from 65536"
    ):
        load(overrides={"capture.buffer_bytes": text})


# ---------------------------------------------------------------- the parsers themselves

PORT = v.whole(1, 65535)
ACCEPT = [
    # (parser, given, parsed)
    (PORT, "8080", 8080),
    (PORT, " +80 ", 80),
    (PORT, 65535, 65535),
    (v.whole(0), 10**12, 10**12),
    (v.size(0), "1 KiB", 1024),
    (v.size(0), "2mib", 2 * MiB),
    (v.seconds(), "0.5", 0.5),
    (v.seconds(), 3, 3.0),
    (v.boolean, "false", False),
    (v.boolean, True, True),
    (v.engine, "vxlan", "mirror"),
    (v.engine, "libpcap", "pcap"),
    (v.workers, "auto", "auto"),
    (v.workers, "4", 4),
    (v.optional(v.text()), "", None),
    (v.optional(v.text()), None, None),
    (v.listof(PORT), "80, 80,8080", (80, 8080)),
    (v.listof(PORT), [443], (443,)),
    (v.listof(PORT), 443, (443,)),
    (v.iface, " eth0 ", "eth0"),
    (v.token, "X-Real-IP", "X-Real-IP"),
    (v.url, "https://capture.example.com/message", "https://capture.example.com/message"),
    (v.text(multiline=True), "a\nb", "a\nb"),
]
REJECT = [
    # (parser, given, start of the expected text)
    (PORT, True, "a whole number from 1 to 65535"),
    (PORT, "0", "a whole number from 1 to 65535"),
    (PORT, "65536", "a whole number from 1 to 65535"),
    (PORT, 80.0, "a whole number"),
    (v.whole(5), 4, "a whole number >= 5"),
    (v.size(0, 1024), "2KiB", "a size in bytes from 0 to 1024"),
    (v.size(0), "1KB", "a size in bytes >= 0"),
    (v.size(0), False, "a size in bytes"),
    (v.seconds(1), "0.5", "a number of seconds >= 1"),
    (v.seconds(), "nan", "a number of seconds"),
    (v.seconds(), "inf", "a number of seconds"),
    (v.seconds(), "soon", "a number of seconds"),
    (v.boolean, "yes", "true or false"),
    (v.boolean, 1, "true or false"),
    (v.engine, "k8s", '"pcap" or "mirror" (vxlan means mirror; Kubernetes'),
    (v.workers, 0, '"auto" or a whole number from 1 to 1024'),
    (v.text(), "a\nb", "non-empty text on one line"),
    (v.text(), "  ", "non-empty text"),
    (v.listof(PORT, 1), "", "at least 1 item(s)"),
    (v.listof(PORT), "80,x", "a list (or comma-separated text), each item a whole number"),
    (v.iface, "eth0/1", "interface names"),
    (v.token, "X Real", "an HTTP header name"),
    (v.url, "ftp://host/x", "an http:// or https:// URL"),
    (v.url, "http:///path", "an http:// or https:// URL"),
]


@pytest.mark.parametrize("parse,given,parsed", ACCEPT)
def test_parsers_accept(parse, given, parsed):
    assert parse(given) == parsed
    assert type(parse(given)) is type(parsed)


@pytest.mark.parametrize("parse,given,expected", REJECT)
def test_parsers_reject_saying_what_was_expected(parse, given, expected):
    with pytest.raises(v.Bad) as bad:
        parse(given)
    assert str(bad.value).startswith(expected)


@pytest.mark.parametrize("url,masked,secret", [
    ("https://me:pw@host:8443/p?token=abc", "https://***@host:8443/p?***", True),
    ("http://host/p", "http://host/p", False),
    ("http://host/p?x=1", "http://host/p?***", False),
])
def test_urls_are_masked(url, masked, secret):
    assert v.mask_url(url) == masked
    assert v.has_credentials(url) is secret
    assert v.show("output.url", url) == f'"{masked}"'


def test_show_quotes_and_shortens():
    assert v.show("workers", "lots") == '"lots"'
    assert v.show("capture.ports", [1, "a"]) == '[1, "a"]'
    long = v.show("output.path", "x" * 200)
    assert len(long) == 80 and long.endswith("...")


def test_go_booleans_are_strconv_parsebool():
    assert v.GO_TRUE == {"1", "t", "T", "TRUE", "true", "True"}
    assert v.GO_FALSE == {"0", "f", "F", "FALSE", "false", "False"}
    assert not v.GO_TRUE & v.GO_FALSE

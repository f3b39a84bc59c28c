"""Regex dialect for the logging rules: Java patterns and replacements on Python ``re``.

Strategy: rules are written for Java's ``java.util.regex`` (logger-java is the reference;
the Go sniffer's users write the same text). We compile them with Python ``re`` and translate
only the Java-only syntax that real rules use, so the meaning stays Java's:

* ``re.ASCII``: ``\\d \\w \\s \\b`` and ``(?i)`` are ASCII-only, as in Java by default.
* ``(?<name>...)`` becomes ``(?P<name>...)``; ``\\k<name>`` becomes ``(?P=name)``.
* ``\\Q...\\E`` quoting becomes ``re.escape(...)``.
* ``\\z`` (absolute end) becomes ``\\Z``; Java's ``\\Z`` (end, or before a final line
  terminator) becomes ``(?=\\n?\\Z)``.
* Possessive quantifiers and atomic groups need no translation (Python 3.11+ has them).

Not translated (Python rejects them, so they surface as a rule error, never silently):
``\\p{...}``, ``\\h``, ``\\x{...}``, class set operations (``[a&&[b]]``), inline flags in the
middle of a pattern. Still different but rarely relevant: Java's ``.`` also refuses
``\\r``/``\\u0085``/``\\u2028``/``\\u2029``, Python's only ``\\n``; Java's ``\\v`` is a class.
Python's own ambiguity warnings (``FutureWarning`` for ``[[``/``--``/``&&``) are errors here.

Replacement strings accept both dialects and compile to what ``re.sub`` takes (a literal
string or a function of the match):
``$n``/``${n}``/``${name}`` (Java, Go) and ``\\n``/``\\g<n>``/``\\g<name>`` (Python). As in Java,
``$12`` means group 12 only when the pattern has that many groups, else group 1 and a ``2``.
A backslash before any other character makes it literal (``\\$`` is ``$``, ``\\\\`` is ``\\``);
a ``$`` not followed by a digit or ``{`` is literal (Java would reject it). Group numbers and
names are checked against the pattern when the rule is parsed, so ``apply`` cannot fail.
"""
from __future__ import annotations

import re
import warnings
from typing import Callable, Union

FLAGS = re.ASCII
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RegexError(ValueError):
    """A pattern or replacement that cannot be used; the parser adds the rule to the message."""


def translate(java: str) -> str:
    """Rewrite the Java-only constructs of ``java`` into Python ``re`` syntax."""
    if "\\" not in java and "(?<" not in java:
        return java  # fast path: nothing to translate
    out: list[str] = []
    i, n = 0, len(java)
    while i < n:
        c = java[i]
        if c == "\\" and i + 1 < n:
            nxt = java[i + 1]
            if nxt == "Q":  # literal run up to \E (or the end)
                end = java.find("\\E", i + 2)
                stop = n if end < 0 else end
                out.append(re.escape(java[i + 2 : stop]))
                i = n if end < 0 else end + 2
                continue
            if nxt == "z":
                out.append(r"\Z")
            elif nxt == "Z":
                out.append(r"(?=\n?\Z)")
            elif nxt == "k" and java.startswith("<", i + 2):
                close = java.find(">", i + 3)
                if close < 0:
                    raise RegexError("unterminated \\k<name>")
                out.append(f"(?P={java[i + 3 : close]})")
                i = close + 1
                continue
            else:
                out.append(java[i : i + 2])
            i += 2
            continue
        if java.startswith("(?<", i) and i + 3 < n and java[i + 3] not in "=!":
            out.append("(?P<")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


def compile_java(java: str) -> re.Pattern[str]:
    """Compile a Java pattern; any error or ambiguity warning becomes a ``RegexError``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return re.compile(translate(java), FLAGS)
    except (re.error, Warning, ValueError, OverflowError, RecursionError) as exc:
        raise RegexError(str(exc).splitlines()[0]) from None


Replacement = Union[str, Callable[["re.Match[str]"], str]]


def compile_replacement(repl: str, pattern: re.Pattern[str]) -> Replacement:
    """Turn a Java/Go/Python replacement into what ``pattern.sub`` takes fastest.

    A literal without backslashes stays a string; anything else becomes a function of the
    match (a string template would be re-parsed by ``re`` on every call in Python 3.11).
    """
    if "\\" not in repl and "$" not in repl:
        return repl  # plain literal: re.sub's own fast path
    pieces: list[str | int] = []  # literal text or a group number
    i, n = 0, len(repl)
    while i < n:
        c = repl[i]
        if c == "$" and i + 1 < n and repl[i + 1].isdigit():
            num, i = _group_number(repl, i + 1, pattern.groups)
            pieces.append(num)
        elif c == "$" and i + 1 < n and repl[i + 1] == "{":
            close = repl.find("}", i + 2)
            if close < 0:
                raise RegexError("unterminated ${...} group reference")
            pieces.append(_named_ref(repl[i + 2 : close], pattern))
            i = close + 1
        elif c == "\\":
            if i + 1 >= n:
                raise RegexError("replacement ends with a lone backslash")
            nxt = repl[i + 1]
            if nxt.isdigit():
                num, i = _group_number(repl, i + 1, pattern.groups)
                pieces.append(num)
            elif nxt == "g" and repl.startswith("<", i + 2):
                close = repl.find(">", i + 3)
                if close < 0:
                    raise RegexError("unterminated \\g<...> group reference")
                pieces.append(_named_ref(repl[i + 3 : close], pattern))
                i = close + 1
            else:  # escaped literal character
                pieces.append(nxt)
                i += 2
        else:
            pieces.append(c)
            i += 1
    return _expander(_merge_literals(pieces))


def _merge_literals(pieces: list[str | int]) -> list[str | int]:
    merged: list[str | int] = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def _expander(pieces: list[str | int]) -> Replacement:
    """A ``re.sub`` callback for ``pieces``; unmatched groups expand to "" as in Java."""
    if not pieces:
        return ""
    if len(pieces) == 1:
        only = pieces[0]
        if isinstance(only, str):
            return lambda m: only  # a literal with backslashes: no template processing
        return lambda m: m.group(only) or ""
    frozen = tuple(pieces)
    return lambda m: "".join(p if isinstance(p, str) else (m.group(p) or "") for p in frozen)


def _group_number(text: str, i: int, groups: int) -> tuple[int, int]:
    """Java's rule: take more digits only while they still name an existing group."""
    num = int(text[i])
    if num > groups:
        raise RegexError(f"no group {num} in the find pattern")
    i += 1
    while i < len(text) and text[i].isdigit() and num * 10 + int(text[i]) <= groups:
        num = num * 10 + int(text[i])
        i += 1
    return num, i


def _named_ref(name: str, pattern: re.Pattern[str]) -> int:
    if name.isdigit():
        if int(name) > pattern.groups:
            raise RegexError(f"no group {name} in the find pattern")
        return int(name)
    if not _NAME.fullmatch(name) or name not in pattern.groupindex:
        raise RegexError(f"no group named {name!r} in the find pattern")
    return pattern.groupindex[name]

"""Parsing of the Resurface logging rules (HttpRules) into precompiled ``Rule`` records.

Strategy: the rules text goes through the same steps as logger-java's ``HttpRules``
(the reference implementation; semantics from resurface.md section 5.1, no code reused):

1. ``None`` means the default rules. Text starting with ``file://`` is replaced by the
   contents of that file, through a caller-supplied loader (the core does no file IO).
2. Lines are split on ``\\r?\\n``. A line that is exactly ``include default`` (surrounding
   white space allowed) becomes the default rules; if the result is blank, it is the default
   rules. Then whole lines ``include debug|standard|strict`` become those sets. A line with
   anything else on it (even a ``# comment``) is not an include, as in Java.
3. Each line is a blank/comment line or exactly one rule form (``_FORMS``): ``<scope> verb
   [<expr> ...]`` or a flag. An ``<expr>`` is enclosed by one of ``~ ! % | /`` with the same
   character at both ends; ``\\<sep>`` is a literal separator and a bare one inside is an
   error. The forms are greedy exactly like Java's, so e.g. a trailing ``# comment`` after an
   expression that itself contains the separator is read as part of that expression.
4. Scopes and the params of ``remove_if``/``remove_unless``/``stop_if``/``stop_unless``/
   ``copy_session_field`` are used anchored (``fullmatch``); a bare ``*``, ``+`` or ``?`` is
   rejected. ``*_found`` params and the ``replace`` find pattern are searched (unanchored).

Every error is a ``RulesError`` with a one-line message quoting the offending rule.
"""
from __future__ import annotations

import re
from typing import Callable, NamedTuple

from workers.rules_linear import LinearRunSub, linear_sub
from workers.rules_regex import RegexError, Replacement, compile_java, compile_replacement

#: The predefined sets, byte for byte as in logger-java (strict: the lookahead version).
DEBUG_RULES = "allow_http_url\ncopy_session_field /.*/\n"
STANDARD_RULES = (
    "/request_header:cookie|response_header:set-cookie/remove\n"
    "/(request|response)_body|request_param/ replace "
    "/[a-zA-Z0-9.!#$%&\u2019*+\\/=?^_`{|}~-]+@[a-zA-Z0-9-]+(?:\\.[a-zA-Z0-9-]+)/, /x@y.com/\n"
    "/request_body|request_param|response_body/ replace /[0-9\\.\\-\\/]{9,}/, /xyxy/\n"
)
STRICT_RULES = (
    "/request_url/ replace /([^\\?;]+).*/, /$1/\n"
    "/request_body|response_body|request_param:.*|request_header:(?!user-agent).*"
    "|response_header:(?!(content-length)|(content-type)).*/ remove\n"
)
INCLUDES = {"debug": DEBUG_RULES, "standard": STANDARD_RULES, "strict": STRICT_RULES}

SEPARATORS = "~!%|/"


class RulesError(ValueError):
    """Invalid rules text; the message is one line and quotes the offending rule."""


class Rule(NamedTuple):
    """One parsed rule: the verb plus its precompiled parts (unused parts are ``None``)."""

    verb: str
    scope: re.Pattern[str] | None = None
    param: re.Pattern[str] | LinearRunSub | int | None = None
    replacement: Replacement | None = None
    """``replace`` only: the replacement, as ``pattern.sub`` takes it (see ``rules_regex``)."""
    line: str = ""


# Grammar pieces (ASCII white space, as Java's \s): an expression of at least one character
# between separators, the same allowing an empty one, and the optional trailing comment.
_E = r"([~!%|/].+[~!%|/])"
_E0 = r"([~!%|/].*[~!%|/])"
_END = r"\s*(?:#.*)?"


def _scoped(verb: str, params: str = "") -> tuple[str, re.Pattern[str]]:
    return verb, re.compile(r"\s*" + _E + r"\s*" + verb + params + _END, re.A)


def _flag(verb: str, params: str = "") -> tuple[str, re.Pattern[str]]:
    return verb, re.compile(r"\s*" + verb + params + _END, re.A)


_FORMS = [  # tried in logger-java's order
    _flag("allow_http_url"),
    _flag("copy_session_field", r"\s+" + _E),
    _scoped("remove"),
    *[_scoped(verb, r"\s+" + _E)
      for verb in ("remove_if", "remove_if_found", "remove_unless", "remove_unless_found")],
    _scoped("replace", r"\s+" + _E + r",\s+" + _E0),
    _flag("sample", r"\s+(\d+)"),
    _flag("skip_compression"),
    _flag("skip_submission"),
    _scoped("stop"),
    *[_scoped(verb, r"\s+" + _E)
      for verb in ("stop_if", "stop_if_found", "stop_unless", "stop_unless_found")],
]
_BLANK_OR_COMMENT = re.compile(r"\s*(?:#.*)?", re.A)
_LINE_SPLIT = re.compile(r"\r?\n")
_INCLUDE_DEFAULT = re.compile(r"\s*include default\s*", re.A)
_INCLUDE_SET = re.compile(r"\s*include (debug|standard|strict)\s*", re.A)
_JAVA_BLANK = re.compile(r"[\x00-\x20]*")  # what Java's String.trim() removes
# An expression's inside is wrong if it starts with the separator or has one not after "\".
_UNESCAPED = {sep: re.compile(rf"[{sep}].*|.*[^\\][{sep}].*", re.S) for sep in SEPARATORS}

#: A loader gets the path after ``file://`` and returns the file's text (or raises OSError).
LoadFile = Callable[[str], str]


def expand(text: str | None, load_file: LoadFile | None = None,
           default_rules: str = STRICT_RULES) -> list[str]:
    """Return the effective rule lines of ``text`` after ``file://`` and ``include`` handling.

    Raises:
        RulesError: the file cannot be loaded (or no loader was given).
    """
    default_lines = [ln for ln in _LINE_SPLIT.split(default_rules.rstrip("\r\n"))
                     if not _INCLUDE_DEFAULT.fullmatch(ln)]
    if text is None:
        text = "\n".join(default_lines)
    if text.startswith("file://"):
        path = text[7:].strip()
        if load_file is None:
            raise RulesError(f"Failed to load rules: {path} (no file loader in this context)")
        try:
            text = load_file(path)
        except (OSError, ValueError) as exc:  # ValueError: also bad UTF-8
            raise RulesError(f"Failed to load rules: {path} ({type(exc).__name__})") from None
    lines: list[str] = []
    for line in _LINE_SPLIT.split(text):
        lines.extend(default_lines if _INCLUDE_DEFAULT.fullmatch(line) else (line,))
    if _JAVA_BLANK.fullmatch("\n".join(lines)):
        lines = list(default_lines)
    out: list[str] = []
    for line in lines:
        m = _INCLUDE_SET.fullmatch(line)
        out.extend(_LINE_SPLIT.split(INCLUDES[m.group(1)].rstrip("\n")) if m else (line,))
    return out


def parse_line(line: str) -> Rule | None:
    """Parse one line into a ``Rule``; ``None`` for a blank or comment line.

    Raises:
        RulesError: the line is not a valid rule.
    """
    if _BLANK_OR_COMMENT.fullmatch(line):
        return None
    for verb, form in _FORMS:
        m = form.fullmatch(line)
        if m is None:
            continue
        if verb in ("allow_http_url", "skip_compression", "skip_submission"):
            return Rule(verb, line=line)
        if verb == "sample":
            digits = m.group(1).lstrip("0")
            percent = int(digits) if 0 < len(digits) < 4 else 0  # huge numbers: invalid too
            if not 1 <= percent <= 99:
                raise RulesError(f"Invalid sample percent: {m.group(1)}")
            return Rule(verb, param=percent, line=line)
        if verb == "copy_session_field":
            return Rule(verb, param=_anchored(line, m.group(1)), line=line)
        scope = _anchored(line, m.group(1))
        if verb in ("remove", "stop"):
            return Rule(verb, scope, line=line)
        if verb == "replace":
            searched = _searched(line, m.group(2))
            find = linear_sub(searched)
            try:
                replacement = compile_replacement(_inside(line, m.group(3)), searched)
            except RegexError as exc:
                raise RulesError(f"Invalid replacement ({m.group(3)}) in rule: {line}"
                                 f" ({exc})") from None
            return Rule(verb, scope, find, replacement, line)
        param = _searched(line, m.group(2)) if verb.endswith("_found") else (
            _anchored(line, m.group(2)))
        return Rule(verb, scope, param, line=line)
    raise RulesError(f"Invalid rule: {line}")


def parse_lines(lines: list[str]) -> list[Rule]:
    """Parse every line, in order; more than one ``sample`` rule is an error."""
    rules = [rule for rule in map(parse_line, lines) if rule is not None]
    if sum(rule.verb == "sample" for rule in rules) > 1:
        raise RulesError("Multiple sample rules")
    return rules


def _inside(line: str, expr: str) -> str:
    """The text between the separators of ``expr``, with ``\\<sep>`` unescaped."""
    for sep in SEPARATORS:
        if len(expr) >= 2 and expr[0] == sep and expr[-1] == sep:
            inner = expr[1:-1]
            if _UNESCAPED[sep].fullmatch(inner):
                raise RulesError(f"Unescaped separator ({sep}) in rule: {line}")
            return inner.replace("\\" + sep, sep)
    raise RulesError(f"Invalid expression ({expr}) in rule: {line}")


def _compile(line: str, expr: str, pattern: str) -> re.Pattern[str]:
    try:
        return compile_java(pattern)
    except RegexError as exc:
        raise RulesError(f"Invalid regex ({expr}) in rule: {line} ({exc})") from None


def _anchored(line: str, expr: str) -> re.Pattern[str]:
    """A pattern used with ``fullmatch`` (Java adds ``^``/``$`` and calls ``matches()``)."""
    pattern = _inside(line, expr)
    if pattern in ("*", "+", "?"):
        raise RulesError(f"Invalid regex ({expr}) in rule: {line}")
    return _compile(line, expr, pattern)


def _searched(line: str, expr: str) -> re.Pattern[str]:
    """A pattern used with ``search`` (Java ``find()``)."""
    return _compile(line, expr, _inside(line, expr))

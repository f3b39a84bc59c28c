"""The rules' regex dialect: Java-only syntax on Python ``re`` and both replacement styles."""
from __future__ import annotations

import pytest

from workers.rules_regex import RegexError, compile_java, compile_replacement, translate

# (id, Java pattern, Python pattern)
TRANSLATIONS = [
    ("plain", "request_header:.*", "request_header:.*"),
    ("named-group", "(?<user>[a-z]+)", "(?P<user>[a-z]+)"),
    ("named-backref", r"(?<q>['\"]).*\k<q>", r"(?P<q>['\"]).*(?P=q)"),
    ("lookbehind-kept", "(?<=a)b(?<!c)", "(?<=a)b(?<!c)"),
    ("quote", r"\Qa.b*c\E+", r"a\.b\*c+"),
    ("quote-to-end", r"x\Q(y", r"x\(y"),
    ("abs-end", r"a\z", r"a\Z"),
    ("end-before-terminator", r"a\Z", r"a(?=\n?\Z)"),
    ("escapes-kept", r"\d+\.\s\/", r"\d+\.\s\/"),
]


@pytest.mark.parametrize("java,python", [t[1:] for t in TRANSLATIONS],
                         ids=[t[0] for t in TRANSLATIONS])
def test_translate(java: str, python: str) -> None:
    assert translate(java) == python


# (id, Java pattern, text, fullmatch expected)
MATCHES = [
    ("named-group", "(?<n>ab)\\k<n>", "abab", True),
    ("quote-is-literal", r"\Q.*\E", ".*", True),
    ("quote-not-regex", r"\Q.*\E", "xx", False),
    ("possessive", "a*+b", "aab", True),
    ("atomic", "(?>a+)b", "aab", True),
    ("digit-is-ascii", r"\d+", "\u0663\u0664", False),
    ("word-is-ascii", r"\w+", "\u00e9t\u00e9", False),
    ("ignorecase", "(?i)user-agent", "User-Agent", True),
    ("lookahead", "request_header:(?!user-agent).*", "request_header:user-agent", False),
    ("dot-no-newline", "a.b", "a\nb", False),
    ("dollar-no-trailing-newline", "abc$", "abc\n", False),
]


@pytest.mark.parametrize("java,text,expected", [m[1:] for m in MATCHES],
                         ids=[m[0] for m in MATCHES])
def test_compiled_semantics(java: str, text: str, expected: bool) -> None:
    assert bool(compile_java(java).fullmatch(text)) is expected


@pytest.mark.parametrize("java", [r"\p{Alpha}", "[[a]b]", "[a--b]", "(", r"\k<x", "a**"],
                         ids=["posix-class", "nested-set-warning", "set-difference-warning",
                              "paren", "unterminated-k", "double-star"])
def test_compile_errors_are_regex_errors(java: str) -> None:
    with pytest.raises(RegexError):
        compile_java(java)


# (id, find pattern, replacement, input, expected output of find.sub)
REPLACEMENTS = [
    ("literal", "World", "There", "Hello World", "Hello There"),
    ("empty", "o", "", "foo", "f"),
    ("java-dollar", r"(\w+)@(\w+)", "$2 at $1", "jo@host", "host at jo"),
    ("java-braces", r"(\w+)@(\w+)", "${2}.${1}", "jo@host", "host.jo"),
    ("python-backslash", r"(\w+)@(\w+)", r"\2 at \1", "jo@host", "host at jo"),
    ("python-g", r"(\w+)@(\w+)", r"\g<2>\g<1>", "jo@host", "hostjo"),
    ("whole-match-dollar-0", "o+", "<$0>", "foo", "f<oo>"),
    ("whole-match-g-0", "o+", r"<\g<0>>", "foo", "f<oo>"),
    ("named-java", "(?<user>\\w+)@", "${user}:", "jo@h", "jo:h"),
    ("named-python", "(?<user>\\w+)@", r"\g<user>:", "jo@h", "jo:h"),
    ("dollar-12-with-one-group", "(a)", "$12", "a", "a2"),
    ("dollar-12-with-twelve-groups", "(a)" * 12, "$12|", "a" * 12, "a|"),
    ("escaped-dollar", "a", r"\$1", "a", "$1"),
    ("escaped-backslash", "a", r"\\", "a", "\\"),
    ("escaped-letter-is-literal", "a", r"\n", "a", "n"),
    ("lone-dollar-literal", "a", "$", "a", "$"),
    ("dollar-word-literal", "a", "$x", "a", "$x"),
    ("unmatched-group-empty", "(x)?a", "[$1]", "a", "[]"),
    ("strict-url", r"([^\?;]+).*", "$1", "http://h/p;s=1?q=2", "http://h/p"),
    ("empty-matches-like-java", "x*", "-", "abxd", "-a-b--d-"),
]


@pytest.mark.parametrize("find,repl,text,expected", [r[1:] for r in REPLACEMENTS],
                         ids=[r[0] for r in REPLACEMENTS])
def test_replacement(find: str, repl: str, text: str, expected: str) -> None:
    pattern = compile_java(find)
    assert pattern.sub(compile_replacement(repl, pattern), text) == expected


@pytest.mark.parametrize("find,repl", [("a", "$1"), ("(a)", r"\2"), ("(a)", "${2}"),
                                       ("(a)", "${nope}"), ("(a)", "${1"), ("(a)", "\\"),
                                       ("(a)", r"\g<1")],
                         ids=["no-group-1", "no-group-2", "no-group-braced", "no-name",
                              "unterminated-braces", "lone-backslash", "unterminated-g"])
def test_bad_replacement(find: str, repl: str) -> None:
    with pytest.raises(RegexError):
        compile_replacement(repl, compile_java(find))

"""Linear-time sub for run-shaped replace patterns (workers/rules_linear.py): the same text
as re.sub, for the standard rules' e-mail pattern and others of its shape."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.rules import parse
from workers.rules_linear import LinearRunSub, linear_sub
from workers.rules_regex import FLAGS

EMAIL = parse("include standard").rules[1].param
ALPHABET = "ab9.-_+’@@ \n\u00e9x/"


def test_the_standard_email_rule_gets_the_linear_sub() -> None:
    assert isinstance(EMAIL, LinearRunSub)
    assert EMAIL.sub("x@y.com", "mail jo.e+1@mail.example.com, or a@b") == (
        "mail x@y.com.com, or a@b")


@pytest.mark.parametrize("source,linear", [
    (r"[a-z]+@[a-z]+", True),
    (r"[^,;]+;x", True),
    (r"[^,]+;x", False),          # a negated class holds ';'
    (r"[a-z]+\.[a-z]", True),
    (r"[a-z@]+@[a-z]+", False),   # the literal is in the class: no shortcut
    (r"\w+@\w+", False),          # not a bracket class
    (r"[a-z]*@", False),          # '*' may match empty: not the shape
    (r"(?i)[a-z]+Q", False),       # case-insensitive: membership would differ
])
def test_only_patterns_of_the_run_shape_are_wrapped(source: str, linear: bool) -> None:
    pattern = re.compile(source, FLAGS)
    assert isinstance(linear_sub(pattern), LinearRunSub) is linear


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=60),
       source=st.sampled_from([EMAIL.pattern, r"[a-z9.]+@[a-z]+", r"[^ @]+@(b|x)?",
                               r"[ab]+\.([ab]+)"]))
def test_same_text_as_re_sub(text: str, source: str) -> None:
    pattern = re.compile(source, FLAGS)
    fast = linear_sub(pattern)
    assert isinstance(fast, LinearRunSub)
    assert fast.sub("<m>", text) == pattern.sub("<m>", text)
    assert fast.sub(lambda m: f"[{m.group(0)}]", text) == pattern.sub(
        lambda m: f"[{m.group(0)}]", text)
    assert fast.sub(r"<\g<0>>", text) == pattern.sub(r"<\g<0>>", text)


def test_long_runs_without_the_literal_stay_linear() -> None:
    """30,000 word characters and then an address: re.sub tries every start inside the run
    and rescans it (quadratic); the linear sub scans it once."""
    text = "w" * 30_000 + " me@example.org " + "v" * 30_000 + "@"
    assert EMAIL.sub("x@y.com", text) == "w" * 30_000 + " x@y.com " + "v" * 30_000 + "@"

"""Linear-time ``sub`` for replace patterns that start with a character-class run.

Strategy: a pattern of the form ``[C]+X...`` (a class repeated, then a literal ``X`` the
class does not contain), like the standard rules' e-mail pattern ``[a-zA-Z0-9.!#...]+@...``,
makes ``re.sub`` quadratic on long runs of class characters with no ``X`` after them: the
engine tries every start position inside the run and rescans the run from each. Yet such a
match can only begin where its run begins (or where the scan resumes) and only if the run
ends at an ``X``. So ``LinearRunSub.sub`` walks the ``X`` positions, finds each run's start
by one backward scan, and asks the regex for a match at that single position: the same
matches as ``re.sub`` (leftmost, non-overlapping, same replacement handling) in linear time.
Patterns of any other shape are left as compiled.
"""
from __future__ import annotations

import re
from typing import Any

from workers.rules_regex import Replacement

# A leading class without nested brackets, its '+', then one literal character: plain, or
# punctuation escaped with a backslash.
_SHAPE = re.compile(r"(\[(?:[^\]\\]|\\.)+\])\+(?:([^\\\[\](){}.*+?^$|])|\\([^A-Za-z0-9]))")


class LinearRunSub:
    """A compiled pattern whose ``sub`` is linear (see the module docstring); everything
    else is the pattern's own."""

    __slots__ = ("pattern_obj", "member", "literal", "in_class")

    def __init__(self, pattern: re.Pattern[str], member: re.Pattern[str], literal: str) -> None:
        self.pattern_obj = pattern
        self.member = member  # the leading class alone
        self.literal = literal
        self.in_class: dict[str, bool] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pattern_obj, name)

    def _is_member(self, ch: str) -> bool:
        known = self.in_class.get(ch)
        if known is None:
            if len(self.in_class) > 4096:  # bounded: text may hold any characters
                self.in_class.clear()
            known = self.in_class[ch] = self.member.fullmatch(ch) is not None
        return known

    def sub(self, repl: Replacement, text: str) -> str:
        """``re.sub(pattern, repl, text)``, in linear time."""
        out: list[str] = []
        pos = 0
        find, literal, is_member = self.pattern_obj.match, self.literal, self._is_member
        at = text.find(literal, pos)
        while at >= 0:
            start = at
            while start > pos and is_member(text[start - 1]):
                start -= 1
            m = find(text, start) if start < at else None
            if m is not None:
                out.append(text[pos:start])
                out.append(repl(m) if callable(repl) else m.expand(repl))
                pos = m.end()
                at = text.find(literal, pos)
            else:
                at = text.find(literal, at + 1)
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)


def linear_sub(pattern: re.Pattern[str]) -> re.Pattern[str] | LinearRunSub:
    """``pattern`` with a linear ``sub`` when its shape allows one, else ``pattern``."""
    m = _SHAPE.match(pattern.pattern)
    if m is None or pattern.flags & re.IGNORECASE:
        return pattern
    char_class, literal = m.group(1), m.group(2) or m.group(3)
    try:
        member = re.compile(char_class, pattern.flags)
    except re.error:
        return pattern
    if member.fullmatch(literal):
        return pattern  # the literal belongs to the class: the shortcut does not hold
    return LinearRunSub(pattern, member, literal)

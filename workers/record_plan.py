"""Per-key actions for the one-pass record writer (``workers/record_line.py``).

Strategy: ``Rules.plan(key)`` says what the logging rules do with a detail of a key
whatever its value. This module turns each plan into an *action* that already holds the
JSON text of the key, so that writing a detail is at most one escape of its value:

- a ``str``: keep; the action is the JSON prefix ``["key",`` (an empty value still goes,
  as in ``Rules.apply``);
- ``PLAN_DROP``: remove; nothing is built;
- a ``Replacer``: only ``replace`` rules apply, so the result is a pure function of the
  value and is memoised (short values only, bounded);
- a ``(plan, prefix)`` tuple: value-dependent (stop, stop_unless, remove_if...): the
  detail becomes a ``(plan, prefix, value)`` placeholder for ``Rules.apply_planned``.

JSON strings are escaped with ``json.encoder.encode_basestring``: the very function
``json.JSONEncoder(ensure_ascii=False)`` uses, so the bytes equal the ``json`` module's.
"""
from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any, Final, cast

from workers.rules import PLAN_DROP, PLAN_KEEP, Rules
from workers.segment import ip_text

Parts = list[Any]
"""JSON texts of kept details, ``None`` for removed ones, (plan, prefix, value) placeholders."""

_MEMO_MAX = 1024          # memoised values per Replacer before its memo is cleared
_MEMO_VALUE_CHARS: Final = 512   # longer values are replaced every time, never memoised
_IP_TEXT: dict[bytes, str] = {}
_IP_TEXT_MAX = 4096


def ip_text_cached(packed: bytes) -> str:
    """ip_text() behind a bounded cache: the same few addresses recur in every call."""
    text = _IP_TEXT.get(packed)
    if text is None:
        if len(_IP_TEXT) >= _IP_TEXT_MAX:
            _IP_TEXT.clear()
        text = _IP_TEXT[packed] = ip_text(packed)
    return text


def prefix(key: str) -> str:
    """The JSON text that starts a detail of ``key``: ``["key",``."""
    return "[" + encode_basestring(key) + ","


class Replacer:
    """Action for a key whose only rules are ``replace``: memoised JSON text per value."""

    __slots__ = ("plan", "prefix", "memo")

    def __init__(self, plan: Any, key_prefix: str) -> None:
        self.plan = plan
        self.prefix = key_prefix
        self.memo: dict[str, str] = {}

    def fragment(self, value: str) -> Any:
        """The detail's JSON text, None when the result is empty, or a placeholder when a
        replacement fails (``apply_planned`` then counts the error and drops the call)."""
        text = self.memo.get(value)
        if text is not None:
            return text or None
        try:
            out = self.plan.replaced(value)
        except (TypeError, ValueError, IndexError):
            return (self.plan, self.prefix, value)
        text = self.prefix + encode_basestring(out) + "]" if out else ""
        if len(value) <= _MEMO_VALUE_CHARS:
            if len(self.memo) >= _MEMO_MAX:
                self.memo.clear()
            self.memo[value] = text
        return text or None


def action_for(rules: Rules, key: str, out_key: str | None = None) -> Any:
    """The action for details of ``key``, written as ``out_key`` (default ``key``)."""
    plan = rules.plan(key)
    text = prefix(out_key or key)
    if plan is PLAN_KEEP:
        return text
    if plan is PLAN_DROP:
        return PLAN_DROP
    if cast(Any, plan).only_replace:  # a value-dependent plan (rules._KeyPlan)
        return Replacer(plan, text)
    return (plan, text)


def fragment(action: Any, value: str) -> Any:
    """One detail under ``action``: its JSON text, None when it goes, or a placeholder."""
    cls = type(action)
    if cls is str:
        return action + encode_basestring(value) + "]" if value else None
    if cls is Replacer:
        return action.fragment(value)
    if action is PLAN_DROP:
        return None
    return (action[0], action[1], value)


def put(action: Any, value: str, parts: Parts, pending: list[int]) -> None:
    """Append one detail under ``action`` to ``parts`` (placeholders also to ``pending``)."""
    if type(action) is str:
        if value:
            parts.append(action + encode_basestring(value) + "]")
        return
    if action is PLAN_DROP:
        return
    text = fragment(action, value)
    if text is not None:
        if type(text) is tuple:
            pending.append(len(parts))
        parts.append(text)

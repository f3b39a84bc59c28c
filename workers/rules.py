"""Resurface logging rules: parse once, then filter and mask every API call's details.

Strategy: ``parse()`` (see ``rules_parse`` for the grammar, ``rules_regex`` for the regex
dialect) turns the rules text into precompiled ``Rule`` records and a ``Rules`` object with
the flags the shells need (``allow_http_url``, ``skip_compression``, ``skip_submission``,
``sample``, ``text``) and ``apply(details)`` for the workers' hot path.

``apply`` gives exactly logger-java's result (resurface.md section 5.3), in one pass:

1. ``stop``, ``stop_if_found``, ``stop_if``: a detail whose key fullmatches the scope (and
   whose value is searched / fullmatched by the param) drops the whole message.
2. ``stop_unless_found``, ``stop_unless``: every (rule, detail) pair whose key and value
   match counts one hit; the message is dropped unless the hits equal the number of such
   rules. This is Java's counting quirk, kept on purpose: one rule matching two details
   counts 2 and drops the message, and with two rules, one matching twice can make up for
   the other matching never.
3. ``sample N``: drop unless a draw from 0..99 is below N (drawn only when 1 and 2 pass).
4. Removals (``remove``, ``remove_unless_found``, ``remove_if_found``, ``remove_unless``,
   ``remove_if``): each depends only on its own detail, so their order cannot matter.
5. ``replace`` rules in file order (``find.sub(replacement, value)``); then empty values go.
   Nothing left: ``None``.

The loop is per detail rather than per rule (same result: every step but the counting in 2
looks at one detail alone, and a drop is a drop whichever rule finds it first). Scopes only
look at keys, and keys repeat from call to call (``request_header:user-agent``), so the
rules that apply to a key are worked out once and cached as a ``_KeyPlan``; most keys end up
as the ``_KEEP`` or ``_DROP`` shortcut. The cache is bounded (``key_cache_max``): when full
it is cleared and ``rules_key_cache_reset`` is counted. ``apply`` never raises: a malformed
detail drops the message and counts ``rules_apply_error``. ``plan(key)`` and
``apply_planned`` expose the same plans to the one-pass writer (``workers/record_line.py``).
"""
from __future__ import annotations

import random
import re
from functools import partial
from typing import Any, Callable, Final, cast

from workers.anomalies import Anomalies, register
from workers.rules_linear import LinearRunSub
from workers.rules_regex import Replacement
from workers.rules_parse import (  # noqa: F401  (re-exported: the public rules API)
    DEBUG_RULES,
    STANDARD_RULES,
    STRICT_RULES,
    LoadFile,
    Rule,
    RulesError,
    expand,
    parse_lines,
)

ANOMALIES = register({
    "rules_key_cache_reset": "the per-key rules cache reached key_cache_max and was cleared",
    "rules_apply_error": "a malformed detail (not a [str, str] pair): the message was dropped",
    "rules_session_fields_limit": "more matching cookies than max_session_fields; rest skipped",
})

Details = list[list[str]]
RandomSource = random.Random | Callable[[], int]
_VALUE_REMOVALS: Final = ("remove_unless_found", "remove_if_found", "remove_unless", "remove_if")


class _KeyPlan:
    """The rules whose scope matches one key, grouped by what ``apply`` does with them."""

    __slots__ = ("checks_stop", "stop", "stop_if_found", "stop_if", "unless_found", "unless",
                 "remove", "remove_unless_found", "remove_if_found", "remove_unless", "remove_if",
                 "value_removal", "replace", "only_replace")

    def __init__(self, rules: tuple[Rule, ...], key: str) -> None:
        hits = [rule for rule in rules if rule.scope is not None and rule.scope.fullmatch(key)]

        def params(verb: str) -> tuple[re.Pattern[str], ...]:
            return tuple(r.param for r in hits if r.verb == verb)  # type: ignore[misc]

        self.stop = any(r.verb == "stop" for r in hits)
        self.stop_if_found = params("stop_if_found")
        self.stop_if = params("stop_if")
        self.unless_found = params("stop_unless_found")
        self.unless = params("stop_unless")
        self.remove = any(r.verb == "remove" for r in hits)
        self.remove_unless_found = params("remove_unless_found")
        self.remove_if_found = params("remove_if_found")
        self.remove_unless = params("remove_unless")
        self.remove_if = params("remove_if")
        self.value_removal = any(r.verb in _VALUE_REMOVALS for r in hits)
        self.replace = tuple((cast("re.Pattern[str] | LinearRunSub", r.param),
                              cast(Replacement, r.replacement))
                             for r in hits if r.verb == "replace")
        self.checks_stop = bool(self.stop or self.stop_if_found or self.stop_if
                                or self.unless_found or self.unless)
        # only replace rules: the outcome is a pure function of the value
        self.only_replace = bool(self.replace) and not (
            self.checks_stop or self.remove or self.value_removal)

    def stop_hits(self, value: str) -> tuple[int, int] | None:
        """None when a stop rule drops the message on this value; else the value's hits on
        the ``stop_unless_found`` and the ``stop_unless`` rules (the message needs all)."""
        if (self.stop or any(p.search(value) for p in self.stop_if_found)
                or any(p.fullmatch(value) for p in self.stop_if)):
            return None
        return (sum(1 for p in self.unless_found if p.search(value)),
                sum(1 for p in self.unless if p.fullmatch(value)))

    def replaced(self, value: str) -> str:
        """``value`` after this key's ``replace`` rules, in file order."""
        for find, replacement in self.replace:
            value = find.sub(replacement, value)
        return value

    def removes_value(self, value: str) -> bool:
        return (any(not p.search(value) for p in self.remove_unless_found)
                or any(p.search(value) for p in self.remove_if_found)
                or any(not p.fullmatch(value) for p in self.remove_unless)
                or any(p.fullmatch(value) for p in self.remove_if))


_KEEP: Final = object()  # no rule looks at this key: keep the detail unless its value is empty
_DROP: Final = object()  # removed by a plain ``remove`` and no stop rule looks at it
PLAN_KEEP: Final = _KEEP  # what Rules.plan says for such keys
PLAN_DROP: Final = _DROP


class Rules:
    """Parsed logging rules: flags for the shells and ``apply`` for every API call."""

    def __init__(self, rules: list[Rule], text: str, random_source: RandomSource | None = None,
                 key_cache_max: int = 4096, max_session_fields: int = 100) -> None:
        self.rules = tuple(rules)
        self.text = text
        """The effective rules after ``file://`` and ``include`` expansion (for logging)."""
        verbs = [rule.verb for rule in self.rules]
        self.allow_http_url = "allow_http_url" in verbs
        self.skip_compression = "skip_compression" in verbs
        self.skip_submission = "skip_submission" in verbs
        self.sample: int | None = next((int(r.param) for r in self.rules  # type: ignore[arg-type]
                                        if r.verb == "sample"), None)
        self.copy_session_field: tuple[re.Pattern[str], ...] = tuple(
            r.param for r in self.rules if r.verb == "copy_session_field")  # type: ignore[misc]
        self.key_cache_max = max(1, key_cache_max)
        self.max_session_fields = max_session_fields
        self.anomalies = Anomalies()
        self._scoped = tuple(rule for rule in self.rules if rule.scope is not None)
        self._n_unless_found = verbs.count("stop_unless_found")
        self._n_unless = verbs.count("stop_unless")
        self._plans: dict[str, Any] = {}
        # whether apply_planned may drop a message with no items (sample, stop_unless)
        self.judges_every_message = self.sample is not None or bool(
            self._n_unless_found or self._n_unless)
        if random_source is None:
            self._rand100: Callable[[], int] = partial(random.randrange, 100)
        elif isinstance(random_source, random.Random):
            self._rand100 = partial(random_source.randrange, 100)
        else:
            self._rand100 = random_source

    def apply(self, details: Details) -> Details | None:
        """Filter and mask one message's details; ``None`` means drop the message.

        The input is not changed; details that pass unchanged are shared with the output.
        """
        try:
            return self._apply(details)
        except (TypeError, ValueError, IndexError):
            self.anomalies.hit("rules_apply_error")
            return None

    def _apply(self, details: Details) -> Details | None:
        out: Details
        if not self._scoped:  # only flags and/or sample: just drop empty values
            out = [detail for detail in details if detail[1]]
            if not self._message_passes(0, 0):  # no stop_unless rules: the sample decides
                return None
            return out or None
        plans, keep, drop = self._plans, _KEEP, _DROP
        unless_found_hits = unless_hits = 0
        out = []
        for detail in details:
            key, value = detail
            plan = plans.get(key)
            if plan is None:
                plan = self._plan(key)
            if plan is keep:
                if value:
                    out.append(detail)
                continue
            if plan is drop:
                continue
            if plan.checks_stop:
                hits = plan.stop_hits(value)
                if hits is None:
                    return None
                unless_found_hits += hits[0]
                unless_hits += hits[1]
            if plan.remove or (plan.value_removal and plan.removes_value(value)):
                continue
            original = value
            value = plan.replaced(value)
            if value:
                out.append(detail if value is original else [key, value])
        if not self._message_passes(unless_found_hits, unless_hits):
            return None
        return out or None

    def plan(self, key: str) -> object:
        """``PLAN_KEEP``, ``PLAN_DROP`` or a value-dependent plan for ``apply_planned``:
        what the rules do with a detail of ``key``. Pure in ``key`` (callers may cache it)."""
        plan = self._plans.get(key)
        return self._plan(key) if plan is None else plan

    def apply_planned(self, items: list[tuple[Any, str]]) -> list[str] | None:
        """``apply`` for the (plan, value) pairs of one message's value-dependent details
        (keep/drop details cannot stop or count, so they take no part; any order): the
        value each ends with (``""``: removed), or ``None`` when the message is dropped."""
        try:
            return self._apply_planned(items)
        except (TypeError, ValueError, IndexError):
            self.anomalies.hit("rules_apply_error")
            return None

    def _apply_planned(self, items: list[tuple[Any, str]]) -> list[str] | None:
        unless_found_hits = unless_hits = 0
        out: list[str] = []
        for plan, value in items:
            if plan.checks_stop:
                hits = plan.stop_hits(value)
                if hits is None:
                    return None
                unless_found_hits += hits[0]
                unless_hits += hits[1]
            if plan.remove or (plan.value_removal and plan.removes_value(value)):
                out.append("")
                continue
            out.append(plan.replaced(value))
        if not self._message_passes(unless_found_hits, unless_hits):
            return None
        return out

    def _message_passes(self, unless_found_hits: int, unless_hits: int) -> bool:
        """Every stop_unless rule was hit, and the message is in the sample."""
        if unless_found_hits != self._n_unless_found or unless_hits != self._n_unless:
            return False
        return self.sample is None or self._rand100() < self.sample

    def drops(self, key: str) -> bool:
        """True when a detail with ``key`` is always removed (a plain ``remove`` applies and
        no stop rule looks at it), so a caller need not build or decode it at all."""
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(key)
        return plan is _DROP

    def _plan(self, key: str) -> Any:
        if len(self._plans) >= self.key_cache_max:
            self._plans.clear()
            self.anomalies.hit("rules_key_cache_reset")
        plan = _KeyPlan(self._scoped, key)
        entry: object = plan
        if not plan.checks_stop:
            if plan.remove:
                entry = _DROP
            elif not plan.value_removal and not plan.replace:
                entry = _KEEP
        self._plans[key] = entry
        return entry

    def session_fields(self, cookie_header_values: list[str]) -> Details:
        """``session_field:<name>`` details for request cookies matched by copy_session_field.

        One detail per cookie (in header order) whose lowercase name fullmatches any
        ``copy_session_field`` pattern; the logger adds them before ``apply``. At most
        ``max_session_fields`` are returned (``rules_session_fields_limit`` counts the rest).
        """
        out: Details = []
        if not self.copy_session_field:
            return out
        for header in cookie_header_values:
            for part in header.split(";"):
                name, _, value = part.partition("=")
                name = name.strip().lower()
                if not name or not any(p.fullmatch(name) for p in self.copy_session_field):
                    continue
                if len(out) >= self.max_session_fields:
                    self.anomalies.hit("rules_session_fields_limit")
                    return out
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                out.append(["session_field:" + name, value])
        return out


def parse(text: str | None = None, *, load_file: LoadFile | None = None,
          default_rules: str = STRICT_RULES, random_source: RandomSource | None = None,
          key_cache_max: int = 4096, max_session_fields: int = 100) -> Rules:
    """Parse a rules text (``None``, empty or blank: the default rules) into ``Rules``.

    Args:
        text: the rules, one per line; ``file://<path>`` loads them with ``load_file``.
        load_file: ``path -> text``; the core does no file IO, so the shell passes one.
        default_rules: what ``include default`` and a blank text mean (strict unless set).
        random_source: for ``sample``: a ``random.Random`` or a callable returning 0..99.
        key_cache_max: detail keys whose rule plan is cached before the cache is cleared.
        max_session_fields: most ``session_field`` details ``session_fields`` returns.

    Raises:
        RulesError: invalid rules; the one-line message quotes the rule.
    """
    lines = expand(text, load_file, default_rules)
    return Rules(parse_lines(lines), "\n".join(lines), random_source, key_cache_max,
                 max_session_fields)

"""Per-key actions of the one-pass record writer (workers/record_plan.py)."""
from __future__ import annotations

import json

import pytest

from workers import record_plan
from workers.record_plan import Replacer, action_for, fragment, ip_text_cached, prefix, put
from workers.rules import PLAN_DROP, parse


def test_prefix_is_the_json_text_that_opens_a_detail() -> None:
    assert prefix('request_header:x-"q"') + '"v"]' == json.dumps(
        ['request_header:x-"q"', "v"], ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("rules,key,kind", [
    ("include strict", "request_header:user-agent", str),
    ("include strict", "request_header:cookie", type(PLAN_DROP)),
    ("include debug\n/request_header:x/ replace /a/, /b/", "request_header:x", Replacer),
    ("include debug\n/response_body/ stop_if_found /secret/", "response_body", tuple),
])
def test_each_plan_becomes_its_action(rules: str, key: str, kind: type) -> None:
    action = action_for(parse(rules), key)
    assert isinstance(action, kind)
    if kind is type(PLAN_DROP):
        assert action is PLAN_DROP and fragment(action, "v") is None


def test_put_writes_kept_details_and_marks_value_dependent_ones() -> None:
    rules = parse("include debug\n/response_body/ stop_if_found /secret/")
    parts: list = []
    pending: list[int] = []
    put(action_for(rules, "request_method"), "GET", parts, pending)
    put(action_for(rules, "request_method"), "", parts, pending)  # empty: nothing written
    put(action_for(rules, "response_body"), "a secret", parts, pending)
    assert parts[0] == '["request_method","GET"]'
    assert pending == [1] and parts[1][2] == "a secret"


def test_replacer_memo_is_bounded_and_results_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_plan, "_MEMO_MAX", 3)
    action = action_for(parse("include debug\n/request_header:x/ replace /[0-9]+/, /N/"),
                        "request_header:x")
    assert isinstance(action, Replacer)
    for i in range(10):
        assert action.fragment(f"id {i}{i}") == '["request_header:x","id N"]'
        assert len(action.memo) <= 3
    assert action.fragment("123") == '["request_header:x","N"]'
    assert action_for(parse("include debug\n/request_header:x/ replace /.*/, //"),
                      "request_header:x").fragment("all gone") is None


def test_ip_text_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_plan, "_IP_TEXT_MAX", 4)
    monkeypatch.setattr(record_plan, "_IP_TEXT", {})
    for i in range(20):
        assert ip_text_cached(bytes([10, 0, 0, i])) == f"10.0.0.{i}"
        assert len(record_plan._IP_TEXT) <= 4
    assert ip_text_cached(bytes.fromhex("fd77" + "00" * 13 + "01")) == "fd77::1"

"""Applying the logging rules to Resurface details: every verb, the order, the sets, quirks."""
from __future__ import annotations

import copy
import random
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.anomalies import REGISTRY
from workers.rules import ANOMALIES, PLAN_DROP, PLAN_KEEP, Rules, parse

MSG = [
    ["request_method", "POST"],
    ["request_url", "http://localhost:5000/index.html?boo=yah&abc=123"],
    ["request_header:content-type", "Application/JSON"],
    ["request_header:user-agent", "curl/8.4.0"],
    ["request_header:cookie", "session=s3cr3t; theme=dark"],
    ["request_header:authorization", "Basic dXNlcjpwYXNz"],
    ["request_param:boo", "yah"],
    ["request_param:abc", "123"],
    ["request_body", '{"hello":"world","email":"jo@example.org","phone":"555-867-5309"}'],
    ["response_code", "200"],
    ["response_header:content-type", "text/html; charset=utf-8"],
    ["response_header:content-length", "25"],
    ["response_header:set-cookie", "id=9; HttpOnly"],
    ["response_body", "<html>Hello World!</html>"],
    ["now", "1455908640173"],
    ["interval", "12"],
]


def without(*keys: str) -> list[list[str]]:
    return [d for d in MSG if d[0] not in keys]


def replaced(key: str, value: str) -> list[list[str]]:
    return [[k, value] if k == key else [k, v] for k, v in MSG]


# (id, rules, expected apply(MSG): None = dropped)
APPLY = [
    ("no-rules", "# only a comment", MSG),
    ("remove", "/request_header:cookie/ remove", without("request_header:cookie")),
    ("remove-alternation", "/request_body|response_body/remove",
     without("request_body", "response_body")),
    ("remove-scope-is-anchored", "/request_header/ remove", MSG),
    ("remove-scope-prefix-not-enough", "/request_head/ remove", MSG),
    ("remove-everything", "/.*/ remove", None),
    ("remove_if-fullmatch", "!response_body! remove_if !<html>.*!", without("response_body")),
    ("remove_if-partial-is-no-match", "/response_body/ remove_if /Hello/", MSG),
    ("remove_if_found", "/response_body/ remove_if_found /World/", without("response_body")),
    ("remove_if_found-case-sensitive", "/response_body/ remove_if_found /WORLD/", MSG),
    ("remove_unless", "/.*_body/ remove_unless /<html>.*/", without("request_body")),
    ("remove_unless_found", "/.*_body/ remove_unless_found /World/", without("request_body")),
    ("remove_unless_found-all", "/.*/ remove_unless_found /^$/", None),
    ("replace", "/response_body/ replace /World/, /Universe/",
     replaced("response_body", "<html>Hello Universe!</html>")),
    ("replace-empty-replacement", "!response_body! replace !Hello !, !!",
     replaced("response_body", "<html>World!</html>")),
    ("replace-to-empty-drops-detail", "/request_param:boo/ replace /.*/, //",
     without("request_param:boo")),
    ("replace-java-group", r"/request_url/ replace /([^\?]+)\?.*/, /$1/",
     replaced("request_url", "http://localhost:5000/index.html")),
    ("replace-python-group", r"/request_url/ replace /([^\?]+)\?.*/, /\1/",
     replaced("request_url", "http://localhost:5000/index.html")),
    ("replace-braced-group", r"/request_url/ replace /([^\?]+)\?.*/, /${1}!/",
     replaced("request_url", "http://localhost:5000/index.html!")),
    ("replace-named-group", r"/request_url/ replace /\?(?<q>.*)/, /#${q}/",
     replaced("request_url", "http://localhost:5000/index.html#boo=yah&abc=123")),
    ("replace-file-order", "/response_body/ replace /World/, /There/\n"
     "/response_body/ replace /There/, /Here/",
     replaced("response_body", "<html>Hello Here!</html>")),
    ("replace-file-order-reversed", "/response_body/ replace /There/, /Here/\n"
     "/response_body/ replace /World/, /There/",
     replaced("response_body", "<html>Hello There!</html>")),
    ("replace-after-removal", "/response_body/ replace /World/, /X/\n/response_body/ remove",
     without("response_body")),
    ("stop", "/request_header:authorization/ stop", None),
    ("stop-no-match", "/request_header:x-nope/ stop", MSG),
    ("stop-beats-remove", "/request_header:cookie/ remove\n/request_header:cookie/ stop", None),
    ("stop_if", r"/response_code/ stop_if /2\d\d/", None),
    ("stop_if-fullmatch", "/response_code/ stop_if /2/", MSG),
    ("stop_if_found", "/response_code/ stop_if_found /0/", None),
    ("stop_if_found-no-hit", "/.*/ stop_if_found /no such text/", MSG),
    ("stop_unless-pass", "/response_code/ stop_unless /200/", MSG),
    ("stop_unless-drop", "/response_code/ stop_unless /404/", None),
    ("stop_unless-no-key", "/response_header:x-nope/ stop_unless /.*/", None),
    ("stop_unless_found-pass", "/request_url/ stop_unless_found /index/", MSG),
    ("stop_unless_found-drop", "/request_url/ stop_unless_found /nope/", None),
    # Java's counting quirk: hits are counted per (rule, detail) and compared to the rule count.
    ("stop_unless_found-two-hits-drop", "/request_param:.*/ stop_unless_found /./", None),
    ("stop_unless_found-hits-compensate",
     "/request_param:.*/ stop_unless_found /./\n/request_url/ stop_unless_found /nope/", MSG),
    ("stop_unless-two-hits-drop", "/request_param:.*/ stop_unless /.+/", None),
    ("stop_unless-both-rules-hit",
     "/request_method/ stop_unless /POST/\n/response_code/ stop_unless /200/", MSG),
    ("flags-only", "allow_http_url\nskip_compression\nskip_submission", MSG),
]


@pytest.mark.parametrize("rules,expected", [a[1:] for a in APPLY], ids=[a[0] for a in APPLY])
def test_apply(rules: str, expected: list[list[str]] | None) -> None:
    before = copy.deepcopy(MSG)
    assert parse(rules).apply(MSG) == expected
    assert MSG == before  # the input is never changed


STRICT_OUT = [
    ["request_method", "POST"],
    ["request_url", "http://localhost:5000/index.html"],
    ["request_header:user-agent", "curl/8.4.0"],
    ["response_code", "200"],
    ["response_header:content-type", "text/html; charset=utf-8"],
    ["response_header:content-length", "25"],
    ["now", "1455908640173"],
    ["interval", "12"],
]


@pytest.mark.parametrize("text", [None, "", "include default", "include strict"],
                         ids=["none", "empty", "include-default", "include-strict"])
def test_strict_keeps_only_safe_details(text: str | None) -> None:
    """Cookie, authorization, other headers, params, bodies and the query string all go."""
    assert parse(text).apply(MSG) == STRICT_OUT


# (id, detail, expected after strict: None = removed)
STRICT_DETAILS = [
    ("url-matrix-params", ["request_url", "http://h/a;jsessionid=1?b=2"], "http://h/a"),
    ("url-no-query", ["request_url", "http://h/a/b"], "http://h/a/b"),
    ("user-agent-prefix-kept", ["request_header:user-agent-x", "y"], "y"),
    ("x-forwarded-for-removed", ["request_header:x-forwarded-for", "10.0.0.1"], None),
    ("response-server-removed", ["response_header:server", "nginx"], None),
    ("bare-request-param-kept", ["request_param", "x"], "x"),
    ("session-field-kept", ["session_field:user", "jo"], "jo"),
    ("custom-field-kept", ["custom_field:a", "b"], "b"),
]


@pytest.mark.parametrize("detail,expected", [s[1:] for s in STRICT_DETAILS],
                         ids=[s[0] for s in STRICT_DETAILS])
def test_strict_per_detail(detail: list[str], expected: str | None) -> None:
    out = parse(None).apply([["response_code", "200"], detail])
    assert out is not None
    assert dict(out).get(detail[0]) == expected


def test_standard_masks_emails_and_numbers_and_drops_cookies() -> None:
    msg = MSG + [["request_param", "jo@example.org 12345678901"],
                 ["response_body", "call 1-800-555-0199 or mail a.b@mail.example.com"]]
    out = parse("include standard").apply(msg)
    assert out is not None
    got = dict((k, v) for k, v in out if k != "response_body")
    assert "request_header:cookie" not in got and "response_header:set-cookie" not in got
    assert got["request_header:authorization"] == "Basic dXNlcjpwYXNz"  # standard keeps it
    assert got["request_body"] == '{"hello":"world","email":"x@y.com","phone":"xyxy"}'
    assert got["request_param"] == "x@y.com xyxy"
    # the anchoring quirk: "request_param" never matches "request_param:<name>"
    assert got["request_param:boo"] == "yah"
    assert [v for k, v in out if k == "response_body"] == [
        "<html>Hello World!</html>", "call xyxy or mail x@y.com.com"]
    assert got["request_url"] == MSG[1][1]  # standard keeps the query string


def test_standard_param_quirk_email_in_named_param_is_not_masked() -> None:
    out = parse("include standard").apply([["request_param:email", "jo@example.org"]])
    assert out == [["request_param:email", "jo@example.org"]]


def test_debug_keeps_everything_and_copies_session_fields() -> None:
    rules = parse("include debug")
    assert rules.apply(MSG) == MSG
    assert rules.allow_http_url and [p.pattern for p in rules.copy_session_field] == [".*"]


def test_empty_values_are_dropped_even_without_rules() -> None:
    msg = [["request_method", "GET"], ["request_header:x-empty", ""]]
    assert parse("# none").apply(msg) == [["request_method", "GET"]]
    assert parse("/a/ remove").apply(msg) == [["request_method", "GET"]]
    assert parse("# none").apply([["request_header:x-empty", ""]]) is None
    assert parse("# none").apply([]) is None


class CountingDraws:
    """A random source that returns fixed draws and counts how often it was asked."""

    def __init__(self, draw: int) -> None:
        self.draw, self.calls = draw, 0

    def __call__(self) -> int:
        self.calls += 1
        return self.draw


@pytest.mark.parametrize("percent,draw,kept", [(50, 49, True), (50, 50, False), (1, 0, True),
                                               (1, 1, False), (99, 98, True), (99, 99, False)],
                         ids=["50-49", "50-50", "1-0", "1-1", "99-98", "99-99"])
def test_sample_keeps_draws_below_percent(percent: int, draw: int, kept: bool) -> None:
    rules = parse(f"sample {percent}\n/request_body/ remove", random_source=CountingDraws(draw))
    assert (rules.apply(MSG) is not None) is kept
    flags_only = parse(f"sample {percent}", random_source=CountingDraws(draw))
    assert (flags_only.apply(MSG) is not None) is kept


def test_sample_is_drawn_only_after_stop_rules_pass() -> None:
    draws = CountingDraws(0)
    rules = parse("sample 50\n/response_code/ stop_if /200/", random_source=draws)
    assert rules.apply(MSG) is None and draws.calls == 0
    assert rules.apply([["response_code", "404"]]) == [["response_code", "404"]]
    assert draws.calls == 1


def test_sample_with_seeded_random_keeps_about_the_percentage() -> None:
    rules = parse("sample 30", random_source=random.Random(20240601))
    kept = sum(rules.apply([["now", "1"]]) is not None for _ in range(2000))
    assert 500 <= kept <= 700
    again = parse("sample 30", random_source=random.Random(20240601))
    assert kept == sum(again.apply([["now", "1"]]) is not None for _ in range(2000))


# (id, rules, cookie header values, expected session fields)
SESSION = [
    ("debug-all", "include debug", ["a=1; B=\"two\"; c"],
     [["session_field:a", "1"], ["session_field:b", "two"], ["session_field:c", ""]]),
    ("anchored", "copy_session_field /sess/", ["session=1; sess=2; xsess=3"],
     [["session_field:sess", "2"]]),
    ("lowercase-name-matched", "copy_session_field /session_id/", ["SESSION_ID=Ab"],
     [["session_field:session_id", "Ab"]]),
    ("several-rules-one-detail", "copy_session_field /a.*/\ncopy_session_field /.*b/",
     ["ab=1", "zz=2; a=3"], [["session_field:ab", "1"], ["session_field:a", "3"]]),
    ("no-rule", "/a/ remove", ["a=1"], []),
    ("empty-parts", "include debug", [" ; =x;;  k = v "], [["session_field:k", "v"]]),
]


@pytest.mark.parametrize("rules,cookies,expected", [s[1:] for s in SESSION],
                         ids=[s[0] for s in SESSION])
def test_session_fields(rules: str, cookies: list[str], expected: list[list[str]]) -> None:
    assert parse(rules).session_fields(cookies) == expected


def test_session_fields_then_apply_like_a_logger() -> None:
    """Session fields are added before apply, so rules (here: remove_if) can drop them."""
    rules = parse("include debug\n/session_field:theme/ remove_if /dark/")
    msg = MSG + rules.session_fields(["session=s3cr3t; theme=dark"])
    assert rules.apply(msg) == MSG + [["session_field:session", "s3cr3t"]]


def test_session_fields_are_bounded() -> None:
    rules = parse("include debug", max_session_fields=3)
    out = rules.session_fields(["; ".join(f"c{i}={i}" for i in range(10))])
    assert [k for k, _ in out] == ["session_field:c0", "session_field:c1", "session_field:c2"]
    assert rules.anomalies["rules_session_fields_limit"] == 1


def test_key_cache_is_bounded_and_results_stay_right() -> None:
    rules = parse(None, key_cache_max=4)
    for _ in range(3):
        assert rules.apply(MSG) == STRICT_OUT
    assert len(rules._plans) <= 4
    assert rules.anomalies["rules_key_cache_reset"] >= 3


@pytest.mark.parametrize("details", [[["request_method"]], [["request_url", None]],
                                     [["a", "b", "c"]], [[None, "x"]], [5]],
                         ids=["short-detail", "none-value", "long-detail", "none-key",
                              "not-a-list"])
def test_malformed_details_drop_the_message_without_raising(details: list) -> None:
    for rules in (parse(None), parse("/request_url/ stop_if /x/")):
        assert rules.apply(details) is None
        assert rules.anomalies["rules_apply_error"] == 1


def test_anomaly_names_are_registered() -> None:
    assert set(ANOMALIES) <= set(REGISTRY)


def test_unchanged_details_are_shared_and_changed_ones_are_new() -> None:
    out = parse(None).apply(MSG)
    assert out is not None
    assert out[0] is MSG[0]  # request_method: untouched
    assert out[1] is not MSG[1]  # request_url: replaced


def test_rules_object_exposes_parsed_rules() -> None:
    rules: Rules = parse("/a/ remove\nsample 10")
    assert [r.verb for r in rules.rules] == ["remove", "sample"]
    assert rules.text == "/a/ remove\nsample 10"


def _same_as_naive(rules_text: str, msg: list[list[str]], draw: Callable[[], int]) -> None:
    """Cross-check the one-pass apply against a literal, rule-by-rule reading of section 5.3."""
    rules = parse(rules_text, random_source=draw)
    assert rules.apply(msg) == naive_apply(rules, msg, draw)


def naive_apply(rules: Rules, msg: list[list[str]], draw: Callable[[], int]):
    details = [list(d) for d in msg]
    by = {v: [r for r in rules.rules if r.verb == v] for v in {r.verb for r in rules.rules}}
    get = lambda verb: by.get(verb, [])  # noqa: E731
    key = lambda r, d: r.scope.fullmatch(d[0])  # noqa: E731
    if any(key(r, d) for r in get("stop") for d in details):
        return None
    if any(key(r, d) and r.param.search(d[1]) for r in get("stop_if_found") for d in details):
        return None
    if any(key(r, d) and r.param.fullmatch(d[1]) for r in get("stop_if") for d in details):
        return None
    hits = sum(1 for r in get("stop_unless_found") for d in details
               if key(r, d) and r.param.search(d[1]))
    if hits != len(get("stop_unless_found")):
        return None
    hits = sum(1 for r in get("stop_unless") for d in details
               if key(r, d) and r.param.fullmatch(d[1]))
    if hits != len(get("stop_unless")):
        return None
    if rules.sample is not None and draw() >= rules.sample:
        return None
    for r in get("remove"):
        details = [d for d in details if not key(r, d)]
    for r in get("remove_unless_found"):
        details = [d for d in details if not (key(r, d) and not r.param.search(d[1]))]
    for r in get("remove_if_found"):
        details = [d for d in details if not (key(r, d) and r.param.search(d[1]))]
    for r in get("remove_unless"):
        details = [d for d in details if not (key(r, d) and not r.param.fullmatch(d[1]))]
    for r in get("remove_if"):
        details = [d for d in details if not (key(r, d) and r.param.fullmatch(d[1]))]
    if not details:
        return None
    for r in [r for r in rules.rules if r.verb == "replace"]:
        for d in details:
            if key(r, d):
                d[1] = r.param.sub(r.replacement, d[1])
    details = [d for d in details if d[1] != ""]
    return details or None


@pytest.mark.parametrize("rules_text", [rule[1] for rule in APPLY] + [
    "include standard", "include strict\ninclude standard", "include debug\nsample 50",
    "/request_.*/ remove_unless_found /a/\n/response_.*/ remove_if_found /t/\n"
    "/.*/ replace /[aeiou]/, /_/\n/request_url/ stop_unless_found /http/"],
    ids=[rule[0] for rule in APPLY] + ["standard", "strict-standard", "debug-sample", "mixed"])
def test_one_pass_apply_equals_rule_by_rule_reading(rules_text: str) -> None:
    for draw in (0, 99):
        _same_as_naive(rules_text, MSG, lambda d=draw: d)


KEYS = [k for k, _ in MSG] + ["request_param", "session_field:user", "request_header:x-a"]
PROPERTY_RULES = [parse(text, random_source=lambda: 42) for text in (
    None, "include standard", "include debug\nsample 43",
    "/request_.*/ remove_unless_found /a/\n/response_.*/ remove_if_found /t/\n"
    "/.*/ replace /[aeiou]/, /_/\n/request_url/ stop_unless_found /http/",
    "/request_header:.*/ stop_if /x+/\n/.*_body/ remove_unless /.{0,5}/\n"
    "/response_code/ stop_unless /[0-9]+/\n/now/ replace /(\\d)(\\d)/, /$2\\1/")]


@settings(max_examples=150, deadline=None)
@given(details=st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)),
                                  st.text(max_size=12)).map(list), max_size=12),
       which=st.integers(0, len(PROPERTY_RULES) - 1))
def test_property_apply_equals_rule_by_rule_reading(details: list[list[str]], which: int) -> None:
    """For any details, the one-pass apply gives what section 5.3 read literally gives."""
    rules = PROPERTY_RULES[which]
    assert rules.apply(details) == naive_apply(rules, details, lambda: 42)


def planned_apply(rules: Rules, details: list[list[str]]) -> list[list[str]] | None:
    """``apply`` rebuilt from ``plan`` + ``apply_planned``, as the line builder uses them."""
    plans = [rules.plan(k) for k, _ in details]
    judged = [i for i, p in enumerate(plans) if p is not PLAN_KEEP and p is not PLAN_DROP]
    values = rules.apply_planned([(plans[i], details[i][1]) for i in judged])
    if values is None:
        return None
    out = {i: v for i, v in zip(judged, values)}
    kept = [[k, out.get(i, v)] for i, (k, v) in enumerate(details)
            if plans[i] is not PLAN_DROP and out.get(i, v)]
    return kept or None


@pytest.mark.parametrize("rules_text", [rule[1] for rule in APPLY] + [
    "include standard", "include strict", "include debug\nsample 50"])
def test_plan_and_apply_planned_give_what_apply_gives(rules_text: str) -> None:
    for draw in (0, 99):
        assert planned_apply(parse(rules_text, random_source=lambda d=draw: d), MSG) == \
            parse(rules_text, random_source=lambda d=draw: d).apply(MSG)


@settings(max_examples=150, deadline=None)
@given(details=st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)),
                                  st.text(max_size=12)).map(list), max_size=12),
       which=st.integers(0, len(PROPERTY_RULES) - 1))
def test_property_apply_planned_equals_apply(details: list[list[str]], which: int) -> None:
    rules = PROPERTY_RULES[which]
    assert planned_apply(rules, details) == rules.apply(details)

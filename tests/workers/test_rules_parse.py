"""Parsing of the logging rules: grammar, separators, errors, includes and file loading."""
from __future__ import annotations

from pathlib import Path

import pytest

from workers.rules import DEBUG_RULES, STANDARD_RULES, STRICT_RULES, RulesError, parse
from workers.rules_parse import expand, parse_line

DATA = Path(__file__).resolve().parent.parent / "data" / "rules"


def read_text(path: str) -> str:
    """The loader a shell passes in: a real file read."""
    return Path(path).read_text(encoding="utf-8")


# (id, line, verb, scope pattern text or None, param: pattern text / int / None)
VALID = [
    ("allow_http_url", "allow_http_url", "allow_http_url", None, None),
    ("allow_http_url-ws-comment", "  allow_http_url\t# yes", "allow_http_url", None, None),
    ("skip_compression", "skip_compression", "skip_compression", None, None),
    ("skip_submission", "skip_submission #", "skip_submission", None, None),
    ("sample-1", "sample 1", "sample", None, 1),
    ("sample-99", "sample 99", "sample", None, 99),
    ("sample-leading-zero", "sample 050", "sample", None, 50),
    ("copy_session_field", "copy_session_field /.*/", "copy_session_field", None, ".*"),
    ("remove", "/request_body/ remove", "remove", "request_body", None),
    ("remove-no-space", "/request_body/remove", "remove", "request_body", None),
    ("remove-comment-no-space", "/request_body/remove#why", "remove", "request_body", None),
    ("remove-tilde", "~a~ remove", "remove", "a", None),
    ("remove-bang", "!a! remove", "remove", "a", None),
    ("remove-percent", "%a% remove", "remove", "a", None),
    ("remove-pipe", "|a| remove", "remove", "a", None),
    ("escaped-slash", r"/a\/b/ remove", "remove", "a/b", None),
    ("escaped-pipe-is-alternation", r"|a\|b| remove", "remove", "a|b", None),
    ("other-separator-inside", "/a|b~c!d%e/ remove", "remove", "a|b~c!d%e", None),
    ("remove_if", "/a/ remove_if /b/", "remove_if", "a", "b"),
    ("remove_if_found", "/a/ remove_if_found /b/", "remove_if_found", "a", "b"),
    ("remove_unless", "/a/ remove_unless /b/", "remove_unless", "a", "b"),
    ("remove_unless_found", "/a/remove_unless_found  /b/ ", "remove_unless_found", "a", "b"),
    ("stop", "/a/ stop", "stop", "a", None),
    ("stop_if", "/a/ stop_if /b/", "stop_if", "a", "b"),
    ("stop_if_found", "/a/ stop_if_found /b/ # c", "stop_if_found", "a", "b"),
    ("stop_unless", "/a/ stop_unless /b/", "stop_unless", "a", "b"),
    ("stop_unless_found", "!a! stop_unless_found ~b~", "stop_unless_found", "a", "b"),
    ("replace", "/a/ replace /b/, /c/", "replace", "a", "b"),
    ("replace-empty", "/a/ replace /b/, !!", "replace", "a", "b"),
    ("replace-tab-after-comma", "/a/ replace /b/,\t/c/", "replace", "a", "b"),
    ("replace-comma-in-find", "/a/ replace /b, c/, /d/", "replace", "a", "b, c"),
]


@pytest.mark.parametrize("line,verb,scope,param", [v[1:] for v in VALID],
                         ids=[v[0] for v in VALID])
def test_valid_rule(line: str, verb: str, scope: str | None, param: object) -> None:
    rule = parse_line(line)
    assert rule is not None and rule.verb == verb
    assert (rule.scope.pattern if rule.scope else None) == scope
    got = rule.param.pattern if hasattr(rule.param, "pattern") else rule.param
    assert got == param


@pytest.mark.parametrize("line", ["", "   ", "\t", "#", "# comment", "   # indented"],
                         ids=["empty", "spaces", "tab", "hash", "comment", "indented-comment"])
def test_blank_and_comment_lines_are_no_rule(line: str) -> None:
    assert parse_line(line) is None


# (id, rules text, exact error message)
INVALID = [
    ("unknown", "foo bar", "Invalid rule: foo bar"),
    ("verb-without-scope", "remove", "Invalid rule: remove"),
    ("unknown-verb", "/a/ delete", "Invalid rule: /a/ delete"),
    ("remove_if-no-param", "/a/ remove_if", "Invalid rule: /a/ remove_if"),
    ("stop_if-no-param", "/a/ stop_if", "Invalid rule: /a/ stop_if"),
    ("replace-no-space-after-comma", "/a/ replace /b/,/c/", "Invalid rule: /a/ replace /b/,/c/"),
    ("replace-no-comma", "/a/ replace /b/ /c/", "Invalid rule: /a/ replace /b/ /c/"),
    ("replace-one-expr", "/a/ replace /b/", "Invalid rule: /a/ replace /b/"),
    ("flag-with-args", "allow_http_url please", "Invalid rule: allow_http_url please"),
    ("sample-no-number", "sample", "Invalid rule: sample"),
    ("sample-word", "sample ten", "Invalid rule: sample ten"),
    ("sample-negative", "sample -5", "Invalid rule: sample -5"),
    ("empty-scope", "// remove", "Invalid rule: // remove"),
    ("no-separators", "request_body remove", "Invalid rule: request_body remove"),
    ("include-unknown", "include foo", "Invalid rule: include foo"),
    ("include-with-comment", "include strict # c", "Invalid rule: include strict # c"),
    ("include-two-spaces", "include  debug", "Invalid rule: include  debug"),
    ("sample-0", "sample 0", "Invalid sample percent: 0"),
    ("sample-100", "sample 100", "Invalid sample percent: 100"),
    ("sample-huge", "sample 99999999999999999999999",
     "Invalid sample percent: 99999999999999999999999"),
    ("multiple-sample", "sample 10\nsample 20", "Multiple sample rules"),
    ("unescaped-inside", "/a/b/ remove", "Unescaped separator (/) in rule: /a/b/ remove"),
    ("unescaped-first", "/// remove", "Unescaped separator (/) in rule: /// remove"),
    ("unescaped-in-param", "/a/ remove_if !b!c!",
     "Unescaped separator (!) in rule: /a/ remove_if !b!c!"),
    ("comment-swallowed-by-expr", "/a/ remove_if /b/ # see /c/",
     "Unescaped separator (/) in rule: /a/ remove_if /b/ # see /c/"),
    ("mixed-separators", "/a! remove", "Invalid expression (/a!) in rule: /a! remove"),
    ("bare-star", "/*/ remove", "Invalid regex (/*/) in rule: /*/ remove"),
    ("bare-plus", "/+/ stop", "Invalid regex (/+/) in rule: /+/ stop"),
    ("bare-question", "/a/ remove_if /?/", "Invalid regex (/?/) in rule: /a/ remove_if /?/"),
    ("bare-star-session", "copy_session_field /*/",
     "Invalid regex (/*/) in rule: copy_session_field /*/"),
]


@pytest.mark.parametrize("text,message", [v[1:] for v in INVALID], ids=[v[0] for v in INVALID])
def test_invalid_rules_raise_with_exact_message(text: str, message: str) -> None:
    with pytest.raises(RulesError) as info:
        parse(text)
    assert str(info.value) == message


BAD_REGEX = [
    ("open-paren", "/(/ remove"),
    ("open-class", "/[a/ remove"),
    ("star-found", "/a/ remove_if_found /*/"),
    ("bad-find", "/a/ replace /(/, /x/"),
    ("java-only-class", r"/a/ stop_if /\p{Alpha}+/"),
    ("nested-class-warning", "/[[a]]/ remove"),
    ("unicode-flag-vs-ascii", "/(?u)a/ remove"),
]


@pytest.mark.parametrize("text", [v[1] for v in BAD_REGEX], ids=[v[0] for v in BAD_REGEX])
def test_bad_regex_is_a_one_line_rules_error(text: str) -> None:
    with pytest.raises(RulesError, match=r"^Invalid regex \(.*\) in rule: ") as info:
        parse(text)
    assert text in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["/a/ replace /(b)/, /$2/", "/a/ replace /b/, /\\1/",
                                  "/a/ replace /(b)/, /${name}/", "/a/ replace /b/, /x\\/"],
                         ids=["dollar-2-of-1", "backslash-1-of-0", "unknown-name",
                              "lone-backslash"])
def test_bad_replacement_is_rejected_at_parse_time(text: str) -> None:
    with pytest.raises(RulesError, match=r"^Invalid replacement \(.*\) in rule: "):
        parse(text)


def test_rules_error_is_a_value_error() -> None:
    assert issubclass(RulesError, ValueError)


@pytest.mark.parametrize("text", [None, "", "   ", " \n\t\r\n ", "include default",
                                  "  include default  ", "include strict"],
                         ids=["none", "empty", "spaces", "whitespace-lines", "include-default",
                              "include-default-padded", "include-strict"])
def test_default_is_strict(text: str | None) -> None:
    rules = parse(text)
    assert [r.line for r in rules.rules] == STRICT_RULES.splitlines()
    assert rules.text.strip() == STRICT_RULES.strip()


@pytest.mark.parametrize("name,text", [("debug", DEBUG_RULES), ("standard", STANDARD_RULES),
                                       ("strict", STRICT_RULES)],
                         ids=["debug", "standard", "strict"])
def test_include_expands_whole_line_to_the_set(name: str, text: str) -> None:
    rules = parse(f"  include {name}\t\nskip_submission")
    assert [r.line for r in rules.rules] == text.splitlines() + ["skip_submission"]


def test_include_inside_a_longer_line_is_not_expanded() -> None:
    with pytest.raises(RulesError, match="Invalid rule: x include debug"):
        parse("x include debug")


def test_comment_only_text_means_no_rules_not_default() -> None:
    assert parse("# nothing here").rules == ()


def test_custom_default_rules_drop_their_own_include_default() -> None:
    rules = parse("include default\nskip_submission",
                  default_rules="include default\ninclude debug\nskip_compression\n")
    assert [r.verb for r in rules.rules] == [
        "allow_http_url", "copy_session_field", "skip_compression", "skip_submission"]
    assert parse("", default_rules="sample 5").sample == 5


def test_flags_and_sample() -> None:
    rules = parse("allow_http_url\r\nskip_compression\nskip_submission\nsample 42\n")
    assert (rules.allow_http_url, rules.skip_compression, rules.skip_submission) == (
        True, True, True)
    assert rules.sample == 42
    plain = parse("/a/ remove")
    assert (plain.allow_http_url, plain.skip_compression, plain.skip_submission,
            plain.sample) == (False, False, False, None)
    assert parse("include debug").allow_http_url
    assert not parse("include strict").allow_http_url


# (file name, expected sample, expected allow_http_url)
FILES = [("sample_55.txt", 55, False), ("debug_sample_56.txt", 56, True),
         ("sample_57_default.txt", 57, False)]


@pytest.mark.parametrize("name,sample,allow", FILES, ids=[f[0] for f in FILES])
def test_file_rules_are_loaded_and_expanded(name: str, sample: int, allow: bool) -> None:
    rules = parse(f"file://{DATA / name}", load_file=read_text)
    assert rules.sample == sample and rules.allow_http_url is allow
    if "default" in name:  # include default inside the file expands to strict
        assert [r.verb for r in rules.rules] == ["sample", "replace", "remove"]


def test_file_path_is_trimmed_and_crlf_files_work(tmp_path: Path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"skip_compression\r\n/a/ remove\r\n\r\n# done\r\n")
    rules = parse(f"file://  {path}  ", load_file=read_text)
    assert [r.verb for r in rules.rules] == ["skip_compression", "remove"]


def test_masking_file_parses_every_form() -> None:
    rules = parse(f"file://{DATA / 'masking.txt'}", load_file=read_text)
    assert [r.verb for r in rules.rules] == [
        "allow_http_url", "skip_compression", "remove", "replace", "replace", "replace",
        "remove_unless", "stop_if_found"]
    assert rules.rules[-1].param.pattern == "/health/"  # \/ unescaped


def test_missing_file_and_missing_loader_fail_to_load(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(RulesError, match=f"^Failed to load rules: {missing}"):
        parse(f"file://{missing}", load_file=read_text)
    with pytest.raises(RulesError, match="^Failed to load rules: /x.txt"):
        parse("file:///x.txt")


def test_file_prefix_only_at_the_start() -> None:
    with pytest.raises(RulesError, match="Invalid rule:  file:///x"):
        parse(" file:///x")


def test_expand_gives_effective_lines() -> None:
    assert expand("include debug\n# c") == ["allow_http_url", "copy_session_field /.*/", "# c"]
    assert parse("include debug").text == "allow_http_url\ncopy_session_field /.*/"

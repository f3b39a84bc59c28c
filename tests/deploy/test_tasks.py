"""The build task: profile choice, argument errors as clean exits, no AWS in a dry run."""
from __future__ import annotations

import pytest
from invoke import Exit

from deploy import ns
from deploy.tasks import PROFILE_PROMPT, build, choose_profile
from fabric import Config
from invoke import Context


@pytest.mark.parametrize("flag,env,tty,answer,expected", [
    ("ops", {"AWS_PROFILE": "x"}, True, "", "ops"),
    ("", {}, True, "release", "release"),
    ("", {"AWS_PROFILE": "x"}, True, "", "x"),
    ("", {}, True, "", "default"),
    ("", {"AWS_PROFILE": "x"}, False, None, "x"),
    ("", {}, False, None, None),
])
def test_choose_profile(monkeypatch, capsys, flag, env, tty, answer, expected):
    prompts = []
    monkeypatch.setattr("builtins.input", lambda p: prompts.append(p) or answer)
    assert choose_profile(flag, env, tty) == expected
    assert prompts == ([PROFILE_PROMPT] if tty and not flag else [])


def context():
    cfg = Config(overrides={})
    cfg.load_collection(ns.configuration())
    return Context(config=cfg)


@pytest.mark.parametrize("tag,version,message", [
    ("bad tag", "1.2.3", "invalid docker tag"),
    ("1.2.4", "one", "invalid sniffer version"),
])
def test_bad_arguments_exit_1_with_the_reason(tag, version, message):
    with pytest.raises(Exit) as err:
        build(context(), tag, version, dry_run=True)
    assert err.value.code == 1 and message in str(err.value.message)


def test_dry_run_needs_no_credentials(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    build(context(), "1.2.4", "1.3.6-Resurface", dry_run=True)
    assert "[dry-run] 6. clean up" in capsys.readouterr().out


def test_not_logged_in_fails_before_any_aws_call(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SNIFFER_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setattr("deploy.aws.open_session",
                        lambda *a: pytest.fail("AWS must not be touched"))
    with pytest.raises(Exit, match="not logged in to the registry docker.io"):
        build(context(), "1.2.4", "1.3.6-Resurface")

"""Test doubles for the release unit tests: a scripted Connection and a recording fleet."""
from __future__ import annotations

import re
import threading
from pathlib import Path

from invoke import Result


class ScriptedConnection:
    """Answers ``run`` from (regex, Result) rules in order; records runs, puts, stdin, closes."""

    def __init__(self, name, rules=(), log=None):
        self.name = name
        self.rules = list(rules)
        self.log = log if log is not None else []
        self.stdin = {}
        self.closed = 0
        self._lock = threading.Lock()

    def run(self, cmd, hide=None, warn=None, in_stream=None):
        with self._lock:
            self.log.append((self.name, cmd))
        if in_stream:
            self.stdin[cmd] = in_stream.read()
        for pattern, result in self.rules:
            if re.search(pattern, cmd):
                if isinstance(result, BaseException):
                    raise result
                return result
        return Result(stdout="", exited=0)

    def put(self, local, remote):
        with self._lock:
            self.log.append((self.name, f"put {Path(local).name} {remote}"))

    def close(self):
        self.closed += 1


class RecordingFleet:
    """Addresses on demand; remembers whether ``release`` ran."""

    key_file = None

    def __init__(self, names=("amd64", "arm64"), fail=None):
        self.names = names
        self.fail = fail
        self.released = False

    def acquire(self):
        if self.fail:
            raise self.fail
        return {n: f"10.0.0.{i}" for i, n in enumerate(self.names, 1)}

    def wait_ssh(self, addresses):
        pass

    def release(self):
        self.released = True
        return ["fleet released"]

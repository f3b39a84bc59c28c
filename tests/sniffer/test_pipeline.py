"""Process plumbing shared by the pipeline's processes (sniffer/pipeline.py)."""
from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from sniffer.pipeline import CHILD_ENV, child_environment


def _report_env(queue: mp.Queue) -> None:  # runs in a spawned child
    queue.put({k: os.environ.get(k) for k in CHILD_ENV})


def test_spawned_children_get_the_malloc_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in CHILD_ENV:
        monkeypatch.setenv(key, "0")  # recorded, so the test's own setting is undone after
        monkeypatch.delenv(key)
    child_environment()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_report_env, args=(queue,))
    proc.start()
    try:
        assert queue.get(timeout=30) == CHILD_ENV
    finally:
        proc.join(30)
        queue.close()
    assert CHILD_ENV["MALLOC_MMAP_THRESHOLD_"] == "131072"


def test_a_value_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    child_environment()
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == "65536"

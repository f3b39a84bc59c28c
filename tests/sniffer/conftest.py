"""Fixtures shared by the output tests: a real capture endpoint on loopback."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.endpoint import CaptureEndpoint


def numbers(messages: list) -> list[int]:
    """The ``custom_field:n`` of each message, in arrival order."""
    return [int(dict(message)["custom_field:n"]) for message in messages]


@pytest.fixture
def endpoint() -> Iterator[CaptureEndpoint]:
    """A strict capture endpoint, stopped after the test."""
    ep = CaptureEndpoint()
    yield ep
    ep.stop()

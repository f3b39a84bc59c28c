"""WorkerLoop (sniffer/worker_loop.py): the core and the record builder composed, with the
logging rules deciding what the core needs to keep."""
from __future__ import annotations

import pytest

from sniffer import codec
from sniffer.config import load_config
from sniffer.worker_loop import WorkerLoop
from tests.helpers import C2S, S2C, conversation
from tests.test_golden import scenarios
from workers.core import WorkerCore

RULES = {
    "strict": (None, False),
    "debug": ("include debug", True),
    "bodies-kept-by-a-replace": ("include debug\n/response_body/ replace /secret/, /x/", True),
    "strict-removes-before-a-replace": ("include strict\n/response_body/ replace /s/, /x/", False),
    "stop-on-a-body": ("include strict\n/response_body/ stop_if_found /secret/", True),
    "bodies-removed-explicitly": ("include debug\n/.*_body/ remove", False),
}


def lines_of(loop: WorkerLoop, packets: list) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for i, p in enumerate(packets):
        out += loop.feed(i, p.ts_ns, p.seg)
    return out + loop.close(len(packets))


@pytest.mark.parametrize("name", sorted(RULES))
def test_response_bodies_are_stored_only_when_the_rules_can_keep_them(name: str) -> None:
    rules, keeps = RULES[name]
    cfg = load_config(None, {}, {"output.rules": rules, "output.host_name": "t"})
    lean = WorkerLoop(cfg)
    assert lean.core.keep_response_bodies is keeps
    full = WorkerLoop(cfg)
    full.core = WorkerCore(cfg.limits, cfg.capture.ports)  # stores every body
    full.builder.anomalies = full.core.anomalies
    big = conversation([(C2S, b"GET /s HTTP/1.1\r\nHost: h\r\n\r\n"),
                        (S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nsecret value")])
    for packets in [*scenarios().values(), big]:
        assert lines_of(lean, packets) == lines_of(full, packets)
    assert dict(lean.core.anomalies) == dict(full.core.anomalies)


@pytest.mark.parametrize("per_frame", [1, 7, 256])
def test_a_ring_frame_gives_the_lines_of_its_packets_fed_one_by_one(per_frame: int) -> None:
    cfg = load_config(None, {}, {"output.rules": "include debug", "output.host_name": "t"})
    packets = [p for ps in scenarios().values() for p in ps]
    one_by_one, framed = WorkerLoop(cfg), WorkerLoop(cfg)
    expected = lines_of(one_by_one, packets)
    got: list[tuple[int, bytes]] = []
    for start in range(0, len(packets), per_frame):
        items = [(i, packets[i].ts_ns, packets[i].seg)
                 for i in range(start, min(start + per_frame, len(packets)))]
        got += framed.feed_frame(codec.encode_packets(items))
    got += framed.close(len(packets))
    assert len(expected) > 30 and got == expected
    assert framed.counters() == one_by_one.counters()


def test_a_damaged_ring_frame_is_a_codec_error_not_traffic() -> None:
    loop = WorkerLoop(load_config(None, {}, {}))
    seg = next(iter(scenarios().values()))[0].seg
    frame = codec.encode_packets([(0, 1, seg), (1, 2, seg)])
    # cut short, a trailing byte, cut inside the first item, an IP version that is not 4 or 6
    for bad in (frame[:-1], frame + b"x", frame[:6 + 20], frame[:6] + b"\x05" + frame[7:]):
        with pytest.raises(codec.CodecError):
            loop.feed_frame(bad)

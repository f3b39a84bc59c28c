"""Merger (sniffer/merger.py) writes exactly what a heap of (key, arrival, line) would:
the same lines in the same order at the same moments, with the bound on held lines."""
from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from sniffer import codec
from sniffer import merger as merger_module
from sniffer.merger import Merger


class ListSink:
    """A real Sink that keeps what it is given, in order."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, line: bytes) -> None:
        self.lines.append(line)

    def write_many(self, lines: list[bytes]) -> None:
        self.lines += lines

    def flush(self) -> None:
        pass

    def close(self, deadline_s: float | None = None) -> bool:
        return True

    def counters(self) -> dict[str, int]:
        return {"calls_written": len(self.lines)}


class HeapModel:
    """The reference: one heap push per line, pop while no worker can precede."""

    def __init__(self, workers: int, max_held: int) -> None:
        self.marks, self.ended = [-1] * workers, [False] * workers
        self.heap: list[tuple[int, int, bytes]] = []
        self.seq, self.max_held, self.out, self.relaxed = 0, max_held, [], 0

    def lines(self, keys: list[int], lines: list[bytes]) -> None:
        for key, line in zip(keys, lines):
            self.seq += 1
            heapq.heappush(self.heap, (key, self.seq, line))
        while len(self.heap) > self.max_held:
            self.relaxed += 1
            self.out.append(heapq.heappop(self.heap)[2])

    def control(self, worker: int, word: str) -> None:
        kind, *arg = word.split()
        if kind == "MARK":
            self.marks[worker] = int(arg[0])
        else:
            self.ended[worker] = True
        limit = None if all(self.ended) else min(
            m for m, e in zip(self.marks, self.ended) if not e)
        while self.heap and (limit is None or self.heap[0][0] >> 16 <= limit):
            self.out.append(heapq.heappop(self.heap)[2])


@st.composite
def streams(draw: st.DrawFn) -> tuple[int, list[tuple[int, str, list[int]]]]:
    """Events (worker, "lines"/"mark"/"end", keys): keys mostly rise per worker, not always."""
    workers = draw(st.integers(1, 3))
    index = [0] * workers
    events: list[tuple[int, str, list[int]]] = []
    for _ in range(draw(st.integers(0, 40))):
        w = draw(st.integers(0, workers - 1))
        if draw(st.integers(0, 3)):
            keys = []
            for _ in range(draw(st.integers(0, 6))):
                index[w] += draw(st.integers(0, 3))
                keys.append(index[w] << 16 | draw(st.integers(0, 2)))
            if draw(st.integers(0, 5)) == 0:  # close()-style keys: any order
                keys = draw(st.permutations(keys))
            events.append((w, "lines", keys))
        else:
            events.append((w, "mark", [max(index)]))
    for w in range(workers):
        events.append((w, "end", []))
    return workers, events


@settings(max_examples=400, deadline=None)
@given(case=streams(), max_held=st.integers(1, 12), bounded=st.booleans())
def test_merger_writes_what_the_heap_writes(
        case: tuple[int, list[tuple[int, str, list[int]]]], max_held: int, bounded: bool) -> None:
    max_held = max_held if bounded else 1 << 30
    saved, merger_module.MAX_HELD_LINES = merger_module.MAX_HELD_LINES, max_held
    try:
        check_against_the_heap(*case, max_held)
    finally:
        merger_module.MAX_HELD_LINES = saved


def check_against_the_heap(workers: int, events: list[tuple[int, str, list[int]]],
                           max_held: int) -> None:
    sink, model = ListSink(), HeapModel(workers, max_held)
    merger = Merger(sink, workers, ordered=True)
    n = 0
    for w, kind, keys in events:
        if kind == "lines":
            lines = [b"%d:%d" % (w, n + i) for i in range(len(keys))]
            n += len(keys)
            merger.lines(w, codec.encode_keyed_lines(keys, lines))
            model.lines(keys, lines)
        else:
            word = f"MARK {keys[0]}" if kind == "mark" else "END"
            merger.control(w, word)
            model.control(w, word)
        assert sink.lines == model.out  # same lines, same moments
        assert merger.held_lines <= max_held
    merger.release()
    assert sink.lines == model.out and len(sink.lines) == n
    assert merger.counters == {"calls_out": n, "order_relaxed": model.relaxed}


def test_unordered_merger_passes_frames_through() -> None:
    sink = ListSink()
    merger = Merger(sink, 2, ordered=False)
    merger.lines(1, codec.encode_keyed_lines([9, 1], [b"a", b"b"]))
    merger.lines(0, codec.encode_keyed_lines([5], [b"c"]))
    assert sink.lines == [b"a", b"b", b"c"] and merger.counters["calls_out"] == 3

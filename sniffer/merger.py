"""Merger: the workers' keyed lines to the sink, in capture order when ``ordered``.

Strategy (the per-call half of the aggregator, compiled with mypyc; see setup.py):
In ordered mode (``read``) calls are merged back into capture order: each line carries its
order key and each worker reports how far it has got (``MARK``); a line is written once no
worker can still produce an earlier one. The order is (key, arrival): the order a heap of
``(key, arrival number, line)`` would pop. Each worker's lines are held in a run of parallel
lists (keys, arrival numbers, lines) kept sorted; a worker's lines almost always arrive in key
order, so a frame is appended with three C-level ``extend`` calls (a frame out of order marks
the run for one sort before its next cut). A release cuts each run at the bound with
``bisect``, merges the cut prefixes (a k-way merge over the runs' native ints, only when more
than one worker contributes) and hands the sink one list. What is held is bounded
(``MAX_HELD_LINES``); past the bound the oldest lines are written anyway and counted
(``order_relaxed``).
"""
from __future__ import annotations

import heapq
from bisect import bisect_left
from itertools import islice, repeat

from sniffer import codec
from sniffer.sink import Sink

MAX_HELD_LINES = 200_000


class Merger:
    """Writes lines to the sink, in key order when ``ordered``."""

    def __init__(self, sink: Sink, workers: int, ordered: bool) -> None:
        self.sink = sink
        self.ordered = ordered
        self.marks = [-1] * workers
        self.ended = [False] * workers
        # per worker, sorted by (key, arrival number) unless dirty: three parallel lists
        self.keys: list[list[int]] = [[] for _ in range(workers)]
        self.seqs: list[list[int]] = [[] for _ in range(workers)]
        self.held: list[list[bytes]] = [[] for _ in range(workers)]
        self.dirty = [False] * workers
        self.held_lines = 0
        self.seq = 0
        self.counters = {"calls_out": 0, "order_relaxed": 0}

    def lines(self, worker: int, frame: bytes) -> None:
        """A KEYED_LINES frame from ``worker``."""
        keys, lines = codec.decode_keyed_lines(frame)
        n = len(lines)
        if not self.ordered:
            self.sink.write_many(lines)
            self.counters["calls_out"] += n
            return
        if not n:
            return
        run = self.keys[worker]
        if not self.dirty[worker] and ((run and keys[0] < run[-1]) or keys != sorted(keys)):
            self.dirty[worker] = True
        run += keys
        self.seqs[worker] += range(self.seq, self.seq + n)
        self.seq += n
        self.held[worker] += lines
        self.held_lines += n
        if self.held_lines > MAX_HELD_LINES:
            self._relax(self.held_lines - MAX_HELD_LINES)

    def control(self, worker: int, word: str) -> None:
        """A control word from ``worker``: MARK or END."""
        parts = word.split()
        if parts[0] == "MARK":
            self.marks[worker] = int(parts[1])
        elif parts[0] == "END":
            self.ended[worker] = True
        self.release()

    def release(self) -> None:
        """Write every held line that no worker can still precede."""
        if not self.held_lines:
            return
        bound = None  # every line, once every worker has ended
        if not all(self.ended):
            bound = (min(m for m, e in zip(self.marks, self.ended) if not e) + 1) << 16
        cuts = []
        for w in range(len(self.keys)):
            if self.keys[w]:
                if self.dirty[w]:
                    self._sort(w)
                keys = self.keys[w]
                cut = len(keys) if bound is None else bisect_left(keys, bound)
                if cut:
                    cuts.append((w, cut))
        self._write_prefixes(cuts)

    def _sort(self, w: int) -> None:
        order = sorted(zip(self.keys[w], self.seqs[w], self.held[w]))
        self.keys[w] = [t[0] for t in order]
        self.seqs[w] = [t[1] for t in order]
        self.held[w] = [t[2] for t in order]
        self.dirty[w] = False

    def _relax(self, excess: int) -> None:
        """Write the ``excess`` oldest held lines now, out of the merge order's reach."""
        for w, dirty in enumerate(self.dirty):
            if dirty:
                self._sort(w)
        counts = [0] * len(self.keys)
        runs = [zip(k, s, repeat(w)) for w, (k, s) in enumerate(zip(self.keys, self.seqs))]
        for _, _, w in islice(heapq.merge(*runs), excess):
            counts[w] += 1
        self._write_prefixes([(w, c) for w, c in enumerate(counts) if c])
        self.counters["order_relaxed"] += excess

    def _merged(self, cuts: list[tuple[int, int]]) -> list[bytes]:
        """The cut prefixes of several workers' runs, merged by (key, arrival): a k-way merge
        over native ints (the runs are sorted), no tuple per line and no general sort."""
        keys = [self.keys[w] for w, _ in cuts]
        seqs = [self.seqs[w] for w, _ in cuts]
        held = [self.held[w] for w, _ in cuts]
        ends = [cut for _, cut in cuts]
        pos = [0] * len(cuts)
        out: list[bytes] = []
        live = len(cuts)
        while live:
            best = -1
            best_key = best_seq = 0
            for r in range(len(cuts)):
                i = pos[r]
                if i < ends[r]:
                    key, seq = keys[r][i], seqs[r][i]
                    if best < 0 or key < best_key or (key == best_key and seq < best_seq):
                        best, best_key, best_seq = r, key, seq
            i = pos[best]
            out.append(held[best][i])
            pos[best] = i + 1
            if i + 1 == ends[best]:
                live -= 1
        return out

    def _write_prefixes(self, cuts: list[tuple[int, int]]) -> None:
        """Write the first ``cut`` held lines of each worker ``w``, merged by (key, arrival)."""
        if not cuts:
            return
        if len(cuts) == 1:
            w, cut = cuts[0]
            lines = self.held[w][:cut]
        else:
            lines = self._merged(cuts)
        for w, cut in cuts:
            del self.keys[w][:cut], self.seqs[w][:cut], self.held[w][:cut]
        self.held_lines -= len(lines)
        self.counters["calls_out"] += len(lines)
        self.sink.write_many(lines)

"""The test Resurface endpoint as a separate process that counts instead of keeping.

Strategy: ``tests/endpoint.py``'s ``CaptureEndpoint`` checks every request and every message
strictly (path, content type, deflate, JSON shape, known keys); this subclass keeps only
counts, so a run of hundreds of thousands of calls does not hold them all in memory. It runs
as its own process (``python -m bench.endpoint``) so that neither its CPU nor its GIL mixes
with the harness or with the sniffer's measured process tree. It prints its URL on the first
line and, on SIGINT or SIGTERM, one JSON line of counts and of its own CPU seconds (it shares
the machine's cores with the sniffer, so the report shows it).
"""
from __future__ import annotations

import json
import resource
import signal
import sys
import threading

from tests.endpoint import CaptureEndpoint


class CountingEndpoint(CaptureEndpoint):
    """A strict capture endpoint that counts accepted messages and those with a note."""

    accepted = 0
    noted = 0

    def _store(self, lines: list[bytes]) -> None:
        noted = sum(1 for line in lines if b"custom_field:sniffer-note" in line)
        with self._cond:
            self.accepted += len(lines)
            self.noted += noted
            self._cond.notify_all()


def main() -> int:
    """Serve on 127.0.0.1 (a free port) until SIGINT/SIGTERM, then print the counts."""
    endpoint = CountingEndpoint("127.0.0.1", 0)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(endpoint.url, flush=True)
    done.wait()
    endpoint.stop()
    bad = sum(1 for r in endpoint.requests if r.status not in (0, 204))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"accepted": endpoint.accepted, "noted": endpoint.noted,
                      "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                      "requests": len(endpoint.requests), "rejected_requests": bad,
                      "rejections": dict(endpoint.rejections)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

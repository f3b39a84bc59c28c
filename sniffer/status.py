"""What the running sniffer tells people and scrapers: the stderr status line, the exit
summary, and the HTTP endpoint serving ``/metrics`` and ``/healthz``.

Strategy: ``status_line``, ``final_summary`` and ``health_of`` are pure functions of a
``metrics.Snapshot`` (and rates, loads, liveness) that the supervisor passes in. The
``MetricsServer`` shell is a stdlib ``ThreadingHTTPServer`` on its own thread; it only calls
the ``provider`` (exposition text) and ``health`` callables it was given, so it never touches
pipeline state itself. It must never take the process down: every handler failure is caught
and counted, concurrent connections are capped (extra ones are closed at once and counted),
and a slow client is cut after ``timeout_s``. One request per connection (HTTP/1.0 style).
"""
from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from sniffer.metrics import Snapshot, WorkerStatus, worker_order

log = logging.getLogger("network-sniffer")

#: Content type of the Prometheus text exposition format 0.0.4.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_CAPTURE = ("packets", "segments", "segments_sent", "kernel_received", "kernel_dropped",
            "kernel_drops", "interface_dropped", "interface_drops", "ring_frames_dropped",
            "ring_segments_dropped")
_CALLS = ("calls", "calls_dropped_by_rules", "calls_out")
#: Status-line fields and the counter names they read (the first one present wins).
_CALLS_NAMES = ("calls", "calls_out")
_KERNEL_DROP_NAMES = ("kernel_dropped", "kernel_drops")

Load = float | WorkerStatus | None


def compact(value: float) -> str:
    """A short human number: ``850``, ``0.5``, ``12.3k``, ``4.1M``, ``2.0G``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{suffix}"
    if isinstance(value, int) or value >= 10 or value == int(value):
        return str(int(round(value)))
    return f"{value:.1f}"


def _load_text(load: Load) -> str:
    if isinstance(load, WorkerStatus):
        load = load.load if load.alive else None
    if load is None:
        return "down"
    return f"{round(min(max(load, 0.0), 1.0) * 100)}%"


def top_anomalies(totals: Snapshot, n: int) -> list[tuple[str, int]]:
    """The ``n`` most frequent non-zero anomalies, most frequent first, then by name."""
    hits = [(name, count) for name, count in totals.anomalies.items() if count > 0]
    return sorted(hits, key=lambda item: (-item[1], item[0]))[: max(n, 0)]


def status_line(
    totals: Snapshot,
    rates: Mapping[str, float],
    per_worker_load: Mapping[int, Load] | Sequence[Load] = (),
    anomalies_top_n: int = 5,
) -> str:
    """One compact stderr line: rates, drops, worker loads and the top anomalies.

    Example: ``pkts 12.3k/s calls 3.1k/s kdrop 0 ringdrop 0 | w0 45% w1 38% | tcp_gap=3``.
    A rate not known yet (first line) shows as ``-/s``; a worker that is not alive as ``down``.
    """

    def rate(*names: str) -> str:
        name = next((n for n in names if n in rates), None)
        return f"{compact(rates[name])}/s" if name is not None else "-/s"

    counters = totals.counters
    kernel_drops = next((counters[n] for n in _KERNEL_DROP_NAMES if n in counters), 0)
    head = [f"pkts {rate('packets')}", f"calls {rate(*_CALLS_NAMES)}",
            f"kdrop {compact(kernel_drops)}",
            f"ringdrop {compact(counters.get('ring_frames_dropped', 0))}"]
    output_lost = sum(v for k, v in counters.items() if k.startswith("output_")
                      and k.endswith(("dropped_calls", "rejected_calls")))
    if output_lost:
        head.append(f"outdrop {compact(output_lost)}")
    parts = [" ".join(head)]
    loads = per_worker_load if isinstance(per_worker_load, Mapping) \
        else dict(enumerate(per_worker_load))
    if loads:
        parts.append(" ".join(f"w{i} {_load_text(loads[i])}" for i in worker_order(loads)))
    top = top_anomalies(totals, anomalies_top_n)
    if top:
        more = sum(1 for v in totals.anomalies.values() if v > 0) - len(top)
        text = " ".join(f"{name}={count}" for name, count in top)
        parts.append(text + (f" +{more} more" if more > 0 else ""))
    return " | ".join(parts)


def final_summary(totals: Snapshot) -> list[str]:
    """Lines for stderr at exit: capture, calls, output, other counters, anomalies."""
    counters = totals.counters

    def pairs(names: Sequence[str]) -> str:
        return " ".join(f"{name}={counters[name]}" for name in names)

    lines = []
    capture = [n for n in _CAPTURE if n in counters]
    calls = [n for n in _CALLS if n in counters]
    output = sorted(n for n, v in counters.items() if n.startswith("output_") and v)
    other = sorted(n for n, v in counters.items()
                   if v and n not in _CAPTURE and n not in _CALLS and not n.startswith("output_"))
    for title, names in (("capture", capture), ("calls", calls), ("output", output),
                         ("other", other)):
        if names:
            lines.append(f"{title}: {pairs(names)}")
    anomalies = top_anomalies(totals, len(totals.anomalies))
    lines.append("anomalies: " + (" ".join(f"{n}={c}" for n, c in anomalies) or "none"))
    return lines


def health_of(alive: Mapping[str, bool]) -> tuple[bool, str]:
    """``(True, "ok")`` when every named process is alive, else ``(False, "not running: ...")``."""
    down = [name for name, up in alive.items() if not up]
    return (True, "ok") if not down else (False, "not running: " + ", ".join(down))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: MetricsServer) -> None:
        self.owner = owner
        self.slots = threading.BoundedSemaphore(owner.max_connections)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:  # skip HTTPServer's reverse DNS lookup (getfqdn)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.owner.count("rejected_connections")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.owner.count("errors")
        log.debug("metrics endpoint: error serving %s", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "network-sniffer"
    sys_version = ""
    default_request_version = "HTTP/1.0"  # error replies keep their status line
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"

    def setup(self) -> None:
        self.request.settimeout(self.server.owner.timeout_s)  # a silent client is cut
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._respond(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        owner = self.server.owner
        path = urlsplit(self.path).path
        owner.count("requests")
        if path == "/metrics":
            try:
                code, ctype, text = 200, METRICS_CONTENT_TYPE, owner.provider()
            except Exception:  # noqa: BLE001 - a failing provider must not stop the server
                owner.count("errors")
                log.warning("metrics endpoint: the metrics provider failed", exc_info=True)
                code, ctype, text = 500, "text/plain; charset=utf-8", "metrics unavailable\n"
        elif path == "/healthz":
            try:
                healthy, reason = owner.health()
            except Exception as exc:  # noqa: BLE001
                owner.count("errors")
                healthy, reason = False, f"health check failed: {exc!r}"
            code, ctype = (200 if healthy else 503), "text/plain; charset=utf-8"
            text = "ok\n" if healthy else str(reason).rstrip("\n") + "\n"
        else:
            code, ctype, text = 404, "text/plain; charset=utf-8", "not found\n"
        body = text.encode("utf-8", "replace")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        self.server.owner.count("bad_requests")
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("metrics endpoint: " + format, *args)


class MetricsServer:
    """``GET /metrics`` (from ``provider()``) and ``GET /healthz`` (from ``health()``) over HTTP.

    ``health()`` returns ``(healthy, reason)``: 200 ``ok`` or 503 with the reason. Any other
    path is 404. ``port=0`` picks a free port; ``.port`` holds the bound one after ``start()``.
    """

    def __init__(
        self,
        address: str,
        port: int,
        provider: Callable[[], str],
        health: Callable[[], tuple[bool, str]] | None = None,
        max_connections: int = 16,
        timeout_s: float = 5.0,
        poll_interval_s: float = 0.2,
    ) -> None:
        """Nothing is bound until ``start()``; ``stop()`` takes up to ``poll_interval_s``."""
        self.address = address
        self.port = port
        self.provider = provider
        self.health = health if health is not None else (lambda: (True, "ok"))
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self._counts = {"requests": 0, "bad_requests": 0, "errors": 0, "rejected_connections": 0}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def count(self, name: str) -> None:
        """Count one event of the endpoint (thread-safe)."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def counters(self) -> dict[str, int]:
        """Requests served, bad requests, handler errors, connections refused for the cap."""
        with self._lock:
            return dict(self._counts)

    def start(self) -> None:
        """Bind (``OSError`` if the address is taken) and serve on a daemon thread."""
        if self._server is not None:
            return
        server_class = _Server6 if ":" in self.address else _Server
        self._server = server_class((self.address, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        args=(self.poll_interval_s,), name="metrics-http",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(self.timeout_s)

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The HTTP endpoint of the running sniffer: ``/metrics`` (Prometheus text) and ``/healthz``.

Strategy: the ``MetricsServer`` shell is a stdlib ``ThreadingHTTPServer`` on its own thread;
it only calls the ``provider`` (exposition text) and ``health`` callables it was given, so it
never touches pipeline state itself. It must never take the process down: every handler
failure is caught and counted, concurrent connections are capped (extra ones are closed at
once and counted), and a slow client is cut after ``timeout_s``. One request per connection
(HTTP/1.0 style).
"""
from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("network-sniffer")

#: Content type of the Prometheus text exposition format 0.0.4.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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

"""The small JSON HTTP/1.1 server that ``tests.netns.http_server(kind="python")`` runs.

Strategy: a script with no imports outside the standard library, so it runs as
``python tests/netns_server.py serve <addr> <port> <access-log>`` inside any namespace with
any working directory. Every request (GET/POST/HEAD/PUT/DELETE) gets a JSON document
describing it; ``/status/<code>`` sets the status, ``?bytes=N`` pads the body to about N bytes
(at most 50 MB), ``?chunked=1`` answers with chunked transfer coding. One line per request
(``METHOD PATH STATUS``) goes to the access log, which ``Server.request_count`` reads.
SIGTERM stops it.
"""
from __future__ import annotations

import contextlib
import http.server
import json
import signal
import socket
import sys
from pathlib import Path
from typing import Any


class _JsonHandler(http.server.BaseHTTPRequestHandler):
    """GET/POST/HEAD -> JSON describing the request; ``/status/<code>`` sets the status;
    ``?bytes=N`` pads the body to about N bytes; ``?chunked=1`` uses chunked encoding."""

    protocol_version = "HTTP/1.1"
    access_log: Path

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        status = 200
        if path.startswith("/status/") and path[8:].isdigit():
            status = int(path[8:])
        doc: dict[str, Any] = {"method": self.command, "path": self.path,
                               "request_bytes": len(body_in)}
        if body_in.startswith(b"{"):
            with contextlib.suppress(ValueError):
                doc["echo"] = json.loads(body_in)
        pad = int(params.get("bytes", "0") or 0)
        if pad:
            doc["pad"] = "x" * max(0, min(pad, 50_000_000))
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        chunked = params.get("chunked") == "1"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            if chunked:
                for i in range(0, len(body), 1000):
                    part = body[i : i + 1000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(body)
        with open(self.access_log, "a") as f:
            f.write(f"{self.command} {self.path} {status}\n")

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _reply

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


def serve(addr: str, port: int, access_log: str) -> None:
    """Serve JSON on ``addr:port`` until SIGTERM (the body of ``kind="python"``)."""
    _JsonHandler.access_log = Path(access_log)

    class _Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        daemon_threads = True

    server = _Server((addr, port), _JsonHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(f"usage: {sys.argv[0]} serve ADDR PORT ACCESS_LOG")

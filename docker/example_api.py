"""A tiny JSON API for the docker-compose example: something real for the sniffer to capture.

GET/POST/PUT/DELETE on any path answer JSON describing the request (POST echoes a JSON body);
``/status/<code>`` answers with that status. Standard library only, so it runs on any image
with python3. Usage: ``python3 example_api.py [--port 8000]``.
"""
from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 1 << 20


class ApiHandler(BaseHTTPRequestHandler):
    """Answers every request with a small JSON document (HTTP/1.1, keep-alive)."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
        body_in = self.rfile.read(length) if length > 0 else b""
        path = self.path.split("?", 1)[0]
        tail = path[len("/status/"):] if path.startswith("/status/") else ""
        status = int(tail) if tail.isdigit() and 200 <= int(tail) <= 599 else 200
        doc: dict[str, object] = {"method": self.command, "path": self.path, "status": status}
        try:
            doc["echo"] = json.loads(body_in) if body_in else None
        except ValueError:
            doc["echo_bytes"] = len(body_in)
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer


def main() -> None:
    """Serve on all addresses until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    ThreadingHTTPServer(("", args.port), ApiHandler).serve_forever()


if __name__ == "__main__":
    main()

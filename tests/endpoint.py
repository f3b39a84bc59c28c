"""A strict Resurface capture endpoint for tests and benchmarks (real HTTP on a real socket).

It checks the transport of resurface.md section 4 strictly: POST to the configured path,
``Content-Type: application/ndjson; charset=UTF-8`` exactly, ``Content-Encoding: deflated`` means a
zlib (RFC 1950) body, no encoding means plain; every line is a JSON array of 2-element string
arrays with known keys and an integer ``now``. Good requests get 204 and their messages are
stored in order (in memory and, optionally, appended to ``<store>/messages.ndjson``); bad ones get
4xx with the reason in the body and are counted in ``rejections``.

Faults are switched at run time with ``set_fault(kind, times=...)``:
``status`` (answer ``status``, e.g. 500), ``429`` (with ``Retry-After``), ``slow`` (sleep
``delay_s`` then store and answer), ``drop`` (read the request, close without answering, store
nothing), ``accept_lose`` (store, then close without answering: a retry duplicates, by design),
``down`` (stop listening and cut open connections; back after ``down_s`` seconds, or on
``set_fault(None)``).

Manual use: ``python -m tests.endpoint --port 7701 --store /tmp/cap [--fault 500|429:5|slow:2|
drop|accept_lose|down:30] [--fault-times N]``.
"""
from __future__ import annotations

import argparse
import json
import re
import socket
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONTENT_TYPE = "application/ndjson; charset=UTF-8"
KNOWN_KEYS = frozenset({"request_method", "request_url", "request_body", "response_code",
                        "response_body", "now", "interval", "host"})
# The sniffer's documented extension keys (workers/record.py), which Resurface ignores.
EXTENSION_KEYS = frozenset({"request_version", "response_version", "response_reason",
                            "client_ip", "client_port", "server_ip", "server_port",
                            "request_body_base64", "response_body_base64"})
KNOWN_PREFIXES = ("request_header:", "request_param:", "response_header:", "session_field:",
                  "custom_field:")
FAULTS = frozenset({"status", "429", "slow", "drop", "accept_lose", "down"})


def _known_key(key: str) -> bool:
    return key in KNOWN_KEYS or key in EXTENSION_KEYS or any(
        key.startswith(prefix) and len(key) > len(prefix) for prefix in KNOWN_PREFIXES)


# keys already found valid (bounded): the same few keys recur in every message, and the
# benchmark's endpoint must not spend more per message than the sniffer it measures
_VALID_KEYS: set[str] = set()


def check_message(line: bytes) -> str | None:
    """The reason ``line`` is not a valid Resurface message, or None when it is."""
    try:
        message = json.loads(line)
    except ValueError:
        return "not JSON"
    if type(message) is not list or not message:  # json gives exact types
        return "not a non-empty JSON array"
    for detail in message:
        if type(detail) is not list or len(detail) != 2:
            return f"detail is not a 2-element string array: {detail!r:.60}"
        key, value = detail
        if type(key) is not str or type(value) is not str:
            return f"detail is not a 2-element string array: {detail!r:.60}"
        if key not in _VALID_KEYS:
            if not _known_key(key):
                return f"unknown key {key!r:.60}"
            if len(_VALID_KEYS) >= 4096:
                _VALID_KEYS.clear()
            _VALID_KEYS.add(key)
        if key == "now" and not (value.isascii() and value.isdigit()):
            return f"now is not an integer string: {value!r:.30}"
    return None


def _factored(words: list[bytes], tail: bytes) -> bytes:
    """A regex for exactly ``words``, sharing common prefixes (the matcher tries one branch
    per byte instead of every word); a word ending in ``*`` stands for its prefix followed by
    ``tail``."""
    groups: dict[bytes, list[bytes]] = {}
    for word in words:
        groups.setdefault(word[:1], []).append(word[1:])
    branches = []
    for first, rests in sorted(groups.items(), key=lambda item: item[0] == b""):
        if first == b"":  # a word ends here, a longer one goes on: the empty branch, last
            branches.append(b"")
        elif first == b"*":
            branches.append(tail)
        else:
            branches.append(re.escape(first) + _factored(rests, tail))
    return branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"


def _canonical_body() -> re.Pattern[bytes]:
    """A regex for bundles in the canonical form every sniffer line takes: no whitespace,
    ASCII only, known keys without escapes, ``now`` a plain digit string, each message
    followed by ``\\n``. It only ever accepts what ``check_message`` accepts line by line;
    anything else (including valid JSON in another form) takes the line-by-line path, which
    gives the reason. One C-level match per bundle costs 1.4 µs per message against 7.4."""
    char = rb'[\x20\x21\x23-\x5b\x5d-\x7f]'  # a printable ASCII byte but " and \\
    escape = rb'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})'
    value = char + rb'*+(?:' + escape + char + rb'*+)*+'
    words = [n.encode() for n in (KNOWN_KEYS | EXTENSION_KEYS) - {"now"}]
    keys = _factored(words + [p.encode() + b"*" for p in KNOWN_PREFIXES], char + b"++")
    detail = rb'\["(?:now","[0-9]++|' + keys + rb'","' + value + rb')"\]'
    line = rb'\[' + detail + rb'(?:,' + detail + rb')*+\]'
    return re.compile(rb'(?:' + line + rb'\n)++')


CANONICAL_BODY = _canonical_body()


def check_body(body: bytes) -> tuple[str | None, list[bytes]]:
    """(the reason the bundle ``body`` is bad or None, its messages)."""
    if body.endswith(b"\n") and CANONICAL_BODY.fullmatch(body):
        lines = body.split(b"\n")
        lines.pop()
        return None, lines
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        return "empty", []
    for line in lines:
        reason = check_message(line)
        if reason is not None:
            return f"message: {reason}", []
    return None, lines


@dataclass
class Fault:
    """One active fault; ``times`` None means until cleared."""

    kind: str
    times: int | None = None
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class RequestSeen:
    """What the endpoint saw of one POST (for assertions on headers and bundling)."""

    headers: dict[str, str]
    wire_bytes: int
    messages: int
    status: int  # 0 when the connection was dropped
    at_s: float = 0.0  # time.monotonic() when the request was read


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.endpoint._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.endpoint._track(self.connection, False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def _answer(self, status: int, reason: str = "", extra: dict[str, str] | None = None) -> None:
        body = reason.encode()
        self.send_response(status)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 204:
            self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.server.endpoint._reject("method")
        self._answer(405, "only POST")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        endpoint = self.server.endpoint
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            endpoint._reject("length")
            self._answer(411, "Content-Length required")
            self.close_connection = True
            return
        wire = self.rfile.read(int(length))
        fault = endpoint._take_fault()
        headers = {name.lower(): value for name, value in self.headers.items()}
        if fault is not None and fault.kind == "drop":
            endpoint._seen(RequestSeen(headers, len(wire), 0, 0))
            return self._drop()
        if fault is not None and fault.kind in ("status", "429"):
            status = 429 if fault.kind == "429" else fault.status
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else None
            endpoint._seen(RequestSeen(headers, len(wire), 0, status))
            return self._answer(status, f"fault {status}", extra)
        status, reason, lines = endpoint._check(self.path, headers, wire)
        if status != 204:
            endpoint._reject(reason)
            endpoint._seen(RequestSeen(headers, len(wire), 0, status))
            return self._answer(status, reason)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        endpoint._store(lines)
        lost = fault is not None and fault.kind == "accept_lose"
        endpoint._seen(RequestSeen(headers, len(wire), len(lines), 0 if lost else 204))
        return self._drop() if lost else self._answer(204)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: CaptureEndpoint


class CaptureEndpoint:
    """A running capture endpoint: ``.url``, ``.messages``, ``.set_fault()``, ``.stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/message",
                 store_dir: str | Path | None = None):
        """Bind and start serving in a background thread."""
        self.host, self.port, self.path = host, port, path
        self.store_file = Path(store_dir) / "messages.ndjson" if store_dir else None
        if self.store_file:
            self.store_file.parent.mkdir(parents=True, exist_ok=True)
        self.rejections: Counter[str] = Counter()
        self.requests: list[RequestSeen] = []
        self._messages: list[list[list[str]]] = []
        self._cond = threading.Condition()
        self._fault: Fault | None = None
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._up_timer: threading.Timer | None = None
        self._start()

    @property
    def url(self) -> str:
        """The capture URL to give the sender."""
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def messages(self) -> list[list[list[str]]]:
        """A copy of every accepted message, in arrival order."""
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int, timeout_s: float) -> bool:
        """Wait until at least ``count`` messages were accepted; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._messages) >= count, timeout_s)

    def set_fault(self, kind: str | None, *, times: int | None = None, status: int = 500,
                  retry_after: str | None = None, delay_s: float = 0.0,
                  down_s: float | None = None) -> None:
        """Switch to fault ``kind`` (see the module doc); None clears it and comes back up."""
        if kind is not None and kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULTS)}")
        if kind == "down":
            self._go_down(down_s)
            return
        with self._cond:
            self._fault = Fault(kind, times, status, retry_after, delay_s) if kind else None
        if kind is None and self._server is None:
            self._start()

    def stop(self) -> None:
        """Stop listening and cut every open connection."""
        self._go_down(None)

    # ---- internals used by the handler ---------------------------------------------------
    def _start(self) -> None:
        if self._up_timer is not None:
            self._up_timer.cancel()
            self._up_timer = None
        server = _Server((self.host, self.port), _Handler)
        server.endpoint = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="capture-endpoint", daemon=True)
        self._thread.start()

    def _go_down(self, down_s: float | None) -> None:
        if self._up_timer is not None:
            self._up_timer.cancel()
            self._up_timer = None
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if down_s is not None:
            self._up_timer = threading.Timer(down_s, self._start)
            self._up_timer.daemon = True
            self._up_timer.start()

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._cond:
            (self._conns.add if alive else self._conns.discard)(conn)

    def _take_fault(self) -> Fault | None:
        with self._cond:
            fault = self._fault
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = None
            return fault

    def _reject(self, reason: str) -> None:
        with self._cond:
            self.rejections[reason] += 1

    def _seen(self, seen: RequestSeen) -> None:
        with self._cond:
            self.requests.append(RequestSeen(seen.headers, seen.wire_bytes, seen.messages,
                                             seen.status, time.monotonic()))

    def _check(self, path: str, headers: dict[str, str], wire: bytes
               ) -> tuple[int, str, list[bytes]]:
        if path != self.path:
            return 404, "path", []
        if headers.get("content-type") != CONTENT_TYPE:
            return 400, "content-type", []
        encoding = headers.get("content-encoding")
        if encoding == "deflated":
            try:
                body = zlib.decompress(wire)
            except zlib.error:
                return 400, "deflate", []
        elif encoding is None:
            body = wire
        else:
            return 400, "content-encoding", []
        reason, lines = check_body(body)
        return (204, "", lines) if reason is None else (400, reason, [])

    def _store(self, lines: list[bytes]) -> None:
        with self._cond:
            self._messages.extend(json.loads(line) for line in lines)
            if self.store_file:
                with open(self.store_file, "ab") as handle:
                    handle.write(b"".join(line + b"\n" for line in lines))
            self._cond.notify_all()


def main(argv: list[str] | None = None) -> int:
    """Run an endpoint until interrupted, then print what it received."""
    parser = argparse.ArgumentParser(prog="python -m tests.endpoint", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7701)
    parser.add_argument("--path", default="/message")
    parser.add_argument("--store", metavar="DIR",
                        help="append accepted messages to DIR/messages.ndjson")
    parser.add_argument("--fault", help="500|503|429[:retry_after]|slow:S|drop|accept_lose|down:S")
    parser.add_argument("--fault-times", type=int, help="how many requests the fault hits")
    args = parser.parse_args(argv)
    endpoint = CaptureEndpoint(args.host, args.port, args.path, args.store)
    if args.fault:
        kind, _, arg = args.fault.partition(":")
        if kind.isdigit() and kind != "429":
            endpoint.set_fault("status", times=args.fault_times, status=int(kind))
        elif kind == "429":
            endpoint.set_fault("429", times=args.fault_times, retry_after=arg or None)
        elif kind == "down":
            endpoint.set_fault("down", down_s=float(arg or 30))
        else:
            endpoint.set_fault(kind, times=args.fault_times, delay_s=float(arg or 0))
    print(f"capture endpoint listening on {endpoint.url}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.stop()
        print(f"accepted {len(endpoint.messages)} messages in {len(endpoint.requests)} requests; "
              f"rejections: {dict(endpoint.rejections)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""HTTP messages and API calls as the core produces them.

Strategy: the parsers fill these records with the bytes exactly as they were on the wire
(names as sent, values with surrounding white space removed, bodies de-chunked but still
content-encoded). Turning bytes into text, decoding Content-Encoding and applying policy
happens once, when a call is turned into a Resurface message (``workers/apicall.py``).
Times are integer nanoseconds of packet time (``ts_*_ns``).
Each record is a dataclass (fields, equality, repr) whose ``__init__`` is written out: the
dataclass keeps a class's own ``__init__``, and under mypyc (setup.py) a generated one would
run interpreted, a fifth of the cost of building a message.
"""
from __future__ import annotations

from dataclasses import dataclass, field

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class HttpRequest:
    """One HTTP/1.x request as seen on the wire."""

    method: bytes
    target: bytes
    """Request target exactly as sent (origin-form, absolute-form, authority-form or ``*``)."""
    version: bytes
    """``b"HTTP/1.1"``, ``b"HTTP/1.0"``; ``b""`` for an HTTP/0.9 request line."""
    headers: Headers = field(default_factory=list)
    """Header fields in wire order; chunked trailers are appended after them."""
    body: bytes = b""
    """Entity body after de-chunking, still content-encoded, at most the body limit."""
    body_size: int = 0
    """Entity bytes seen in total (larger than ``len(body)`` when truncated)."""
    body_truncated: bool = False
    incomplete: bool = False
    """A gap fell inside this message, or the stream ended before it was complete."""
    ts_first_ns: int = 0
    ts_last_ns: int = 0

    def __init__(self, method: bytes, target: bytes, version: bytes,
                 headers: Headers | None = None, body: bytes = b"", body_size: int = 0,
                 body_truncated: bool = False, incomplete: bool = False,
                 ts_first_ns: int = 0, ts_last_ns: int = 0) -> None:
        """The dataclass's own __init__, written out (see the module strategy)."""
        self.method, self.target, self.version = method, target, version
        self.headers = [] if headers is None else headers
        self.body, self.body_size, self.body_truncated = body, body_size, body_truncated
        self.incomplete = incomplete
        self.ts_first_ns, self.ts_last_ns = ts_first_ns, ts_last_ns


@dataclass(slots=True)
class HttpResponse:
    """One final HTTP/1.x response (after any interim 1xx responses)."""

    status: int | None
    """Status code, or ``None`` when the status line did not carry a 3-digit number."""
    status_raw: bytes
    reason: bytes
    version: bytes
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    body_size: int = 0
    body_truncated: bool = False
    incomplete: bool = False
    ts_first_ns: int = 0
    ts_last_ns: int = 0
    interim: list[int] = field(default_factory=list)
    """Status codes of interim (1xx) responses that came before this one, e.g. ``[100]``."""

    def __init__(self, status: int | None, status_raw: bytes, reason: bytes, version: bytes,
                 headers: Headers | None = None, body: bytes = b"", body_size: int = 0,
                 body_truncated: bool = False, incomplete: bool = False,
                 ts_first_ns: int = 0, ts_last_ns: int = 0,
                 interim: list[int] | None = None) -> None:
        """The dataclass's own __init__, written out (see the module strategy)."""
        self.status, self.status_raw, self.reason, self.version = (
            status, status_raw, reason, version)
        self.headers = [] if headers is None else headers
        self.body, self.body_size, self.body_truncated = body, body_size, body_truncated
        self.incomplete = incomplete
        self.ts_first_ns, self.ts_last_ns = ts_first_ns, ts_last_ns
        self.interim = [] if interim is None else interim


@dataclass(slots=True)
class ApiCall:
    """A request paired with its response, or one side alone when the other never came."""

    request: HttpRequest | None
    """``None`` when only the response was captured (one-sided or mid-stream capture)."""
    response: HttpResponse | None
    """``None`` when no response was seen before the connection ended or expired."""
    client: tuple[bytes, int]
    """Client (packed IP, port)."""
    server: tuple[bytes, int]
    """Server (packed IP, port)."""
    notes: list[str] = field(default_factory=list)
    """Markers for what is missing or odd, e.g. ``response-missing``, ``request-incomplete``."""
    flow: FlowMemo | None = field(default=None, compare=False, repr=False)
    """Its connection's memo (shared by the connection's calls), or None."""

    def __init__(self, request: HttpRequest | None, response: HttpResponse | None,
                 client: tuple[bytes, int], server: tuple[bytes, int],
                 notes: list[str] | None = None, flow: FlowMemo | None = None) -> None:
        """The dataclass's own __init__, written out (see the module strategy)."""
        self.request, self.response = request, response
        self.client, self.server = client, server
        self.notes = [] if notes is None else notes
        self.flow = flow


class FlowMemo:
    """What the calls of one connection share, kept by the connection for whoever turns its
    calls into text: ``owner`` says whose ``text`` it is (None: nobody's yet), and the
    versions and reason what it was made from, which that owner checks before it uses it."""

    __slots__ = ("owner", "request_version", "response_version", "reason", "text")

    def __init__(self) -> None:
        self.owner: object = None
        self.request_version = self.response_version = self.reason = b""
        self.text = ""

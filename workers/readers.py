"""Body readers of the HTTP/1.x direction parser (``http1.HalfParser`` inherits them).

Strategy: once a head is parsed, ``framing.py`` says how its body is delimited and
``_begin_body`` picks the state that reads it; the states and their rules live here:
- LENGTH reads exactly Content-Length bytes; CHUNK_SIZE / CHUNK_DATA / CHUNK_END / TRAILERS
  read chunked coding (RFC 9112 section 7.1) with extensions and trailers; a chunk-size line
  that is not hex ends the body (incomplete) and the parser resynchronises, since what
  follows may be the next (or a smuggled) message; CLOSE reads until the stream ends.
- MAYBE_BODY: a 204 or 304 has no body (RFC 9110 sections 15.3.5, 15.4.5), yet may carry a
  Content-Length describing the selected representation (RFC 9110 section 8.6). Browsers
  and libhtp nevertheless read such a body when the server sends one. So the parser waits
  for the next bytes of the direction: a status line (after optional blank lines) means no
  body; anything else is read as a Content-Length body (counted:
  ``http_body_after_no_body_status``). A gap or the end of the stream means no body.
- Gaps: inside a counted body (LENGTH, CHUNK_DATA) or a close-delimited one, lost bytes are
  accounted for (``body_size``) and reading goes on; the message is marked incomplete.
- Bodies keep at most ``max_body_bytes``; the rest is only counted (``body_size``). Response
  bodies the logging rules always remove are only counted (``keep_response_bodies``).
"""
from __future__ import annotations

from typing import Final, TYPE_CHECKING

from workers import framing
from workers.anomalies import Anomalies, register
from workers.framing import Framing

from workers.message import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from workers.message import HttpResponse

ANOMALIES = register(
    {
        "http_bad_chunk_size": "a chunk-size line was not a hex number; body ended there",
        "http_body_truncated": "a body was longer than the kept-body limit",
        "http_body_after_no_body_status": "a 204/304 with Content-Length was followed by its body",
    }
)

# parser states (Final: compiled code uses the numbers, not module look-ups)
START: Final = 0
RESYNC: Final = 1
HEAD: Final = 2
LENGTH: Final = 3
CHUNK_SIZE: Final = 4
CHUNK_DATA: Final = 5
CHUNK_END: Final = 6
TRAILERS: Final = 7
CLOSE: Final = 8
TUNNEL: Final = 9
DEAD: Final = 10
MAYBE_BODY: Final = 11
BODY_STATES: Final = (LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, CLOSE)
_HTTP: Final = b"HTTP/"


class BodyReader:
    """Body-reading states of a direction parser (a mixin: the parser owns the fields)."""

    __slots__ = ("state", "buf", "msg", "body", "kept", "remaining", "head_ts", "max_head",
                 "max_body", "anomalies", "keep_response_bodies", "discard")
    state: int
    buf: bytearray
    msg: HttpRequest | HttpResponse | None
    body: list[bytes]
    kept: int
    remaining: int
    head_ts: int
    """Packet time of the bytes that completed the current head."""
    max_head: int
    max_body: int
    anomalies: Anomalies
    keep_response_bodies: bool
    """False when the logging rules remove every response body: bodies are then counted
    (size, truncation) but not stored, which saves the memory of every body in flight."""
    discard: bool

    def _finish(self, ts_ns: int) -> None:  # pragma: no cover - provided by the parser
        raise NotImplementedError

    def _begin_body(self, how: Framing, length: int) -> None:
        if self.body:
            self.body = []
        self.kept = 0
        self.discard = not self.keep_response_bodies and not isinstance(self.msg, HttpRequest)
        if how is Framing.LENGTH:
            self.remaining = length
            self.state = LENGTH
        elif how is Framing.CHUNKED:
            self.state = CHUNK_SIZE
        elif how is Framing.UNTIL_CLOSE:
            self.state = CLOSE
        elif how is Framing.MAYBE_LENGTH:
            self.remaining = length
            self.state = MAYBE_BODY
        else:
            self.state = START

    def _read_counted(self, ts_ns: int) -> None:
        """LENGTH and CHUNK_DATA: take up to ``remaining`` bytes of the buffer."""
        buf = self.buf
        n = min(self.remaining, len(buf))
        self._body(bytes(buf[:n]))
        del buf[:n]
        self.remaining -= n
        if self.remaining == 0:
            if self.state == LENGTH:
                self._finish(ts_ns)
            else:
                self.state = CHUNK_END

    def _maybe_body(self, ts_ns: int) -> bool:
        """After a 204/304 with Content-Length: decide whether a body follows after all."""
        buf = self.buf
        i = 0
        while i < len(buf) and buf[i] in (13, 10):  # blank lines may precede the next message
            i += 1
        start = bytes(buf[i : i + 5]).upper()
        if len(start) < 5 and _HTTP.startswith(start):
            return False  # too few bytes to tell yet
        if start == _HTTP:
            self._finish(self.head_ts)  # the next response: this one had no body
        else:
            self.anomalies.hit("http_body_after_no_body_status")
            self.state = LENGTH
        return True

    def _chunk_line(self, ts_ns: int) -> bool:
        buf = self.buf
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > self.max_head:
                self.anomalies.hit("http_bad_chunk_size")
                self._end_body_at_bad_framing(ts_ns)
            return False
        line = bytes(buf[:nl]).rstrip(b"\r")
        del buf[: nl + 1]
        st = self.state
        if st == CHUNK_SIZE:
            size = framing.parse_chunk_size(line)
            if size is None:
                self.anomalies.hit("http_bad_chunk_size")
                self._end_body_at_bad_framing(ts_ns)
            elif size == 0:
                self.state = TRAILERS
            else:
                self.remaining = size
                self.state = CHUNK_DATA
        elif st == CHUNK_END:
            self.state = CHUNK_SIZE
            if line:  # data where the CRLF after a chunk belongs: read it as the next size
                buf[:0] = line + b"\n"
        elif not line:  # TRAILERS: the blank line ends the message
            self._finish(ts_ns)
        else:
            msg = self.msg
            assert msg is not None
            msg.headers.extend(framing.parse_header_lines([line], self.anomalies))
        return True

    def _end_body_at_bad_framing(self, ts_ns: int) -> None:
        if self.msg is not None:
            self.msg.incomplete = True
            self._finish(ts_ns)
        self.state = RESYNC  # what follows may be the next message (or a smuggled one)

    def _gap_in_body(self, nbytes: int, ts_ns: int) -> bool:
        """A gap inside a body: True when the lost bytes fit in it and reading goes on."""
        st = self.state
        msg = self.msg
        assert msg is not None
        msg.incomplete = True
        if st == CLOSE or (st in (LENGTH, CHUNK_DATA) and nbytes < self.remaining - len(self.buf)):
            held = bytes(self.buf)
            self.buf.clear()
            self._body(held)
            msg.body_size += nbytes
            if st != CLOSE:
                self.remaining -= nbytes
            return True
        exact = st == LENGTH and nbytes == self.remaining - len(self.buf)
        if st == LENGTH:
            self._body(bytes(self.buf))
        self.buf.clear()
        self._finish(ts_ns)
        self.state = START if exact else RESYNC
        return False

    def _body(self, piece: bytes) -> None:
        msg = self.msg
        if msg is None or not piece:
            return
        if isinstance(msg, HttpResponse):  # per type: on the union, a generic read and write
            msg.body_size += len(piece)
        else:
            msg.body_size += len(piece)
        room = self.max_body - self.kept
        if room <= 0:
            if not msg.body_truncated:
                msg.body_truncated = True
                self.anomalies.hit("http_body_truncated")
            return
        if len(piece) > room:
            piece = piece[:room]
            msg.body_truncated = True
            self.anomalies.hit("http_body_truncated")
        if not self.discard:
            self.body.append(piece)
        self.kept += len(piece)

"""HTTP/1.x parser for one direction of a connection, fed by the TCP reassembler.

Strategy (h11's shape, a passive observer's rules):
- One ``HalfParser`` per direction. Its role (client side: requests; server side: responses)
  may be known up front (SYN, configured port) or learnt from the first start line it finds;
  the connection then gives the other direction the opposite role.
- States: START expects a message at the buffer start; RESYNC scans for a plausible start
  line (mid-stream pickup, after a gap, after garbage); HEAD waits for the blank line; the
  body states (LENGTH / CHUNK_* / CLOSE / MAYBE_BODY) are read by ``readers.BodyReader``
  following ``framing.py``; TUNNEL follows a CONNECT 2xx or a 101: the first bytes decide
  whether plain HTTP goes on inside (keep parsing) or not (DEAD: discard everything).
- Bytes arrive in ``data()``; a gap of n unseen bytes in ``gap()``: inside a body of known
  length the message just lost bytes (marked incomplete) and parsing goes on; anywhere else
  the message ends incomplete and the parser resynchronises at the next start line.
- Responses need the method of the request they answer (HEAD and CONNECT change framing):
  the connection (``connection.py``) keeps the FIFO of pending requests and answers
  ``next_request()``. Interim 1xx responses (except 101) do not end the exchange.
- HTTP/0.9 (RFC 9112 appendix C.1): a request line without a version (GET only) is the
  whole request; resync, tunnel and status-line-less answers are ``resync.StartFinder``'s.
- Every buffer is bounded: a head longer than ``max_header_bytes`` is dropped (counted) and
  bodies keep at most ``max_body_bytes`` (the rest is counted in ``body_size``).
Nothing here raises on traffic: odd input becomes a named anomaly.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from workers import framing, startline
from workers.anomalies import Anomalies, register
from workers.framing import Framing
from workers.message import HttpRequest, HttpResponse
from workers.readers import (  # noqa: F401 - the states are part of this module's interface
    BODY_STATES, CHUNK_DATA, CHUNK_END, CHUNK_SIZE, CLOSE, DEAD, HEAD, LENGTH, MAYBE_BODY,
    RESYNC, START, TRAILERS, TUNNEL,
)
from workers.resync import CLIENT, SERVER, UNKNOWN, StartFinder  # noqa: F401 - roles

if TYPE_CHECKING:
    from workers.connection import Connection

ANOMALIES = register(
    {
        "http_head_too_long": "a header block was longer than the limit and was dropped",
        "http_message_cut_by_gap": "a gap ended a message early",
        "http_message_cut_by_eof": "the stream ended in the middle of a message",
        "http09_request": "an HTTP/0.9 request line (no version)",
    }
)


class HalfParser(StartFinder):
    """Parses the HTTP/1.x messages of one direction of a TCP connection."""

    __slots__ = ("exchange", "interim", "http09")

    def __init__(self, conn: Connection, role: int, synced: bool) -> None:
        self.conn = conn
        self.role = role
        self.state = START if synced else RESYNC
        self.buf = bytearray()
        self.buf_ts = 0
        self.anomalies: Anomalies = conn.anomalies
        self.max_head = conn.limits.max_header_bytes
        self.max_body = conn.limits.max_body_bytes
        self.keep_response_bodies = conn.keep_response_bodies
        self.discard = False
        self.msg: HttpRequest | HttpResponse | None = None
        self.body: list[bytes] = []
        self.kept = 0
        self.remaining = 0
        self.first_ts = 0
        self.head_ts = 0  # packet time of the bytes that completed the current head
        self.exchange: object = None
        self.interim: list[int] = []
        self.http09 = False
        self.orphan = False  # the response being read answers no request

    # -- stream events -------------------------------------------------------------------------
    def data(self, chunk: bytes, ts_ns: int) -> None:
        """Take the next in-order bytes of this direction."""
        if self.state == DEAD:
            return
        if not self.buf:
            if self.state == START and self.role != UNKNOWN and self._whole_head(chunk, ts_ns):
                return
            self.buf_ts = ts_ns
        self.buf += chunk
        self._run(ts_ns)

    def gap(self, nbytes: int, ts_ns: int) -> None:
        """``nbytes`` bytes of this direction were never seen."""
        st = self.state
        if st in (DEAD, TUNNEL):
            return
        msg = self.msg
        if msg is not None and st in BODY_STATES:
            if not self._gap_in_body(nbytes, ts_ns):
                self.anomalies.hit("http_message_cut_by_gap")
            return
        if msg is not None and st == MAYBE_BODY:
            self._finish(self.head_ts)  # no sign of a body before the gap: it had none
        if st == HEAD or (st == START and self.buf):
            self.anomalies.hit("http_message_cut_by_gap")
        self.buf.clear()
        self.msg = None
        self.state = RESYNC

    def eof(self, ts_ns: int) -> None:
        """The direction ended (FIN, RST or expiry)."""
        if self.state in (START, RESYNC) and self.buf.strip() and self.msg is None:
            self._unterminated_at_eof(ts_ns)
        if self.msg is not None and self.state == MAYBE_BODY:
            self._finish(self.head_ts)
        elif self.msg is not None and self.state in BODY_STATES:
            if self.state != CLOSE:
                self.anomalies.hit("http_message_cut_by_eof")
                self.msg.incomplete = True
            self._finish(ts_ns)
        elif self.state in (HEAD, START) and self.buf.strip():
            self.anomalies.hit("http_message_cut_by_eof")
        self.buf.clear()
        self.state = DEAD

    # -- the state machine ------------------------------------------------------------------------
    def _run(self, ts_ns: int) -> None:
        buf = self.buf
        while buf:
            st = self.state
            if st == START:
                if not self._start(ts_ns):
                    return
            elif st == HEAD:
                if not self._head(ts_ns):
                    return
            elif st in (LENGTH, CHUNK_DATA):
                self._read_counted(ts_ns)
            elif st == CLOSE:
                self._body(bytes(buf))
                buf.clear()
            elif st in (CHUNK_SIZE, CHUNK_END, TRAILERS):
                if not self._chunk_line(ts_ns):
                    return
            elif st == MAYBE_BODY:
                if not self._maybe_body(ts_ns):
                    return
            elif st == RESYNC:
                if not self._resync():
                    return
            elif st == TUNNEL:
                if not self._tunnel():
                    return
            else:  # DEAD
                buf.clear()

    def _whole_head(self, chunk: bytes, ts_ns: int) -> bool:
        """Fast path: ``chunk`` starts a message and holds its whole CRLF-only head.

        Does what ``_start`` then ``_head`` would do with the same bytes, without moving them
        through the buffer; returns False (having changed nothing) for anything else, which
        then takes the general path: a leading blank line, a bare LF in the head, a start
        line that is not a plain one of this direction's role, HTTP/0.9.
        """
        found = framing.plain_head(chunk)
        if found is None:
            return False
        line, headers, body_start = found
        request = status = None
        if self.role == CLIENT:
            request = startline.request_parts(line)
            if request is None:  # HTTP/0.9 (no version) is not for this path
                return False
        else:
            status = startline.status_parts(line)
            if status is None:
                return False
        if headers is None:  # unusual lines: the general rules (same split as _head's)
            block = chunk[len(line) + 2 : body_start - 4]
            headers = framing.parse_header_lines(block.split(b"\n"), self.anomalies)
        # the headers given to the constructor: set on the union afterwards, a generic write
        msg: HttpRequest | HttpResponse
        if request is not None:
            method, target, version = request
            msg = HttpRequest(method, target, version, headers, ts_first_ns=ts_ns)
        else:
            assert status is not None
            version, raw, reason, number = status
            msg = HttpResponse(number, raw, reason, version, headers, ts_first_ns=ts_ns)
        self.buf_ts = self.first_ts = self.head_ts = ts_ns
        self.msg = msg
        self.state = HEAD
        self.remaining = 0
        if self.role == CLIENT:
            self._request_head(ts_ns)
        else:
            self._response_head(ts_ns)
        rest = chunk[body_start:]
        if rest:
            if self.state == LENGTH and len(rest) == self.remaining:
                self._body(rest)  # the whole body: what _read_counted would do
                self.remaining = 0
                self._finish(ts_ns)
            else:
                self.buf += rest
                self._run(ts_ns)
        return True

    def _start(self, ts_ns: int) -> bool:
        buf = self.buf
        while buf[:1] in (b"\r", b"\n"):  # empty lines between messages are allowed
            del buf[:1]
        if not buf:
            return False
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > self.max_head:
                self.anomalies.hit("http_head_too_long")
                buf.clear()
                self.state = RESYNC
            elif self.role == SERVER and not buf[:5].upper().startswith(b"HTTP/"[: len(buf)]):
                return self._headless_response(ts_ns)
            return False
        line = bytes(buf[:nl])
        self.first_ts = self.buf_ts
        if self.role != SERVER:
            m = startline.REQUEST_LINE.match(line)  # never a status line (see request_parts)
            if m is not None:
                self.conn.learn_role(self, CLIENT)
                method, target, version = m.groups()
                version = version or b""
                if not version and method != b"GET":  # HTTP/0.9 only ever had GET
                    self.anomalies.hit("http_bad_start_line")
                    self.state = RESYNC
                    return True
                self.msg = HttpRequest(method, target, version, ts_first_ns=self.first_ts)
                if not version:  # HTTP/0.9: the request is this one line
                    self.anomalies.hit("http09_request")
                    del buf[: nl + 1]
                    self._request_head(ts_ns)
                    return True
                self.state = HEAD
                self.remaining = 0
                return True
        if self.role != CLIENT:
            status = startline.status_parts(line)
            if status is not None:
                self.conn.learn_role(self, SERVER)
                version, raw, reason, number = status
                self.msg = HttpResponse(number, raw, reason, version, ts_first_ns=self.first_ts)
                self.state = HEAD
                self.remaining = 0
                return True
            if self.role == SERVER:
                return self._headless_response(ts_ns)
        self.anomalies.hit("http_bad_start_line")
        self.state = RESYNC
        return True

    def _head(self, ts_ns: int) -> bool:
        buf = self.buf
        found = framing.find_head_end(buf, max(0, self.remaining - 3))
        if found is None:
            self.remaining = len(buf)  # next time, search only the new bytes
            if len(buf) > self.max_head:
                self.anomalies.hit("http_head_too_long")
                buf.clear()
                self.msg = None
                self.state = RESYNC
            return False
        end, body_start = found
        self.head_ts = ts_ns
        lines = bytes(buf[:end]).split(b"\n")
        del buf[:body_start]
        msg = self.msg
        assert msg is not None
        msg.headers = framing.parse_header_lines(lines[1:], self.anomalies)
        if isinstance(msg, HttpRequest):
            self._request_head(ts_ns)
        else:
            self._response_head(ts_ns)
        return True

    def _request_head(self, ts_ns: int) -> None:
        msg = self.msg
        assert isinstance(msg, HttpRequest)
        if not msg.version:
            self.conn.http09_request(self, ts_ns)
        self.exchange = self.conn.request_head(msg)
        if not msg.version:
            self._begin_body(Framing.NONE, 0)
        else:
            how, length = framing.request_framing(msg.headers, self.anomalies)
            self._begin_body(how, length)  # not *args: compiled, that is a generic call
        if self.msg is not None and self.state == START:
            self._finish(ts_ns)

    def _response_head(self, ts_ns: int) -> None:
        msg = self.msg
        assert isinstance(msg, HttpResponse)
        status = msg.status
        if status is not None and 100 <= status < 200 and status != 101:
            self.interim.append(status)  # interim response: the exchange goes on
            self.msg = None
            self.state = START
            return
        request = self.conn.next_request()
        self.orphan = request is None
        how, length = framing.response_framing(request, status, msg.headers, self.anomalies)
        if how is Framing.TUNNEL:  # the call is complete; what follows is another protocol
            self.state = START
            self._finish(ts_ns)
            self.conn.tunnel()
            return
        self._begin_body(how, length)
        if self.state == START:
            self._finish(ts_ns)

    def _finish(self, ts_ns: int) -> None:
        msg = self.msg
        self.msg = None
        if self.state != TUNNEL and self.state != DEAD:
            self.state = START
        if msg is None:
            return
        body = self.body
        joined = b""
        if body:
            joined = body[0] if len(body) == 1 else b"".join(body)
            self.body = []
        self.buf_ts = ts_ns  # bytes left in the buffer came with the current chunk
        # the fields set per branch: on the union they would be generic attribute writes
        if isinstance(msg, HttpRequest):
            if joined:
                msg.body = joined
            msg.ts_last_ns = ts_ns
            self.conn.request_done(self.exchange)
        else:
            if joined:
                msg.body = joined
            msg.ts_last_ns = ts_ns
            if self.interim:
                msg.interim = self.interim
                self.interim = []
            self.conn.response_done(msg)

"""HTTP/1.x parser for one direction of a connection, fed by the TCP reassembler.

Strategy (h11's shape, a passive observer's rules):
- One ``HalfParser`` per direction. Its role (client side: requests; server side: responses)
  may be known up front (SYN, configured port) or learnt from the first start line it finds;
  the connection then gives the other direction the opposite role.
- States (``_State``): START expects a message at the buffer start; RESYNC scans for a
  plausible start line (mid-stream pickup, after a gap, after garbage); HEAD waits for the
  blank line; LENGTH / CHUNK_* / CLOSE read a body by its framing (``framing.py``); TUNNEL
  follows a CONNECT 2xx or a 101: the first bytes decide whether plain HTTP goes on inside
  (keep parsing) or not (DEAD: discard everything, cheaply).
- Bytes arrive in ``data()``; a gap of n unseen bytes in ``gap()``: inside a body of known
  length the message just lost bytes (marked incomplete) and parsing goes on; anywhere else
  the message ends incomplete and the parser resynchronises at the next start line.
- Responses need the method of the request they answer (HEAD and CONNECT change framing):
  the connection (``connection.py``) keeps the FIFO of pending requests and answers
  ``next_method()``. Interim 1xx responses (except 101) do not end the exchange.
- Every buffer is bounded: a head longer than ``max_header_bytes`` is dropped (counted) and
  bodies keep at most ``max_body_bytes`` (the rest is counted in ``body_size``).
Nothing here raises on traffic: odd input becomes a named anomaly.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from workers import framing
from workers.anomalies import Anomalies, register
from workers.framing import Framing
from workers.message import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from workers.connection import Connection

ANOMALIES = register(
    {
        "http_bad_start_line": "bytes where a request or status line was expected",
        "http_resync_skipped_bytes": "bytes skipped while looking for the next message",
        "http_head_too_long": "a header block was longer than the limit and was dropped",
        "http_bad_chunk_size": "a chunk-size line was not a hex number; body ended there",
        "http_message_cut_by_gap": "a gap ended a message early",
        "http_message_cut_by_eof": "the stream ended in the middle of a message",
        "http_body_truncated": "a body was longer than the kept-body limit",
        "http09_request": "an HTTP/0.9 request line (no version)",
        "http_response_without_status_line": "a response with no status line (HTTP/0.9 style)",
    }
)

UNKNOWN, CLIENT, SERVER = 0, 1, 2  # roles

START, RESYNC, HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, CLOSE, TUNNEL, DEAD = (
    range(11)
)
_BODY_STATES = (LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, CLOSE)
# Plain HTTP inside a tunnel starts with a method and a space; TLS or WebSocket frames do not.
_TUNNEL_REQUEST = re.compile(rb"[A-Za-z]{3,12} ")
_TUNNEL_PREFIX = re.compile(rb"[A-Za-z]{0,12}")


class HalfParser:
    """Parses the HTTP/1.x messages of one direction of a TCP connection."""

    __slots__ = (
        "conn", "role", "state", "buf", "buf_ts", "anomalies", "max_head", "max_body",
        "msg", "body", "kept", "remaining", "first_ts", "exchange", "interim", "http09",
    )

    def __init__(self, conn: Connection, role: int, synced: bool) -> None:
        self.conn = conn
        self.role = role
        self.state = START if synced else RESYNC
        self.buf = bytearray()
        self.buf_ts = 0
        self.anomalies: Anomalies = conn.anomalies
        self.max_head = conn.limits.max_header_bytes
        self.max_body = conn.limits.max_body_bytes
        self.msg: HttpRequest | HttpResponse | None = None
        self.body: list[bytes] = []
        self.kept = 0
        self.remaining = 0
        self.first_ts = 0
        self.exchange: object = None
        self.interim: list[int] = []
        self.http09 = False

    # -- stream events -------------------------------------------------------------------------
    def data(self, chunk: bytes, ts_ns: int) -> None:
        """Take the next in-order bytes of this direction."""
        if self.state == DEAD:
            return
        if not self.buf:
            self.buf_ts = ts_ns
        self.buf += chunk
        self._run(ts_ns)

    def gap(self, nbytes: int, ts_ns: int) -> None:
        """``nbytes`` bytes of this direction were never seen."""
        st = self.state
        if st in (DEAD, TUNNEL):
            return
        msg = self.msg
        if msg is not None and st in _BODY_STATES:
            msg.incomplete = True
            if st == CLOSE or (
                st in (LENGTH, CHUNK_DATA) and nbytes < self.remaining - len(self.buf)
            ):
                # the lost bytes are inside this body: account for them and read on
                held = bytes(self.buf)
                self.buf.clear()
                self._body(held)
                msg.body_size += nbytes
                if st != CLOSE:
                    self.remaining -= nbytes
                return
            self.anomalies.hit("http_message_cut_by_gap")
            exact = st == LENGTH and nbytes == self.remaining - len(self.buf)
            if st == LENGTH:
                self._body(bytes(self.buf))
            self.buf.clear()
            self._finish(ts_ns)
            self.state = START if exact else RESYNC
            return
        if st == HEAD or (st == START and self.buf):
            self.anomalies.hit("http_message_cut_by_gap")
        self.buf.clear()
        self.msg = None
        self.state = RESYNC

    def eof(self, ts_ns: int) -> None:
        """The direction ended (FIN, RST or expiry)."""
        if self.state in (START, RESYNC) and self.buf.strip() and self.msg is None:
            self._unterminated_at_eof(ts_ns)
        if self.msg is not None and self.state in _BODY_STATES:
            if self.state != CLOSE:
                self.anomalies.hit("http_message_cut_by_eof")
                self.msg.incomplete = True
            self._finish(ts_ns)
        elif self.state in (HEAD, START) and self.buf.strip():
            self.anomalies.hit("http_message_cut_by_eof")
        self.buf.clear()
        self.state = DEAD

    def _unterminated_at_eof(self, ts_ns: int) -> None:
        """Bytes left without a line end when the stream ends: a last request line, or the
        status-line-less answer to a waiting request, are still reported."""
        if self.role != SERVER and framing.REQUEST_LINE.match(bytes(self.buf).rstrip(b"\r\n")):
            self.buf += b"\r\n\r\n"
            self.state = START
            self._run(ts_ns)
            if self.msg is not None and self.state == HEAD:
                self._head(ts_ns)
        elif self.role != CLIENT and self.conn.has_pending() and self.state == RESYNC:
            self.state = START
            self.role = SERVER
            self._headless_response(ts_ns)
            self._run(ts_ns)

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
            elif st == LENGTH:
                n = min(self.remaining, len(buf))
                self._body(bytes(buf[:n]))
                del buf[:n]
                self.remaining -= n
                if self.remaining == 0:
                    self._finish(ts_ns)
            elif st == CLOSE:
                self._body(bytes(buf))
                buf.clear()
            elif st in (CHUNK_SIZE, CHUNK_END, TRAILERS):
                if not self._chunk_line(ts_ns):
                    return
            elif st == CHUNK_DATA:
                n = min(self.remaining, len(buf))
                self._body(bytes(buf[:n]))
                del buf[:n]
                self.remaining -= n
                if self.remaining == 0:
                    self.state = CHUNK_END
            elif st == RESYNC:
                if not self._resync():
                    return
            elif st == TUNNEL:
                if not self._tunnel():
                    return
            else:  # DEAD
                buf.clear()

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
            m = framing.REQUEST_LINE.match(line)
            if m is not None and not line[:5].upper().startswith(b"HTTP/"):
                self.conn.learn_role(self, CLIENT)
                method, target, version = m.group(1), m.group(2), m.group(3) or b""
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
            m = framing.STATUS_LINE.match(line)
            if m is not None:
                self.conn.learn_role(self, SERVER)
                raw = m.group(2) or b""
                status = int(raw) if len(raw) == 3 and raw.isdigit() else None
                self.msg = HttpResponse(
                    status, raw, m.group(3) or b"", m.group(1), ts_first_ns=self.first_ts
                )
                self.state = HEAD
                self.remaining = 0
                return True
            if self.role == SERVER:
                return self._headless_response(ts_ns)
        self.anomalies.hit("http_bad_start_line")
        self.state = RESYNC
        return True

    def _headless_response(self, ts_ns: int) -> bool:
        """A server answer without a status line: HTTP/0.9 style, the body runs to the close."""
        if not self.conn.has_pending():
            self.anomalies.hit("http_bad_start_line")
            self.state = RESYNC
            return True
        self.anomalies.hit("http_response_without_status_line")
        self.first_ts = self.buf_ts
        self.msg = HttpResponse(None, b"", b"", b"", ts_first_ns=self.first_ts)
        self._begin_body(Framing.UNTIL_CLOSE, 0)
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
        self.exchange = self.conn.request_head(msg)
        if not msg.version:
            self._begin_body(Framing.NONE, 0)
        else:
            self._begin_body(*framing.request_framing(msg.headers, self.anomalies))
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
        how, length = framing.response_framing(
            self.conn.next_request(), status, msg.headers, self.anomalies
        )
        if how is Framing.TUNNEL:  # the call is complete; what follows is another protocol
            self.state = START
            self._finish(ts_ns)
            self.conn.tunnel()
            return
        self._begin_body(how, length)
        if self.state == START:
            self._finish(ts_ns)

    def _begin_body(self, how: Framing, length: int) -> None:
        self.body = []
        self.kept = 0
        if how is Framing.LENGTH:
            self.remaining = length
            self.state = LENGTH
        elif how is Framing.CHUNKED:
            self.state = CHUNK_SIZE
        elif how is Framing.UNTIL_CLOSE:
            self.state = CLOSE
        else:
            self.state = START

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
            if line:  # data where the CRLF after a chunk belongs: read it as the next size
                self.state = CHUNK_SIZE
                buf[:0] = line + b"\n"
            else:
                self.state = CHUNK_SIZE
        else:  # TRAILERS
            if not line:
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

    def _body(self, piece: bytes) -> None:
        msg = self.msg
        if msg is None or not piece:
            return
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
        self.body.append(piece)
        self.kept += len(piece)

    def _finish(self, ts_ns: int) -> None:
        msg = self.msg
        self.msg = None
        if self.state != TUNNEL and self.state != DEAD:
            self.state = START
        if msg is None:
            return
        msg.body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body = []
        msg.ts_last_ns = ts_ns
        self.buf_ts = ts_ns  # bytes left in the buffer came with the current chunk
        if isinstance(msg, HttpRequest):
            self.conn.request_done(self.exchange)
        else:
            msg.interim = self.interim
            self.interim = []
            self.conn.response_done(msg)

    def _resync(self) -> bool:
        buf = self.buf
        best = -1
        if self.role != SERVER:
            m = framing.RESYNC_REQUEST.search(buf)
            if m is not None:
                best = m.start(1)
        if self.role != CLIENT:
            m = framing.RESYNC_STATUS.search(buf)
            if m is not None and (best < 0 or m.start(1) < best):
                best = m.start(1)
        if best >= 0:
            if best:
                self.anomalies.hit("http_resync_skipped_bytes", best)
                del buf[:best]
            self.state = START
            return True
        # keep only the last (partial) line: a start line may be split across segments
        nl = buf.rfind(b"\n")
        keep_from = nl + 1 if nl >= 0 else 0
        if len(buf) - keep_from > self.max_head:
            keep_from = len(buf)
        if keep_from:
            self.anomalies.hit("http_resync_skipped_bytes", keep_from)
            del buf[:keep_from]
        return False

    def _tunnel(self) -> bool:
        """First bytes after a switch: plain HTTP goes on being parsed, anything else is not."""
        buf = self.buf
        while buf[:1] in (b"\r", b"\n"):  # stray line ends after the switching response
            del buf[:1]
        if not buf:
            return False
        if self.role == SERVER:
            if len(buf) < 5 and b"HTTP/".startswith(bytes(buf).upper()):
                return False
            http = bytes(buf[:5]).upper() == b"HTTP/"
        else:
            m = _TUNNEL_REQUEST.match(buf)
            if m is None and len(buf) < 13 and _TUNNEL_PREFIX.fullmatch(buf):
                return False
            http = m is not None
        if http:
            self.state = START
        else:
            self.state = DEAD
            buf.clear()
        return True

    def switch_to_tunnel(self) -> None:
        """The connection switched protocols (CONNECT 2xx, 101): look at what follows."""
        if self.state in (START, RESYNC):
            self.state = TUNNEL
            if self.buf:
                self._run(self.buf_ts)

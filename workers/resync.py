"""Where HTTP/1.x messages start: resynchronisation, protocol switches, HTTP/0.9 answers.

Strategy (a mixin of ``http1.HalfParser``, which owns the fields and the state machine):
- RESYNC (mid-stream pickup, after a gap, after garbage) scans for a line that plausibly
  starts a message: a request line with an HTTP/1.x version (client role or unknown) or a
  status line (server role or unknown). Bytes before it are skipped and counted; only the
  last partial line is kept, at most ``max_header_bytes``, so a start line split across
  segments is still found.
- TUNNEL follows a CONNECT 2xx or a 101: the first bytes decide whether plain HTTP goes on
  inside (a status line, or a method and a space: keep parsing) or not (TLS, WebSocket
  frames: DEAD, everything discarded cheaply).
- HTTP/0.9 (RFC 9112 appendix C.1): a server that answers with bytes that are not a status
  line while a request waits is answered status-line-less, the body running to the close
  (curl --http0.9 and browsers accept it). An HTTP/0.9 request can only get such an answer,
  so a response still being read that no request asked for (the server spoke first) is cut
  where that request arrives, as Zeek does: what the server sends next is the 0.9 answer.
- At the end of the stream, an unterminated last request line is still a request, and
  unterminated bytes from the server while a request waits are its status-line-less answer.
"""
from __future__ import annotations

import re
from typing import Final, TYPE_CHECKING

from workers import startline
from workers.anomalies import register
from workers.framing import Framing
from workers.message import HttpResponse
from workers.readers import (
    BODY_STATES, CLOSE, DEAD, HEAD, MAYBE_BODY, RESYNC, START, TUNNEL, BodyReader,
)

if TYPE_CHECKING:
    from workers.connection import Connection

ANOMALIES = register(
    {
        "http_bad_start_line": "bytes where a request or status line was expected",
        "http_resync_skipped_bytes": "bytes skipped while looking for the next message",
        "http_response_without_status_line": "a response with no status line (HTTP/0.9 style)",
        "http09_cut_response": "an unsolicited response was cut by an HTTP/0.9 request",
    }
)

UNKNOWN: Final = 0  # roles
CLIENT: Final = 1
SERVER: Final = 2
# Plain HTTP inside a tunnel starts with a method and a space; TLS or WebSocket frames do not.
_TUNNEL_REQUEST: Final = re.compile(rb"[A-Za-z]{3,12} ")
_TUNNEL_PREFIX: Final = re.compile(rb"[A-Za-z]{0,12}")


class StartFinder(BodyReader):
    """Resync, tunnel and HTTP/0.9 rules of a direction parser (the parser's base)."""

    __slots__ = ("conn", "role", "buf_ts", "first_ts", "orphan")
    # the connection deletes ``conn`` when it finishes (see Connection.finish)
    __deletable__ = ("conn",)
    conn: Connection
    role: int
    buf_ts: int
    first_ts: int
    orphan: bool
    """The response being read answers no request (the server spoke first)."""

    def _run(self, ts_ns: int) -> None:  # pragma: no cover - provided by the parser
        raise NotImplementedError

    def _head(self, ts_ns: int) -> bool:  # pragma: no cover - provided by the parser
        raise NotImplementedError

    def _unterminated_at_eof(self, ts_ns: int) -> None:
        """Bytes left without a line end when the stream ends: a last request line, or the
        status-line-less answer to a waiting request, are still reported."""
        if self.role != SERVER and startline.REQUEST_LINE.match(bytes(self.buf).rstrip(b"\r\n")):
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

    def _headless_response(self, ts_ns: int) -> bool:
        """A server answer without a status line: HTTP/0.9 style, the body runs to the close."""
        if not self.conn.has_pending():
            self.anomalies.hit("http_bad_start_line")
            self.state = RESYNC
            return True
        self.anomalies.hit("http_response_without_status_line")
        self.first_ts = self.buf_ts
        self.orphan = False
        self.msg = HttpResponse(None, b"", b"", b"", ts_first_ns=self.first_ts)
        self._begin_body(Framing.UNTIL_CLOSE, 0)
        return True

    def _resync(self) -> bool:
        buf = self.buf
        best = -1
        if self.role != SERVER:
            m = startline.RESYNC_REQUEST.search(buf)
            if m is not None:
                best = m.start(1)
        if self.role != CLIENT:
            m = startline.RESYNC_STATUS.search(buf)
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

    def cut_unsolicited_response(self, ts_ns: int) -> None:
        """An HTTP/0.9 request came: a response no request asked for ends here (incomplete),
        since the server's next bytes are that request's status-line-less answer."""
        msg = self.msg
        if (isinstance(msg, HttpResponse) and self.orphan
                and (self.state in BODY_STATES or self.state == MAYBE_BODY)):
            self.anomalies.hit("http09_cut_response")
            if self.state not in (CLOSE, MAYBE_BODY):
                msg.incomplete = True
            self._finish(ts_ns)

    def switch_to_tunnel(self) -> None:
        """The connection switched protocols (CONNECT 2xx, 101): look at what follows."""
        if self.state in (START, RESYNC):
            self.state = TUNNEL
            if self.buf:
                self._run(self.buf_ts)

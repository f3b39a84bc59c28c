"""One TCP connection: two reassembled directions, two HTTP parsers, and request pairing.

Strategy:
- Endpoint ``a`` is the source of the first segment seen, ``b`` the other. Which of them is
  the client is learnt, in this order: a SYN without ACK (its sender is the client), a
  SYN+ACK (its sender is the server), a configured server port, and finally the content (the
  side that sends a request line is the client).
- Pairing is a FIFO of exchanges in request order (Zeek's model, RFC 9112 section 9.3.2 for
  pipelining): a request joins the queue when its head is parsed, so the response parser
  can ask the method it answers (HEAD and CONNECT change response framing); a final response
  takes the oldest unanswered exchange; the call is emitted once both sides are complete.
  Responses with nothing queued are emitted alone (capture started mid-stream or saw one
  side); requests still queued when the connection ends are emitted with
  ``response-missing`` instead of vanishing. The queue is bounded by max_pending_requests.
"""
from __future__ import annotations

from workers.anomalies import Anomalies, register
from workers.http1 import CLIENT, SERVER, UNKNOWN, HalfParser
from workers.limits import CoreLimits
from workers.message import ApiCall, FlowMemo, HttpRequest, HttpResponse
from workers.tcp import Budget, Reassembler

ANOMALIES = register(
    {
        "http_response_without_request": "a response arrived with no request waiting for it",
        "http_request_without_response": "a request never got a response before the end",
        "http_excessive_pipelining": "more requests waiting than the limit; oldest flushed",
        "http_both_sides_same_role": "both directions looked like the same role",
    }
)


class Exchange:
    """A request and, once it comes, its response."""

    __slots__ = ("request", "response", "request_done")

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.response: HttpResponse | None = None
        self.request_done = False


class Connection:
    """Reassembly, parsing and pairing state for one TCP connection."""

    __slots__ = (
        "a", "b", "ra", "rb", "pa", "pb", "client_is_a", "pending", "answered", "out",
        "anomalies", "limits", "last_ts", "finished", "first_index", "keep_response_bodies",
        "flow", "key_a", "key_b",
    )

    def __init__(
        self,
        a: tuple[bytes, int],
        b: tuple[bytes, int],
        client_is_a: bool | None,
        synced: bool,
        limits: CoreLimits,
        anomalies: Anomalies,
        budget: Budget,
        out: list[ApiCall],
        keep_response_bodies: bool = True,
    ) -> None:
        self.a, self.b = a, b
        self.key_a = self.key_b = b""  # the flow keys of a's and of b's segments (core.py)
        self.flow = FlowMemo()
        self.keep_response_bodies = keep_response_bodies
        self.limits = limits
        self.anomalies = anomalies
        self.out = out
        self.client_is_a = client_is_a
        role_a = UNKNOWN if client_is_a is None else (CLIENT if client_is_a else SERVER)
        role_b = UNKNOWN if client_is_a is None else (SERVER if client_is_a else CLIENT)
        self.pa = HalfParser(self, role_a, synced)  # parses what a sends
        self.pb = HalfParser(self, role_b, synced)
        self.ra = Reassembler(self.pa, anomalies, budget, limits.max_ooo_bytes_per_direction)
        self.rb = Reassembler(self.pb, anomalies, budget, limits.max_ooo_bytes_per_direction)
        # a list, not a deque: an empty deque costs ~600 bytes per connection, and the queue
        # is short (max_pending_requests)
        self.pending: list[Exchange] = []
        self.answered: list[Exchange] = []  # answered, but the request body is still coming
        self.last_ts = 0
        self.finished = False
        self.first_index = 0  # capture position of the packet that opened the connection

    # -- called by the parsers ----------------------------------------------------------------
    def learn_role(self, parser: HalfParser, role: int) -> None:
        """A parser found a start line that tells its role; the other side gets the opposite."""
        if parser.role == role:
            return
        other = self.pb if parser is self.pa else self.pa
        if other.role == role:
            self.anomalies.hit("http_both_sides_same_role")
        parser.role = role
        other.role = SERVER if role == CLIENT else CLIENT
        self.client_is_a = (parser is self.pa) == (role == CLIENT)
        self.flow = FlowMemo()  # what the calls share may have swapped ends

    def request_head(self, request: HttpRequest) -> Exchange:
        """A request's head was parsed: queue it for its response."""
        ex = Exchange(request)
        self.pending.append(ex)
        if len(self.pending) > self.limits.max_pending_requests:
            self.anomalies.hit("http_excessive_pipelining")
            old = self.pending.pop(0)
            self._emit(old.request, None, ["response-missing"])
        return ex

    def request_done(self, exchange: object) -> None:
        """The request of ``exchange`` is complete (body included)."""
        assert isinstance(exchange, Exchange)
        exchange.request_done = True
        if exchange.response is not None:
            self.answered.remove(exchange)
            self._emit_exchange(exchange)

    def has_pending(self) -> bool:
        """Whether a request is waiting for its response."""
        return bool(self.pending)

    def next_request(self) -> HttpRequest | None:
        """The request the next response answers, if known."""
        return self.pending[0].request if self.pending else None

    def response_done(self, response: HttpResponse) -> None:
        """A final response is complete: pair it with the oldest unanswered request."""
        if not self.pending:
            self.anomalies.hit("http_response_without_request")
            self._emit(None, response, ["request-missing"])
            return
        ex = self.pending.pop(0)
        ex.response = response
        if ex.request_done:
            self._emit_exchange(ex)
        else:
            self.answered.append(ex)

    def http09_request(self, parser: HalfParser, ts_ns: int) -> None:
        """``parser`` found an HTTP/0.9 request: the other side's answer to it has no status
        line, so a response it is still reading that no request asked for ends now."""
        other = self.pb if parser is self.pa else self.pa
        other.cut_unsolicited_response(ts_ns)

    def tunnel(self) -> None:
        """The connection switched protocols (CONNECT 2xx or 101 Switching Protocols)."""
        self.pa.switch_to_tunnel()
        self.pb.switch_to_tunnel()

    # -- lifecycle ----------------------------------------------------------------------------
    def finish(self, ts_ns: int, reset: bool = False) -> None:
        """End both directions and flush every exchange still open (``reset``: by a RST)."""
        if self.finished:
            return
        self.ra.end(ts_ns, reset)
        self.rb.end(ts_ns, reset)
        self.finished = True
        for ex in self.answered:
            ex.request.incomplete = True
            self._emit_exchange(ex)
        self.answered.clear()
        while self.pending:
            ex = self.pending.pop(0)
            self.anomalies.hit("http_request_without_response")
            self._emit(ex.request, None, ["response-missing"])
        self.ra.release()
        self.rb.release()
        # parser -> connection is the one back reference in a connection's objects: cut, the
        # connection (parsers, reassemblers, exchanges) is freed by reference counting as soon
        # as the table lets go of it, instead of waiting as cyclic garbage for the collector
        del self.pa.conn
        del self.pb.conn

    def _emit_exchange(self, ex: Exchange) -> None:
        self._emit(ex.request, ex.response, [])

    def _emit(
        self, request: HttpRequest | None, response: HttpResponse | None, notes: list[str]
    ) -> None:
        if request is not None and request.incomplete:
            notes.append("request-incomplete")
        if response is not None and response.incomplete:
            notes.append("response-incomplete")
        client, server = (self.a, self.b) if self.client_is_a is not False else (self.b, self.a)
        self.out.append(ApiCall(request, response, client, server, notes, self.flow))

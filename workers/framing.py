"""Header blocks and message framing for HTTP/1.x (RFC 9112).

Strategy: pure functions over bytes, lenient the way real servers and browsers are (start
lines: ``workers/startline.py``):
- header lines may end in CRLF or a bare LF; a line that starts with white space continues
  the previous field (obs-fold, RFC 9112 section 5.2); white space around names and values is
  dropped; lines without a colon are counted and skipped;
- the body length follows RFC 9112 section 6.3 in its order: responses to HEAD, 1xx, 204 and
  304 have none (but a 204/304 with a Content-Length is ``MAYBE_LENGTH``: the body reader
  takes that many bytes only if what follows is not a status line, see ``readers.py``);
  2xx to CONNECT and 101 switch to a tunnel; Transfer-Encoding whose final
  coding is chunked wins over Content-Length; any other Transfer-Encoding on a response means
  "until close"; otherwise a valid Content-Length; otherwise none (requests) or until close
  (responses).
"""
from __future__ import annotations

import re
from enum import Enum
from typing import Any, Final

from workers.anomalies import Anomalies, register
from workers.message import Headers, HttpRequest
from workers.scan import head_bounds

ANOMALIES = register(
    {
        "http_header_without_colon": "a header line had no colon; it was skipped",
        "http_bad_content_length": "Content-Length was not a number, negative or conflicting",
        "http_te_and_cl": "both Transfer-Encoding and Content-Length; chunked was used",
        "http_unknown_transfer_coding": "Transfer-Encoding not ending in chunked",
        "http_unsolicited_101": "101 Switching Protocols without an Upgrade request header",
    }
)

HEAD_END: Final = re.compile(rb"\r?\n\r?\n")


class Framing(Enum):
    """How the body of a message is delimited."""

    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"
    TUNNEL = "tunnel"
    MAYBE_LENGTH = "maybe-length"
    """204/304 with Content-Length: no body unless the next bytes are not a status line."""


def find_head_end(buf: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """Return (end of header block, start of body) or None when the blank line is not there."""
    m = HEAD_END.search(buf, start)
    if m is None:
        return None
    return m.start(), m.end()


# Header lines seen recently -> their (name, value): most traffic repeats its header lines
# byte for byte (Server, Content-Type, User-Agent...), and a repeat then costs one look-up
# instead of a split and three new objects; the shared name objects keep their cached hash
# for the look-ups downstream. Bounded: lines up to 256 bytes, 4,096 of them, cleared when full.
# The pairs are typed Any here: compiled, a tuple[bytes, bytes] would be unboxed on the way
# out of the dict and boxed again (a new tuple) on the way into the list.
_LINES: Final[dict[bytes, Any]] = {}
_LINES_MAX: Final = 4096
_LINE_MEMO_BYTES: Final = 256
# Whole header blocks seen recently -> their pairs (a tuple; each head gets its own list, which
# chunked trailers may extend): a client repeats its request headers byte for byte, a server
# its response headers within the second of its Date, so a repeat costs one hash of the block
# instead of a split and a look-up per line. Bounded: blocks up to 1 KiB, 1,024 of them.
_BLOCKS: Final[dict[bytes, Any]] = {}
_BLOCKS_MAX: Final = 1024
_BLOCK_MEMO_BYTES: Final = 1024


def plain_head(chunk: bytes) -> tuple[bytes, Headers | None, int] | None:
    """A whole head at the start of ``chunk``, in the plain form almost all traffic uses.

    Returns (start line, headers, offset of the body) when ``chunk`` begins with a start line
    and holds the blank line, every line ending in CRLF; None when the head is incomplete or
    needs the general rules (leading blank lines, a bare LF, a start line ending in CR). The
    headers are exactly what ``parse_header_lines`` gives; they are None when a line needs
    its rules (no colon, a folded line, a stray CR): the caller then parses the lines between
    the start line and the body with ``parse_header_lines``.
    """
    eol, end = head_bounds(chunk)  # (-1, -1) also when the first line feed is bare
    if end <= 0 or chunk[0] == 13:
        return None
    start = chunk[:eol] if eol >= 0 else chunk[:end]
    if start[-1] == 13:  # a stray CR (no LF: the first line feed ends the start line)
        return None
    if eol < 0:  # a start line alone
        return start, [], end + 4
    block = chunk[eol + 2 : end]
    held: Any = _BLOCKS.get(block)
    if held is not None:  # a block held is one whose every line passed the checks below
        return start, list(held), end + 4
    headers = _plain_lines(block)
    if headers is None:
        return None
    if type(headers) is tuple:  # every line a repeat: the block may well repeat too
        if len(block) <= _BLOCK_MEMO_BYTES:
            if len(_BLOCKS) >= _BLOCKS_MAX:
                _BLOCKS.clear()
            _BLOCKS[block] = headers
        return start, list(headers), end + 4
    if not headers:  # a line needs the general header rules: not if a later line has a bare
        # LF, which would move the end of the head the general path finds
        if chunk.count(b"\n", 0, end) != block.count(b"\r\n") + 1:
            return None
        return start, None, end + 4
    return start, headers, end + 4


def _plain_lines(block: bytes) -> Any:
    """The (name, value) pairs of a CRLF-separated header block: a list, or a tuple when
    every line was held in ``_LINES``; None for a bare LF; an empty list when a line needs
    the general rules (no colon, folded, a stray CR)."""
    headers: list[Any] = []  # of (name, value) pairs: Headers (see _LINES for why Any)
    memo = _LINES
    repeats = True
    for raw in block.split(b"\r\n"):  # never empty: the first empty line ends the head
        pair: Any = memo.get(raw)
        if pair is not None:  # a line held is one that passed every check below
            headers.append(pair)
            continue
        repeats = False
        if 10 in raw:  # a bare LF: the whole head takes the general rules
            return None
        name, sep, value = raw.partition(b":")
        if not sep or raw[0] in (32, 9) or raw[-1] == 13:
            return []
        # what strip() would give, without the calls in the usual "Name: value" shape
        if not name or _space(name[0]) or _space(name[-1]):
            name = name.strip()
        size = len(value)
        if size > 1 and value[0] == 32 and not _space(value[1]) and not _space(value[-1]):
            value = value[1:]
        else:
            value = value.strip()
        pair = (name, value)
        if len(raw) <= _LINE_MEMO_BYTES:
            if len(memo) >= _LINES_MAX:
                memo.clear()
            memo[raw] = pair
        headers.append(pair)
    return tuple(headers) if repeats else headers


def _space(byte: int) -> bool:
    """Whether ``bytes.strip()`` removes this byte: ASCII space, or 9 to 13 (TAB LF VT FF CR)."""
    return byte == 32 or 9 <= byte <= 13


def parse_header_lines(lines: list[bytes], anomalies: Anomalies) -> Headers:
    """Parse header lines (without line ends) into (name, value) pairs in wire order."""
    headers: Headers = []
    for raw in lines:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw:
            continue
        if raw[0] in (0x20, 0x09):
            if headers:  # obs-fold: continues the previous field value
                name, value = headers[-1]
                headers[-1] = (name, (value + b" " + raw.strip()).strip())
            continue
        name, sep, value = raw.partition(b":")
        if not sep:
            anomalies.hit("http_header_without_colon")
            continue
        headers.append((name.strip(), value.strip()))
    return headers


def header_values(headers: Headers, lname: bytes) -> list[bytes]:
    """All values of the header named ``lname`` (lowercase), in wire order."""
    return [v for n, v in headers if n.lower() == lname]


def framing_fields(headers: Headers) -> tuple[list[bytes], list[bytes]]:
    """The Transfer-Encoding and the Content-Length values, in one pass over the headers."""
    te: list[bytes] = []
    cl: list[bytes] = []
    for n, v in headers:
        size = len(n)  # the usual spelling compares first: lower() is a call by name
        if size == 14:
            if n == b"Content-Length" or n.lower() == b"content-length":
                cl.append(v)
        elif size == 17:
            if n == b"Transfer-Encoding" or n.lower() == b"transfer-encoding":
                te.append(v)
    return te, cl


def content_length(headers: Headers, anomalies: Anomalies) -> int | None:
    """The message's Content-Length, or None when absent or unusable (counted)."""
    return _content_length(header_values(headers, b"content-length"), anomalies)


def _content_length(values: list[bytes], anomalies: Anomalies) -> int | None:
    if not values:
        return None
    if len(values) == 1:  # the usual single plain number, without the list rules below
        value = values[0]
        if value.isdigit() and len(value) <= 18:
            n = 0
            for digit in value:  # int(value), without the call through the builtins
                n = n * 10 + digit - 48
            return n
    found: set[int] = set()
    for v in values:
        for part in v.split(b","):  # "Content-Length: 5, 5" is a list of equal values
            part = part.strip()
            if not part.isdigit() or len(part) > 18:
                anomalies.hit("http_bad_content_length")
                return None
            found.add(int(part))
    if len(found) != 1:
        anomalies.hit("http_bad_content_length")
        return None
    return found.pop()


def is_chunked(headers: Headers, anomalies: Anomalies) -> bool | None:
    """True when the final transfer coding is chunked, False for other codings, None if absent."""
    te, cl = framing_fields(headers)
    return _is_chunked(te, cl, anomalies)


def _is_chunked(te: list[bytes], cl: list[bytes], anomalies: Anomalies) -> bool | None:
    if not te:
        return None
    codings = [c.strip().lower() for v in te for c in v.split(b",") if c.strip()]
    if codings and codings[-1] == b"chunked":
        if cl:
            anomalies.hit("http_te_and_cl")
        return True
    anomalies.hit("http_unknown_transfer_coding")
    return False


def request_framing(headers: Headers, anomalies: Anomalies) -> tuple[Framing, int]:
    """Body framing of a request (RFC 9112 section 6.3, items 4-7)."""
    te, cl = framing_fields(headers)
    if _is_chunked(te, cl, anomalies):
        return Framing.CHUNKED, 0
    length = _content_length(cl, anomalies)
    if length:
        return Framing.LENGTH, length
    return Framing.NONE, 0


def response_framing(
    request: HttpRequest | None, status: int | None, headers: Headers, anomalies: Anomalies
) -> tuple[Framing, int]:
    """Body framing of a response to ``request`` (RFC 9112 section 6.3, items 1-8).

    A 101 switches protocols only when the request asked for it with Upgrade (RFC 9110
    section 15.2.2); an unsolicited 101 is read like any final response.
    """
    method = request.method if request is not None else None
    if status is not None:
        if method == b"CONNECT" and 200 <= status < 300:
            return Framing.TUNNEL, 0
        if status == 101:
            if request is None or header_values(request.headers, b"upgrade"):
                return Framing.TUNNEL, 0
            anomalies.hit("http_unsolicited_101")
            status = None  # framed like an ordinary response below
    if method == b"HEAD" or (status is not None and 100 <= status < 200):
        return Framing.NONE, 0
    te, cl = framing_fields(headers)
    if status == 204 or status == 304:
        if cl:
            length = _content_length(cl, anomalies)
            if length:
                return Framing.MAYBE_LENGTH, length
        return Framing.NONE, 0
    chunked = _is_chunked(te, cl, anomalies)
    if chunked:
        return Framing.CHUNKED, 0
    if chunked is False:
        return Framing.UNTIL_CLOSE, 0
    length = _content_length(cl, anomalies)
    if length is not None:
        return (Framing.LENGTH, length) if length else (Framing.NONE, 0)
    return Framing.UNTIL_CLOSE, 0  # none, or unusable: read what the server sends


def parse_chunk_size(line: bytes) -> int | None:
    """Chunk size from a chunk-size line (extensions and white space allowed), or None."""
    size = line.split(b";", 1)[0].strip()
    if size:
        size = size.lstrip(b"0") or b"0"
    if not size or len(size) > 15:
        return None  # 16 hex digits would be 2^64 and above: not a size any peer can send
    try:
        return int(size, 16)
    except ValueError:
        return None

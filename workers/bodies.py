"""Body fields of a Resurface message: undo Content-Encoding, then text or binary.

Strategy: the parsers keep bodies exactly as sent (de-chunked, still content-encoded). This
module turns such bytes into the text of a ``request_body``/``response_body`` detail, once
per call, on the aggregator.

Rules:
- ``decode_content`` undoes the codings of RFC 9110 section 8.4.1 in reverse order of the
  list (``gzip, br`` was gzip-ed first, so brotli is undone first): ``gzip``/``x-gzip``,
  ``deflate`` (zlib-wrapped per RFC 1950, and raw RFC 1951 deflate, which real servers send;
  ``zlib``/``deflated`` as Go's logger accepts), ``br`` and ``identity``. Decoding is
  incremental with an output cap (``max_decoded_bytes``) so a decompression bomb costs at most
  the cap. Corrupt or truncated streams keep the prefix that decoded cleanly. A stream that
  is rejected before a single byte decodes (a JSON body labelled ``gzip``, as some SDKs send)
  was evidently never encoded: its bytes are kept as sent (``body_not_encoded``), as browsers
  and Suricata do, rather than reported as an empty body. A coding we do not know
  (``compress``, ``zstd``, ...) stops decoding and leaves the bytes as they are.
  Nothing raises: the second item returned names the anomaly, if any.
- ``body_text`` decodes by the Content-Type ``charset`` (default and fallback UTF-8, invalid
  bytes replaced) and decides text versus binary from the media type, then from the bytes
  (NUL bytes, control characters, invalid sequences). Binary bodies follow a policy:
  ``skip`` (default: omit, say what was omitted), ``base64`` or ``lossy`` (see POLICIES).
"""
from __future__ import annotations

import base64
import codecs
import encodings
import encodings.aliases
import zlib
from typing import NamedTuple

import brotli

from workers.anomalies import register

ANOMALIES = register({
    "body_decode_error": "a content-encoded body was corrupt; the decoded prefix was kept",
    "body_decode_truncated": "a content-encoded body ended before its stream did (prefix kept)",
    "body_bomb_limit": "a decoded body reached max_decoded_bytes; the rest was dropped",
    "body_unknown_encoding": "a Content-Encoding we do not undo (compress, zstd...); kept as sent",
    "body_not_encoded": "a body did not decode from its first byte; kept as sent",
})

#: Binary-body policies -> meaning. Unknown policy names behave as ``skip``.
POLICIES = {
    "skip": "omit the body detail; a marker names the media type and size",
    "base64": "the body detail is the base64 text of the bytes; marker 'base64'",
    "lossy": "decode as text anyway, invalid bytes become U+FFFD; marker says so",
}

_STEP_BYTES = 16384          # compressed input fed per decoder call
_MAX_CODINGS = 4             # longer Content-Encoding lists are not decoded
_SAMPLE_BYTES = 4096         # bytes inspected by the binary heuristic
_ZLIB_AUTO = 47              # zlib or gzip header, detected by zlib
_RAW_DEFLATE = -15
_GZIP_MAGIC = b"\x1f\x8b"
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\f\b\x1b") + b"\x7f"

try:  # brotli >= 1.2 can cap its output; older versions get fed in small pieces
    brotli.Decompressor().process(b"", output_buffer_limit=1)
    _BROTLI_CAPPED = True
except TypeError:  # pragma: no cover - depends on the installed brotli
    _BROTLI_CAPPED = False


def _inflate(data: bytes, wbits: int, limit: int) -> tuple[bytes, str | None]:
    """zlib/gzip/raw deflate with an output cap; gzip members may follow each other."""
    out = bytearray()
    view = memoryview(data)
    d = zlib.decompressobj(wbits)
    pos = 0
    for _ in range(len(data) + 2):  # every round consumes input or returns
        piece: bytes | memoryview = d.unconsumed_tail
        if not piece:
            if pos >= len(view):
                return bytes(out), "body_decode_truncated"
            piece, pos = view[pos:pos + _STEP_BYTES], pos + _STEP_BYTES
        try:
            out += d.decompress(piece, limit + 1 - len(out))
        except zlib.error:
            return bytes(out), "body_decode_error"
        if len(out) > limit:
            return bytes(out[:limit]), "body_bomb_limit"
        if d.eof:
            rest = d.unused_data + bytes(view[pos:])
            if wbits != _ZLIB_AUTO or rest[:2] != _GZIP_MAGIC:
                return bytes(out), None  # trailing garbage after the stream is ignored
            view, pos, d = memoryview(rest), 0, zlib.decompressobj(wbits)
    return bytes(out), "body_decode_error"  # pragma: no cover - bound never reached


def _looks_zlib(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


def _deflate(data: bytes, limit: int) -> tuple[bytes, str | None]:
    if _looks_zlib(data) or data[:2] == _GZIP_MAGIC:  # some servers send gzip as deflate
        out, anomaly = _inflate(data, _ZLIB_AUTO, limit)
        if anomaly != "body_decode_error" or out:
            return out, anomaly
    return _inflate(data, _RAW_DEFLATE, limit)


def _unbrotli(data: bytes, limit: int) -> tuple[bytes, str | None]:
    out = bytearray()
    d = brotli.Decompressor()
    step = _STEP_BYTES if _BROTLI_CAPPED else 256
    try:
        for pos in range(0, len(data), step):
            piece = data[pos:pos + step]
            if _BROTLI_CAPPED:
                out += d.process(piece, output_buffer_limit=limit + 1 - len(out))
                for _ in range(limit + 2):  # drain what the cap held back
                    if len(out) > limit or d.can_accept_more_data():
                        break
                    more = d.process(b"", output_buffer_limit=limit + 1 - len(out))
                    if not more:
                        break
                    out += more
            else:  # pragma: no cover
                out += d.process(piece)
            if len(out) > limit:
                return bytes(out[:limit]), "body_bomb_limit"
            if d.is_finished():
                return bytes(out), None
    except brotli.error:
        return bytes(out), "body_decode_error"
    return bytes(out), "body_decode_truncated"


def _gzip(data: bytes, limit: int) -> tuple[bytes, str | None]:
    return _inflate(data, _ZLIB_AUTO, limit)


_DECODERS = {
    b"gzip": _gzip, b"x-gzip": _gzip,
    b"deflate": _deflate, b"zlib": _deflate, b"deflated": _deflate,
    b"br": _unbrotli,
}


def decode_content(raw: bytes, content_encoding: bytes | None, *,
                   max_decoded_bytes: int) -> tuple[bytes, str | None]:
    """Undo ``content_encoding`` (a Content-Encoding field value) on ``raw``.

    Returns (decoded bytes, anomaly name or None); never raises. The result is at most
    ``max_decoded_bytes`` long whenever some coding was undone.
    """
    if not raw or not content_encoding:
        return raw, None
    codings = [c.strip().lower() for c in content_encoding.split(b",")]
    codings = [c for c in codings if c and c != b"identity"]
    if len(codings) > _MAX_CODINGS:
        return raw, "body_unknown_encoding"
    data = raw
    limit = max(0, max_decoded_bytes)
    for coding in reversed(codings):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            return data, "body_unknown_encoding"
        decoded, anomaly = decoder(data, limit)
        if anomaly == "body_decode_error" and not decoded:
            return data, "body_not_encoded"  # rejected at once: these bytes were not encoded
        data = decoded
        if anomaly is not None:
            return data, anomaly
    return data, None


def parse_content_type(content_type: bytes | None) -> tuple[bytes, bytes | None]:
    """Split a Content-Type value into (lowercase media type, charset or None)."""
    if not content_type:
        return b"", None
    media, _, params = content_type.partition(b";")
    charset = None
    if params:
        for param in params.split(b";"):
            name, _, value = param.partition(b"=")
            if name.strip().lower() == b"charset":
                charset = value.strip().strip(b"\"'").strip().lower() or None
                break
    return media.strip().lower(), charset


_CODECS: dict[bytes | None, str] = {None: "utf-8"}
_MAX_CODECS = 64
# Only labels the stdlib knows reach codecs.lookup: the encodings package remembers every
# failed name forever, so looking up names taken from traffic would grow without bound.
_KNOWN_LABELS = frozenset(encodings.aliases.aliases).union(encodings.aliases.aliases.values())


def codec_for(charset: bytes | None) -> str:
    """Python codec name for a charset label; unknown or non-text labels give ``utf-8``."""
    codec = _CODECS.get(charset)
    if codec is not None or charset is None:
        return codec or "utf-8"
    label = encodings.normalize_encoding(charset.decode("latin-1").lower())
    codec = "utf-8"
    if label in _KNOWN_LABELS or label.replace(".", "_") in _KNOWN_LABELS:
        try:
            codec = codecs.lookup(label).name
            b"aaaa".decode(codec, "replace")  # rejects bytes-to-bytes codecs (zlib, base64)
        except (LookupError, ValueError, TypeError, UnicodeError):
            codec = "utf-8"
    if len(_CODECS) < _MAX_CODECS:
        _CODECS[charset] = codec
    return codec


_BINARY_TYPES = (b"image/", b"audio/", b"video/", b"font/", b"model/", b"multipart/x-mixed")
_BINARY_SUBTYPES = frozenset((
    b"application/octet-stream", b"application/zip", b"application/gzip", b"application/x-gzip",
    b"application/pdf", b"application/x-protobuf", b"application/protobuf", b"application/grpc",
    b"application/vnd.google.protobuf", b"application/x-tar", b"application/wasm",
    b"application/msgpack", b"application/x-msgpack", b"application/cbor", b"application/zstd",
    b"application/x-7z-compressed", b"application/vnd.rar", b"application/java-archive",
    b"application/x-bzip2", b"application/x-xz", b"application/avro", b"application/x-sqlite3",
    b"application/vnd.ms-excel", b"application/msword", b"application/x-shockwave-flash",
))
_TEXT_SUFFIXES = (b"+xml", b"+json", b"+yaml", b"+text")


def _binary_media(media: bytes) -> bool:
    if media.endswith(_TEXT_SUFFIXES):
        return False  # image/svg+xml, application/vnd.api+json
    return (media.startswith(_BINARY_TYPES) or media in _BINARY_SUBTYPES
            or media.startswith((b"application/grpc", b"application/vnd.openxmlformats")))


def _binary_bytes(sample: bytes, codec: str) -> bool:
    """NUL bytes or over 10 % control characters (ASCII-compatible charsets only)."""
    if codec.startswith(("utf-16", "utf-32")):
        return False
    if 0 in sample:  # a NUL byte
        return True
    return (len(sample) - len(sample.translate(None, _CONTROL_BYTES))) * 10 > len(sample)


def _mostly_invalid(sample: bytes, codec: str) -> bool:
    """Over 5 % of the decoded characters are replacement characters."""
    text = sample.decode(codec, "replace")
    return text.count("\ufffd") * 20 > len(text)


class ContentTypeInfo(NamedTuple):
    """What a Content-Type value tells the body decoder."""

    media: bytes
    """Lowercase media type without parameters, ``b""`` when absent."""
    charset: bytes | None
    """Lowercase ``charset`` parameter as sent, or None."""
    codec: str
    """Python codec for the charset (``utf-8`` when absent or unknown)."""
    binary: bool
    """The media type alone says the body is binary."""


_TYPES: dict[bytes | None, ContentTypeInfo] = {}
_MAX_TYPES = 1024


def content_type_info(content_type: bytes | None) -> ContentTypeInfo:
    """Parse a Content-Type value (cached: values repeat across calls)."""
    info = _TYPES.get(content_type)
    if info is None:
        media, charset = parse_content_type(content_type)
        info = ContentTypeInfo(media, charset, codec_for(charset), _binary_media(media))
        if len(_TYPES) < _MAX_TYPES:
            _TYPES[content_type] = info
    return info


def body_text(data: bytes, content_type: bytes | None,
              policy: str = "skip") -> tuple[str | None, str | None]:
    """Text for a body detail (None to omit it) and a marker for the user (or None)."""
    if not data:
        return None, None
    media, _, codec, binary = content_type_info(content_type)
    # The bytes decide: a body that decodes cleanly as text is kept as text whatever its
    # media type claims (an ASCII file served as application/octet-stream loses nothing);
    # a declared binary type only tips the balance for bytes that are not clean text.
    sample = data[:_SAMPLE_BYTES]
    if not _binary_bytes(sample, codec):
        try:
            return data.decode(codec), None
        except UnicodeDecodeError:
            if not binary and not _mostly_invalid(sample, codec):
                return data.decode(codec, "replace"), None
    what = f"({media.decode('latin-1') or 'no content-type'}, {len(data)} bytes)"
    if policy == "base64":
        return base64.b64encode(data).decode("ascii"), "base64"
    if policy == "lossy":
        return data.decode(codec, "replace"), f"binary body decoded lossily {what}"
    return None, f"binary body omitted {what}"

"""Content-Encoding decoding and text/binary decisions for body fields."""
from __future__ import annotations

import base64
import gzip
import random
import zlib

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.anomalies import REGISTRY
from workers.bodies import (ANOMALIES, POLICIES, body_text, codec_for, content_type_info,
                            decode_content, parse_content_type)

MIB = 1 << 20
TEXT = b'{"items": [' + b", ".join(
    b'{"id": %d, "name": "item %d"}' % (i, i) for i in range(400)) + b"]}"
_rng = random.Random(7)
BIG = "".join(_rng.choice("abcdefghij klmnop\n") for _ in range(300_000)).encode()


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _id(value: object) -> str | None:
    return f"{len(value)}-bytes" if isinstance(value, bytes) and len(value) > 24 else None


def corrupt(data: bytes) -> bytes:
    mid = len(data) * 3 // 4
    return data[:mid] + b"\xff" * 16 + data[mid + 16:]


@pytest.mark.parametrize("encoding, raw", [
    (b"gzip", gzip.compress(TEXT)),
    (b"x-gzip", gzip.compress(TEXT)),
    (b"GZIP", gzip.compress(TEXT)),
    (b" gzip ", gzip.compress(TEXT)),
    (b"deflate", zlib.compress(TEXT)),
    (b"deflate", raw_deflate(TEXT)),
    (b"zlib", zlib.compress(TEXT)),
    (b"deflated", raw_deflate(TEXT)),
    (b"br", brotli.compress(TEXT)),
    (b"identity", TEXT),
    (b"gzip, br", brotli.compress(gzip.compress(TEXT))),
    (b"deflate,gzip", gzip.compress(raw_deflate(TEXT))),
    (b"deflate", gzip.compress(TEXT)),  # gzip sent as "deflate"
    (b"identity, gzip", gzip.compress(TEXT)),
    (b"gzip", gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:])),  # two gzip members
    (b"gzip", gzip.compress(TEXT) + b"\0\0\0\0"),  # trailing padding is ignored
    (b"deflate", zlib.compress(b"")),
], ids=_id)
def test_decode_content_undoes_codings(encoding: bytes, raw: bytes) -> None:
    expected = b"" if raw == zlib.compress(b"") else TEXT
    assert decode_content(raw, encoding, max_decoded_bytes=MIB) == (expected, None)


@pytest.mark.parametrize("encoding, raw, anomaly", [
    (b"zstd", b"\x28\xb5\x2f\xfd whatever", "body_unknown_encoding"),
    (b"compress", b"\x1f\x9d\x90 whatever", "body_unknown_encoding"),
    (b"gzip, zstd", b"zstd-on-top-of-gzip", "body_unknown_encoding"),
    (b"gzip, gzip, gzip, gzip, gzip", b"too many layers", "body_unknown_encoding"),
])
def test_unknown_codings_leave_bytes_as_sent(encoding: bytes, raw: bytes, anomaly: str) -> None:
    assert decode_content(raw, encoding, max_decoded_bytes=MIB) == (raw, anomaly)


@pytest.mark.parametrize("encoding, raw, found_as", [
    pytest.param(b"gzip", gzip.compress(BIG), {"body_decode_error"}, id="gzip"),
    pytest.param(b"deflate", zlib.compress(BIG), {"body_decode_error"}, id="zlib"),
    # no checksums: raw deflate misses this corruption, brotli may just never see its end
    pytest.param(b"deflate", raw_deflate(BIG), {None}, id="raw-deflate"),
    pytest.param(b"br", brotli.compress(BIG, quality=5),
                 {"body_decode_error", "body_decode_truncated"}, id="br"),
])
def test_corrupt_and_truncated_streams_keep_the_clean_prefix(encoding: bytes, raw: bytes,
                                                             found_as: set) -> None:
    out, anomaly = decode_content(corrupt(raw), encoding, max_decoded_bytes=MIB)
    assert anomaly in found_as
    assert len(out) > 100_000 and out[:100_000] == BIG[:100_000]
    out, anomaly = decode_content(raw[:len(raw) // 2], encoding, max_decoded_bytes=MIB)
    assert anomaly == "body_decode_truncated"
    assert len(out) > 100_000 and BIG.startswith(out)


@pytest.mark.parametrize("encoding, raw", [
    (b"gzip", b"\x1f\x8b not really gzip"),
    (b"br", b"\xff\xff\xff\xff not brotli"),
    (b"deflate", b"\xff\xff\xff not deflate"),
    (b"gzip", b'{"sdk_version":"1.0"}'),  # JSON labelled gzip (a real SDK does this)
    (b"deflate", b"plain text"),
    (b"x-gzip, br", b"neither"),
])
def test_garbage_from_the_first_byte_is_kept_as_sent(encoding: bytes, raw: bytes) -> None:
    """Nothing decodes at all: the body was evidently not encoded, so its bytes are kept."""
    assert decode_content(raw, encoding, max_decoded_bytes=MIB) == (raw, "body_not_encoded")


def test_inner_coding_rejected_keeps_the_outer_result() -> None:
    """``gzip, br``: brotli undone, then the inner bytes are not gzip: keep what br gave."""
    raw = brotli.compress(b"not gzip inside")
    assert decode_content(raw, b"gzip, br", max_decoded_bytes=MIB) == (
        b"not gzip inside", "body_not_encoded")


def test_corruption_after_the_first_bytes_is_still_a_decode_error() -> None:
    """Once some output decoded, a later error keeps the prefix (not the raw bytes)."""
    raw = gzip.compress(BIG)
    out, anomaly = decode_content(corrupt(raw), b"gzip", max_decoded_bytes=MIB)
    assert anomaly == "body_decode_error" and out and BIG.startswith(out[:1000])


ZEROS_10MIB = b"\0" * (10 * MIB)


@pytest.mark.parametrize("encoding, raw", [
    pytest.param(b"gzip", gzip.compress(ZEROS_10MIB), id="gzip"),
    pytest.param(b"deflate", zlib.compress(ZEROS_10MIB), id="zlib"),
    pytest.param(b"deflate", raw_deflate(ZEROS_10MIB), id="raw-deflate"),
    pytest.param(b"br", brotli.compress(ZEROS_10MIB, quality=4), id="br"),
    pytest.param(b"gzip, br", brotli.compress(gzip.compress(ZEROS_10MIB), quality=4),
                 id="gzip-br"),
])
def test_bomb_stops_at_the_limit(encoding: bytes, raw: bytes) -> None:
    out, anomaly = decode_content(raw, encoding, max_decoded_bytes=MIB)
    assert anomaly == "body_bomb_limit"
    assert len(out) == MIB and not out.strip(b"\0")


@pytest.mark.parametrize("limit, anomaly", [(len(TEXT), None), (len(TEXT) - 1, "body_bomb_limit")])
def test_limit_is_inclusive(limit: int, anomaly: str | None) -> None:
    out, got = decode_content(gzip.compress(TEXT), b"gzip", max_decoded_bytes=limit)
    assert (out, got) == (TEXT[:limit], anomaly)


@pytest.mark.parametrize("raw, encoding", [(b"", b"gzip"), (b"abc", None), (b"abc", b""),
                                           (b"abc", b" , ")])
def test_nothing_to_decode(raw: bytes, encoding: bytes | None) -> None:
    assert decode_content(raw, encoding, max_decoded_bytes=MIB) == (raw, None)


def test_every_anomaly_is_registered() -> None:
    for name in ("body_decode_error", "body_decode_truncated", "body_bomb_limit",
                 "body_unknown_encoding", "body_not_encoded"):
        assert name in ANOMALIES and REGISTRY[name] == ANOMALIES[name]


@pytest.mark.parametrize("content_type, media, charset", [
    (None, b"", None),
    (b"application/json", b"application/json", None),
    (b"Text/HTML; Charset=ISO-8859-1", b"text/html", b"iso-8859-1"),
    (b'text/plain; format=flowed; charset="utf-8"', b"text/plain", b"utf-8"),
    (b"text/plain; charset=", b"text/plain", None),
])
def test_parse_content_type(content_type: bytes | None, media: bytes,
                            charset: bytes | None) -> None:
    assert parse_content_type(content_type) == (media, charset)


@pytest.mark.parametrize("charset, codec", [
    (None, "utf-8"), (b"utf-8", "utf-8"), (b"UTF8", "utf-8"), (b"iso-8859-1", "iso8859-1"),
    (b"latin1", "iso8859-1"), (b"windows-1252", "cp1252"), (b"utf-16", "utf-16"),
    (b"x-unknown", "utf-8"),
    (b"base64", "utf-8"), (b"zlib", "utf-8"), (b"rot13", "utf-8"), (b"\xff\x00", "utf-8"),
    (b"../../os", "utf-8"),
])
def test_codec_for(charset: bytes | None, codec: str) -> None:
    assert codec_for(charset) == codec


@pytest.mark.parametrize("data, content_type, text", [
    (b'{"a": "caf\xc3\xa9"}', b"application/json", '{"a": "café"}'),
    (b"caf\xc3\xa9", None, "café"),
    (b"caf\xe9", b"text/plain; charset=iso-8859-1", "café"),
    (b"caf\xe9", b"text/plain; charset=ISO-8859-1", "café"),
    (b"caf\xe9", b"text/plain; charset=latin1", "café"),
    (b"caf\x80", b"text/plain; charset=windows-1252", "caf€"),
    (b"caf\xc3\xa9", b"text/plain; charset=x-martian", "café"),
    ("ça va".encode("utf-16"), b"text/plain; charset=utf-16", "ça va"),
    (b"<svg viewBox='0 0 1 1'/>", b"image/svg+xml", "<svg viewBox='0 0 1 1'/>"),
    (b'{"data": []}', b"application/vnd.api+json", '{"data": []}'),
    (b"line one\r\n\tline two\n", b"text/plain", "line one\r\n\tline two\n"),
    (b"mostly fine text with one bad byte \xff here", b"text/plain",
     "mostly fine text with one bad byte \ufffd here"),
])
def test_text_bodies(data: bytes, content_type: bytes | None, text: str) -> None:
    for policy in POLICIES:
        assert body_text(data, content_type, policy) == (text, None)


@pytest.mark.parametrize("data, content_type", [
    (b"plain ascii", b"image/png"),
    (b"%PDF-1.7", b"application/pdf"),
    (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR", b"Application/Octet-Stream"),
])
def test_clean_text_is_kept_whatever_the_media_type_says(data: bytes, content_type: bytes) -> None:
    """The bytes decide: clean text under a binary media type loses nothing as text."""
    for policy in POLICIES:
        assert body_text(data, content_type, policy) == (data.decode(), None)


PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"
NOISE = random.Random(3).randbytes(2000)


@pytest.mark.parametrize("data, content_type, label", [
    (PNG, b"image/png", "image/png"),
    (b"PK\x03\x04", b"application/zip", "application/zip"),
    (b"\x08\x96\x01", b"application/grpc+proto", "application/grpc+proto"),
    (b"text\0with NUL", None, "no content-type"),
    (b"text\0with NUL", b"text/plain", "text/plain"),
    (NOISE, None, "no content-type"),
    (NOISE, b"application/json", "application/json"),
    (b"\x01\x02\x03\x04 abc", None, "no content-type"),  # control characters
])
def test_binary_bodies_follow_the_policy(data: bytes, content_type: bytes | None,
                                         label: str) -> None:
    what = f"({label}, {len(data)} bytes)"
    assert body_text(data, content_type, "skip") == (None, f"binary body omitted {what}")
    assert body_text(data, content_type, "unknown-policy") == body_text(data, content_type)
    assert body_text(data, content_type, "base64") == (base64.b64encode(data).decode(), "base64")
    text, marker = body_text(data, content_type, "lossy")
    assert text == data.decode(content_type_info(content_type).codec, "replace")
    assert marker == f"binary body decoded lossily {what}"


def test_empty_body_has_no_detail() -> None:
    for policy in POLICIES:
        assert body_text(b"", b"image/png", policy) == (None, None)


def test_content_type_cache_is_bounded() -> None:
    for i in range(3000):
        content_type_info(b"text/x-%d" % i)
    from workers import bodies
    assert len(bodies._TYPES) <= bodies._MAX_TYPES


CODINGS = st.lists(st.sampled_from([b"gzip", b"x-gzip", b"deflate", b"br", b"identity",
                                    b"zstd", b" ", b"GZIP"]), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), CODINGS, st.binary(max_size=20), st.integers(0, 5000))
def test_decode_content_never_raises(raw: bytes, codings: list[bytes], junk: bytes,
                                     limit: int) -> None:
    encoding = b",".join(codings) + junk
    out, anomaly = decode_content(raw, encoding, max_decoded_bytes=limit)
    assert anomaly is None or anomaly in ANOMALIES
    assert out == raw or len(out) <= limit


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.just(b""), st.binary(max_size=40)), st.sampled_from(list(POLICIES)),
       st.binary(max_size=60), st.sampled_from([b"gzip", b"br", b"deflate"]))
def test_compressed_noise_and_text_never_raise(content_type: bytes, policy: str, data: bytes,
                                               coding: bytes) -> None:
    packed = {b"gzip": gzip.compress, b"br": brotli.compress, b"deflate": zlib.compress}[coding]
    assert decode_content(packed(data), coding, max_decoded_bytes=MIB) == (data, None)
    text, marker = body_text(data, content_type, policy)
    assert text is None or isinstance(text, str)
    if data:
        assert text is not None or marker
    else:
        assert (text, marker) == (None, None)

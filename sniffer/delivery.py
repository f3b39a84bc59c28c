"""Delivery to a capture URL: one POST and what it came to, the retry wait, and whether
shipping is enabled at all.

Strategy (the wire protocol is in /work/shared/reference/resurface.md section 4):
``open_session`` is the persistent ``requests.Session`` with the protocol's headers (the body
encoding of ``Content-Encoding: deflated`` is in ``sniffer/compression.py``). ``post_bundle``
sends one encoded bundle and classifies the answer into an ``Outcome``: 204 is the only
success; connection errors, timeouts, 5xx and 429 are "retry" (429 with its Retry-After,
``parse_retry_after``); other statuses are "rejected". Every outcome names the counter it
increments, and says whether the server may have taken the bundle although the exchange failed
(read timeout, connection dropped after the request went out), so the caller can count
possible duplicates; an error chain that shows no connection was ever made is not one.
``backoff_s`` is the exponential, jittered wait between retries; ``timeouts_within`` cuts the
timeouts of a POST to a close deadline. ``destination_state`` decides from the URL, the
logging rules and USAGE_LOGGERS_DISABLE whether calls go to the URL at all (section 4.7), with
a one-line reason. Nothing here keeps state or threads: ``sniffer/shipper.py`` (UrlSink) does.
"""
from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from sniffer import __version__
from sniffer.config_values import GO_FALSE, GO_TRUE

__all__ = ["Outcome", "backoff_s", "destination_state", "open_session",
           "parse_retry_after", "post_bundle", "timeouts_within"]


def destination_state(
    url: str | None, allow_http_url: bool, disable_env_value: str | None
) -> tuple[bool, str]:
    """Decide whether shipping to ``url`` is enabled (section 4.7) and say why in one line.

    ``USAGE_LOGGERS_DISABLE`` uses Go's ``strconv.ParseBool`` (1, t, T, TRUE, true, True) like the
    Go sniffer this replaces; Java/Python accept only ``true``, a subset, so nothing that disabled
    the old sniffer enables this one. Other values are ignored and said so.
    """
    disable = (disable_env_value or "").strip()
    if disable in GO_TRUE:
        return False, f"disabled: USAGE_LOGGERS_DISABLE={disable}"
    note = ""
    if disable and disable not in GO_FALSE:
        note = f" (USAGE_LOGGERS_DISABLE={disable!r} is not a boolean, ignored)"
    if not url:
        return False, "disabled: no capture URL (USAGE_LOGGERS_URL is empty)" + note
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False, "disabled: the capture URL does not parse" + note
    if parts.scheme not in ("http", "https") or not host:
        return False, f"disabled: the capture URL is not an http/https URL ({parts.scheme}:)" + note
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    if parts.scheme == "http" and not allow_http_url:
        return False, f"disabled: {shown} is plain http and the rules lack allow_http_url" + note
    return True, f"enabled: sending to {shown}" + note


def open_session(deflated: bool) -> requests.Session:
    """A persistent session sending NDJSON bundles (``Content-Encoding: deflated`` if asked)."""
    session = requests.Session()
    session.headers.update({
        "Content-Type": "application/ndjson; charset=UTF-8",
        "User-Agent": f"network-sniffer/{__version__} (Resurface capture; python-requests)",
    })
    if deflated:
        session.headers["Content-Encoding"] = "deflated"
    return session


@dataclass(frozen=True)
class Outcome:
    """What one POST attempt came to."""

    kind: str  # "ok" | "retry" | "rejected"
    counter: str  # the counter this attempt increments
    status: int = 0  # HTTP status, 0 when there was no answer
    detail: str = ""  # exception text or the start of the response body
    retry_after_s: float | None = None  # from a 429's Retry-After
    maybe_delivered: bool = False  # the server may have taken the bundle


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


def _never_sent(exc: BaseException) -> bool:
    """True when the error chain shows no connection was made (so no duplicate is possible)."""
    item: object = exc
    for _ in range(8):  # requests.ConnectionError -> urllib3 MaxRetryError -> reason
        if isinstance(item, (urllib3.exceptions.NewConnectionError,
                             urllib3.exceptions.ConnectTimeoutError, ConnectionRefusedError)):
            return True
        if isinstance(item, requests.exceptions.ConnectionError) and item.args:
            item = item.args[0]
        elif getattr(item, "reason", None) is not None:
            item = getattr(item, "reason")
        else:
            return False
    return False


def post_bundle(session: requests.Session, url: str, body: bytes,
                timeouts: tuple[float, float]) -> Outcome:
    """POST one bundle and classify the answer (204 is the only success)."""
    try:
        response = session.post(url, data=body, timeout=timeouts, allow_redirects=False)
    except requests.exceptions.ConnectTimeout as exc:
        return Outcome("retry", "conn_errors", detail=str(exc))
    except requests.exceptions.Timeout as exc:
        return Outcome("retry", "timeouts", detail=str(exc), maybe_delivered=True)
    except requests.exceptions.ConnectionError as exc:
        return Outcome("retry", "conn_errors", detail=str(exc),
                       maybe_delivered=not _never_sent(exc))
    except requests.exceptions.RequestException as exc:
        return Outcome("retry", "request_errors", detail=str(exc), maybe_delivered=True)
    status = response.status_code
    detail = response.content[:200].decode("utf-8", "replace")
    if status == 204:
        return Outcome("ok", "http_204", status)
    if status == 429:
        retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
        return Outcome("retry", "http_429", status, detail, retry_after_s)
    if status >= 500:
        return Outcome("retry", "http_5xx", status, detail)
    counter = "http_4xx" if 400 <= status < 500 else "http_other"
    return Outcome("rejected", counter, status, detail)


def timeouts_within(connect_s: float, read_s: float, left_s: float | None) -> tuple[float, float]:
    """(connect, read) timeouts for one POST, each cut to ``left_s`` (at least 50 ms) when a
    deadline is ``left_s`` seconds away; unchanged when there is no deadline (None)."""
    if left_s is None:
        return connect_s, read_s
    left_s = max(0.05, left_s)
    return min(connect_s, left_s), min(read_s, left_s)


def backoff_s(attempt: int, initial_s: float, max_s: float) -> float:
    """The wait before retry ``attempt`` (1, 2, ...): exponential from ``initial_s``, capped at
    ``max_s``, with jitter (50-100 %) so that many senders do not retry in step."""
    delay_s = min(max_s, initial_s * 2 ** min(attempt - 1, 30))
    return delay_s * random.uniform(0.5, 1.0)

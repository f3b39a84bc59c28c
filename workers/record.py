"""API call -> one Resurface message, serialised: details, logging rules, markers, JSON.

Strategy: this is the last step of the core and runs once per call on the workers, so the
serial aggregator only moves finished bytes. The order follows the loggers (reference
section 5.3): build the call's details, add the capture details and the session fields,
apply the logging rules (which may drop the call), then append the sniffer's own
``custom_field:*`` markers and ``host``, which rules never touch.

Capture details are extension keys the Resurface format does not define and its importer
ignores (its ``HttpMessage.add`` keeps only known keys and prefixes): the HTTP versions, the
reason phrase and the connection 4-tuple. They are on by default because they are what an
operator debugging a capture needs; they go through the rules like any detail, so a rule
such as ``/client_.*/ remove`` hides the client address.

Binary bodies under the ``base64`` policy go through the rules as ``request_body`` /
``response_body`` (so the strict default removes them like any body) and, when kept, are
written as ``request_body_base64`` / ``response_body_base64``: the exact bytes for NDJSON
readers, while Resurface, which stores bodies as text, ignores those keys.

``details`` + ``json`` is the general (reference) path; ``build`` writes the same bytes in
one pass with ``workers/record_line.py``.
"""
from __future__ import annotations

import json

from workers.anomalies import Anomalies
from workers.apicall import REQUEST_BODY_KEY, RESPONSE_BODY_KEY, to_details
from workers.limits import CoreLimits
from workers.message import ApiCall
from workers.rules import Rules
from workers.record_line import LineBuilder
from workers.record_plan import ip_text_cached as _ip_text

#: Extension keys added when capture details are on (see the module docstring).
CAPTURE_DETAIL_KEYS = (
    "request_version", "response_version", "response_reason",
    "client_ip", "client_port", "server_ip", "server_port",
)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class RecordBuilder:
    """Turns API calls into serialised Resurface messages (one JSON array per call)."""

    def __init__(
        self,
        rules: Rules,
        limits: CoreLimits | None = None,
        *,
        host: str | None = None,
        capture_details: bool = True,
        realip_header: str | None = None,
        anomalies: Anomalies | None = None,
    ) -> None:
        self.rules = rules
        self.limits = limits or CoreLimits()
        self.host = host
        self.capture_details = capture_details
        # SNIFFER_REALIP_HEADER: a request header carrying the client address, added to every
        # request that lacks it (what the original engine's --input-raw-realip-header did)
        self.realip_key = f"request_header:{realip_header.lower()}" if realip_header else None
        self.anomalies = anomalies if anomalies is not None else Anomalies()
        self.dropped_by_rules = 0
        self.built = 0
        self._lines = LineBuilder(
            rules, max_body_bytes=self.limits.max_body_bytes,
            binary_policy=self.limits.binary_bodies, host=host,
            capture_details=capture_details, realip_key=self.realip_key,
            anomalies=self.anomalies)

    def details(self, call: ApiCall) -> list[list[str]] | None:
        """The message's details after rules, or None when the rules drop the call."""
        out = to_details(
            call,
            max_body_bytes=self.limits.max_body_bytes,
            binary_policy=self.limits.binary_bodies,
            anomalies=self.anomalies,
            drops=self.rules.drops,
        )
        cut = next((i for i, d in enumerate(out) if d[0].startswith("custom_field:")), len(out))
        details, markers = out[:cut], out[cut:]
        if self.realip_key and call.request is not None and not any(
                d[0] == self.realip_key for d in details):
            details.append([self.realip_key, _ip_text(call.client[0])])
        if self.capture_details:
            details += _capture_details(call)
        rules = self.rules
        if rules.copy_session_field and call.request is not None:
            cookies = [v.decode("latin-1") for n, v in call.request.headers
                       if n.lower() == b"cookie"]
            details += rules.session_fields(cookies)
        kept = rules.apply(details)
        if kept is None:
            self.dropped_by_rules += 1
            return None
        if [REQUEST_BODY_KEY, "base64"] in markers or [RESPONSE_BODY_KEY, "base64"] in markers:
            kept = _move_base64_bodies(kept, markers)
        kept += markers
        if self.host:
            kept.append(["host", self.host])
        return kept

    def build(self, call: ApiCall) -> bytes | None:
        """The call as one JSON line (no newline), or None when the rules drop it.

        The one-pass ``LineBuilder`` (``workers/record_line.py``); the same bytes as
        ``build_reference``, which serialises ``details``.
        """
        line = self._lines.build(call)
        if line is None:
            self.dropped_by_rules += 1
            return None
        self.built += 1
        return line

    def build_reference(self, call: ApiCall) -> bytes | None:
        """``build`` by the general path: ``details`` (a list per detail) then ``json``."""
        details = self.details(call)
        if details is None:
            return None
        self.built += 1
        return _dumps(details).encode("utf-8", "replace")


_BASE64_KEYS = {"request_body": "request_body_base64", "response_body": "response_body_base64"}


def _move_base64_bodies(kept: list[list[str]], markers: list[list[str]]) -> list[list[str]]:
    """A binary body the rules kept moves to ``*_body_base64``: exact bytes for NDJSON
    readers, ignored by Resurface (which would store base64 text as if it were the body)."""
    sides = {body for marker, body in ((REQUEST_BODY_KEY, "request_body"),
                                       (RESPONSE_BODY_KEY, "response_body"))
             if [marker, "base64"] in markers}
    return [[_BASE64_KEYS[d[0]], d[1]] if d[0] in sides else d for d in kept]


def _capture_details(call: ApiCall) -> list[list[str]]:
    out: list[list[str]] = []
    if call.request is not None and call.request.version:
        out.append(["request_version", call.request.version.decode("latin-1").upper()])
    response = call.response
    if response is not None:
        if response.version:
            out.append(["response_version", response.version.decode("latin-1").upper()])
        if response.reason:
            out.append(["response_reason", response.reason.decode("utf-8", "replace")])
    (cip, cport), (sip, sport) = call.client, call.server
    out += [["client_ip", _ip_text(cip)], ["client_port", str(cport)],
            ["server_ip", _ip_text(sip)], ["server_port", str(sport)]]
    return out

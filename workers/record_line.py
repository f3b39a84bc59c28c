"""API call -> serialised Resurface message in one pass (the workers' hot path).

Strategy: ``RecordBuilder.details`` builds every detail as a ``[key, value]`` list, filters
the list with ``Rules.apply`` and hands the survivors to ``json``: three passes and many
short-lived lists per call, most of them thrown away under the strict default rules. This
module writes the same bytes in one pass. Each detail key (and each raw header name) is
mapped once to an action (``workers/record_plan.py``): keep (the JSON text of the key is
cached), drop (nothing built; a dropped body is not even decoded), pure replace (memoised)
or value-dependent. Value-dependent details are placeholders that ``Rules.apply_planned``
judges together at the end (stop rules, the stop_unless count, sample, removals,
replacements), exactly as ``Rules.apply`` would: keep/drop details take no part in those.

Order and content follow ``workers/apicall.py`` (``to_details``) and ``workers/record.py``
(real-IP header, capture details, session fields; then markers and ``host``, which the rules
never see). The capture details of a connection rarely change (versions, reason, 4-tuple), so
when the rules keep or drop them whatever their value, their JSON text is kept in the
connection's ``FlowMemo`` (freed with the connection). ``tests/workers/test_record_line.py``
pins the bytes against the general path (``RecordBuilder.build_reference``).
"""
from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any, Final

from workers.anomalies import Anomalies
from workers.apicall import (
    _FORM, _REQUEST_KEYS, _RESPONSE_KEYS, DEFAULT_MAX_PARAMS, NOTE_KEY, REQUEST_BODY_KEY,
    RESPONSE_BODY_KEY, SpecialHeaders, _body, _key, _params, _text, call_first_ns,
    interval_text, note_special, request_url,
)
from workers.bodies import content_type_info
from workers.message import ApiCall, Headers, HttpRequest
from workers.record_plan import (
    Parts, Replacer, action_for, fragment, ip_text_cached, prefix, put,
)
from workers.rules import PLAN_DROP, Rules

_CACHE_MAX: Final = 4096  # entries per cache (keys, header names, URLs) before clearing
_METHODS_MAX: Final = 64  # request methods' texts held (a client sends a handful)
_TAIL_KEYS: Final = ("request_version", "response_version", "response_reason",
                     "client_ip", "client_port", "server_ip", "server_port")
_NOTE: Final = prefix(NOTE_KEY)
_REQUEST_MARK: Final = prefix(REQUEST_BODY_KEY)
_RESPONSE_MARK: Final = prefix(RESPONSE_BODY_KEY)
_SIDES: Final = (("request_header:", _REQUEST_KEYS), ("response_header:", _RESPONSE_KEYS))
_VALUE_MEMO_MAX: Final = 8192  # kept header values' JSON texts held in all (_forget_names)
_VALUE_MEMO_BYTES: Final = 128  # ... each of a value up to this long


class NameEntry:
    """What a raw header name comes to: its action, its special kind (``apicall``: host,
    content-type, content-encoding or 0) and, under a plain keep, its values' JSON texts
    (a repeated value costs a look-up)."""

    __slots__ = ("action", "kind", "texts")

    def __init__(self, action: Any, kind: int) -> None:
        self.action, self.kind = action, kind
        self.texts: dict[bytes, str] = {}


_SKIPPED: Final = NameEntry(PLAN_DROP, 0)  # a dropped name that is not special


class LineBuilder:
    """Serialises API calls byte for byte as ``RecordBuilder.build_reference`` does."""

    def __init__(self, rules: Rules, *, max_body_bytes: int, binary_policy: str,
                 host: str | None, capture_details: bool, realip_key: str | None,
                 anomalies: Anomalies) -> None:
        self.rules = rules
        self.max_body_bytes = max_body_bytes
        self.binary_policy = binary_policy
        self.capture_details = capture_details
        self.realip_key = realip_key
        self.anomalies = anomalies
        self._host = "" if not host else "," + prefix("host") + encode_basestring(host) + "]"
        self._actions: dict[str, Any] = {}
        # raw header name -> its NameEntry (_SKIPPED: dropped, not special)
        self._names: tuple[dict[bytes, NameEntry], dict[bytes, NameEntry]] = ({}, {})
        self._memo_values = 0  # value texts held by the entries of _names
        self.memo_values_max = _VALUE_MEMO_MAX
        act = self.action
        self._method, self._url = act("request_method"), act("request_url")
        self._code, self._now, self._interval = act("response_code"), act("now"), act("interval")
        self._now_ms, self._now_text = -1, ""  # the last "now" fragment under a keep
        # under a plain keep: the JSON text of each method and status code seen (few of each)
        self._method_texts: dict[bytes, str] = {}
        self._code_texts: dict[int, str] = {}
        self._interval_open = self._interval + '"' if type(self._interval) is str else ""
        self._bodies = {(side, b64): action_for(rules, side, side + "_base64" if b64 else side)
                        for side in ("request_body", "response_body") for b64 in (False, True)}
        self._drops_request_body = self._bodies["request_body", False] is PLAN_DROP
        self._drops_response_body = self._bodies["response_body", False] is PLAN_DROP
        self._urls: dict[tuple[bytes, bytes], Any] = {}
        self._url_memoisable = type(self._url) is str or self._url is PLAN_DROP or \
            isinstance(self._url, Replacer)
        self._tail_actions = tuple(act(k) for k in _TAIL_KEYS)
        self._tail_cacheable = all(type(a) is str or a is PLAN_DROP
                                   for a in self._tail_actions)

    def action(self, key: str) -> Any:
        """The cached action for details of ``key`` (see ``workers/record_plan.py``)."""
        found = self._actions.get(key)
        if found is None:
            if len(self._actions) >= _CACHE_MAX:
                self._actions.clear()
            found = self._actions[key] = action_for(self.rules, key)
        return found

    def _name(self, name: bytes, side: int) -> NameEntry:
        head, cache = _SIDES[side]
        key, kind = cache.get(name) or _key(name, head, cache)
        action = self.action(key)
        names = self._names[side]
        if len(names) >= _CACHE_MAX:
            names.clear()
        entry = _SKIPPED if action is PLAN_DROP and not kind else NameEntry(action, kind)
        names[name] = entry
        return entry

    def _forget_names(self) -> None:
        """Drop every header-name entry and the value texts they hold: the memory bound (a
        few MB), reached after ``memo_values_max`` texts; entries are rebuilt as needed."""
        for names in self._names:
            names.clear()
        self._memo_values = 0

    def _headers(self, headers: Headers, side: int, parts: Parts, pending: list[int],
                 ) -> tuple[bytes | None, bytes | None, bytes | None]:
        """``apicall._headers`` in JSON; returns (host, content-type, content-encoding)."""
        found: SpecialHeaders = (None, None, None)
        names, enc = self._names[side], encode_basestring
        for name, value in headers:
            entry = names.get(name)
            if entry is None:
                entry = self._name(name, side)
            if entry is _SKIPPED:
                continue
            action, kind = entry.action, entry.kind
            if type(action) is str:  # kept as is: the JSON text of a value seen before
                texts = entry.texts
                fragment_text = texts.get(value)
                if fragment_text is None:
                    fragment_text = action + enc(_text(value)) + "]" if value else ""
                    if len(value) <= _VALUE_MEMO_BYTES:
                        texts[value] = fragment_text
                        self._memo_values += 1
                        if self._memo_values >= self.memo_values_max:
                            self._forget_names()
                if fragment_text:
                    parts.append(fragment_text)
            elif action is not PLAN_DROP:
                put(action, _text(value), parts, pending)
            if kind:
                found = note_special(found, kind, value)
        return found

    def build(self, call: ApiCall) -> bytes | None:
        """The call as one JSON line (no newline), or None when the rules drop it."""
        parts: Parts = []
        pending: list[int] = []
        request, response = call.request, call.response
        request_markers: list[str] = []
        response_markers: list[str] = []
        if request is not None:
            method_text = self._method_texts.get(request.method)
            if method_text is None:
                method_text = self._method_text(request.method, parts, pending)
            elif method_text:
                parts.append(method_text)
            url_at = len(parts)
            parts.append(None)
            host, ctype, cenc = self._headers(request.headers, 0, parts, pending)
            parts[url_at] = url = self._url_fragment(request, host, call.server)
            if type(url) is tuple:
                pending.append(url_at)
            self._request_rest(request, ctype, cenc, parts, pending, request_markers)
        if response is not None:
            status = response.status
            if status is not None and type(self._code) is str:
                code_text = self._code_texts.get(status)
                if code_text is None:  # three digits: at most 900 of them
                    code_text = self._code_texts[status] = f'{self._code}"{status}"]'
                parts.append(code_text)
            else:
                code = str(status) if status is not None else _text(response.status_raw)
                if code:
                    put(self._code, code, parts, pending)
            _, ctype, cenc = self._headers(response.headers, 1, parts, pending)
            if not self._drops_response_body:
                _, text = _body(response, ctype, cenc, self.max_body_bytes, self.binary_policy,
                                response_markers, self.anomalies)
                if text:
                    put(self._bodies["response_body", "base64" in response_markers], text,
                        parts, pending)
        # digits (and a dot): their JSON string needs no escaping, one f-string under a keep;
        # calls come many to a millisecond, so the last "now" text is held
        first_ns = call_first_ns(call)
        if first_ns > 0:
            ms = first_ns // 1_000_000
            if type(self._now) is not str:
                put(self._now, str(ms), parts, pending)
            elif ms == self._now_ms:
                parts.append(self._now_text)
            else:
                self._now_ms, self._now_text = ms, f'{self._now}"{ms}"]'
                parts.append(self._now_text)
        if self._interval_open:  # a plain keep: the fragment built in one string
            interval = interval_text(call, self._interval_open, '"]')
            if interval is not None:
                parts.append(interval)
        else:
            interval = interval_text(call)
            if interval is not None:
                put(self._interval, interval, parts, pending)
        if request is not None and self.realip_key is not None:
            self._realip(call, parts, pending)
        if self.capture_details:
            self._tail(call, parts, pending)
        if request is not None and self.rules.copy_session_field:
            cookies = [v.decode("latin-1") for n, v in request.headers if n.lower() == b"cookie"]
            for key, value in self.rules.session_fields(cookies):
                put(self.action(key), value, parts, pending)
        return self._finish(call, parts, pending, request_markers, response_markers)

    def _method_text(self, method: bytes, parts: Parts, pending: list[int]) -> str:
        """Put the request method under its action; under a plain keep, remember its text
        (``""`` for an empty method) in ``_method_texts`` (bounded: cleared at 64 methods)."""
        action = self._method
        if type(action) is not str or not method.isascii():
            put(action, _text(method), parts, pending)
            return ""
        text = action + encode_basestring(method.decode()) + "]" if method else ""
        if len(self._method_texts) >= _METHODS_MAX:
            self._method_texts.clear()
        self._method_texts[method] = text
        if text:
            parts.append(text)
        return text

    def _url_fragment(self, request: HttpRequest, host: bytes | None,
                      server: tuple[bytes, int]) -> Any:
        """``request_url`` under its action, memoised per (target, Host) when that is pure."""
        if host is None or not self._url_memoisable or request.method == b"CONNECT":
            return fragment(self._url, request_url(request, host, server))
        memo_key = (request.target, host)
        text = self._urls.get(memo_key)
        if text is None:
            text = fragment(self._url, request_url(request, host, server))
            if len(self._urls) >= _CACHE_MAX:
                self._urls.clear()
            self._urls[memo_key] = text
        return text

    def _request_rest(self, request: HttpRequest, ctype: bytes | None, cenc: bytes | None,
                      parts: Parts, pending: list[int], markers: list[str]) -> None:
        """Query and form parameters and the request body, as ``to_details`` has them."""
        params: list[list[str]] = []
        budget = DEFAULT_MAX_PARAMS
        target = request.target
        query = target.partition(b"?")[2] if 63 in target else b""  # "?" (see startline)
        if query:
            budget = _params(query.partition(b"#")[0], None, budget, params)
        form = ctype is not None and content_type_info(ctype).media == _FORM
        if form or not self._drops_request_body:
            data, text = _body(request, ctype, cenc, self.max_body_bytes, self.binary_policy,
                               markers, self.anomalies)
        else:
            data, text = b"", None
        if data and budget >= 0 and ctype:
            info = content_type_info(ctype)
            if info.media == _FORM:
                budget = _params(data, info.codec if info.charset else None, budget, params)
        if budget < 0:
            self.anomalies.hit("request_params_limit")
        for key, value in params:
            put(self.action(key), value, parts, pending)
        if text:
            put(self._bodies["request_body", "base64" in markers], text, parts, pending)

    def _realip(self, call: ApiCall, parts: Parts, pending: list[int]) -> None:
        """The real-IP header for a request without one (a dropped one counts as none: the
        added detail is dropped as well, as in ``RecordBuilder.details``)."""
        realip_key = self.realip_key
        assert call.request is not None and realip_key is not None
        for name, _ in call.request.headers:
            if (_REQUEST_KEYS.get(name) or _key(name, *_SIDES[0]))[0] == realip_key:
                return
        put(self.action(realip_key), ip_text_cached(call.client[0]), parts, pending)

    def _tail(self, call: ApiCall, parts: Parts, pending: list[int]) -> None:
        """The capture details (record.py ``_capture_details``), cached per connection in its
        ``FlowMemo`` when the rules keep or drop them whatever their values."""
        request, response = call.request, call.response
        rqv = request.version if request is not None else b""
        rsv, reason = (response.version, response.reason) if response is not None else (b"", b"")
        memo = call.flow
        if not self._tail_cacheable or memo is None:
            self._tail_parts(rqv, rsv, reason, call, parts, pending)
            return
        if memo.owner is self and memo.request_version == rqv and \
                memo.response_version == rsv and memo.reason == reason:
            text = memo.text
        else:
            sub: Parts = []
            self._tail_parts(rqv, rsv, reason, call, sub, [])
            text = ",".join(sub)
            memo.owner, memo.request_version, memo.response_version = self, rqv, rsv
            memo.reason, memo.text = reason, text
        if text:
            parts.append(text)

    def _tail_parts(self, rqv: bytes, rsv: bytes, reason: bytes, call: ApiCall,
                    parts: Parts, pending: list[int]) -> None:
        a_rqv, a_rsv, a_reason, a_cip, a_cport, a_sip, a_sport = self._tail_actions
        if rqv:
            put(a_rqv, rqv.decode("latin-1").upper(), parts, pending)
        if rsv:
            put(a_rsv, rsv.decode("latin-1").upper(), parts, pending)
        if reason:
            put(a_reason, reason.decode("utf-8", "replace"), parts, pending)
        (cip, cport), (sip, sport) = call.client, call.server
        put(a_cip, ip_text_cached(cip), parts, pending)
        put(a_cport, str(cport), parts, pending)
        put(a_sip, ip_text_cached(sip), parts, pending)
        put(a_sport, str(sport), parts, pending)

    def _finish(self, call: ApiCall, parts: Parts, pending: list[int],
                request_markers: list[str], response_markers: list[str]) -> bytes | None:
        """Rules verdict on the value-dependent details, then markers, host and the text."""
        enc = encode_basestring
        if pending or self.rules.judges_every_message:
            values = self.rules.apply_planned([parts[i][::2] for i in pending])
            if values is None:
                return None
            for i, value in zip(pending, values):
                parts[i] = parts[i][1] + enc(value) + "]" if value else None
        for part in parts:  # "is None" per part: "None in parts" compares with ==, far dearer
            if part is None:
                parts = [p for p in parts if p is not None]
                break
        if not parts:
            return None
        for note in call.notes:
            parts.append(_NOTE + enc(note) + "]")
        for marker in request_markers:
            parts.append(_REQUEST_MARK + enc(marker) + "]")
        for marker in response_markers:
            parts.append(_RESPONSE_MARK + enc(marker) + "]")
        return f"[{','.join(parts)}{self._host}]".encode("utf-8", "replace")  # one copy

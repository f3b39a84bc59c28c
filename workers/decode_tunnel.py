"""Tunnel decapsulation for the packet decoder: VXLAN, GENEVE, Teredo, GRE/ERSPAN, IP-in-IP.

Strategy: a mixin of ``workers.decode.Decoder`` with the same calling convention
``(buf, off, end, depth)``; each tunnel strips its header and hands the inner packet back to
the decoder's Ethernet / EtherType / IP methods with ``depth + 1``. ``depth`` is checked
against ``max_tunnel_depth`` before any decapsulation, so hostile nesting is bounded.
Formats: VXLAN RFC 7348 section 5; GENEVE RFC 8926 section 3.4 (version 0, options skipped);
Teredo RFC 4380 section 5.1.1 (authentication then origin indicator, then IPv6);
GRE RFC 2784 + RFC 2890 (version 0; checksum, key and sequence words skipped);
ERSPAN type II / III (draft-foschiano-erspan) carried in GRE; IP-in-IP RFC 2003 / RFC 4213.
The VNI allow-list applies to VXLAN and GENEVE alike.
"""
from __future__ import annotations

import struct

from workers.anomalies import Anomalies
from workers.decode_link import ETH_TRANSPARENT_BRIDGING, VXLAN_FLAG_VNI
from workers.segment import Segment

_UDP = struct.Struct("!HHH").unpack_from  # ports, length
_U32 = struct.Struct("!I").unpack_from

_ERSPAN_II = 0x88BE  # also type I when the GRE sequence flag is clear
_ERSPAN_III = 0x22EB
_GRE_CHECKSUM, _GRE_ROUTING, _GRE_KEY, _GRE_SEQUENCE = 0x8000, 0x4000, 0x2000, 0x1000


class TunnelMixin:
    """UDP and IP-protocol tunnels; needs the layer methods of ``Decoder``."""

    vxlan_ports: frozenset[int]
    geneve_ports: frozenset[int]
    vni_allow: frozenset[int] | None
    teredo_port: int
    max_tunnel_depth: int
    anomalies: Anomalies

    # The decoder's layer methods (``Decoder`` overrides each; real methods, not attribute
    # declarations, so compiled and interpreted code dispatch them the same way).
    def _ether(self, buf: bytes, off: int, end: int, depth: int) -> Segment | None:
        raise NotImplementedError

    def _ipv4(self, buf: bytes, off: int, end: int, depth: int) -> Segment | None:
        raise NotImplementedError

    def _ipv6(self, buf: bytes, off: int, end: int, depth: int) -> Segment | None:
        raise NotImplementedError

    def _ethertype(self, buf: bytes, etype: int, off: int, end: int, depth: int
                   ) -> Segment | None:
        raise NotImplementedError

    def _drop(self, anomaly: str) -> Segment | None:
        raise NotImplementedError

    def _udp(self, buf: bytes, off: int, end: int, depth: int) -> Segment | None:
        """Open a UDP tunnel (VXLAN, GENEVE, Teredo) or count a plain datagram."""
        if off + 8 > end:
            return self._drop("decode_truncated")
        sport, dport, ulen = _UDP(buf, off)
        if ulen:  # zero: jumbogram or GSO, the IP length already bounds it
            if ulen < 8 or off + ulen > end:
                return self._drop("decode_bad_udp_header")
            end = off + ulen
        off += 8
        if dport in self.vxlan_ports:
            kind = 1
        elif dport in self.geneve_ports:
            kind = 2
        elif dport == self.teredo_port or sport == self.teredo_port:
            kind = 3
        else:
            return self._drop("decode_not_tcp")
        if depth >= self.max_tunnel_depth:
            return self._drop("decode_tunnel_too_deep")
        if kind == 3:
            return self._teredo(buf, off, end, depth + 1)
        if off + 8 > end:
            return self._drop("decode_truncated")
        if kind == 1:  # flags, 3 reserved, VNI (3 bytes), reserved; inner Ethernet follows
            if not buf[off] & VXLAN_FLAG_VNI:
                return self._drop("decode_bad_tunnel_header")
        elif buf[off] >> 6:  # GENEVE version 0 only
            return self._drop("decode_bad_tunnel_header")
        if self.vni_allow is not None and _U32(buf, off + 4)[0] >> 8 not in self.vni_allow:
            return self._drop("decode_vni_filtered")
        if kind == 1:
            return self._ether(buf, off + 8, end, depth + 1)
        # GENEVE: ver (2 bits) + option length in 4-byte words (6 bits), flags, protocol type
        inner = off + 8 + ((buf[off] & 0x3F) << 2)
        protocol = buf[off + 2] << 8 | buf[off + 3]
        if protocol == ETH_TRANSPARENT_BRIDGING:
            return self._ether(buf, inner, end, depth + 1)
        return self._ethertype(buf, protocol, inner, end, depth + 1)

    def _teredo(self, buf: bytes, off: int, end: int, depth: int) -> Segment | None:
        """Skip the optional authentication and origin indicators, then decode IPv6."""
        for _ in range(2):  # authentication (0x0001) may precede origin (0x0000)
            if off + 2 > end or buf[off] != 0:
                break
            if buf[off + 1] == 1:  # id len, auth len, client id, auth value, nonce(8), conf(1)
                if off + 4 > end:
                    return self._drop("decode_truncated")
                off += 4 + buf[off + 2] + buf[off + 3] + 9
            elif buf[off + 1] == 0:  # origin port + origin address, both obfuscated
                off += 8
            else:
                break
        if off >= end or buf[off] >> 4 != 6:
            return self._drop("decode_not_tcp")  # a Teredo control packet, not IPv6 data
        return self._ipv6(buf, off, end, depth)

    def _ip_tunnel(self, proto: int, buf: bytes, off: int, end: int, depth: int
                   ) -> Segment | None:
        """Decode the payload of IP protocol ``proto`` when it is GRE or IP-in-IP."""
        if depth >= self.max_tunnel_depth:
            return self._drop("decode_tunnel_too_deep")
        if proto == 4:
            return self._ipv4(buf, off, end, depth + 1)
        if proto == 41:
            return self._ipv6(buf, off, end, depth + 1)
        # GRE (47): flags + version, protocol type, then optional 4-byte words
        if off + 4 > end:
            return self._drop("decode_truncated")
        flags = buf[off] << 8 | buf[off + 1]
        if flags & 0x0007 or flags & _GRE_ROUTING:  # version 1 (PPTP) or source routing
            return self._drop("decode_bad_tunnel_header")
        protocol = buf[off + 2] << 8 | buf[off + 3]
        off += 4
        if flags & _GRE_CHECKSUM:
            off += 4
        if flags & _GRE_KEY:
            off += 4
        if flags & _GRE_SEQUENCE:
            off += 4
        if protocol == ETH_TRANSPARENT_BRIDGING:
            return self._ether(buf, off, end, depth + 1)
        if protocol == _ERSPAN_II:  # type II has an 8-byte header; type I (no sequence) none
            return self._ether(buf, off + 8 if flags & _GRE_SEQUENCE else off, end, depth + 1)
        if protocol == _ERSPAN_III:  # 12-byte header + 8-byte platform sub-header if O flag
            if off + 12 > end:
                return self._drop("decode_truncated")
            return self._ether(buf, off + (20 if buf[off + 11] & 1 else 12), end, depth + 1)
        return self._ethertype(buf, protocol, off, end, depth + 1)

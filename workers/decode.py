"""Packet decoding: one captured frame in, one TCP ``Segment`` (or ``None``) out.

Strategy: this runs once per captured packet, so it is written for CPython speed. Each layer
is a method taking ``(buf, off, end, depth)``: the frame is never sliced until the final
payload (and the two packed addresses) is cut for the ``Segment``; headers are read with
precompiled ``struct.Struct.unpack_from`` or single-byte indexing; ``end`` narrows as each
length field is trusted (Ethernet trailer padding disappears when IPv4 total length or IPv6
payload length sets ``end``). Every way a frame can fail to be a TCP segment is counted by
name in ``self.anomalies`` and returns ``None``; nothing raises.

Fast path: the common frame (Ethernet or Linux SLL, IPv4 without options or IPv6 without
extension headers, then TCP) is checked at fixed offsets (``plain_tcp4`` for IPv4, which
the capture's sharder also uses to ship the frame's header bytes as they are), read with
one ``unpack_from`` and accepted only when every check of the general path would pass (no
fragment, lengths inside the captured bytes, a valid TCP data offset); anything else,
including everything that would be counted as an anomaly, takes the general path below, so
both give the same result.

Covered layers: Ethernet with any stack of 802.1Q / 802.1ad / 0x9100 tags (bounded) and
PPPoE sessions (RFC 2516); Linux cooked SLL / SLL2; BSD NULL / LOOP; raw IP. IPv4 with
options (RFC 791; fragments other than a whole datagram are skipped); IPv6 with hop-by-hop,
routing, destination-options, fragment (atomic ones, RFC 6946, pass) and AH headers
(RFC 8200 section 4, RFC 4302). Tunnels (VXLAN, GENEVE, Teredo, GRE/ERSPAN, IP-in-IP) are
opened in the packet path by ``workers/decode_tunnel.py``, nested up to a bound. A zero
IPv4 total length or IPv6 payload length (TSO/GSO super-frames, jumbograms) means "to the end
of the captured bytes". Checksums are not verified: offloading makes them wrong in captures.
"""
from __future__ import annotations

import struct
from typing import Final

from workers.anomalies import Anomalies
from workers.decode_link import (
    AF_INET, AF_INET6_VALUES, ETH_IPV4, ETH_IPV6, ETH_PPPOE_SESSION, ETH_VLAN_TAGS,
    IP_TUNNEL_PROTOCOLS, IPPROTO_TCP, IPPROTO_UDP, IPV6_EXT_AH, IPV6_EXT_FRAGMENT,
    IPV6_EXTENSIONS, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, PPP_IPV4, PPP_IPV6, RAW_IP_LINKTYPES,
)
from workers.decode_tunnel import TunnelMixin
from workers.segment import Segment

_IPV4: Final = struct.Struct("!BxHxxHxB").unpack_from  # ver/ihl, total length, flags/frag, protocol
_IPV6: Final = struct.Struct("!4xHB").unpack_from  # payload length, next header
_TCP: Final = struct.Struct("!HHIIBB").unpack_from  # ports, seq, ack, data offset, flags
_U16: Final = struct.Struct("!H").unpack_from
_U32: Final = struct.Struct("!I").unpack_from
_U32_LE: Final = struct.Struct("<I").unpack_from
# Fast path, read from the EtherType on: EtherType, then IPv4 (ver/ihl, total length,
# flags/fragment, protocol, addresses) + TCP, or IPv6 (version, payload length, next header,
# addresses) + TCP. TCP: ports, seq, ack, data offset, flags.
_FAST_V6: Final = struct.Struct("!HB3xHBx16s16sHHIIBB")  # 56 bytes
_FAST6: Final = _FAST_V6.unpack_from
_FAST_ETHERTYPE_AT: Final = {LINKTYPE_ETHERNET: 12, LINKTYPE_LINUX_SLL: 14}
# From IPv4 offset 12 in a plain frame: addresses, then TCP ports, seq, ack, data offset, flags
_PLAIN4_FIELDS: Final = struct.Struct("!4s4sHHIIxB").unpack_from
_NOT_PLAIN: Final = (-1, 0, 0)
_new_tuple = tuple.__new__  # builds the Segment without the NamedTuple __new__ frame


def plain_tcp4(linktype: int, frame: bytes) -> tuple[int, int, int]:
    """(IPv4 header offset, payload start, payload end) of the common frame, else (-1, 0, 0).

    The common frame: Ethernet or Linux SLL, IPv4 without options and not a fragment, TCP
    with a valid data offset, lengths inside the captured bytes: a frame every check of the
    general path passes without an anomaly. Bytes 12 to 34 from the IPv4 offset are then the
    addresses and the TCP ports, seq, ack, data offset and flags (``sniffer/codec.py`` ships
    them as they are). Byte reads only: nothing is allocated.
    """
    if linktype == LINKTYPE_ETHERNET:
        ip = 14
    elif linktype == LINKTYPE_LINUX_SLL:
        ip = 16
    else:
        return _NOT_PLAIN
    size = len(frame)
    if size < ip + 40 or frame[ip - 2] != 0x08 or frame[ip - 1] != 0 or frame[ip] != 0x45 \
            or frame[ip + 9] != IPPROTO_TCP or frame[ip + 6] & 0x3F or frame[ip + 7]:
        return _NOT_PLAIN
    doff = frame[ip + 32]
    start = ip + 20 + ((doff >> 4) << 2)
    end = ip + (frame[ip + 2] << 8 | frame[ip + 3])
    if doff < 0x50 or start > end or end > size:
        return _NOT_PLAIN
    return ip, start, end


class Decoder(TunnelMixin):
    """Decodes captured frames into TCP segments, counting what it cannot use."""

    def __init__(
        self,
        vxlan_ports: tuple[int, ...] = (4789,),
        geneve_ports: tuple[int, ...] = (6081,),
        vni_allow: frozenset[int] | None = None,
        teredo_port: int = 3544,
        max_tunnel_depth: int = 4,
        max_vlan_tags: int = 8,
        max_ipv6_ext_headers: int = 8,
    ) -> None:
        """``vni_allow`` (``None`` = every VNI) applies to VXLAN and GENEVE alike."""
        self.vxlan_ports = frozenset(vxlan_ports)
        self.geneve_ports = frozenset(geneve_ports)
        self.vni_allow = None if vni_allow is None else frozenset(vni_allow)
        self.teredo_port = teredo_port
        self.max_tunnel_depth = max_tunnel_depth
        self.max_vlan_tags = max_vlan_tags
        self.max_ipv6_ext_headers = max_ipv6_ext_headers
        self.anomalies = Anomalies()

    def decode(self, linktype: int, frame: bytes) -> Segment | None:
        """Return the TCP segment carried by ``frame`` or ``None`` (and count why not)."""
        try:
            ip, start, ip_end = plain_tcp4(linktype, frame)
            if ip >= 0:
                src, dst, sport, dport, seq, ack, flags = _PLAIN4_FIELDS(frame, ip + 12)
                return _new_tuple(Segment, (src, sport, dst, dport, seq, ack, flags,
                                            frame[start:ip_end]))
            et = _FAST_ETHERTYPE_AT.get(linktype)
            size = len(frame)
            if et is not None and size >= et + 62:
                if frame[et] << 8 | frame[et + 1] == ETH_IPV6:
                    (_, vtc, plen, nh, src, dst, sport, dport, seq, ack, doff,
                     flags) = _FAST6(frame, et)
                    if vtc >> 4 == 6 and nh == IPPROTO_TCP and doff >= 0x50:
                        start, ip_end = et + 42 + ((doff >> 4) << 2), et + 42 + plen
                        if start <= ip_end <= size:
                            return _new_tuple(Segment, (src, sport, dst, dport, seq, ack,
                                                        flags, frame[start:ip_end]))
            if linktype == LINKTYPE_ETHERNET:
                end = len(frame)
                if end < 14:
                    return self._drop("decode_truncated")
                return self._ethertype(frame, frame[12] << 8 | frame[13], 14, end, 0)
            return self._other_link(linktype, frame)
        except Exception:  # a bug, not bad input: never let one packet stop a worker
            return self._drop("decode_error")

    def _drop(self, anomaly: str) -> Segment | None:
        """Count ``anomaly``; always None (no segment), so callers can return it."""
        self.anomalies.hit(anomaly)
        return None

    def _other_link(self, linktype: int, frame: bytes) -> Segment | None:
        end = len(frame)
        if linktype == LINKTYPE_LINUX_SLL:  # ..., protocol (EtherType) at bytes 14-15
            if end < 16:
                return self._drop("decode_truncated")
            return self._ethertype(frame, frame[14] << 8 | frame[15], 16, end, 0)
        if linktype == LINKTYPE_LINUX_SLL2:  # protocol (EtherType) first, 20-byte header
            if end < 20:
                return self._drop("decode_truncated")
            return self._ethertype(frame, frame[0] << 8 | frame[1], 20, end, 0)
        if linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
            if end < 4:
                return self._drop("decode_truncated")
            if linktype == LINKTYPE_LOOP:
                family = _U32(frame, 0)[0]
            else:  # host byte order of the capturing machine: every AF value is < 256
                family = _U32_LE(frame, 0)[0]
                if family > 0xFFFF:
                    family = _U32(frame, 0)[0]
            if family == AF_INET:
                return self._ipv4(frame, 4, end, 0)
            if family in AF_INET6_VALUES:
                return self._ipv6(frame, 4, end, 0)
            return self._drop("decode_not_ip")
        if linktype in RAW_IP_LINKTYPES:
            return self._raw_ip(frame, 0, end, 0)
        if linktype == LINKTYPE_IPV4:
            return self._ipv4(frame, 0, end, 0)
        if linktype == LINKTYPE_IPV6:
            return self._ipv6(frame, 0, end, 0)
        return self._drop("decode_unknown_linktype")

    def _raw_ip(self, buf: bytes, off: int, end: int, depth: int) -> Segment | None:
        if off >= end:
            return self._drop("decode_truncated")
        version = buf[off] >> 4
        if version == 4:
            return self._ipv4(buf, off, end, depth)
        if version == 6:
            return self._ipv6(buf, off, end, depth)
        return self._drop("decode_bad_ip_header")

    def _ether(self, buf: bytes, off: int, end: int, depth: int) -> Segment | None:
        if off + 14 > end:
            return self._drop("decode_truncated")
        return self._ethertype(buf, buf[off + 12] << 8 | buf[off + 13], off + 14, end, depth)

    def _ethertype(self, buf: bytes, etype: int, off: int, end: int, depth: int
                   ) -> Segment | None:
        """Dispatch on an EtherType whose payload starts at ``off``, peeling VLAN tags."""
        if etype == ETH_IPV4:
            return self._ipv4(buf, off, end, depth)
        tags = 0
        while etype in ETH_VLAN_TAGS:  # tag = TCI (2 bytes) + the next EtherType (2 bytes)
            if tags == self.max_vlan_tags:
                return self._drop("decode_vlan_too_deep")
            if off + 4 > end:
                return self._drop("decode_truncated")
            etype = buf[off + 2] << 8 | buf[off + 3]
            off += 4
            tags += 1
        if etype == ETH_IPV4:
            return self._ipv4(buf, off, end, depth)
        if etype == ETH_IPV6:
            return self._ipv6(buf, off, end, depth)
        if etype == ETH_PPPOE_SESSION:  # ver/type, code, session id, length, PPP protocol
            if off + 8 > end:
                return self._drop("decode_truncated")
            if buf[off + 6] & 1:  # a compressed 1-byte protocol field (RFC 1661 section 6.5)
                ppp, off = buf[off + 6], off + 7
            else:
                ppp, off = buf[off + 6] << 8 | buf[off + 7], off + 8
            if ppp == PPP_IPV4:
                return self._ipv4(buf, off, end, depth)
            if ppp == PPP_IPV6:
                return self._ipv6(buf, off, end, depth)
        return self._drop("decode_not_ip")

    def _ipv4(self, buf: bytes, off: int, end: int, depth: int) -> Segment | None:
        if off + 20 > end:
            return self._drop("decode_truncated")
        ver_ihl, total, frag, proto = _IPV4(buf, off)
        hlen = (ver_ihl & 15) << 2
        if ver_ihl >> 4 != 4 or hlen < 20 or (total and total < hlen):
            return self._drop("decode_bad_ip_header")
        if total:
            ip_end = off + total
            if ip_end > end:
                return self._drop("decode_snaplen_cut")
        else:  # TSO/GSO super-frame: the length is "whatever was captured"
            ip_end = end
            if off + hlen > end:
                return self._drop("decode_truncated")
        if frag & 0x3FFF:  # more-fragments flag or a fragment offset
            return self._drop("decode_ip_fragment")
        if proto == IPPROTO_TCP:
            return self._tcp(buf, off + hlen, ip_end, buf[off + 12:off + 16],
                             buf[off + 16:off + 20])
        if proto == IPPROTO_UDP:
            return self._udp(buf, off + hlen, ip_end, depth)
        if proto in IP_TUNNEL_PROTOCOLS:
            return self._ip_tunnel(proto, buf, off + hlen, ip_end, depth)
        return self._drop("decode_not_tcp")

    def _ipv6(self, buf: bytes, off: int, end: int, depth: int) -> Segment | None:
        if off + 40 > end:
            return self._drop("decode_truncated")
        if buf[off] >> 4 != 6:
            return self._drop("decode_bad_ip_header")
        plen, nh = _IPV6(buf, off)
        if plen:
            ip_end = off + 40 + plen
            if ip_end > end:
                return self._drop("decode_snaplen_cut")
        else:  # jumbogram (RFC 2675) or a GSO super-frame
            ip_end = end
        pos = off + 40
        exts = 0
        while nh != IPPROTO_TCP:
            if nh == IPPROTO_UDP:
                return self._udp(buf, pos, ip_end, depth)
            if nh not in IPV6_EXTENSIONS:
                if nh in IP_TUNNEL_PROTOCOLS:
                    return self._ip_tunnel(nh, buf, pos, ip_end, depth)
                return self._drop("decode_not_tcp")  # ICMPv6, ESP, no-next-header, ...
            if exts == self.max_ipv6_ext_headers:
                return self._drop("decode_ipv6_too_many_ext")
            if pos + 8 > ip_end:
                return self._drop("decode_truncated")
            if nh == IPV6_EXT_FRAGMENT:  # offset (13 bits), 2 reserved bits, M flag
                if _U16(buf, pos + 2)[0] & 0xFFF9:
                    return self._drop("decode_ip_fragment")
                size = 8  # an atomic fragment carries the whole datagram
            elif nh == IPV6_EXT_AH:  # length in 4-octet units, minus 2
                size = (buf[pos + 1] + 2) << 2
            else:  # hop-by-hop, routing, destination options: 8-octet units after the first
                size = (buf[pos + 1] + 1) << 3
            nh = buf[pos]
            pos += size
            exts += 1
        return self._tcp(buf, pos, ip_end, buf[off + 8:off + 24], buf[off + 24:off + 40])

    def _tcp(self, buf: bytes, off: int, end: int, src: bytes, dst: bytes) -> Segment | None:
        if off + 20 > end:
            return self._drop("decode_truncated")
        sport, dport, seq, ack, data_off, flags = _TCP(buf, off)
        hlen = (data_off >> 4) << 2
        if hlen < 20 or off + hlen > end:
            return self._drop("decode_bad_tcp_header")
        return _new_tuple(Segment, (src, sport, dst, dport, seq, ack, flags, buf[off + hlen:end]))

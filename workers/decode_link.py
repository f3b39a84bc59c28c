"""Link-layer and protocol numbers the packet decoder understands, and its anomaly names.

Strategy: plain module constants (ints and frozensets) so ``workers/decode.py`` can compare
them with ``==`` and ``in`` on the hot path without attribute chains. Numbers come from the
tcpdump.org link-type registry (LINKTYPE_*), IEEE 802 EtherTypes, RFC 2516 (PPPoE),
RFC 7348 (VXLAN), RFC 8926 (GENEVE) and RFC 4380 (Teredo).
"""
from __future__ import annotations

from typing import Final

from workers.anomalies import register

# LINKTYPE_* values as stored in pcap / pcapng files and reported by libpcap.
LINKTYPE_NULL: Final = 0  # BSD loopback, 4-byte address family in the capturing host's byte order
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW_BSD: Final = 12  # DLT_RAW on most BSDs
LINKTYPE_RAW_OPENBSD: Final = 14  # DLT_RAW on OpenBSD
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108  # OpenBSD loopback, address family in network byte order
LINKTYPE_LINUX_SLL: Final = 113  # Linux cooked capture v1 (16-byte header), the old "any" device
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276  # Linux cooked capture v2 (20-byte header)

RAW_IP_LINKTYPES: Final = frozenset({LINKTYPE_RAW_BSD, LINKTYPE_RAW_OPENBSD, LINKTYPE_RAW})
#: Every link type ``Decoder.decode`` accepts.
SUPPORTED_LINKTYPES: Final = frozenset(
    {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
     LINKTYPE_IPV4, LINKTYPE_IPV6} | RAW_IP_LINKTYPES
)

# Address families in NULL / LOOP headers: AF_INET is 2 everywhere, AF_INET6 differs per OS
# (Linux 10, NetBSD/OpenBSD 24, FreeBSD/DragonFly 28, macOS 30).
AF_INET: Final = 2
AF_INET6_VALUES: Final = frozenset({10, 24, 28, 30})

# EtherTypes.
ETH_IPV4: Final = 0x0800
ETH_IPV6: Final = 0x86DD
ETH_VLAN_TAGS: Final = frozenset({0x8100, 0x88A8, 0x9100})  # 802.1Q, 802.1ad (QinQ), old QinQ
ETH_PPPOE_SESSION: Final = 0x8864
ETH_TRANSPARENT_BRIDGING: Final = 0x6558  # GENEVE/GRE protocol type for an inner Ethernet frame
PPP_IPV4: Final = 0x0021
PPP_IPV6: Final = 0x0057

# IP protocol / IPv6 next-header numbers.
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPV6_EXT_FRAGMENT: Final = 44
IPV6_EXT_AH: Final = 51
#: Hop-by-hop, routing, fragment, destination options and AH (RFC 8200 section 4).
IPV6_EXTENSIONS: Final = frozenset({0, 43, IPV6_EXT_FRAGMENT, 60, IPV6_EXT_AH})
IP_TUNNEL_PROTOCOLS: Final = frozenset({4, 41, 47})  # IPv4-in-IP, IPv6-in-IP, GRE

VXLAN_FLAG_VNI: Final = 0x08  # the "I" flag: the VNI field is valid (RFC 7348 section 5)

ANOMALIES = register({
    "decode_unknown_linktype": "packet of a link type the decoder does not know",
    "decode_truncated": "a header is cut short (frame ends before the header does)",
    "decode_snaplen_cut": "IP length exceeds the captured bytes (raise the snaplen)",
    "decode_not_ip": "link-layer payload is not IPv4/IPv6 (ARP, LLDP, other PPP, ...)",
    "decode_not_tcp": "IP packet that is neither TCP nor a tunnel the decoder opens",
    "decode_bad_ip_header": "IP version, header length or total length is impossible",
    "decode_bad_tcp_header": "TCP data offset below 5 words or beyond the IP payload",
    "decode_bad_udp_header": "UDP length below 8 or beyond the IP payload",
    "decode_ip_fragment": "IPv4/IPv6 fragment skipped (no IP reassembly)",
    "decode_vlan_too_deep": "more stacked VLAN tags than the configured limit",
    "decode_ipv6_too_many_ext": "more IPv6 extension headers than the configured limit",
    "decode_bad_tunnel_header": "VXLAN without the VNI flag, GENEVE/GRE of an unknown version",
    "decode_vni_filtered": "VXLAN/GENEVE packet whose VNI is not in the allow-list",
    "decode_tunnel_too_deep": "tunnels nested deeper than the configured limit",
    "decode_error": "unexpected decoder failure (a bug: please report the packet)",
})

"""The kernel capture filter (BPF, tcpdump syntax) derived from the capture settings.

Strategy: with ``capture.no_filter`` there is none; a user's ``capture.bpf_filter`` is used
as given; otherwise the filter is built from the ports, ``drop_pure_acks`` and the engine:
only TCP (on the configured ports), without pure ACKs (they carry no HTTP bytes and are a large
share of a busy link's packets), plus the VXLAN/Geneve tunnel ports in mirror mode. Dropping
in the kernel is what keeps the capture process's per-packet cost off those packets. The
strings are checked by compiling them (tcpdump) and by running them over a pcap file in
``tests/sniffer/test_config_bpf.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sniffer.config_schema import CaptureConfig

# BPF: libpcap's ``tcp[...]`` indexing is IPv4-only (on ``ip6`` it rejects everything), so
# IPv6 offsets are spelled out from the fixed 40-byte header. A segment is kept when it has
# SYN/FIN/RST (flags & 7) or a payload: IPv4 total length - IP header - TCP header, IPv6
# payload length - TCP header. IPv6 with extension headers (next header != 6) is kept
# unfiltered, since its TCP header offset is unknown in BPF. IP lengths, not frame lengths,
# so Ethernet padding never makes a pure ACK look like data.
_V4_KEEP = (
    "(ip and (tcp[13] & 7 != 0 or ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0))"
)
_V6_KEEP = "(ip6 and (ip6[6] != 6 or ip6[53] & 7 != 0 or ip6[4:2] - ((ip6[52] & 0xf0) >> 2) != 0))"


def build_bpf(capture: CaptureConfig) -> str | None:
    """The kernel filter for ``capture``: None with no_filter, else the user's or ours.

    Ours: ``tcp [and (port P or ...)] [and <not a pure ACK>]``; in mirror mode that,
    or the VXLAN/Geneve tunnel traffic (``udp and (dst port 4789 or dst port 6081)``).
    """
    if capture.no_filter:
        return None
    if capture.bpf_filter:
        return capture.bpf_filter
    tcp = "tcp"
    if capture.ports:
        tcp += " and (" + " or ".join(f"port {p}" for p in capture.ports) + ")"
    if capture.drop_pure_acks:
        tcp += f" and ({_V4_KEEP} or {_V6_KEEP})"
    tunnel_ports = capture.vxlan_ports + capture.geneve_ports
    if capture.engine != "mirror" or not tunnel_ports:
        return tcp
    return f"({tcp}) or (udp and (" + " or ".join(f"dst port {p}" for p in tunnel_ports) + "))"

"""The sans-IO core: TCP reassembly, HTTP/1.x parsing, pairing and API-call records.

Nothing in this package opens files or sockets, reads a clock, sleeps or starts a process:
bytes and packet timestamps go in, plain values come out.
"""

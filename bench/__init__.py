"""Benchmark harness for network-sniffer (issue 7): see bench/README.md."""

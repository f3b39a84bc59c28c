"""Reference traffic made for real: wrk against nginx and a small app, captured by tcpdump.

Strategy: a client and a server namespace joined by a veth (``tests/netns.py``). nginx (our
own configuration: many connections, gzip, static JSON documents of 1-100 KB, a POST
endpoint) listens on port 80 and the Python JSON app of ``tests/netns.py`` on 8081, both in
the server namespace. tcpdump captures the server end of the veth (snaplen 262144, a 128 MiB
kernel buffer) and is confirmed ready ("listening on") before any request; wrk runs in the
client namespace with a Lua script that bounds the call count, ``-d`` bounds the time. After
the servers stop (gracefully: nginx flushes its access log), the true call count is the
number of access-log lines. tcpdump stops with SIGINT; its drop report goes into the
metadata so a reader can tell a complete reference capture from a lossy one.

Captures are cached as ``bench/out/<profile>-<key>.pcap`` (+ ``.json`` metadata), the key
being a hash of the profile's parameters and of the scripts that made it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.netns import Namespace, http_server, two_hosts, wait_port

BENCH = Path(__file__).resolve().parent
TAG = "bench"
SUBNET = "10.79.0"
DOC_SIZES_KB = (1, 2, 5, 10, 20, 50, 100)


@dataclass(frozen=True)
class Profile:
    """How to make one reference capture."""

    name: str
    nginx_calls: int
    """upper bound on calls to nginx (wrk stops each thread at its share)."""
    nginx_conns: int
    nginx_script: str
    close_every: int = 0
    app_calls: int = 0
    app_conns: int = 0
    max_s: int = 60
    """upper bound on each wrk run's duration."""
    threads: int = 2

    def key(self) -> str:
        """Cache key: the parameters, the server set-up and the scripts that make the traffic."""
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        h.update(NGINX_CONF.encode() + repr(DOC_SIZES_KB).encode())
        for name in ("small.lua", "mixed.lua"):
            h.update((BENCH / name).read_bytes())
        return h.hexdigest()[:10]


PROFILES = {
    "small": Profile("small", 200_000, 32, "small.lua", max_s=40),
    "mixed": Profile("mixed", 20_000, 10_000, "mixed.lua", close_every=10,
                     app_calls=2_000, app_conns=20, max_s=40),
}
QUICK_PROFILES = {
    "small": Profile("small", 30_000, 16, "small.lua", max_s=15),
    "mixed": Profile("mixed", 8_000, 1_000, "mixed.lua", close_every=10,
                     app_calls=1_000, app_conns=10, max_s=15),
}

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 19000;
user root root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 18000; multi_accept on; }}
http {{
    access_log {d}/access.log combined buffer=256k flush=1s;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/json;
    types {{ application/json json; }}
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    gzip on;
    gzip_types application/json;
    gzip_min_length 512;
    gzip_comp_level 1;
    server {{
        listen {addr}:80 backlog=16384;
        root {d}/www;
        location = /small {{ return 200 '{{"ok":true,"id":42,"name":"small"}}'; }}
        location /api/ {{ return 201 '{{"created":true,"id":7}}'; }}
        location /data/ {{ }}
    }}
}}
"""


def write_docs(www: Path) -> None:
    """Static JSON documents of 1-100 KB (compressible, like real API payloads)."""
    data = www / "data"
    data.mkdir(parents=True, exist_ok=True)
    for kb in DOC_SIZES_KB:
        items, size, i = [], 2, 0
        while size < kb * 1000 - 80:
            item = json.dumps({"id": i, "name": f"item {i}", "price": (i * 37) % 1000 / 10,
                               "tags": [f"t{i % 7}", f"t{i % 11}"]})
            items.append(item)
            size += len(item) + 1
            i += 1
        (data / f"doc{kb}k.json").write_text("[" + ",".join(items) + "]")


@dataclass
class Capture:
    """A reference capture and what is known about it."""

    path: Path
    profile: str
    true_calls: int
    """access-log lines of nginx and the app."""
    nginx_calls: int
    app_calls: int
    tcpdump: dict[str, int]
    nginx_statuses: dict[str, int]
    """499 = the client closed before the answer (wrk stopping): no response on the wire."""
    wrk: list[str]
    packets: int
    seconds: float

    def save(self) -> None:
        """Write the metadata next to the capture."""
        meta = {**asdict(self), "path": str(self.path)}
        self.path.with_suffix(".json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, pcap: Path) -> Capture | None:
        """The cached capture at ``pcap``, or None."""
        meta = pcap.with_suffix(".json")
        if not (pcap.exists() and meta.exists()):
            return None
        doc = json.loads(meta.read_text())
        doc["path"] = pcap
        return cls(**doc)


def tcpdump_stats(stderr: str) -> dict[str, int]:
    """tcpdump's closing report: captured, received by filter, dropped by kernel."""
    out = {}
    for key, pattern in (("captured", r"(\d+) packets? captured"),
                         ("received", r"(\d+) packets? received by filter"),
                         ("dropped", r"(\d+) packets? dropped by kernel")):
        m = re.search(pattern, stderr)
        out[key] = int(m.group(1)) if m else -1
    return out


class Tcpdump:
    """tcpdump on an interface, confirmed ready before use, stopped with SIGINT."""

    def __init__(self, ns: Namespace | None, ifname: str, write_to: str,
                 bpf: str = "tcp", buffer_kib: int = 131072) -> None:
        self.err = tempfile.NamedTemporaryFile(prefix="bench-tcpdump-", suffix=".err")
        argv = ["tcpdump", "-i", ifname, "-s", "262144", "-B", str(buffer_kib), "-n",
                "-w", write_to, *([bpf] if bpf else [])]
        popen = ns.popen if ns is not None else (lambda *a, **k: subprocess.Popen(list(a), **k))
        self.proc = popen(*argv, stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.monotonic() + 15
        while b"listening on" not in Path(self.err.name).read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tcpdump did not start: "
                                   + Path(self.err.name).read_text(errors="replace"))
            time.sleep(0.05)

    def stop(self) -> dict[str, int]:
        """SIGINT, wait, and return the drop report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        text = Path(self.err.name).read_text(errors="replace")
        self.err.close()
        return tcpdump_stats(text)


def _raise_nofile() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _wrk(ns: Namespace, profile: Profile, url: str, calls: int, conns: int,
         script: str, extra: list[str]) -> str:
    threads = min(profile.threads, conns)
    per_thread = max(1, calls // threads)
    argv = ns.exec_argv("wrk", "-t", str(threads), "-c", str(conns), "-d", f"{profile.max_s}s",
                        "--timeout", "10s", "-s", str(BENCH / script), url, "--",
                        str(per_thread), *extra)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_raise_nofile)
    _interrupt_when_threads_end(proc, profile.max_s + 30)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip()[:300]}")
    return out


def _interrupt_when_threads_end(proc: subprocess.Popen[str], timeout_s: float) -> None:
    """wrk's threads stop at the Lua limit but its main thread sleeps for all of ``-d``:
    SIGINT (which wrk handles by reporting and exiting) once only the main thread is left."""
    task_dir = Path(f"/proc/{proc.pid}/task")
    end = time.monotonic() + timeout_s
    seen_threads = False
    while proc.poll() is None and time.monotonic() < end:
        try:
            tasks = len(os.listdir(task_dir))
        except OSError:
            break
        if tasks > 1:
            seen_threads = True
        elif seen_threads:
            proc.send_signal(signal.SIGINT)
            return
        time.sleep(0.1)
    if proc.poll() is None and time.monotonic() >= end:
        proc.send_signal(signal.SIGINT)


def _nginx_log(path: Path) -> tuple[int, dict[str, int]]:
    """Lines of an nginx "combined" access log and their count per status code."""
    statuses: dict[str, int] = {}
    lines = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                lines += 1
                parts = line.split(b'"')
                status = parts[2].split()[0].decode() if len(parts) > 2 and parts[2].split() \
                    else "?"
                statuses[status] = statuses.get(status, 0) + 1
    except FileNotFoundError:
        pass
    return lines, statuses


def _packets(pcap: Path) -> int:
    res = subprocess.run(["capinfos", "-c", "-M", str(pcap)], capture_output=True, text=True,
                         timeout=300)
    m = re.search(r"Number of packets:\s+(\d+)", res.stdout)
    return int(m.group(1)) if m else -1


def make_capture(profile: Profile, out_dir: Path, say=print) -> Capture:
    """The cached capture for ``profile``, made now when missing."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pcap = out_dir / f"{profile.name}-{profile.key()}.pcap"
    cached = Capture.load(pcap)
    if cached is not None:
        say(f"traffic: {profile.name}: cached {pcap.name} ({cached.true_calls} calls)")
        return cached
    say(f"traffic: {profile.name}: generating (wrk, nginx, tcpdump; up to "
        f"{profile.max_s * (2 if profile.app_calls else 1)} s)")
    work = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    write_docs(work / "www")
    t0 = time.monotonic()
    wrk_out: list[str] = []
    tmp_pcap = pcap.with_suffix(".tmp")
    with two_hosts(TAG, v6=False, subnet=SUBNET) as (cli, srv, link):
        for ns in (cli, srv):
            ns.run("sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", check=False)
            ns.run("sysctl", "-qw", "net.core.somaxconn=16384", check=False)
            ns.run("sysctl", "-qw", "net.ipv4.tcp_max_syn_backlog=16384", check=False)
        cli.run("sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000", check=False)
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=work, addr=link.addr_b))
        nginx = srv.popen("nginx", "-p", str(work), "-e", str(work / "error.log"), "-c",
                          str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          preexec_fn=_raise_nofile)
        dump = None
        try:
            wait_port(srv, link.addr_b, 80)
            with http_server(srv, link.addr_b, 8081, kind="python") as app:
                app_start = app.request_count()  # wait_port's probe is not a call
                dump = Tcpdump(srv, link.if_b, str(tmp_pcap), "tcp port 80 or tcp port 8081")
                wrk_out.append(_wrk(cli, profile, f"http://{link.addr_b}/small"
                                    if profile.nginx_script == "small.lua"
                                    else f"http://{link.addr_b}/", profile.nginx_calls,
                                    profile.nginx_conns, profile.nginx_script,
                                    [str(profile.close_every), "nginx"]))
                if profile.app_calls:
                    wrk_out.append(_wrk(cli, profile, f"http://{link.addr_b}:8081/",
                                        profile.app_calls, profile.app_conns, "mixed.lua",
                                        [str(profile.close_every), "app"]))
                time.sleep(1.0)  # last ACKs and FINs onto the wire
                app_calls = app.request_count() - app_start
        finally:
            if nginx.poll() is None:
                nginx.send_signal(signal.SIGQUIT)  # graceful: flushes the access log
                try:
                    nginx.wait(30)
                except subprocess.TimeoutExpired:
                    nginx.kill()
                    nginx.wait(5)
            stats = dump.stop() if dump is not None else {}
    nginx_calls, statuses = _nginx_log(work / "access.log")
    subprocess.run(["rm", "-rf", str(work)], check=False)
    os.replace(tmp_pcap, pcap)
    cap = Capture(pcap, profile.name, nginx_calls + app_calls, nginx_calls, app_calls, stats,
                  statuses,
                  wrk_out, _packets(pcap), round(time.monotonic() - t0, 1))
    cap.save()
    say(f"traffic: {profile.name}: {cap.true_calls} calls, {cap.packets} packets, tcpdump "
        f"dropped {stats.get('dropped')} ({cap.seconds} s)")
    return cap


if __name__ == "__main__":  # python -m bench.traffic small|mixed [--quick]
    table = QUICK_PROFILES if "--quick" in sys.argv else PROFILES
    for name in [a for a in sys.argv[1:] if not a.startswith("-")] or list(table):
        print(make_capture(table[name], BENCH / "out"))

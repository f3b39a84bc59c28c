"""``network-sniffer read`` end to end: a real process, real files, real exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import C2S, S2C, CLIENT, SERVER, conversation
from tests.pcapgen import write_pcap

SNIFFER = [sys.executable, "-m", "sniffer"]
REQUEST = (b"POST /login?next=/home HTTP/1.1\r\nHost: api.test\r\nUser-Agent: t/1\r\n"
           b"Cookie: session=SECRET\r\nAuthorization: Bearer TOKEN\r\n"
           b"Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"pw\":\"hunter\"}")
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: s=NEW\r\n"
            b"Content-Length: 11\r\n\r\n{\"ok\":true}")


def many_connections(n: int) -> list:
    """``n`` connections, interleaved, each one call (different client ports)."""
    packets = []
    for i in range(n):
        client = (CLIENT[0], 41000 + i)
        conv = conversation([(C2S, REQUEST.replace(b"/home", b"/h%d" % i)), (S2C, RESPONSE)],
                            client=client, t0_ns=1_700_000_000_000_000_000 + i * 700_000)
        packets += conv
    packets.sort(key=lambda p: p.ts_ns)
    return packets


def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SNIFFER, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cap") / "calls.pcap"
    write_pcap(str(path), many_connections(40))
    return path


def calls(path: Path) -> list[list[list[str]]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_read_is_deterministic_and_the_same_for_any_worker_count(capture: Path,
                                                                  tmp_path: Path) -> None:
    outs = []
    for workers in ("1", "2", "3"):
        out = tmp_path / f"w{workers}.jsonl"
        r = run("read", str(capture), "-o", str(out), "--rules", "include debug",
                "--workers", workers)
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]
    got = [dict(c) for c in calls(tmp_path / "w1.jsonl")]
    assert [c["request_url"] for c in got] == [f"http://api.test/login?next=/h{i}"
                                               for i in range(40)]
    assert all(c["response_code"] == "200" and c["response_body"] == '{"ok":true}' for c in got)


def test_strict_default_rules_remove_secrets_and_bodies(capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "strict.jsonl"
    r = run("read", str(capture), "-o", str(out), "--workers", "1")
    assert r.returncode == 0, r.stderr
    first = calls(out)[0]
    keys = {k for k, _ in first}
    text = json.dumps(first)
    assert "SECRET" not in text and "TOKEN" not in text and "hunter" not in text
    assert "NEW" not in text and '"ok"' not in text
    assert dict(first)["request_url"] == "http://api.test/login"  # no query string
    assert {"request_header:user-agent", "response_header:content-type",
            "response_header:content-length", "request_method", "response_code"} <= keys
    assert not keys & {"request_header:cookie", "request_header:authorization",
                       "request_body", "response_body", "request_param:next"}


def test_truncated_capture_keeps_calls_before_the_damage(capture: Path, tmp_path: Path) -> None:
    data = capture.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "cut.jsonl"
    r = run("read", str(cut), "-o", str(out), "--rules", "include debug")
    assert r.returncode == 2
    assert f"{cut}: truncated" in r.stderr and "offset" in r.stderr
    assert 15 < len(calls(out)) < 40


@pytest.mark.parametrize("setup, message", [
    ("missing", "no such capture file"),
    ("garbage", "not a pcap or pcapng file"),
])
def test_bad_files_are_one_line_errors(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "x.pcap"
    if setup == "garbage":
        path.write_bytes(b"hello, not a capture")
    r = run("read", str(path))
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0]


def test_bad_rule_is_quoted(capture: Path) -> None:
    r = run("read", str(capture), "--rules", "/request_body/ frobnicate")
    assert r.returncode == 2
    assert "Invalid rule: /request_body/ frobnicate" in r.stderr


def test_bad_flag_is_one_line(capture: Path) -> None:
    r = run("read", str(capture), "--workers", "lots")
    assert r.returncode == 2 and "--workers" in r.stderr


def test_ports_restrict_what_is_read(tmp_path: Path) -> None:
    packets = conversation([(C2S, REQUEST), (S2C, RESPONSE)])
    other = conversation([(C2S, REQUEST), (S2C, RESPONSE)], server=(SERVER[0], 8080),
                         client=(CLIENT[0], 42000))
    path = tmp_path / "two.pcap"
    write_pcap(str(path), packets + other)
    out = tmp_path / "p.jsonl"
    r = run("read", str(path), "-o", str(out), "--ports", "8080", "--rules", "include debug")
    assert r.returncode == 0, r.stderr
    got = calls(out)
    assert len(got) == 1 and dict(got[0])["server_port"] == "8080"
    assert "packets=" in r.stderr and "calls=1" in r.stderr


def test_embedded_default_writes_gzip_ndjson_files(capture: Path, tmp_path: Path) -> None:
    """No -o and no capture URL: rotating gzip NDJSON files in the data directory."""
    import gzip

    data = tmp_path / "data"
    r = subprocess.run([*SNIFFER, "read", str(capture), "--rules", "include debug"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**__import__("os").environ, "SNIFFER_OUTPUT_DATA_DIR": str(data),
                            "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert r.returncode == 0, r.stderr
    files = sorted(data.glob("calls-*.ndjson.gz"))
    assert files, list(data.iterdir())
    lines = [json.loads(x) for f in files for x in gzip.decompress(f.read_bytes()).splitlines()]
    assert len(lines) == 40


def test_read_to_stdout(capture: Path) -> None:
    r = run("read", str(capture), "-o", "-", "--rules", "include debug")
    assert r.returncode == 0
    assert len([json.loads(x) for x in r.stdout.splitlines()]) == 40


def test_debug_export_local_keeps_a_copy_of_every_call(capture: Path, tmp_path: Path) -> None:
    """SNIFFER_DEBUG_ENABLED=true + SNIFFER_DEBUG_EXPORT=local (the original's debug export)."""
    import gzip
    import os

    data, out = tmp_path / "data", tmp_path / "main.jsonl"
    env = {**os.environ, "SNIFFER_OUTPUT_DATA_DIR": str(data), "SNIFFER_DEBUG_ENABLED": "true",
           "SNIFFER_DEBUG_EXPORT": "local",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([*SNIFFER, "read", str(capture), "-o", str(out), "--rules",
                        "include debug"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    copies = [x for f in sorted((data / "debug").glob("calls-*.ndjson.gz"))
              for x in gzip.decompress(f.read_bytes()).splitlines()]
    assert copies == out.read_bytes().splitlines() and len(copies) == 40


def test_children_do_not_import_the_command_line_again(capture: Path, tmp_path: Path) -> None:
    """Started from the installed console script, every child would run that script again
    as ``__mp_main__`` (multiprocessing's preparation) and so import ``sniffer.cli`` and its
    configuration stack once per child. The fork server preloads it: two imports in all (the
    supervisor's and the server's), whatever the number of workers."""
    script = Path(sys.executable).parent / "network-sniffer"
    if not script.exists():
        pytest.skip("no installed console script beside this interpreter")
    out = tmp_path / "calls.jsonl"
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    r = subprocess.run([str(script), "read", str(capture), "-o", str(out), "--workers", "3"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    imports = [line for line in r.stderr.splitlines() if line.startswith("import time:")
               and line.rsplit("|", 1)[-1].strip() == "sniffer.cli"]
    assert len(imports) == 2, imports
    assert len(calls(out)) == 40

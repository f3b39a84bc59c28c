#!/usr/bin/env bash
# Score `network-sniffer read` against the shared HTTP corpus (../shared/corpus).
#   scripts/corpus-score.sh [OUTDIR] [score.py options, e.g. -v or --case ID]
# Every capture is read with the rules that keep everything (`include debug`), one NDJSON
# file per case, then ../shared/corpus/score.py compares them with the peers' expectations.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${CORPUS:-../shared/corpus}
out=${1:-$(mktemp -d)}
shift || true
mkdir -p "$out"
py=.venv/bin/python
"$py" - "$corpus" "$out" <<'PY'
import json, subprocess, sys, os
corpus, out = sys.argv[1], sys.argv[2]
cases = json.load(open(os.path.join(corpus, "manifest.json")))["cases"]
for c in cases:
    target = os.path.join(out, c["case"] + ".jsonl")
    r = subprocess.run([".venv/bin/network-sniffer", "read", os.path.join(corpus, c["pcap"]),
                        "--rules", "include debug", "-o", target],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{c['case']}: exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]}")
PY
python3 "$corpus/score.py" "$out" "$@"

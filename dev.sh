#!/usr/bin/env bash
# The two quick-start commands (Debian bookworm, as root):
#   ./dev.sh run  [network-sniffer run options]   set everything up, then capture live
#   ./dev.sh test [pytest options]                set everything up, then run the whole suite
# Set-up (scripts/setup.sh) installs the Debian packages, makes .venv, builds pypcap and
# installs this package; it is quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")"
cmd=${1:-}
shift || true
case "$cmd" in
  run)
    SETUP_PROFILE=run ./scripts/setup.sh
    exec .venv/bin/network-sniffer run "$@"
    ;;
  test)
    SETUP_PROFILE=test ./scripts/setup.sh
    # every marker runs: live, docker, release and slow included
    exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
    ;;
  *)
    echo "usage: ./dev.sh run [options] | ./dev.sh test [pytest options]" >&2
    exit 2
    ;;
esac

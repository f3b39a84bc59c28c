#!/usr/bin/env bash
# Build the local base image for the Dockerfile when no image registry can be reached:
#   debootstrap --variant=minbase bookworm (from the Debian mirror apt uses here)
#   + python3 python3-venv python3-pip ca-certificates + this machine's extra CA certificates
#   -> `docker import` as $BASE_IMAGE (default network-sniffer-base:bookworm).
# Idempotent: exits at once when the image exists (FORCE=1 rebuilds). Needs root and a running
# dockerd. Environment: BASE_IMAGE, SUITE (bookworm), MIRROR (default: read from apt's sources).
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-network-sniffer-base:bookworm}
SUITE=${SUITE:-bookworm}
PACKAGES=python3,python3-venv,python3-pip,ca-certificates

say() { printf '[docker-base] %s\n' "$*" >&2; }

# First Debian archive URL (not -security) in apt's one-line or deb822 source files.
mirror_from_apt() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
           /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    case $f in
      *.sources) awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f" ;;
      *) awk '$1 == "deb" { for (i = 2; i <= NF; i++)
                 if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' "$f" ;;
    esac
  done | grep -E '/debian/?$' | head -n1
}

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "$BASE_IMAGE exists (FORCE=1 rebuilds)"
  exit 0
fi
[ "$(id -u)" = 0 ] || { say "debootstrap needs root"; exit 2; }
command -v debootstrap >/dev/null || { say "apt-get install debootstrap first"; exit 2; }
MIRROR=${MIRROR:-$(mirror_from_apt)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

root=$(mktemp -d /tmp/dock-base.XXXXXX)
trap 'rm -rf --one-file-system "$root" "$root.log"' EXIT
say "debootstrap $SUITE from $MIRROR into $root (a few minutes)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 \
  || { tail -n 30 "$root.log" >&2; exit 1; }
rm -f "$root.log"

# The machine's extra CAs (e.g. an egress proxy's) so pip and apt in the image trust what
# this machine trusts; update-ca-certificates also keeps them when ca-certificates is upgraded.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1
fi
# Trim what an image does not need: apt lists and caches, docs, man pages, locales.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
       "$root"/usr/share/locale/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
printf 'APT::Install-Recommends "false";\n' >"$root/etc/apt/apt.conf.d/90no-recommends"

say "importing as $BASE_IMAGE"
tar --numeric-owner --xattrs -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
say "done: $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE") bytes"

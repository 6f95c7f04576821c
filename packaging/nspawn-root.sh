#!/usr/bin/env bash
# nspawn-root.sh: print the path of a Debian bookworm root for `systemd-nspawn -b`,
# building it with debootstrap only when the cached copy is missing.
#
# The root lives OUTSIDE the repo, keyed by suite and the package set below, under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/yurthub-nspawn/bookworm-<key>
# (override the parent with YURTHUB_NSPAWN_CACHE). Change ROOT_KEY when INCLUDE
# changes so old roots are not reused. The mirror is the one the host's apt uses.
set -euo pipefail

SUITE=bookworm
# systemd+dbus boot the container; iptables is the package's Depends and iproute2 its
# Recommends; rpm installs the .rpm into the same root; man-db lets `systemd-analyze
# verify` resolve Documentation=man:yurthub(8); curl is not needed (bash
# /dev/tcp speaks HTTP to /v1/healthz).
INCLUDE=systemd,systemd-sysv,dbus,iptables,iproute2,rpm,man-db,ca-certificates
ROOT_KEY=v2
CACHE="${YURTHUB_NSPAWN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/yurthub-nspawn}"
ROOT="$CACHE/$SUITE-$ROOT_KEY"

if [[ -f "$ROOT/.yurthub-root-complete" ]]; then
	echo "$ROOT"
	exit 0
fi

command -v debootstrap >/dev/null || { echo "nspawn-root.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

# The mirror the host's apt already uses for Debian (no host name is written here).
mirror=$(
	{ grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
	  grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'; } |
	grep -E '/debian/?$' | head -n1 || true
)

echo "nspawn-root.sh: building $ROOT with debootstrap ($SUITE, minbase + $INCLUDE)" >&2
rm -rf "$ROOT.tmp"
mkdir -p "$CACHE"
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT.tmp" ${mirror:+"$mirror"} >&2
# A booted container needs no getty on the console and no network setup of its own.
echo yurthub-test >"$ROOT.tmp/etc/hostname"
rm -f "$ROOT.tmp/etc/machine-id"
: >"$ROOT.tmp/etc/machine-id"
rm -rf "$ROOT.tmp/var/cache/apt/archives/"*.deb "$ROOT.tmp/var/lib/apt/lists/"*
touch "$ROOT.tmp/.yurthub-root-complete"
rm -rf "$ROOT"
mv "$ROOT.tmp" "$ROOT"
echo "$ROOT"

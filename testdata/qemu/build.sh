#!/usr/bin/env bash
# build.sh prepares what internal/network's qemu test boots: Debian's cloud kernel and a
# small base initramfs (busybox, the dummy/veth/netfilter modules with their dependencies,
# Debian's iptables-nft binaries with their libraries, and an /init script). The test
# appends its own static test binary to the initramfs as a second cpio archive and boots
# it with qemu-system-x86_64 (software emulation).
#
# The kernel is never installed on the host: its .deb is fetched with `apt-get download`
# and unpacked with dpkg-deb -x. Everything goes to a cache directory outside the
# repository, keyed by kernel version and by this script's content, and is reused:
#
#   ${YURTHUB_QEMU_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/yurthub-qemu}/<kernel-version>/
#       vmlinuz         the kernel
#       base.cpio.gz    the base initramfs
#
# The last line printed is that directory. Needs (see .ci/run): apt (with a fresh
# `apt-get update`), dpkg-deb, busybox-static, cpio, gzip, iptables.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=${YURTHUB_QEMU_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/yurthub-qemu}

# Modules the guest loads, in this order; modprobe pulls in their dependencies.
MODULES="dummy veth ifb bridge nf_tables nfnetlink nft_compat x_tables xt_tcpudp xt_comment ip_tables iptable_filter ip6_tables ip6table_filter nf_conntrack nft_ct"

# The versioned image package the meta package points at (linux-image-6.1.0-NN-cloud-amd64).
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
  sed -n 's/^[[:space:]]*Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)
[ -n "$pkg" ] || { echo "build.sh: apt knows no linux-image-cloud-amd64; run apt-get update (see .ci/run)" >&2; exit 1; }
kver=${pkg#linux-image-}
pkgver=$(apt-cache policy "$pkg" | sed -n 's/^[[:space:]]*Candidate: //p')
key=$(cat "$0" | sha256sum | cut -c1-12)
out="$root/$kver"

if [ -s "$out/vmlinuz" ] && [ -s "$out/base.cpio.gz" ] && [ "$(cat "$out/key" 2>/dev/null)" = "$key" ]; then
  echo "$out"
  exit 0
fi

for cmd in apt-get dpkg-deb busybox cpio gzip xtables-nft-multi xtables-legacy-multi ldd; do
  command -v "$cmd" >/dev/null || { echo "build.sh: $cmd not found; run .ci/run's apt-get line" >&2; exit 1; }
done
busybox --list | grep -qx depmod || { echo "build.sh: busybox has no depmod applet (install busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

echo "build.sh: fetching $pkg $pkgver (not installed, only unpacked)" >&2
(cd "$work" && apt-get download "$pkg=$pkgver" >/dev/null 2>&1 || apt-get download "$pkg" >&2)
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/deb"
cp "$work/deb/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"

# The base initramfs tree.
r="$work/root"
# merged /usr, as on Debian: libraries are found under /lib and /usr/lib alike (libxtables
# looks for its extensions under /usr/lib/<triplet>/xtables).
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,usr/lib,usr/lib64,etc,proc,sys,dev,run,tmp}
ln -s usr/lib "$r/lib"
ln -s usr/lib64 "$r/lib64"
mkdir -p "$r/lib/modules/$kver"
cp "$(command -v busybox)" "$r/bin/busybox"

# Modules: modules.dep from busybox depmod over the unpacked tree, then the closure.
busybox depmod -b "$work/deb" "$kver"
mdir="$work/deb/lib/modules/$kver"
dep="$mdir/modules.dep"
declare -A want=()
for m in $MODULES; do
  line=$(grep -E "(^|/)$m\.ko:" "$dep" || true)
  [ -n "$line" ] || { echo "build.sh: module $m not in $pkg" >&2; exit 1; }
  for f in ${line/:/}; do want[$f]=1; done
done
for f in "${!want[@]}"; do
  mkdir -p "$r/lib/modules/$kver/$(dirname "$f")"
  cp "$mdir/$f" "$r/lib/modules/$kver/$f"
done
cp "$dep" "$r/lib/modules/$kver/"
echo "$MODULES" >"$r/etc/modules.list"

# iptables-nft with its libraries and xtables extensions (dlopened at run time).
copy_with_libs() {
  local f=$1
  mkdir -p "$r$(dirname "$f")"
  cp -L "$f" "$r$f"
  ldd "$f" 2>/dev/null | grep -oE '/[^ ]+' | while read -r lib; do
    [ -e "$r$lib" ] && continue
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
}
xt=$(command -v xtables-nft-multi)
copy_with_libs "$xt"
for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf "$xt" "$r/usr/sbin/$name"
done
# iptables-legacy too: it takes the xtables lock, which the lock-contention test needs.
xl=$(command -v xtables-legacy-multi)
copy_with_libs "$xl"
for name in iptables-legacy iptables-legacy-save; do
  ln -sf "$xl" "$r/usr/sbin/$name"
done
xtdir=$(dirname "$(ldd "$xt" | grep -oE '/[^ ]+libxtables[^ ]*')")/xtables
for so in "$xtdir"/*.so; do copy_with_libs "$so"; done
[ -e /etc/protocols ] && cp /etc/protocols "$r/etc/"
echo 'root:x:0:0:root:/:/bin/sh' >"$r/etc/passwd"

cat >"$r/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
for m in $(cat /etc/modules.list); do
  modprobe "$m" || echo "YURTHUB-GUEST: modprobe $m failed"
done
ip link set lo up
echo "YURTHUB-GUEST: kernel $(uname -r), modules loaded"
# The test binary and its arguments come from the second cpio archive. CI=true: a
# missing prerequisite fails instead of skipping; each test re-executes itself under
# busybox `unshare -n`, as on the host, with the real dummy driver.
if [ -x /network.test ]; then
  CI=true YURTHUB_LINK_KIND=dummy /network.test $(cat /network.args)
  echo "YURTHUB-GUEST-RESULT: exit=$?"
else
  echo "YURTHUB-GUEST-RESULT: exit=127 (no /network.test in the initramfs)"
fi
poweroff -f
EOF
chmod 755 "$r/init"

(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/base.cpio.gz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/base.cpio.gz.tmp" "$out/base.cpio.gz"
echo "$key" >"$out/key"
echo "build.sh: kernel $kver, base initramfs $(du -h "$out/base.cpio.gz" | cut -f1)" >&2
echo "$out"

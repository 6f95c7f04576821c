#!/usr/bin/env bash
# test.sh: prove the .deb and .rpm (`make package-test`). Prints one "== step" line per
# step and "ok"/"FAIL" lines; exits non-zero on the first failure.
#
#   packaging/test.sh [dist-dir]     (default dist/, built by packaging/build.sh first)
#
# Host checks: byte-identical rebuild, lintian, rpm -qp (config flags, modes,
# symlink, dependencies, scriptlets), systemd-analyze security --offline=yes.
# Then a real systemd: a cached debootstrap'd bookworm root (packaging/nspawn-root.sh)
# booted with `systemd-nspawn -b --volatile=overlay --private-network` (the cached
# root is never written; the container has its own network namespace), driven
# through nsenter: install the .deb, systemd-analyze verify, active through sd_notify,
# /v1/healthz, SIGKILL -> restart, upgrade keeps the edited conffile and the cache,
# remove, purge leaves nothing; then the .rpm with `rpm -i --nodeps` and its scriptlets.
#
# Needs root, lintian, rpm, systemd-container (systemd-nspawn), debootstrap, systemd.
# YURTHUB_DAEMON_FLAGS overrides the network flags the daemon runs with inside the
# container (default: dummy interface and iptables on, as in production).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DIST=$(realpath -m "${1:-dist}")
MAX_EXPOSURE=3.0
DAEMON_FLAGS=${YURTHUB_DAEMON_FLAGS:---enable-dummy-if=true --enable-iptables=true}
NODE=nspawn-node

step() { printf '\n== [%3ds] %s\n' "$SECONDS" "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}
need() { command -v "$1" >/dev/null || fail "$1 is not installed (apt-get install $2)"; }

[[ $(id -u) == 0 ]] || fail "package-test needs root (dpkg/rpm inside systemd-nspawn)"
need lintian lintian
need rpm rpm
need systemd-nspawn systemd-container
need debootstrap debootstrap
need systemd-analyze systemd
need nsenter util-linux
need pgrep procps

TMP=$(mktemp -d /tmp/yurthub-package-test.XXXXXX)
NSPAWN_PID=
cleanup() {
	if [[ -n $NSPAWN_PID ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		kill -TERM "$NSPAWN_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$NSPAWN_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

# ---------------------------------------------------------------- host checks
step "build packages into $DIST"
# Pin the version and timestamp so that the rebuild below uses the same ones.
export PKG_VERSION SOURCE_DATE_EPOCH
PKG_VERSION=$(packaging/build.sh --print-version)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
packaging/build.sh "$DIST"
shopt -s nullglob
debs=("$DIST"/yurthub_*_amd64.deb "$DIST"/yurthub_*_arm64.deb)
rpms=("$DIST"/yurthub-*.x86_64.rpm "$DIST"/yurthub-*.aarch64.rpm)
[[ ${#debs[@]} == 2 && ${#rpms[@]} == 2 ]] || fail "want 2 .deb and 2 .rpm in $DIST, got: ${debs[*]} ${rpms[*]}"
DEB=${debs[0]}
RPM=${rpms[0]}
VERSION=$(dpkg-deb -f "$DEB" Version)
VERSION=${VERSION%-1}
ok "version $VERSION: $(cd "$DIST" && echo yurthub_*.deb yurthub-*.rpm)"

step "reproducible: HEAD built twice, in two different directories, is byte-identical"
# Snapshots of the commit (git archive), so edits made to the working tree meanwhile
# cannot differ between the two builds, and different paths prove -trimpath works.
for b in a b; do
	mkdir -p "$TMP/$b/src"
	git archive HEAD | tar -x -C "$TMP/$b/src"
	"$TMP/$b/src/packaging/build.sh" "$TMP/$b/dist" >/dev/null
done
n=0
for p in "$TMP"/a/dist/yurthub*.deb "$TMP"/a/dist/yurthub*.rpm; do
	q=$TMP/b/dist/$(basename "$p")
	cmp "$p" "$q" || fail "$(basename "$p") differs between two builds of HEAD"
	ok "$(basename "$p") identical (sha256 $(sha256sum <"$p" | cut -c1-16))"
	n=$((n + 1))
done
[[ $n == 4 ]] || fail "want 4 packages per build, got $n"

step "lintian --fail-on error,warning"
lintian --fail-on error,warning --display-info "${debs[@]}" 2>&1 | grep -v 'running with root privileges' || true
lintian --fail-on error,warning "${debs[@]}" >/dev/null 2>&1 || fail "lintian reports errors or warnings (above)"
ok "lintian: no errors or warnings"

step "deb metadata: conffiles, Depends/Recommends, symlinks, modes"
for d in "${debs[@]}"; do
	dpkg-deb -I "$d" conffiles | grep -qx /etc/default/yurthub || fail "$d: /etc/default/yurthub is not a conffile"
	[[ $(dpkg-deb -f "$d" Depends) == iptables ]] || fail "$d: Depends is '$(dpkg-deb -f "$d" Depends)', want iptables"
	[[ $(dpkg-deb -f "$d" Recommends) == iproute2 ]] || fail "$d: Recommends is not iproute2"
	listing=$(dpkg-deb -c "$d")
	grep -qE '^-rwxr-xr-x root/root .* \./usr/bin/yurthub$' <<<"$listing" || fail "$d: /usr/bin/yurthub is not 0755 root"
	grep -qE '^lrwxrwxrwx .* \./usr/bin/hubctl -> yurthub$' <<<"$listing" || fail "$d: /usr/bin/hubctl is not a relative symlink to yurthub"
	ok "$(basename "$d"): conffile /etc/default/yurthub, Depends iptables, Recommends iproute2, hubctl -> yurthub"
done
dpkg-deb -I "$DEB" conffiles | sed 's/^/  conffiles: /'

step "rpm -qp: config flags, modes, symlink, dependencies, scriptlets"
for r in "${rpms[@]}"; do
	files=$(rpm -qp --qf '[%{FILEFLAGS:fflags}\t%{FILEMODES:perms}\t%{FILENAMES}\t%{FILELINKTOS}\n]' "$r" 2>/dev/null)
	[[ $r == "$RPM" ]] && sed 's/^/  /' <<<"$files"
	grep -qP '^cn\t-rw-r--r--\t/etc/sysconfig/yurthub\t$' <<<"$files" || fail "$r: /etc/sysconfig/yurthub is not %config(noreplace) 0644"
	grep -qP '^\t-rwxr-xr-x\t/usr/bin/yurthub\t$' <<<"$files" || fail "$r: /usr/bin/yurthub is not 0755"
	# nfpm writes RPM symlinks with no permission bits (l---------); Linux ignores a
	# symlink's mode, so only the type and the relative target matter.
	grep -qP '^\tl[-rwx]{9}\t/usr/bin/hubctl\tyurthub$' <<<"$files" || fail "$r: /usr/bin/hubctl is not a relative symlink to yurthub"
	rpm -qp --requires "$r" 2>/dev/null | grep -qx iptables || fail "$r: does not Require iptables"
	rpm -qp --recommends "$r" 2>/dev/null | grep -qx iproute || fail "$r: does not Recommend iproute"
	scripts=$(rpm -qp --scripts "$r" 2>/dev/null)
	for s in 'postinstall scriptlet' 'preuninstall scriptlet' 'postuninstall scriptlet'; do
		grep -q "^$s" <<<"$scripts" || fail "$r: no $s"
	done
	ok "$(basename "$r"): %config(noreplace) /etc/sysconfig/yurthub, 0755 binary, hubctl -> yurthub, Requires iptables, Recommends iproute, %post/%preun/%postun"
done

step "systemd-analyze security --offline=yes (target <= $MAX_EXPOSURE)"
security=$(systemd-analyze security --offline=yes --no-pager systemd/yurthub.service 2>&1) || true
grep -v '✓' <<<"$security"
score=$(sed -n 's/.*Overall exposure level for yurthub.service: \([0-9.]*\).*/\1/p' <<<"$security")
[[ -n $score ]] || fail "no exposure score in systemd-analyze output"
awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' || fail "exposure $score > $MAX_EXPOSURE"
ok "exposure $score <= $MAX_EXPOSURE"

# ------------------------------------------------------- the upgrade package
step "build a second version for the upgrade test"
UP_VERSION="$VERSION.1"
PKG_VERSION=$UP_VERSION ARCHES=amd64 packaging/build.sh "$TMP/up" >/dev/null
UP_DEB=$TMP/up/yurthub_${UP_VERSION}_amd64.deb
UP_RPM=$TMP/up/yurthub-${UP_VERSION}.x86_64.rpm
[[ -f $UP_DEB && -f $UP_RPM ]] || fail "upgrade packages missing in $TMP/up"
ok "$(basename "$UP_DEB") $(basename "$UP_RPM")"

# ------------------------------------------------------ a real systemd (nspawn)
case $(uname -m) in
x86_64) ;;
*) fail "the nspawn stage installs the amd64 packages; run it on x86_64" ;;
esac

step "nspawn: bookworm root (cached, debootstrap only when missing)"
ROOT=$(packaging/nspawn-root.sh)
ok "root $ROOT"

step "nspawn: boot systemd (systemd-nspawn -b --volatile=overlay --private-network)"
mkdir -p "$TMP/pkgs"
cp "$DEB" "$TMP/pkgs/yurthub-1.deb"
cp "$RPM" "$TMP/pkgs/yurthub-1.rpm"
cp "$UP_DEB" "$TMP/pkgs/yurthub-2.deb"
cp "$UP_RPM" "$TMP/pkgs/yurthub-2.rpm"
MACHINE=yurthub-test-$$
systemd-nspawn --quiet --directory="$ROOT" --volatile=overlay --private-network \
	--register=no --keep-unit --machine="$MACHINE" --bind-ro="$TMP/pkgs:/pkgs" \
	--boot >"$TMP/console.log" 2>&1 </dev/null &
NSPAWN_PID=$!
LEADER=
for _ in $(seq 100); do
	# The container's PID 1 is the nspawn child that has exec'd systemd (nspawn
	# forks helpers first, which exit).
	for c in $(pgrep -P "$NSPAWN_PID" || true); do
		[[ $(cat "/proc/$c/comm" 2>/dev/null) == systemd ]] && LEADER=$c
	done
	[[ -n $LEADER ]] && break
	kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$TMP/console.log"; fail "systemd-nspawn exited"; }
	sleep 0.1
done
[[ -n $LEADER ]] || fail "no container init process"

# inside CMD...: run a shell command inside the container.
inside() {
	nsenter --target "$LEADER" --mount --uts --ipc --net --pid --cgroup -- \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root bash -c "$*"
}
# Until systemd has opened its private socket systemctl fails; then --wait waits
# for the boot to finish.
state=
for _ in $(seq 300); do
	state=$(inside 'timeout 60 systemctl is-system-running --wait 2>/dev/null' || true)
	[[ -n $state && $state != offline ]] && break
	sleep 0.2
done
[[ $state == running || $state == degraded ]] || {
	tail -n 30 "$TMP/console.log"
	fail "container systemd is '$state'"
}
ok "systemd $(inside 'systemctl --version | head -n1'): $state"

# wait_active: wait up to 20 s for yurthub.service to be active with a main PID
# different from $1 (pass 0 for any).
wait_active() {
	local old=$1 pid
	for _ in $(seq 100); do
		if [[ $(inside 'systemctl is-active yurthub.service' || true) == active ]]; then
			pid=$(inside 'systemctl show -P MainPID yurthub.service')
			[[ $pid != 0 && $pid != "$old" ]] && return 0
		fi
		sleep 0.2
	done
	inside 'systemctl status --no-pager yurthub.service; journalctl -u yurthub.service --no-pager | tail -n 30' || true
	fail "yurthub.service did not become active (old main PID $old)"
}
healthz() {
	inside 'exec 3<>/dev/tcp/127.0.0.1/10267 && printf "GET /v1/healthz HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && timeout 5 cat <&3' | tr -d '\r'
}
main_pid() { inside 'systemctl show -P MainPID yurthub.service'; }
# procs: PIDs of yurthub processes in the container (the minimal root has no pgrep).
procs() { inside 'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = yurthub ] && echo ${p#/proc/}; done; true'; }
ARGS="--server-addr=https://127.0.0.1:6443 --node-name=$NODE $DAEMON_FLAGS"

step "deb: dpkg -i (first install: enabled, start attempted)"
inside 'dpkg -i /pkgs/yurthub-1.deb 2>&1' | sed 's/^/  /'
[[ $(inside 'systemctl is-enabled yurthub.service') == enabled ]] || fail "not enabled after first install"
# The shipped env file has no --server-addr, so the start that postinst made ended
# with exit status 2 (usage) and RestartPreventExitStatus=2 keeps it from looping.
status=$(inside 'systemctl show -P ExecMainStatus yurthub.service')
[[ $status == 2 ]] || fail "postinst start: want exit status 2 (unconfigured), got '$status'"
inside 'journalctl -u yurthub.service --no-pager -o cat' | grep -m1 -- '--server-addr' | sed 's/^/  journal: /'
[[ $(inside 'readlink /usr/bin/hubctl') == yurthub ]] || fail "/usr/bin/hubctl is not a relative symlink to yurthub"
inside 'hubctl --version' | sed 's/^/  /'
ok "enabled; postinst started it and it refused the empty command line (exit 2, not restarted)"

step "systemd-analyze verify (inside, with the package installed): output must be empty"
verify=$(inside 'systemd-analyze verify /usr/lib/systemd/system/yurthub.service 2>&1' || true)
[[ -z $verify ]] || { printf '%s\n' "$verify"; fail "systemd-analyze verify printed the above"; }
ok "systemd-analyze verify printed nothing"

step "sandbox: the unit's restrictions allow netlink links and iptables (probe drop-in)"
# The same unit with a drop-in that swaps the daemon for `ip` and `iptables`: every
# sandbox setting (capabilities, ProtectSystem, seccomp, address families) applies.
# The kernel may lack the dummy driver (then ifb, which the network tests also use).
inside 'mkdir -p /etc/systemd/system/yurthub.service.d && cat >/etc/systemd/system/yurthub.service.d/probe.conf' <<'EOF'
[Service]
Type=oneshot
Restart=no
ExecStart=
ExecStart=/bin/sh -c 'set -e; if ip link add yh-probe0 type dummy 2>/dev/null; then echo PROBE-KIND=dummy; else ip link add yh-probe0 type ifb; echo PROBE-KIND=ifb; fi; ip addr add 169.254.2.1/32 dev yh-probe0; ip link set yh-probe0 up; echo PROBE-LINK-OK; iptables -N YH-PROBE; iptables -I INPUT -j YH-PROBE; iptables -A YH-PROBE -d 169.254.2.1/32 -p tcp --dport 10261 -j ACCEPT; echo PROBE-IPTABLES-OK; iptables-legacy -w -N YH-PROBE; echo PROBE-XTABLES-LOCK-OK'
EOF
inside 'systemctl daemon-reload && systemctl start yurthub.service' || true
probe=$(inside 'journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=$(systemctl show -P InvocationID yurthub.service)')
printf '%s\n' "$probe" | sed 's/^/  /'
for want in PROBE-LINK-OK PROBE-IPTABLES-OK PROBE-XTABLES-LOCK-OK; do
	grep -q "$want" <<<"$probe" || fail "the sandbox blocked the step before $want"
done
# Whether this kernel has the dummy driver (the daemon's link needs it).
HAVE_DUMMY=no
grep -q PROBE-KIND=dummy <<<"$probe" && HAVE_DUMMY=yes
inside 'rm -r /etc/systemd/system/yurthub.service.d; systemctl daemon-reload; ip link del yh-probe0; iptables -D INPUT -j YH-PROBE; iptables -F YH-PROBE; iptables -X YH-PROBE; iptables-legacy -X YH-PROBE'
ok "under the unit's sandbox: netlink link + address, iptables (nft) chain and rules, iptables-legacy with /run/xtables.lock"

step "configure /etc/default/yurthub and start: active through sd_notify"
inside "sed -i 's|^YURTHUB_ARGS=.*|YURTHUB_ARGS=\"$ARGS\"|' /etc/default/yurthub"
inside 'grep ^YURTHUB_ARGS= /etc/default/yurthub' | sed 's/^/  /'
# Type=notify: systemctl start returns only when the daemon sent READY=1.
inside 'timeout 60 systemctl restart yurthub.service' || {
	inside 'journalctl -u yurthub.service --no-pager | tail -n 30' || true
	fail "systemctl restart yurthub failed"
}
wait_active 0
inside 'systemctl show -p Type -p NotifyAccess -p ActiveState -p SubState -p MainPID yurthub.service' | sed 's/^/  /'
inside 'journalctl -u yurthub.service --no-pager -o cat' | grep -q 'told systemd the hub is ready' ||
	fail "the daemon did not log sending READY=1"
ok "active (running); the daemon sent READY=1"

step "GET /v1/healthz on 127.0.0.1:10267"
resp=$(healthz)
head -n1 <<<"$resp" | sed 's/^/  /'
head -n1 <<<"$resp" | grep -q ' 200' || fail "healthz: $resp"
ok "healthz 200"

step "sandbox: capabilities of the running daemon"
pid=$(main_pid)
capeff=$(inside "grep ^CapEff: /proc/$pid/status" | awk '{print $2}')
capbnd=$(inside "grep ^CapBnd: /proc/$pid/status" | awk '{print $2}')
# CAP_NET_ADMIN = bit 12, CAP_NET_RAW = bit 13.
[[ $capeff == 0000000000003000 && $capbnd == 0000000000003000 ]] ||
	fail "CapEff=$capeff CapBnd=$capbnd, want 0000000000003000 (CAP_NET_ADMIN, CAP_NET_RAW)"
ok "CapEff=CapBnd=$capeff (CAP_NET_ADMIN CAP_NET_RAW only)"
if [[ $DAEMON_FLAGS == *--enable-dummy-if=true* && $HAVE_DUMMY == yes ]]; then
	inside 'ip -br addr show yurthub-dummy0' | sed 's/^/  /' || fail "no dummy interface yurthub-dummy0"
	ok "the daemon created yurthub-dummy0 under the sandbox"
elif [[ $DAEMON_FLAGS == *--enable-dummy-if=true* ]]; then
	# No dummy driver in this kernel: the daemon must say so and serve anyway
	# (the probe above showed the sandbox itself allows creating links).
	msg=$(inside 'journalctl -u yurthub.service --no-pager -o cat | grep -i -m1 dummy' || true)
	printf '  journal: %s\n' "$msg"
	[[ -n $msg ]] || fail "the kernel has no dummy driver and the daemon did not log it"
	ok "this kernel has no dummy driver: the daemon logged it and is ready anyway"
fi
if [[ $DAEMON_FLAGS == *--enable-iptables=true* ]]; then
	rules=$(inside 'iptables -S; iptables -t nat -S' 2>&1)
	for port in 10261 10268; do
		grep -qE -- "-A YURTHUB-INPUT -d 169.254.2.1/32 .*--dport $port -j ACCEPT" <<<"$rules" ||
			{ printf '%s\n' "$rules"; fail "no YURTHUB-INPUT ACCEPT rule for 169.254.2.1:$port"; }
	done
	grep -E 'YURTHUB' <<<"$rules" | sed 's/^/  /'
	ok "the daemon created its iptables chains and rules under the sandbox"
fi

step "SIGKILL the daemon: Restart=always brings it back"
old=$(main_pid)
inside "kill -KILL $old"
wait_active "$old"
ok "main PID $old killed, now $(main_pid), NRestarts=$(inside 'systemctl show -P NRestarts yurthub.service')"
healthz | head -n1 | grep -q ' 200' || fail "healthz after restart"
if [[ $DAEMON_FLAGS == *--enable-iptables=true* ]]; then
	# A SIGKILL leaves the rules; the new daemon must ensure them, not add copies.
	sleep 1
	n=$(inside 'iptables -S YURTHUB-INPUT | grep -c -- "-j ACCEPT"' || true)
	[[ $n == 2 ]] || fail "after the restart YURTHUB-INPUT has $n ACCEPT rules, want 2"
	ok "the restarted daemon kept exactly its 2 input rules (ensure, no duplicates)"
fi

step "systemctl stop: SIGTERM, STOPPING=1, clean exit; start again"
inside 'timeout 30 systemctl stop yurthub.service'
result=$(inside 'systemctl show -P Result yurthub.service')
status=$(inside 'systemctl show -P ExecMainStatus yurthub.service')
[[ $result == success && $status == 0 ]] || fail "stop: Result=$result ExecMainStatus=$status, want success/0"
inside 'journalctl -u yurthub.service --no-pager -o cat | grep -c "shutting down"' >/dev/null || fail "the daemon did not log a graceful shutdown"
if [[ $DAEMON_FLAGS == *--enable-iptables=true* ]]; then
	# A clean shutdown removes what the daemon owns (a SIGKILL leaves it for the next start).
	inside 'iptables -S' | grep -q YURTHUB && fail "a clean stop left the YURTHUB chains"
	ok "a clean stop removed the YURTHUB chains"
fi
inside 'timeout 60 systemctl start yurthub.service'
wait_active 0
ok "stopped with Result=success, exit 0; started again"

step "upgrade to $UP_VERSION: keeps the edited conffile and the cache"
# The cache file is the daemon's; if this daemon does not create it yet, a
# stand-in proves the state directory survives.
if inside 'test -s /var/lib/yurthub/cache.db'; then
	inside 'ls -l /var/lib/yurthub/cache.db' | sed 's/^/  the daemon'"'"'s cache: /'
else
	inside 'echo stand-in >/var/lib/yurthub/cache.db; chmod 600 /var/lib/yurthub/cache.db'
	echo "  the daemon has not created cache.db: checking a stand-in file"
fi
inside 'echo kept >/var/lib/yurthub/upgrade-marker'
cache_inode=$(inside 'stat -c %i /var/lib/yurthub/cache.db')
old=$(main_pid)
inside 'dpkg -i /pkgs/yurthub-2.deb </dev/null 2>&1' | sed 's/^/  /'
wait_active "$old"
[[ $(inside "dpkg-query -W -f='\${Version}' yurthub") == "$UP_VERSION-1" ]] || fail "dpkg does not show $UP_VERSION-1"
inside 'grep -q -- "--node-name='"$NODE"'" /etc/default/yurthub' || fail "upgrade lost the edit in /etc/default/yurthub"
inside 'test ! -e /etc/default/yurthub.dpkg-dist && test ! -e /etc/default/yurthub.dpkg-old' || fail "dpkg left a .dpkg-dist/.dpkg-old"
[[ $(inside 'stat -c %i /var/lib/yurthub/cache.db' || true) == "$cache_inode" ]] || fail "upgrade replaced or removed /var/lib/yurthub/cache.db"
[[ $(inside 'cat /var/lib/yurthub/upgrade-marker' || true) == kept ]] || fail "upgrade wiped /var/lib/yurthub"
inside '/usr/bin/yurthub --version' | sed 's/^/  /'
inside '/usr/bin/yurthub --version' | grep -q -- "$UP_VERSION" || fail "binary is not $UP_VERSION"
healthz | head -n1 | grep -q ' 200' || fail "healthz after upgrade"
ok "restarted (PID $old -> $(main_pid)), conffile edit kept, cache.db kept (inode $cache_inode), healthz 200"

step "remove (dpkg -r): service stopped, state kept"
inside 'dpkg -r yurthub 2>&1' | sed 's/^/  /'
[[ $(inside 'systemctl is-active yurthub.service' || true) != active ]] || fail "still active after remove"
[[ -z $(procs) ]] || fail "a yurthub process survived remove: $(procs)"
inside 'test -e /var/lib/yurthub/cache.db' || fail "remove deleted the state directory (only purge may)"
inside 'test -e /etc/default/yurthub' || fail "remove deleted the conffile (only purge may)"
ok "stopped; /var/lib/yurthub and /etc/default/yurthub kept"

step "purge (dpkg -P): nothing left behind"
inside 'dpkg -P yurthub 2>&1' | sed 's/^/  /'
# Not ours: /pkgs (the bind mount), the root's build marker, and man-db's cat-page
# cache (man wrote it when systemd-analyze verify looked up man:yurthub(8); man-db
# owns and expires it).
left=$(inside 'find / -xdev \( -path /proc -o -path /sys -o -path /pkgs -o -path /var/cache/man -o -path /.yurthub-root-complete \) -prune -o -iname "*yurthub*" -print; dpkg -l yurthub 2>/dev/null | grep ^.i' || true)
[[ -z $left ]] || { printf '  left: %s\n' $left; fail "purge left files behind"; }
inside 'test ! -e /var/lib/yurthub && test ! -e /etc/default/yurthub' || fail "purge left state or conffile"
[[ $(inside 'systemctl show -P LoadState yurthub.service') == not-found ]] || fail "unit still loaded after purge"
inside 'iptables -S; ip -br link' | grep -qi yurthub && fail "iptables chains or a link of yurthub survived purge"
ok "no file named *yurthub* anywhere, no YURTHUB chains or link, unit not-found, dpkg forgot the package"

step "rpm: rpm -i --nodeps (scriptlets: tmpfiles, preset enable, start)"
inside 'rm -f /run/xtables.lock; mkdir -p /etc/sysconfig; rpm --initdb'
inside 'rpm -i --nodeps /pkgs/yurthub-1.rpm' 2>&1 | sed 's/^/  /'
inside 'rpm -q yurthub' | sed 's/^/  /'
inside 'test -f /run/xtables.lock' || fail "%post did not run systemd-tmpfiles (no /run/xtables.lock)"
[[ $(inside 'systemctl is-enabled yurthub.service') == enabled ]] || fail "%post did not enable the unit through its preset"
[[ $(inside 'systemctl show -P ExecMainStatus yurthub.service') == 2 ]] || fail "%post did not start the unit (want exit 2: unconfigured)"
ok "%post ran: /run/xtables.lock created, preset enabled the unit, start attempted (exit 2: unconfigured)"
inside "sed -i 's|^YURTHUB_ARGS=.*|YURTHUB_ARGS=\"$ARGS\"|' /etc/sysconfig/yurthub"
inside 'timeout 60 systemctl restart yurthub.service' || fail "restart with /etc/sysconfig/yurthub"
wait_active 0
healthz | head -n1 | grep -q ' 200' || fail "healthz with the rpm"
ok "configured via /etc/sysconfig/yurthub: active, healthz 200"

step "rpm -U (upgrade): %postun try-restart, %config(noreplace) kept"
old=$(main_pid)
inside 'rpm -U --nodeps /pkgs/yurthub-2.rpm' 2>&1 | sed 's/^/  /'
wait_active "$old"
inside 'grep -q -- "--node-name='"$NODE"'" /etc/sysconfig/yurthub && test ! -e /etc/sysconfig/yurthub.rpmnew' ||
	fail "rpm upgrade did not keep /etc/sysconfig/yurthub"
ok "restarted (PID $old -> $(main_pid)) by %postun, /etc/sysconfig/yurthub kept"

step "rpm -e: %preun disables and stops"
inside 'rpm -e --nodeps yurthub' 2>&1 | sed 's/^/  /'
[[ $(inside 'systemctl is-active yurthub.service' || true) != active ]] || fail "still active after rpm -e"
inside 'test ! -e /etc/systemd/system/multi-user.target.wants/yurthub.service' || fail "rpm -e left the unit enabled"
[[ -z $(procs) ]] || fail "a yurthub process survived rpm -e: $(procs)"
ok "stopped and disabled (RPM has no purge: /var/lib/yurthub is kept by design)"

step "shut the container down"
kill -TERM "$NSPAWN_PID"
for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
kill -0 "$NSPAWN_PID" 2>/dev/null && fail "container did not shut down"
NSPAWN_PID=
ok "done"

printf '\nPASS: packages reproducible, lintian clean, exposure %s, deb and rpm lifecycle under systemd %s\n' \
	"$score" "$(systemd-analyze --version | head -n1 | awk '{print $2}')"

#!/bin/bash
# Part of tests/package/run.sh, run in a new network namespace: starts the
# installed moatd in the chroot ROOT the way moatd.service does (as user
# moat, ExecStartPre then ExecStart, NOTIFY_SOCKET set) and as root (it
# must drop to moat), and checks each: ready, listening on loopback only,
# authentication on, running as moat.
#   in_netns.sh ROOT MOAT_UID MOAT_GID ADMIN_PASSWORD
set -euo pipefail
root=$1 uid=$2 gid=$3 pw=$4
ip link set lo up
pid=
fail() {
	echo "package test: FAIL: $*" >&2
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
	exit 1
}
unit=$root/lib/systemd/system/moatd.service
prop() { sed -n "s/^$1=//p" "$unit" | head -1; }
[ "$(prop Type)" = notify ] || fail "the unit is not Type=notify"
[ "$(prop User)" = moat ] || fail "the unit does not run as moat"
start=$(prop ExecStart)
pre=$(prop ExecStartPre)

# A notify socket inside the chroot, read from here.
sock=$root/run/moat-test-notify
rm -f "$sock"
python3 - "$sock" >"$root/run/notify.log" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(30)
os.chmod(sys.argv[1], 0o666)  # moatd sends as moat
while True:
    m = s.recv(4096).decode()
    print(m, flush=True)
    if "READY=1" in m:
        break
PY
reader=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

run_as_unit() {
	chroot --userspec="$uid:$gid" --groups="$gid" "$root" \
		env -i PATH=/usr/sbin:/usr/bin \
		NOTIFY_SOCKET=/run/moat-test-notify "$@"
}
# shellcheck disable=SC2086
run_as_unit $pre >/dev/null || fail "ExecStartPre ($pre) failed"
# shellcheck disable=SC2086
(exec chroot --userspec="$uid:$gid" --groups="$gid" "$root" \
	env -i PATH=/usr/sbin:/usr/bin NOTIFY_SOCKET=/run/moat-test-notify \
	$start) >"$root/run/moatd-unit.log" 2>&1 &
pid=$!  # the subshell, chroot and env exec: this is moatd
wait "$reader" || fail "no READY=1 from moatd within 30 s"
grep -q READY=1 "$root/run/notify.log" || fail "no READY=1"
echo "  READY=1 received"

check_broker() { # LABEL (moatd is $pid)
	kill -0 "$pid" 2>/dev/null || fail "$1: moatd is not running"
	ruid=$(awk '/^Uid:/ {print $2 $3 $4 $5}' "/proc/$pid/status")
	[ "$ruid" = "$uid$uid$uid$uid" ] || fail "$1: runs as uid $ruid"
	groups=$(awk '/^Groups:/ {print $2}' "/proc/$pid/status")
	[ -z "$groups" ] || [ "$groups" = "$gid" ] ||
		fail "$1: supplementary groups $groups"
	listen=$(ss -Hltn | awk '{print $4}' | sort | tr '\n' ' ')
	[ "$listen" = "127.0.0.1:1883 [::1]:1883 " ] ||
		fail "$1: listening on $listen"
	if mosquitto_pub -h 127.0.0.1 -t t -m x -q 1 2>/dev/null; then
		fail "$1: anonymous publish accepted"
	fi
	mosquitto_pub -h 127.0.0.1 -u admin -P "$pw" -t pkg/test -m ok -r -q 1 ||
		fail "$1: admin cannot publish"
	got=$(mosquitto_sub -h ::1 -u admin -P "$pw" -t pkg/test -C 1 -W 10)
	[ "$got" = ok ] || fail "$1: admin read '$got'"
	echo "  $1: uid $uid (moat), loopback only ($listen), anonymous" \
		"refused, admin served"
	kill "$pid"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$pid" 2>/dev/null || fail "$1: did not stop on SIGTERM"
	pid=
}
for _ in $(seq 100); do ss -Hltn | grep -q 1883 && break; sleep 0.1; done
check_broker "as the unit starts it"

# As an init script would: root, then moatd drops to the config's user.
chroot "$root" env -i PATH=/usr/sbin:/usr/bin /usr/sbin/moatd \
	-c /etc/moat/moatd.conf >"$root/run/moatd-root.log" 2>&1 &
pid=$!
for _ in $(seq 100); do ss -Hltn | grep -q 1883 && break; sleep 0.1; done
check_broker "started as root"
grep -q "running as user moat" "$root/run/moatd-root.log" ||
	fail "no 'running as user moat' in the log"

#!/bin/bash
# The package test (scripts/dev.sh package; not in the default test run):
# builds the .deb from a clean copy of the tree, lints it, installs it into
# a fresh Debian 12 chroot (debootstrap) and checks the installed broker:
# started the way moatd.service starts it, and as root the way an init
# script would; loopback only, authentication on, running as moat, the
# files' owners and modes, man pages, systemd-analyze verify, and the
# security score (printed).  Needs root and the Debian mirror; every step
# has a time limit (the whole run is about 5 minutes, 15 at most).
#
#   tests/package/run.sh [WORKDIR]     (default: build-pkg/)
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
work=$(realpath -m "${1:-build-pkg}")
root=$work/root
mkdir -p "$work"

fail() { echo "package test: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
cleanup() {
	[ -n "${inner_pid:-}" ] && kill "$inner_pid" 2>/dev/null || true
	mountpoint -q "$root/proc" && umount "$root/proc" || true
}
trap cleanup EXIT

step "clean tree (tracked and new files, no build directories)"
rm -rf "$work/src"
mkdir -p "$work/src/moat"
git ls-files -co --exclude-standard -z | grep -zv '^build' |
	xargs -0 tar -cf - | tar -xf - -C "$work/src/moat"

step "dpkg-buildpackage -us -uc -b"
(cd "$work/src/moat" && timeout 900 dpkg-buildpackage -us -uc -b) \
	>"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "build"; }
deb=$(ls "$work"/src/moat_*_*.deb | grep -v dbgsym)
echo "built $(basename "$deb")"

step "lintian (no errors allowed)"
timeout 600 lintian --fail-on error --tag-display-limit 0 "$deb" ||
	fail "lintian reports errors"

step "Debian 12 chroot"
if [ ! -f "$work/bookworm-base.tar" ]; then
	rm -rf "$work/base"
	timeout 900 debootstrap --variant=minbase bookworm "$work/base" \
		http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
		fail "debootstrap (see $work/debootstrap.log)"
	tar -C "$work/base" -cf "$work/bookworm-base.tar" .
	rm -rf "$work/base"
fi
rm -rf "$root"
mkdir -p "$root"
tar -C "$root" -xf "$work/bookworm-base.tar"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/"
# Services are not started by maintainer scripts in the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
IN_ROOT=(chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin)
in_root() { "${IN_ROOT[@]}" "$@"; }

step "apt install ./$(basename "$deb") (and systemd, man-db for the checks)"
timeout 900 "${IN_ROOT[@]}" sh -c "apt-get update -qq &&
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends /tmp/$(basename "$deb") systemd man-db procps" \
	>"$work/install.log" 2>&1 || { tail -30 "$work/install.log"; fail "install"; }
grep "admin password is in /etc/moat/admin-password" "$work/install.log" ||
	fail "the install did not name the admin password file"

step "owners and modes"
check_stat() { # PATH OWNER:GROUP MODE
	got=$(in_root stat -c '%U:%G %a' "$1")
	[ "$got" = "$2 $3" ] || fail "$1 is $got, expected $2 $3"
	echo "  $1 $got"
}
in_root getent passwd moat | grep -q ':/usr/sbin/nologin$' ||
	fail "no moat system user with nologin"
check_stat /etc/moat root:moat 750
check_stat /etc/moat/moatd.conf root:moat 640
check_stat /etc/moat/passwd root:moat 640
check_stat /etc/moat/acl root:moat 640
check_stat /etc/moat/admin-password root:root 600
check_stat /var/lib/moat moat:moat 700
check_stat /usr/sbin/moatd root:root 755
check_stat /usr/bin/moat root:root 755
for page in moatd.8 moat.1 moatd.conf.5; do
	in_root man -w "${page%.*}" >/dev/null 2>&1 ||
		in_root test -f "/usr/share/man/man${page##*.}/$page.gz" ||
		fail "no man page $page"
done
in_root test -f /usr/share/bash-completion/completions/moat ||
	fail "no bash completion"

step "systemd-analyze verify moatd.service"
out=$(in_root systemd-analyze verify moatd.service 2>&1) || true
[ -z "$out" ] || { echo "$out"; fail "systemd-analyze verify is not clean"; }
echo "  clean"
step "systemd-analyze security --offline=true moatd.service"
in_root systemd-analyze security --offline=true moatd.service |
	tail -1 | tee "$work/security-score.txt"

# The broker, in a network namespace of its own (loopback only there; no
# clash with other brokers on this machine), checked by a script that runs
# inside it.
step "start moatd as the unit does, and as root; check it"
uid=$(in_root id -u moat)
gid=$(in_root id -g moat)
pw=$(cat "$root/etc/moat/admin-password")
timeout 300 unshare --net bash "$src/tests/package/in_netns.sh" "$root" \
	"$uid" "$gid" "$pw" || fail "the installed broker"
echo "package test: OK ($(cat "$work/security-score.txt"))"

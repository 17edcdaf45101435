#!/bin/sh
# Install the Debian 12 packages that moat needs to build and test.
# Idempotent and quiet when everything is already there.  Run as root.
#   scripts/deps.sh [build|pkg|all]
set -eu

BUILD="build-essential cmake pkg-config libssl-dev openssl libargon2-dev \
libpwquality-dev cracklib-runtime libsqlite3-dev libvectorscan-dev \
libmicrohttpd-dev libjansson-dev libnats-dev"
TEST="libcmocka-dev iproute2 mosquitto-clients mosquitto python3 python3-paho-mqtt \
libcoap3-bin clang libclang-rt-14-dev nodejs chromium chromium-driver \
python3-selenium prometheus nats-server curl"
# The package test (scripts/dev.sh package): build, lint, install into a
# Debian 12 chroot.
PKG="dpkg-dev debhelper fakeroot lintian devscripts debootstrap systemd \
git iproute2 util-linux procps mosquitto-clients python3"

case "${1:-all}" in
build) PKGS="$BUILD" ;;
pkg) PKGS="$BUILD $PKG" ;;
*) PKGS="$BUILD $TEST" ;;
esac
# Debian's nodejs comes without npm (its own package); a nodejs that
# brings npm along (NodeSource's) conflicts with that package.
if [ "${1:-all}" != build ] && ! command -v npm >/dev/null 2>&1; then
	PKGS="$PKGS npm"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
# The test-only npm packages (pinned by tests/js/package-lock.json).
npm_deps() {
	[ "${1:-all}" = build ] || "$(dirname "$0")/npm-deps.sh"
}
if [ -z "$missing" ]; then
	npm_deps "${1:-all}"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages:$missing" >&2
	echo "deps: run as root (or: sudo $0)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
npm_deps "${1:-all}"

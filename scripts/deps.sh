#!/bin/sh
# Install the Debian 12 packages that moat needs to build and test.
# Idempotent and quiet when everything is already there.  Run as root.
set -eu

BUILD="build-essential cmake pkg-config libssl-dev openssl libargon2-dev \
libpwquality-dev cracklib-runtime libsqlite3-dev libvectorscan-dev"
TEST="libcmocka-dev iproute2 mosquitto-clients mosquitto python3 python3-paho-mqtt \
libcoap3-bin clang libclang-rt-14-dev nodejs"

case "${1:-all}" in
build) PKGS="$BUILD" ;;
*) PKGS="$BUILD $TEST" ;;
esac

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
# npm packages of the tests (pinned, with a lockfile), after the Debian ones.
npm_deps() {
	[ "$PKGS" = "$BUILD" ] || "$(dirname "$0")/coapjs-deps.sh"
}
if [ -z "$missing" ]; then
	npm_deps
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
npm_deps

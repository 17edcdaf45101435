#!/bin/sh
# Install the test-only JavaScript packages (tests/js: MQTT.js for the
# WebSocket interoperability and browser tests) exactly as pinned in
# tests/js/package-lock.json.  node_modules is not committed.  Quiet and
# quick when they are already there; needs nodejs and npm (scripts/deps.sh).
set -eu

cd "$(dirname "$0")/../tests/js"
stamp=node_modules/.moat-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
	exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
	echo "npm-deps: npm is missing (scripts/deps.sh installs it)" >&2
	exit 1
fi
echo "npm-deps: installing tests/js packages (npm ci)"
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
cp package-lock.json "$stamp"

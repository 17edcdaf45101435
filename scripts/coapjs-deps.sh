#!/bin/sh
# Install node-coap (npm "coap", pinned in tests/coapjs/package-lock.json)
# for the CoAP interop tests, with Debian's nodejs.  Idempotent; called by
# scripts/deps.sh.
set -eu
cd "$(dirname "$0")/../tests/coapjs"
if [ -f node_modules/coap/package.json ]; then
	exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
	echo "coapjs-deps: npm not found (Debian package nodejs)" >&2
	exit 1
fi
npm ci --no-audit --no-fund --loglevel=error

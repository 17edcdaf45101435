#!/bin/sh
# Regenerate the directive reference in docs/configuration.md from the
# directive table (moatd --help-config).  Usage: scripts/gen-config-doc.sh MOATD
set -eu
cd "$(dirname "$0")/.."
moatd=${1:-build/moatd}
doc=docs/configuration.md
tmp=$(mktemp)
{
	sed '/<!-- BEGIN GENERATED -->/q' "$doc"
	echo '```'
	"$moatd" --help-config
	echo '```'
	sed -n '/<!-- END GENERATED -->/,$p' "$doc"
} >"$tmp"
mv "$tmp" "$doc"

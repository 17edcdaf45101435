#!/bin/sh
# Write moatd.conf(5) from the directive table (moatd --help-config), so
# the man page never disagrees with the parser.
# Usage: scripts/gen-man-conf.sh MOATD > moatd.conf.5
set -eu
moatd=$1
cat <<'HEAD'
.TH MOATD.CONF 5 "2026" "moat" "File Formats"
.SH NAME
moatd.conf \- configuration file of the moat MQTT broker
.SH DESCRIPTION
One directive per line,
.IR "directive value" ;
lines starting with # are comments.
Sizes take k, m and g suffixes (1024\-based), durations s, m and h.
Directives marked (listener) apply to the listener line above them,
those marked (connection) to the bridge of the connection line above them.
Unknown directives and bad values are errors that name the file and line.
.B moatd \-\-test\-config \-c
.I FILE
checks a file;
.B kill \-HUP
(or
.BR "systemctl reload moatd" )
reloads it.
.SH DIRECTIVES
.ad l
HEAD
# Two lines per directive: "name  (type...)" then the indented help.
# Backslashes and leading dots or quotes would be roff: escape them.
"$moatd" --help-config | sed -e 's/\\/\\e/g' -e "s/-/\\\\-/g" | awk '
/^    / { sub(/^    /, ""); if ($0 ~ /^[.\047]/) $0 = "\\&" $0; print; next }
{ name = $1; $1 = ""; sub(/^ +/, ""); gsub(/:/, ":\\:"); print ".TP"; print "\\fB" name "\\fR " $0 }'
cat <<'TAIL'
.SH FILES
.I /etc/moat/moatd.conf
.SH SEE ALSO
.BR moatd (8),
.BR moat (1),
.BR mosquitto.conf (5)
TAIL

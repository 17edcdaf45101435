#!/bin/sh
# A local moatd cluster for development and tests (docs/cluster.md):
# three nats-server processes in one JetStream cluster (streams and
# key-value buckets can be R3) and three moatd nodes, on loopback only,
# each with its own store directory under DIR.
#
#   scripts/cluster.sh [OPTIONS] start          everything (configs first)
#   scripts/cluster.sh [OPTIONS] stop           everything (TERM, then KILL)
#   scripts/cluster.sh [OPTIONS] status         what runs, where
#   scripts/cluster.sh [OPTIONS] env            the ports as shell variables
#   scripts/cluster.sh [OPTIONS] kill nats|moatd N [SIGNAL]
#                                               one process (default TERM;
#                                               KILL for kill -9)
#   scripts/cluster.sh [OPTIONS] up nats|moatd N
#                                               start one process again
#   scripts/cluster.sh [OPTIONS] clean          stop, then remove DIR
#
# Options (also from the environment):
#   --dir DIR      state, configs and logs (MOAT_CLUSTER_DIR, build/cluster)
#   --base PORT    port base B (MOAT_CLUSTER_BASE, 14220): NATS clients on
#                  B+1..B+3, NATS routes on B+11..B+13, NATS monitoring on
#                  B+21..B+23, MQTT on B+31..B+33, moatd HTTP (/metrics) on
#                  B+41..B+43
#   --moatd PATH   the broker (MOATD_BIN, build/moatd)
#   --tls          NATS with TLS: a CA, server and client certificates are
#                  made in DIR/tls on the first start (openssl)
#   --nats-only    start no moatd (only with start)
#   --conf FILE    lines appended to every moatd.conf (tests' own settings;
#                  MOAT_CLUSTER_CONF)
#
# NATS always requires a user and password (random, made on the first
# start, DIR/nats.pass, mode 0600); routes have their own.  Every wait is
# bounded; start fails with the process's log when something does not come
# up.
set -eu

cd "$(dirname "$0")/.."
DIR=${MOAT_CLUSTER_DIR:-build/cluster}
BASE=${MOAT_CLUSTER_BASE:-14220}
MOATD=${MOATD_BIN:-build/moatd}
TLS=0
NATS_ONLY=0
EXTRA=${MOAT_CLUSTER_CONF:-}
NODES="1 2 3"
WAIT_S=30

usage() {
	sed -n '2,/^set -eu/p' "$0" | sed -e 's/^# \{0,1\}//' -e '/^set -eu/d' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--dir) DIR=$2; shift 2 ;;
	--base) BASE=$2; shift 2 ;;
	--moatd) MOATD=$2; shift 2 ;;
	--tls) TLS=1; shift ;;
	--nats-only) NATS_ONLY=1; shift ;;
	--conf) EXTRA=$2; shift 2 ;;
	-h|--help) usage ;;
	--*) echo "cluster: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
CMD=$1
shift
case "$BASE" in
''|*[!0-9]*) echo "cluster: --base needs a number" >&2; exit 2 ;;
esac
if [ "$BASE" -lt 1024 ] || [ "$BASE" -gt 65480 ]; then
	echo "cluster: --base must be between 1024 and 65480" >&2
	exit 2
fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
case "$MOATD" in /*) ;; *) MOATD=$(pwd)/$MOATD ;; esac

nats_port() { echo $((BASE + $1)); }
route_port() { echo $((BASE + 10 + $1)); }
mon_port() { echo $((BASE + 20 + $1)); }
mqtt_port() { echo $((BASE + 30 + $1)); }
http_port() { echo $((BASE + 40 + $1)); }
pidfile() { echo "$DIR/run/$1$2.pid"; }

# ---- one-time state: passwords, certificates --------------------------

secret() { # FILE: a random password in FILE (0600), made once
	if [ ! -s "$1" ]; then
		(umask 077 && openssl rand -hex 24 >"$1")
	fi
	cat "$1"
}

make_tls() {
	t=$DIR/tls
	[ -s "$t/client.pem" ] && return 0
	mkdir -p "$t"
	chmod 700 "$t"
	(
		cd "$t"
		umask 077
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -keyout ca.key -out ca.pem -days 365 \
			-subj "/CN=moat dev cluster CA" 2>/dev/null
		for who in server client; do
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
				-nodes -keyout $who.key -out $who.csr \
				-subj "/CN=moat dev cluster $who" 2>/dev/null
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >$who.ext
			openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key \
				-CAcreateserial -days 365 -extfile $who.ext \
				-out $who.pem 2>/dev/null
			rm -f $who.csr $who.ext
		done
	)
}

# ---- configuration files ----------------------------------------------

nats_urls() {
	scheme=nats
	if [ "$TLS" = 1 ]; then scheme=tls; fi
	urls=""
	for n in $NODES; do
		urls="$urls${urls:+,}$scheme://127.0.0.1:$(nats_port "$n")"
	done
	echo "$urls"
}

write_nats_conf() { # N
	n=$1
	pw=$(secret "$DIR/nats.pass")
	rpw=$(secret "$DIR/route.pass")
	routes=""
	for m in $NODES; do
		routes="$routes    nats-route://route:$rpw@127.0.0.1:$(route_port "$m")
"
	done
	mkdir -p "$DIR/nats/n$n"
	(
		umask 077
		cat >"$DIR/nats/n$n.conf" <<EOF
# nats-server $n of the moat development cluster (scripts/cluster.sh)
server_name: n$n
listen: 127.0.0.1:$(nats_port "$n")
http: 127.0.0.1:$(mon_port "$n")
max_payload: 8MB
jetstream {
  store_dir: "$DIR/nats/n$n"
  max_memory_store: 256MB
  max_file_store: 2GB
}
authorization {
  user: moat
  password: "$pw"
}
cluster {
  name: moat-dev
  listen: 127.0.0.1:$(route_port "$n")
  authorization {
    user: route
    password: "$rpw"
  }
  routes: [
$routes  ]
}
EOF
		if [ "$TLS" = 1 ]; then
			cat >>"$DIR/nats/n$n.conf" <<EOF
tls {
  cert_file: "$DIR/tls/server.pem"
  key_file: "$DIR/tls/server.key"
  ca_file: "$DIR/tls/ca.pem"
  verify: true
}
EOF
		fi
	)
}

write_moatd_conf() { # N
	n=$1
	mkdir -p "$DIR/moatd/n$n"
	chmod 700 "$DIR/moatd/n$n"
	pw=$(secret "$DIR/nats.pass")
	(
		umask 077
		printf '%s\n' "$pw" >"$DIR/moatd/nats-password"
		{
			echo "# moatd node $n of the moat development cluster (scripts/cluster.sh)"
			echo "listener $(mqtt_port "$n") 127.0.0.1"
			echo "listener $(http_port "$n") 127.0.0.1"
			echo "protocol http"
			echo "allow_anonymous true"
			echo "persistence true"
			echo "persistence_location $DIR/moatd/n$n"
			if [ "$(id -u)" = 0 ]; then echo "user root"; fi
			echo "cluster_nats_url $(nats_urls)"
			echo "cluster_node_id n$n"
			echo "cluster_nats_user moat"
			echo "cluster_nats_password_file $DIR/moatd/nats-password"
			if [ "$TLS" = 1 ]; then
				echo "cluster_nats_cafile $DIR/tls/ca.pem"
				echo "cluster_nats_certfile $DIR/tls/client.pem"
				echo "cluster_nats_keyfile $DIR/tls/client.key"
			fi
			if [ -n "$EXTRA" ]; then cat "$EXTRA"; fi
		} >"$DIR/moatd/n$n.conf"
	)
}

# ---- processes --------------------------------------------------------

running() { # KIND N
	f=$(pidfile "$1" "$2")
	[ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

fail_with_log() { # MESSAGE LOG
	echo "cluster: $1" >&2
	tail -n 30 "$2" >&2 || true
	exit 1
}

# Nobody listens on loopback PORT (another cluster, another --base?).
port_free() { # PORT
	if ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then
		echo "cluster: port $1 is in use (another cluster? choose --base)" >&2
		exit 1
	fi
}

# Wait until URL answers 200 (the NATS monitoring port) or the process
# KIND N is gone.
wait_http() { # URL KIND N LOG
	i=0
	while [ $i -lt $((WAIT_S * 10)) ]; do
		curl -fs -o /dev/null --max-time 1 "$1" && return 0
		running "$2" "$3" || fail_with_log "$2 $3 exited" "$4"
		sleep 0.1
		i=$((i + 1))
	done
	fail_with_log "$2 $3: no answer from $1 within ${WAIT_S}s" "$4"
}

start_nats() { # N
	n=$1
	running nats "$n" && return 0
	port_free "$(nats_port "$n")" && port_free "$(route_port "$n")" &&
		port_free "$(mon_port "$n")"
	write_nats_conf "$n"
	log=$DIR/log/nats-n$n.log
	nats-server -c "$DIR/nats/n$n.conf" >>"$log" 2>&1 &
	echo $! >"$(pidfile nats "$n")"
}

# JetStream is usable once every server knows the cluster's meta leader
# (/jsz), and core NATS once every server has its routes to the two
# others (/routez).  Not /healthz: after a restart with old stores it reports every
# stream catching up, for longer than moatd needs to wait.
wait_nats() {
	for n in $NODES; do
		running nats "$n" || fail_with_log "nats $n exited" \
			"$DIR/log/nats-n$n.log"
		i=0
		until curl -fs --max-time 1 "http://127.0.0.1:$(mon_port "$n")/jsz" |
			grep -q '"leader":' &&
			curl -fs --max-time 1 "http://127.0.0.1:$(mon_port "$n")/routez" |
			grep -q '"num_routes": 2,'; do
			running nats "$n" || fail_with_log "nats $n exited" \
				"$DIR/log/nats-n$n.log"
			[ $i -lt $((WAIT_S * 10)) ] || fail_with_log \
				"nats $n: no JetStream meta leader within ${WAIT_S}s" \
				"$DIR/log/nats-n$n.log"
			sleep 0.1
			i=$((i + 1))
		done
	done
}

start_moatd() { # N
	n=$1
	running moatd "$n" && return 0
	port_free "$(mqtt_port "$n")" && port_free "$(http_port "$n")"
	[ -x "$MOATD" ] || { echo "cluster: no moatd at $MOATD (scripts/dev.sh build)" >&2; exit 1; }
	write_moatd_conf "$n"
	log=$DIR/log/moatd-n$n.log
	"$MOATD" -c "$DIR/moatd/n$n.conf" -v >>"$log" 2>&1 &
	echo $! >"$(pidfile moatd "$n")"
	wait_http "http://127.0.0.1:$(http_port "$n")/readyz" moatd "$n" "$log"
}

stop_one() { # KIND N [SIGNAL]
	f=$(pidfile "$1" "$2")
	[ -s "$f" ] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill -"${3:-TERM}" "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "cluster: $1 $2 (pid $pid) ignored ${3:-TERM} for 10s; KILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$f"
}

node_arg() { # N
	case "${1:-}" in
	1|2|3) ;;
	*) echo "cluster: node must be 1, 2 or 3" >&2; exit 2 ;;
	esac
}

mkdir -p "$DIR/run" "$DIR/log" "$DIR/nats" "$DIR/moatd"
chmod 700 "$DIR"
if [ "$TLS" = 1 ]; then make_tls; fi

case "$CMD" in
start)
	command -v nats-server >/dev/null || { echo "cluster: nats-server is missing (scripts/deps.sh)" >&2; exit 1; }
	for n in $NODES; do start_nats "$n"; done
	wait_nats
	if [ "$NATS_ONLY" = 0 ]; then
		for n in $NODES; do start_moatd "$n"; done
	fi
	"$0" --dir "$DIR" --base "$BASE" status
	;;
stop)
	for n in $NODES; do stop_one moatd "$n"; done
	for n in $NODES; do stop_one nats "$n"; done
	;;
clean)
	"$0" --dir "$DIR" --base "$BASE" stop
	rm -rf "$DIR"
	;;
kill)
	[ $# -ge 2 ] || usage
	node_arg "$2"
	case "$1" in nats|moatd) ;; *) usage ;; esac
	stop_one "$1" "$2" "${3:-TERM}"
	;;
up)
	[ $# -ge 2 ] || usage
	node_arg "$2"
	case "$1" in
	nats) start_nats "$2"; wait_nats ;;
	moatd) start_moatd "$2" ;;
	*) usage ;;
	esac
	;;
status)
	for n in $NODES; do
		for k in nats moatd; do
			if running $k "$n"; then
				st="pid $(cat "$(pidfile $k "$n")")"
			else
				st="stopped"
			fi
			if [ $k = nats ]; then
				echo "nats  n$n: $st  client 127.0.0.1:$(nats_port "$n")  route $(route_port "$n")  monitor http://127.0.0.1:$(mon_port "$n")/"
			else
				echo "moatd n$n: $st  mqtt 127.0.0.1:$(mqtt_port "$n")  http://127.0.0.1:$(http_port "$n")/metrics"
			fi
		done
	done
	echo "state and logs: $DIR"
	;;
env)
	for n in $NODES; do
		echo "NATS_PORT_$n=$(nats_port "$n")"
		echo "NATS_MONITOR_$n=$(mon_port "$n")"
		echo "MQTT_PORT_$n=$(mqtt_port "$n")"
		echo "HTTP_PORT_$n=$(http_port "$n")"
	done
	echo "NATS_URLS=$(nats_urls)"
	echo "CLUSTER_DIR=$DIR"
	;;
*)
	usage
	;;
esac

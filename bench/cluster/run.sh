#!/bin/sh
# The cluster's interest benchmark (docs/cluster.md, "Limits"): builds
# bench/cluster/nats_interest against build/'s libraries, starts the NATS
# part of a development cluster (scripts/cluster.sh --nats-only, its own
# ports and directory), runs it with a subscriber on NATS server 2 and a
# publisher on server 1, and stops the cluster.  A benchmark: it reports
# figures and never fails on them.
#   bench/cluster/run.sh [nats_interest options, e.g. --filters 1,1000]
set -eu
cd "$(dirname "$0")/../.."
B=build
DIR=$B/bench-cluster
BASE=${MOAT_BENCH_CLUSTER_BASE:-16220}
cmake --build $B -j2 --target moat_subject >/dev/null
cc -O2 -Wall -Wextra -Isrc -Iinclude -o $B/nats_interest \
	bench/cluster/nats_interest.c $B/libmoat_subject.a $B/libmoat_codec.a \
	$B/libmoat_common.a $(pkg-config --libs libnats jansson libcrypto) -lpthread
C="scripts/cluster.sh --dir $DIR --base $BASE"
$C --nats-only start >/dev/null
trap '$C stop' EXIT INT TERM
$B/nats_interest --pub nats://127.0.0.1:$((BASE + 1)) \
	--sub nats://127.0.0.1:$((BASE + 2)) --user moat \
	--password-file $DIR/nats.pass \
	--monitor http://127.0.0.1:$((BASE + 22)) "$@"

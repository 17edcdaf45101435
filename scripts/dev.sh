#!/bin/sh
# moat developer entry point.  Every step installs what it needs (Debian 12,
# as root), so each command works on a fresh machine.
#
#   scripts/dev.sh run        build (release) and start moatd on 127.0.0.1:1883
#   scripts/dev.sh build      build into build/
#   scripts/dev.sh test       build and run the test suite (ctest), but for
#                             the cluster tests
#   scripts/dev.sh cluster    the cluster tests (label cluster: 3 nats-server
#                             + 3 moatd each, one at a time; about 2 min)
#   scripts/dev.sh sanitize   the whole test suite under ASan+UBSan (build-asan/)
#   scripts/dev.sh tsan       the integration tests under ThreadSanitizer (build-tsan/)
#   scripts/dev.sh fuzz       fuzz-smoke: each libFuzzer harness briefly (build-fuzz/)
#   scripts/dev.sh release    packagers' builds: Release (-O3) with gcc, tests
#                             included, unit tests run (build-release/); and
#                             Release with clang (build-clang/)
#   scripts/dev.sh package    the Debian package: build it from a clean copy
#                             of the tree, lintian, install it into a Debian
#                             12 chroot and check the installed broker
#                             (tests/package/run.sh; build-pkg/)
#   scripts/dev.sh fuzz-long [SECONDS]
#                             each harness for SECONDS (default 600), one
#                             after the other; crashes land in build-fuzz/
set -eu

cd "$(dirname "$0")/.."
JOBS=$(nproc 2>/dev/null || echo 2)
# Warnings are errors in the developers' and CI's builds, never in users'
# and packagers' (run, build; a plain cmake build).
WERROR=-DMOAT_WERROR=ON

configure() { # DIR [cmake args...]
	dir=$1
	shift
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
	cmake --build "$dir" -j "$JOBS"
}

run_ctest() { # DIR [ctest args...]
	dir=$1
	shift
	ctest --test-dir "$dir" --output-on-failure -j "$JOBS" "$@"
}

case "${1:-}" in
run)
	scripts/deps.sh build
	configure build -DBUILD_TESTING=OFF
	shift
	exec build/moatd "$@"
	;;
build)
	scripts/deps.sh build
	configure build -DBUILD_TESTING=OFF
	;;
test)
	scripts/deps.sh
	configure build -DBUILD_TESTING=ON $WERROR
	run_ctest build -LE "fuzz-smoke|cluster"
	;;
cluster)
	scripts/deps.sh
	configure build -DBUILD_TESTING=ON $WERROR
	run_ctest build -L cluster
	;;
sanitize)
	scripts/deps.sh
	configure build-asan -DBUILD_TESTING=ON -DMOAT_SANITIZE=ON $WERROR \
		-DCMAKE_BUILD_TYPE=Debug
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		run_ctest build-asan -LE fuzz-smoke
	;;
tsan)
	scripts/deps.sh
	configure build-tsan -DBUILD_TESTING=ON -DMOAT_TSAN=ON $WERROR \
		-DCMAKE_BUILD_TYPE=Debug
	TSAN_OPTIONS=halt_on_error=1 run_ctest build-tsan -L integration
	;;
fuzz)
	scripts/deps.sh
	CC=clang configure build-fuzz -DBUILD_TESTING=ON -DMOAT_FUZZ=ON $WERROR
	run_ctest build-fuzz -L fuzz-smoke
	;;
release)
	scripts/deps.sh
	CC=gcc configure build-release -DBUILD_TESTING=ON $WERROR \
		-DCMAKE_BUILD_TYPE=Release
	run_ctest build-release -L unit
	CC=clang configure build-clang -DBUILD_TESTING=ON $WERROR \
		-DCMAKE_BUILD_TYPE=Release
	;;
package)
	scripts/deps.sh pkg
	exec tests/package/run.sh build-pkg
	;;
fuzz-long)
	scripts/deps.sh
	CC=clang configure build-fuzz -DBUILD_TESTING=ON -DMOAT_FUZZ=ON
	secs=${2:-600}
	src=$(pwd)/tests/fuzz
	status=0
	for h in build-fuzz/tests/fuzz/fuzz_*; do
		[ -x "$h" ] || continue
		name=$(basename "$h" | sed 's/^fuzz_//')
		dict=$name.dict
		[ -f "$src/dict/$dict" ] || dict=mqtt.dict
		work=build-fuzz/tests/fuzz/corpus-$name
		mkdir -p "$work"
		echo "== $h: $secs s"
		"$h" -max_total_time="$secs" -print_final_stats=1 \
			-dict="$src/dict/$dict" \
			-artifact_prefix="build-fuzz/tests/fuzz/crash-$name-" \
			"$work" "$src/corpus/$name" 2>&1 |
			grep -E '^#[0-9]+ +DONE|^Done|ERROR|SUMMARY' || true
		ls build-fuzz/tests/fuzz/crash-"$name"-* >/dev/null 2>&1 &&
			status=1
	done
	exit $status
	;;
*)
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac

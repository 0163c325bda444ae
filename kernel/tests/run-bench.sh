#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# In-VM benchmark of vexfs.ko (POSIX sh / busybox ash).  Prints KTAP
# version 1; `vexctl bench`'s own KTAP document is passed through as the
# nested subtest "bench" (indented two spaces), including its metric lines
#   # bench: <metric>=<value> unit=<unit> better=<lower|higher> reps=<R> spread=<value>
# (format and metrics: userspace/src/bench.rs, userspace/README.md).
#
# usage: run-bench.sh [path/to/vexfs.ko | directory containing vexfs.ko]
# env:   VEXFS_KO       module path if $1 is not given (default ./vexfs.ko)
#        VEXFS_MNT      mount point (default /mnt/vexfs)
#        VEXCTL         userspace CLI (default: vexctl from PATH)
#        BENCH_N        vectors to insert (default 2000)
#        BENCH_REPS     rounds per measurement (default 5)
#        BENCH_QUERIES  timed calls per round (default 50)
#        BENCH_K        k of the searches (default 10)
#        BENCH_SEED     PRNG seed (default 1)
# Exit status: 0 iff all four tests (insmod, mount, bench, unload) passed.
#
# Only shell builtins apart from insmod, mount, vexctl, umount, rmmod (and
# mkdir/rm when needed): few processes, as the VM may run under TCG.

KO=${1:-${VEXFS_KO:-./vexfs.ko}}
[ -d "$KO" ] && KO=$KO/vexfs.ko	# a directory of modules (vm-bench recipe)
MNT=${VEXFS_MNT:-/mnt/vexfs}
VEXCTL=${VEXCTL:-vexctl}
BENCH_N=${BENCH_N:-2000}
BENCH_REPS=${BENCH_REPS:-5}
BENCH_QUERIES=${BENCH_QUERIES:-50}
BENCH_K=${BENCH_K:-10}
BENCH_SEED=${BENCH_SEED:-1}
TMP=${TMPDIR:-/tmp}/vexfs-bench.$$
PLAN=4

N=0		# results printed
FAILED=0	# of those, not ok

ok() {	# ok STATUS NAME
	N=$((N + 1))
	if [ "$1" -eq 0 ]; then
		printf 'ok %s %s\n' "$N" "$2"
	else
		printf 'not ok %s %s\n' "$N" "$2"
		FAILED=$((FAILED + 1))
	fi
}
skip() {	# skip NAME REASON
	N=$((N + 1))
	printf 'ok %s %s # SKIP %s\n' "$N" "$1" "$2"
}
diag() { printf '# %s\n' "$*"; }
diag_file() {	# diag_file PREFIX FILE: every line of FILE as a diagnostic
	while IFS= read -r df_line || [ -n "$df_line" ]; do
		diag "$1$df_line"
	done < "$2"
}
module_state() {	# the state column of vexfs in /proc/modules, or empty
	MOD_STATE=
	while read -r ms_name _ _ _ ms_state _; do
		[ "$ms_name" = vexfs ] && { MOD_STATE=$ms_state; return; }
	done < /proc/modules
}

echo "KTAP version 1"
echo "1..$PLAN"
diag "run-bench: n=$BENCH_N reps=$BENCH_REPS queries=$BENCH_QUERIES k=$BENCH_K seed=$BENCH_SEED"

# --- insmod (a module stuck in "Loading" must not be touched again)
LOADED=
insmod "$KO" 2> "$TMP.err"
st=$?
[ $st -ne 0 ] && diag_file "insmod $KO: " "$TMP.err"
module_state
if [ "$MOD_STATE" = Live ]; then
	LOADED=1
else
	diag "vexfs module state: '${MOD_STATE:-not loaded}'"
	st=1
fi
ok $st insmod

# --- mount
MOUNTED=
if [ -n "$LOADED" ]; then
	[ -d "$MNT" ] || mkdir -p "$MNT"
	if mount -t vexfs -o dim=4 none "$MNT" 2> "$TMP.err"; then
		MOUNTED=1
		ok 0 mount
	else
		diag_file "mount: " "$TMP.err"
		ok 1 mount
	fi
else
	skip mount "module not loaded"
fi

# --- bench: vexctl's KTAP as a nested subtest
if [ -z "$MOUNTED" ]; then
	skip bench "not mounted"
elif ! command -v "$VEXCTL" > /dev/null 2>&1; then
	diag "vexctl not found: $VEXCTL"
	ok 1 bench
else
	"$VEXCTL" bench "$MNT/bench" --n "$BENCH_N" --reps "$BENCH_REPS" \
		--queries "$BENCH_QUERIES" --k "$BENCH_K" --seed "$BENCH_SEED" \
		> "$TMP.out" 2> "$TMP.err"
	st=$?
	first=1
	while IFS= read -r line || [ -n "$line" ]; do
		printf '  %s\n' "$line"
		case $first$line in
		"1KTAP version"*) printf '  # Subtest: bench\n' ;;
		esac
		first=
	done < "$TMP.out"
	# errors before vexctl's KTAP header (DIR unusable, usage) are on stderr
	diag_file "" "$TMP.err"
	[ $st -ne 0 ] && diag "vexctl bench: exit status $st"
	ok $st bench
fi

# --- unload: umount, rmmod
if [ -n "$LOADED" ]; then
	st=0
	if [ -n "$MOUNTED" ] && ! umount "$MNT" 2> "$TMP.err"; then
		diag_file "umount: " "$TMP.err"
		st=1
	fi
	if ! rmmod vexfs 2> "$TMP.err"; then
		diag_file "rmmod: " "$TMP.err"
		st=1
	fi
	module_state
	[ -n "$MOD_STATE" ] && { diag "vexfs still loaded: $MOD_STATE"; st=1; }
	ok $st unload
else
	skip unload "module not loaded"
fi

rm -f "$TMP.err" "$TMP.out"
[ "$N" -eq "$PLAN" ] || diag "planned $PLAN tests, ran $N"
diag "$((N - FAILED)) passed, $FAILED failed"
[ $FAILED -eq 0 ] && [ "$N" -eq "$PLAN" ]

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# In-VM test of vexfs_rs.ko, the Rust misc device (POSIX sh / busybox ash).
# Prints KTAP version 1.
#
# usage: run-ktap.sh [path/to/vexfs_rs.ko]
# env:   VEXFS_RS_KO   module path if $1 is not given (default ./vexfs_rs.ko)
#        VEXFS_RS_DEV  device node (default /dev/vexfs-rs)
#        VEXCTL        userspace CLI (default: vexctl from PATH)
#        VEXFS_C_SUITE the C module's run-ktap.sh: when set, it runs first as a nested
#                      KTAP subtest (with VEXFS_KO, default /lib/modules-test/vexfs.ko),
#                      so one boot tests both modules on the same kernel
# Exit status: 0 iff no test case failed.
#
# Every search result is checked against `vexctl expect-search`, which computes the
# expected output in userspace from TABLE below (the module's built-in vectors, inode
# numbers 1..6 in this order): the kernel's answer is compared with an independent
# implementation of the header's maths, not with numbers copied from a previous run.

KO=${1:-${VEXFS_RS_KO:-./vexfs_rs.ko}}
DEV=${VEXFS_RS_DEV:-/dev/vexfs-rs}
VEXCTL=${VEXCTL:-vexctl}
TMP=${TMPDIR:-/tmp}/vexfs-rs-ktap.$$
# kernel/rust/vexfs_rs.rs VECTORS, as NAME=V1,...
TABLE="a1=1,0,0,0 b1=0,1,0,0 a2=1,1,0,0 c1=0.5,-0.5,2,0.25 d1=-1,0,0,1 e1=0,1,0,0"
PLAN=14
[ -n "$VEXFS_C_SUITE" ] && PLAN=$((PLAN + 1))

N=0
FAILED=0
SEARCHES=0

ok() {	# ok STATUS NAME
	N=$((N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $N $2"
	else
		echo "not ok $N $2"
		FAILED=$((FAILED + 1))
	fi
}
skip() {	# skip NAME REASON
	N=$((N + 1))
	echo "ok $N $1 # SKIP $2"
}
diag() { echo "# $*"; }
have_vexctl() { command -v "$VEXCTL" >/dev/null 2>&1; }

# check_search NAME K METRIC QUERY: the device's answer equals expect-search's
check_search() {
	# shellcheck disable=SC2086 # TABLE is a list of words
	want=$("$VEXCTL" expect-search --k "$2" --metric "$3" "$4" $TABLE 2>&1)
	if got=$("$VEXCTL" search "$DEV" --k "$2" --metric "$3" "$4" 2>&1); then
		SEARCHES=$((SEARCHES + 1))
	fi
	if [ "$got" = "$want" ] && [ -n "$got" ]; then
		echo "$got" | while read -r line; do diag "$1: $line"; done
		return 0
	fi
	diag "$1: vexctl search $DEV --k $2 --metric $3 $4"
	echo "$got" | while read -r line; do diag "  got:  $line"; done
	echo "$want" | while read -r line; do diag "  want: $line"; done
	return 1
}

# errno_of CMD...: the errno name a failing vexctl command reports, or OK
errno_of() {
	if "$@" >/dev/null 2>"$TMP.err"; then
		echo OK
	else
		sed -n 's/.*errno=\([A-Z0-9]*\).*/\1/p' "$TMP.err" | head -n 1
	fi
}

# stat_field NAME: one field of `vexctl stats` ("name value" lines)
stat_field() { awk -v k="$1" '$1 == k { print $2 }' "$TMP.stats"; }

mkdir -p "$(dirname "$TMP")"
echo "vexfs-rs-ktap: start" > /dev/kmsg 2>/dev/null

echo "KTAP version 1"
echo "1..$PLAN"

# C module suite first (optional), nested
if [ -n "$VEXFS_C_SUITE" ]; then
	sh "$VEXFS_C_SUITE" "${VEXFS_KO:-/lib/modules-test/vexfs.ko}" > "$TMP.c" 2>&1
	st=$?
	sed 's/^/  /' "$TMP.c"
	ok $st c_module_suite
fi

# insmod
insmod "$KO" 2>"$TMP.err"
st=$?
[ $st -ne 0 ] && diag "insmod $KO: $(cat "$TMP.err")"
LOADED=$([ $st -eq 0 ] && echo 1)
ok $st insmod

# the misc device node (devtmpfs)
if [ -c "$DEV" ]; then
	ok 0 device_node
else
	diag "$DEV is not a character device: $(ls -l "$DEV" 2>&1)"
	ok 1 device_node
fi

if [ -z "$LOADED" ] || ! have_vexctl; then
	why="module not loaded"
	[ -n "$LOADED" ] && why="vexctl not found"
	for t in vexctl_stats search_l2 search_dot search_ties_by_ino search_k_above_table \
		 err_k0_einval err_dim_einval err_component_einval err_get_vector_enotty \
		 stats_counts_searches; do
		skip $t "$why"
	done
else
	# GET_STATS before any search
	"$VEXCTL" stats "$DEV" > "$TMP.stats" 2>&1
	st=$?
	while read -r line; do diag "stats: $line"; done < "$TMP.stats"
	expect="1 4 6 0"
	got="$(stat_field abi_version) $(stat_field dim) $(stat_field nr_vectors) $(stat_field searches)"
	[ "$got" = "$expect" ] || { diag "abi_version dim nr_vectors searches: got '$got' want '$expect'"; st=1; }
	ok $st vexctl_stats

	# L2 from (0.9,0.1,0,0): a1 0.02, a2 0.82, b1 = e1 1.62 (tie), ...
	check_search search_l2 3 l2 0.9,0.1,0,0
	ok $? search_l2

	# DOT, negative components and a negative score (d1)
	check_search search_dot 6 dot 1,-0.5,0.25,2
	ok $? search_dot

	# b1 and e1 are equal: same score, ascending inode (b1 = 2 before e1 = 6)
	check_search search_ties 3 l2 0,1,0,0
	ok $? search_ties_by_ino

	# k larger than the table: every vector, nr_results = 6
	check_search search_k256 256 dot 0.25,0.25,0.25,0.25
	ok $? search_k_above_table

	got=$(errno_of "$VEXCTL" search "$DEV" --k 0 --metric l2 1,0,0,0)
	[ "$got" = EINVAL ] || diag "k=0: got '$got' want EINVAL"
	ok $([ "$got" = EINVAL ]; echo $?) err_k0_einval

	got=$(errno_of "$VEXCTL" search "$DEV" --k 1 --metric l2 1,0,0)
	[ "$got" = EINVAL ] || diag "dim 3: got '$got' want EINVAL"
	ok $([ "$got" = EINVAL ]; echo $?) err_dim_einval

	got=$(errno_of "$VEXCTL" search "$DEV" --k 1 --metric l2 257,0,0,0)
	[ "$got" = EINVAL ] || diag "component 257: got '$got' want EINVAL"
	ok $([ "$got" = EINVAL ]; echo $?) err_component_einval

	# an ioctl the device does not implement
	got=$(errno_of "$VEXCTL" get "$DEV")
	[ "$got" = ENOTTY ] || diag "GET_VECTOR: got '$got' want ENOTTY"
	ok $([ "$got" = ENOTTY ]; echo $?) err_get_vector_enotty

	# GET_STATS counts exactly the successful searches
	"$VEXCTL" stats "$DEV" > "$TMP.stats" 2>&1
	got=$(stat_field searches)
	[ "$got" = "$SEARCHES" ] || diag "searches: got '$got' want $SEARCHES"
	ok $([ "$got" = "$SEARCHES" ]; echo $?) stats_counts_searches
fi

# rmmod
if [ -n "$LOADED" ]; then
	rmmod vexfs_rs 2>"$TMP.err"
	st=$?
	[ $st -ne 0 ] && diag "rmmod: $(cat "$TMP.err")"
	[ -e "$DEV" ] && { diag "$DEV still exists after rmmod"; st=1; }
	ok $st rmmod
else
	skip rmmod "module not loaded"
fi

# dmesg scan (only messages after our start marker)
dmesg > "$TMP.dmesg" 2>/dev/null
awk 'f; /vexfs-rs-ktap: start/ { f = 1 }' "$TMP.dmesg" |
	grep -E 'BUG|WARNING|Oops|Call Trace|general protection|panicked|KASAN|UBSAN|refcount_t|list_(add|del) corruption' \
	> "$TMP.bad"
if [ -s "$TMP.bad" ]; then
	while read -r line; do diag "dmesg: $line"; done < "$TMP.bad"
	ok 1 dmesg_clean
else
	ok 0 dmesg_clean
fi

rm -f "$TMP".*
diag "$((N - FAILED)) passed, $FAILED failed"
[ $FAILED -eq 0 ]

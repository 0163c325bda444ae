#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# In-VM test of vexfs.ko (POSIX sh / busybox ash).  Prints KTAP version 1.
#
# usage: run-ktap.sh [path/to/vexfs.ko]
# env:   VEXFS_KO     module path if $1 is not given (default ./vexfs.ko)
#        VEXFS_MNT    mount point (default /mnt/vexfs)
#        VEXCTL       userspace CLI (default: vexctl from PATH)
#        VEXFS_SMOKE  ioctl_smoke binary (default: next to this script);
#                     run as a nested KTAP subtest when present
# Exit status: 0 iff no test case failed.
#
# Every dependency on vexctl's output format is in the "vexctl adapter"
# section below.

KO=${1:-${VEXFS_KO:-./vexfs.ko}}
MNT=${VEXFS_MNT:-/mnt/vexfs}
VEXCTL=${VEXCTL:-vexctl}
HERE=$(cd "$(dirname "$0")" && pwd)
SMOKE=${VEXFS_SMOKE:-$HERE/ioctl_smoke}
TMP=${TMPDIR:-/tmp}/vexfs-ktap.$$
PLAN=17

N=0
FAILED=0

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

# ---------------------------------------------------------------------
# vexctl adapter: the ONLY place that knows vexctl's CLI and output.
#   vexctl add FILE v1,v2,...         (floats)
#   vexctl get FILE                   -> "v1,v2,..." (floats)
#   vexctl search DIR --k K --metric l2|dot v1,...   -> "rank name score"
#   vexctl hybrid-search DIR --k K --metric M --name-prefix P v1,...
#   vexctl index DIR create|drop|rebuild|info
#   vexctl stats DIR
#   on ioctl failure: nonzero exit and "errno=NAME" on stderr
# ---------------------------------------------------------------------
have_vexctl() { command -v "$VEXCTL" >/dev/null 2>&1; }
vx_add() { "$VEXCTL" add "$1" "$2"; }
# normalised vector: floats printed with 4 decimals, comma separated
vx_get_norm() {
	"$VEXCTL" get "$1" | tr ',' '\n' |
		awk 'NF { printf("%s%.4f", n++ ? "," : "", $1) } END { print "" }'
}
# result names in rank order, space separated
vx_search_names() {	# DIR K METRIC QUERY
	"$VEXCTL" search "$1" --k "$2" --metric "$3" "$4" |
		awk 'NF >= 2 { printf("%s%s", n++ ? " " : "", $2) } END { print "" }'
}
vx_hybrid_prefix_names() {	# DIR K METRIC PREFIX QUERY
	"$VEXCTL" hybrid-search "$1" --k "$2" --metric "$3" \
		--name-prefix "$4" "$5" |
		awk 'NF >= 2 { printf("%s%s", n++ ? " " : "", $2) } END { print "" }'
}
vx_index() { "$VEXCTL" index "$1" "$2"; }
vx_stats() { "$VEXCTL" stats "$1"; }
# prints the errno name reported by a failing vexctl command, or "OK"
vx_errno() {
	if "$@" >/dev/null 2>"$TMP.err"; then
		echo OK
	else
		sed -n 's/.*errno=\([A-Z0-9]*\).*/\1/p' "$TMP.err" | head -n 1
	fi
}
norm_csv() { echo "$1" | tr ',' '\n' |
	awk 'NF { printf("%s%.4f", n++ ? "," : "", $1) } END { print "" }'; }
# ---------------------------------------------------------------------

expect_eq() {	# expect_eq WHAT GOT WANT -> status
	if [ "$2" = "$3" ]; then
		return 0
	fi
	diag "$1: got '$2' want '$3'"
	return 1
}

mkdir -p "$(dirname "$TMP")" "$MNT"
echo "vexfs-ktap: start" > /dev/kmsg 2>/dev/null

echo "KTAP version 1"
echo "1..$PLAN"

# 1 insmod
insmod "$KO" 2>"$TMP.err"
st=$?
[ $st -ne 0 ] && diag "insmod $KO: $(cat "$TMP.err")"
ok $st insmod

# 2 mount
mount -t vexfs -o dim=4 none "$MNT" 2>"$TMP.err"
st=$?
[ $st -ne 0 ] && diag "mount: $(cat "$TMP.err")"
MOUNTED=$([ $st -eq 0 ] && echo 1)
ok $st mount_dim4

# 3 bad mount options are rejected
st=0
for opt in dim=0 dim=4097 dim=abc bogus=1; do
	mkdir -p "$MNT.bad"
	if mount -t vexfs -o "$opt" none "$MNT.bad" 2>/dev/null; then
		diag "mount -o $opt succeeded"
		umount "$MNT.bad"
		st=1
	fi
done
rmdir "$MNT.bad" 2>/dev/null
ok $st mount_bad_options_rejected

# 4 plain filesystem operations (ramfs-like behaviour)
if [ -n "$MOUNTED" ]; then
	st=0
	echo hello > "$MNT/f" && [ "$(cat "$MNT/f")" = hello ] || st=1
	mkdir -p "$MNT/d/e" && mv "$MNT/f" "$MNT/d/e/g" || st=1
	ln "$MNT/d/e/g" "$MNT/d/h" && [ "$(cat "$MNT/d/h")" = hello ] || st=1
	rm -f "$MNT/d/e/g" "$MNT/d/h" && rmdir "$MNT/d/e" "$MNT/d" || st=1
	[ -z "$(ls -A "$MNT")" ] || { diag "leftover: $(ls -A "$MNT")"; st=1; }
	ok $st fs_basic_ops
else
	skip fs_basic_ops "not mounted"
fi

# 5-10 vexctl round trips
if [ -z "$MOUNTED" ]; then
	for t in vexctl_add_get vexctl_search_l2 vexctl_search_dot \
		 vexctl_hybrid_prefix vexctl_index vexctl_stats; do
		skip $t "not mounted"
	done
elif ! have_vexctl; then
	for t in vexctl_add_get vexctl_search_l2 vexctl_search_dot \
		 vexctl_hybrid_prefix vexctl_index vexctl_stats; do
		skip $t "vexctl not found"
	done
else
	: > "$MNT/a1"; : > "$MNT/b1"; : > "$MNT/a2"
	st=0
	vx_add "$MNT/a1" 1,0,0,0 || st=1
	vx_add "$MNT/b1" 0,1,0,0 || st=1
	vx_add "$MNT/a2" 1,1,0,0 || st=1
	got=$(vx_get_norm "$MNT/a2")
	expect_eq get "$got" "$(norm_csv 1,1,0,0)" || st=1
	ok $st vexctl_add_get

	# L2 from (0.9,0.1,0,0): a1 0.02, a2 0.82, b1 1.62
	got=$(vx_search_names "$MNT" 3 l2 0.9,0.1,0,0)
	expect_eq search_l2 "$got" "a1 a2 b1"
	ok $? vexctl_search_l2

	# DOT: a2 1.0, a1 0.9, b1 0.1
	got=$(vx_search_names "$MNT" 2 dot 0.9,0.1,0,0)
	expect_eq search_dot "$got" "a2 a1"
	ok $? vexctl_search_dot

	got=$(vx_hybrid_prefix_names "$MNT" 5 l2 a 0,1,0,0)
	expect_eq hybrid "$got" "a2 a1"
	ok $? vexctl_hybrid_prefix

	st=0
	vx_index "$MNT" create >/dev/null || st=1
	vx_index "$MNT" info >/dev/null || st=1
	got=$(vx_search_names "$MNT" 3 l2 0.9,0.1,0,0)
	expect_eq search_indexed "$got" "a1 a2 b1" || st=1
	vx_index "$MNT" rebuild >/dev/null || st=1
	vx_index "$MNT" drop >/dev/null || st=1
	got=$(vx_errno vx_index "$MNT" drop)
	expect_eq drop_twice "$got" ENOENT || st=1
	ok $st vexctl_index

	vx_stats "$MNT" > "$TMP.stats"
	st=$?
	while read -r line; do diag "stats: $line"; done < "$TMP.stats"
	ok $st vexctl_stats
fi

# 11-13 error paths via vexctl
if [ -n "$MOUNTED" ] && have_vexctl; then
	: > "$MNT/novec"
	got=$(vx_errno vx_add "$MNT/novec" 1,2,3)
	expect_eq wrong_dim "$got" EINVAL
	ok $? err_wrong_dim_einval

	got=$(vx_errno "$VEXCTL" get "$MNT/novec")
	expect_eq no_vector "$got" ENODATA
	ok $? err_get_no_vector_enodata

	: > "$TMP.plain"
	got=$(vx_errno "$VEXCTL" get "$TMP.plain")
	expect_eq non_vexfs "$got" ENOTTY
	ok $? err_non_vexfs_enotty
	rm -f "$TMP.plain"
else
	skip err_wrong_dim_einval "vexctl not found or not mounted"
	skip err_get_no_vector_enodata "vexctl not found or not mounted"
	skip err_non_vexfs_enotty "vexctl not found or not mounted"
fi

# 14 ioctl_smoke as a nested KTAP subtest (on a fresh mount)
if [ -n "$MOUNTED" ] && [ -x "$SMOKE" ]; then
	mkdir -p "$MNT.smoke"
	if mount -t vexfs -o dim=4 none "$MNT.smoke"; then
		"$SMOKE" "$MNT.smoke" "$TMP.nonvexfs" > "$TMP.smoke" 2>&1
		st=$?
		sed 's/^/  /' "$TMP.smoke"
		rm -f "$TMP.nonvexfs"
		umount "$MNT.smoke" || st=1
	else
		st=1
	fi
	rmdir "$MNT.smoke" 2>/dev/null
	ok $st ioctl_smoke
else
	skip ioctl_smoke "ioctl_smoke not found or not mounted"
fi

# 15 umount
if [ -n "$MOUNTED" ]; then
	umount "$MNT"
	ok $? umount
else
	skip umount "not mounted"
fi

# 16 rmmod
rmmod vexfs
ok $? rmmod

# 17 dmesg scan (only messages after our start marker)
dmesg > "$TMP.dmesg" 2>/dev/null
awk 'f; /vexfs-ktap: start/ { f = 1 }' "$TMP.dmesg" |
	grep -E 'BUG|WARNING|Oops|Call Trace|general protection|KASAN|UBSAN|kmemleak|refcount_t|list_(add|del) corruption' \
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

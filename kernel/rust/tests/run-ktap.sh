#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# In-VM test of both modules on one kernel (POSIX sh / busybox ash): the shared
# suite kernel/tests/run-ktap.sh runs against the C module (vexfs.ko, a
# filesystem) and then, with the same cases and expectations, against the Rust
# module (vexfs_rs.ko, a misc device; VEXFS_TARGET=dev). Prints KTAP version 1
# with the two runs as nested subtests "c" and "rust".
#
# usage: run-ktap.sh SUITE VEXFS_KO VEXFS_RS_KO
# Exit status: 0 iff both runs passed.

SUITE=$1 C_KO=$2 RS_KO=$3
if [ ! -r "$SUITE" ] || [ ! -r "$C_KO" ] || [ ! -r "$RS_KO" ]; then
	echo "usage: run-ktap.sh SUITE VEXFS_KO VEXFS_RS_KO (all readable)" >&2
	exit 2
fi
TMP=${TMPDIR:-/tmp}/vexfs-both.$$
N=0
FAILED=0

# nested NAME TARGET KO: one run of the suite as a subtest
nested() {
	VEXFS_TARGET=$2 sh "$SUITE" "$3" > "$TMP.out" 2>&1
	st=$?
	first=1
	while IFS= read -r line; do
		echo "  $line"
		case $first$line in
		"1KTAP version"*) echo "  # Subtest: $1" ;;
		esac
		first=
	done < "$TMP.out"
	N=$((N + 1))
	if [ $st -eq 0 ]; then
		echo "ok $N $1"
	else
		echo "not ok $N $1"
		FAILED=$((FAILED + 1))
	fi
}

echo "KTAP version 1"
echo "1..2"
nested c fs "$C_KO"
nested rust dev "$RS_KO"
rm -f "$TMP.out"
echo "# $((N - FAILED)) passed, $FAILED failed"
[ $FAILED -eq 0 ]

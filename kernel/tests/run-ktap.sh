#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# In-VM test of vexfs.ko (POSIX sh / busybox ash).  Prints KTAP version 1,
# groups as nested subtests ("# Subtest: NAME", indented two spaces).
# The same cases, with the same expectations, test the Rust module
# vexfs_rs.ko (VEXFS_TARGET=dev): its "files" are device nodes of
# /dev/vexfs-rs on a tmpfs at the mount point, and what a device cannot see
# (mount options, rename, unlink, directories) is reported as SKIP with
# the reason (see lacks() below), never as a pass.
#
# usage: run-ktap.sh [path/to/vexfs.ko]
# env:   VEXFS_KO     module path if $1 is not given (default ./vexfs.ko)
#        VEXFS_TARGET fs (default: vexfs.ko, a filesystem) or dev
#                     (vexfs_rs.ko, a misc device)
#        VEXFS_MNT    mount point (default /mnt/vexfs)
#        VEXCTL       userspace CLI (default: vexctl from PATH)
#        VEXFS_SMOKE  ioctl_smoke binary (default: next to this script);
#                     run as a nested KTAP subtest when present
# Exit status: 0 iff every planned test case ran and passed.
#
# Tests: insmod, insmod_again_eexist, mount {..}, fs_basic_ops,
# vectors {..}, search {..}, hybrid_search {..}, index {..}, errors {..},
# stats, ioctl_smoke {..}, rmmod_busy_while_mounted, umount, rmmod,
# dmesg_clean   ({..}: nested subtest; without vexctl those are skipped).
#
# Expectations are computed in userspace, never copied from a kernel run:
#   * the script keeps a model of the main mount, updated only by
#     operations that succeeded: ENTRIES ("PATH=V1,...[=TAG]" per file with
#     a vector) and the struct vexfs_stats counters;
#   * every SEARCH / HYBRID_SEARCH output (rank, name, score) must equal
#     `vexctl expect-search --stat` over ENTRIES with the same k, metric,
#     query and filters (same maths, inode numbers from lstat);
#   * `index info` and `stats` must equal what the model predicts;
#   * GET_VECTOR must print the vector that was added: vectors are written
#     the way vexctl prints them (<= 4 decimals, no trailing zeros), which
#     round-trips exactly through Q16.16;
#   * error paths: vexctl exits 1 and stderr ends in "(errno=NAME)".
# vexctl is called through command substitution or with redirections only
# (no pipelines), so that a run costs few processes under TCG.

KO=${1:-${VEXFS_KO:-./vexfs.ko}}
MNT=${VEXFS_MNT:-/mnt/vexfs}
VEXCTL=${VEXCTL:-vexctl}
HERE=$(cd "$(dirname "$0")" && pwd)
SMOKE=${VEXFS_SMOKE:-$HERE/ioctl_smoke}
TMP=${TMPDIR:-/tmp}/vexfs-ktap.$$
DIM=4
PLAN=15
TARGET=${VEXFS_TARGET:-fs}
case $TARGET in
fs) MOD=vexfs FSTYPE=vexfs AT=$MNT ;;	# AT: where mount-wide ioctls go
dev) MOD=vexfs_rs FSTYPE=tmpfs AT=$MNT.dev DEVNAME=vexfs-rs ;;
*) echo "run-ktap.sh: VEXFS_TARGET must be fs or dev, not '$TARGET'" >&2; exit 2 ;;
esac
MARK="vexfs-ktap: start $MOD $$"
NL='
'
set -f	# no globbing: ENTRIES is split on spaces only

# ------------------------------------------------------------------ KTAP
N=0		# results printed at the current level
FAILED=0	# failures at the current level
IND=""		# indentation of the current level

ok() {	# ok STATUS NAME
	N=$((N + 1))
	if [ "$1" -eq 0 ]; then
		echo "${IND}ok $N $2"
	else
		echo "${IND}not ok $N $2"
		FAILED=$((FAILED + 1))
	fi
}
skip() {	# skip NAME REASON
	N=$((N + 1))
	echo "${IND}ok $N $1 # SKIP $2"
}
diag() { echo "${IND}# $*"; }
diag_text() {	# diag_text LABEL TEXT: a multi-line value as diagnostics
	diag "$1:"
	dt_rest=$2
	while [ -n "$dt_rest" ]; do
		diag "  ${dt_rest%%"$NL"*}"
		case $dt_rest in *"$NL"*) dt_rest=${dt_rest#*"$NL"} ;; *) dt_rest= ;; esac
	done
}

# subtest_begin NAME PLAN ... subtest_end: one level of nesting
subtest_begin() {
	SUB_NAME=$1 SUB_PLAN=$2 OUTER_N=$N OUTER_FAILED=$FAILED
	N=0 FAILED=0 IND="  "
	echo "${IND}KTAP version 1"
	echo "${IND}# Subtest: $SUB_NAME"
	echo "${IND}1..$SUB_PLAN"
}
subtest_end() {
	sub_st=0
	[ "$FAILED" -eq 0 ] || sub_st=1
	if [ "$N" -ne "$SUB_PLAN" ]; then
		diag "planned $SUB_PLAN tests, ran $N"
		sub_st=1
	fi
	N=$OUTER_N FAILED=$OUTER_FAILED IND=""
	ok $sub_st "$SUB_NAME"
}

# ------------------------------------------------------------------ targets
# lacks WHAT: the target cannot do WHAT; sets WHY (the SKIP reason). The
# filesystem (fs) lacks nothing; the device (dev) has no mount of its own.
lacks() {
	[ "$TARGET" = dev ] || return 1
	case $1 in
	mount) WHY="vexfs_rs is a device, not a filesystem: no mount options, dim fixed at $DIM" ;;
	fsops) WHY="vexfs_rs is a device: file operations on its nodes are tmpfs's" ;;
	rename) WHY="vexfs_rs is a device: it does not see its nodes renamed" ;;
	unlink) WHY="vexfs_rs is a device: it does not see a node's last unlink" ;;
	dirs) WHY="vexfs_rs is a device: its nodes are never directories" ;;
	smoke) WHY="ioctl_smoke creates regular files on a vexfs mount" ;;
	esac
	return 0
}
# mkfile PATH: a file that can carry a vector (a device node on dev)
mkfile() {
	if [ "$TARGET" = dev ]; then
		mknod "$1" c "$DEV_MAJOR" "$DEV_MINOR"
	else
		: > "$1"
	fi
}

# ------------------------------------------------------------------ vexctl
have_vexctl() { command -v "$VEXCTL" >/dev/null 2>&1; }
# vx ARGS...: run vexctl; stdout in $OUT (trailing newline dropped),
# first stderr line in $ERR; returns vexctl's exit status
vx() {
	OUT=$("$VEXCTL" "$@" 2> "$TMP.err")
	vx_rc=$?
	ERR=
	[ $vx_rc -eq 0 ] || read -r ERR < "$TMP.err"
	return $vx_rc
}

# Model of the main mount (see the header).
ENTRIES=
NV=0 ADDED=0 REMOVED=0 SEARCHES=0 HYBRIDS=0 BUILDS=0
IDX=0 GEN=0 NEXTGEN=0

entry_has() {	# entry_has PATH
	for eh_e in $ENTRIES; do
		case $eh_e in "$1="*) return 0 ;; esac
	done
	return 1
}
entry_del() {	# entry_del PATH
	ed_new=
	for ed_e in $ENTRIES; do
		case $ed_e in "$1="*) ;; *) ed_new="$ed_new $ed_e" ;; esac
	done
	ENTRIES=$ed_new
}
entry_rename() {	# entry_rename OLD NEW
	er_new=
	for er_e in $ENTRIES; do
		case $er_e in "$1="*) er_e="$2=${er_e#"$1="}" ;; esac
		er_new="$er_new $er_e"
	done
	ENTRIES=$er_new
}
model_unlinked() {	# model_unlinked PATH: the last name of a file with a vector went
	entry_del "$1"
	NV=$((NV - 1)) REMOVED=$((REMOVED + 1))
}

do_add() {	# do_add PATH VECTOR [TAG]: ADD_VECTOR, model updated on success
	if [ -n "$3" ]; then
		vx add "$1" --tag "$3" "$2" || return 1
	else
		vx add "$1" "$2" || return 1
	fi
	ADDED=$((ADDED + 1))
	if entry_has "$1"; then
		entry_del "$1"
	else
		NV=$((NV + 1))
	fi
	ENTRIES="$ENTRIES $1=$2${3:+=$3}"
}
do_del() {	# do_del PATH: DEL_VECTOR
	vx del "$1" || return 1
	model_unlinked "$1"
}
do_index() {	# do_index OP: MANAGE_INDEX, model updated on success
	vx index "$AT" "$1" || return 1
	case $1 in
	create|rebuild) NEXTGEN=$((NEXTGEN + 1)) GEN=$NEXTGEN IDX=1 BUILDS=$((BUILDS + 1)) ;;
	drop) IDX=0 GEN=0 ;;
	esac
}

# same NAME GOT WANT: status 0 iff equal, diagnostics otherwise
same() {
	[ "$2" = "$3" ] && return 0
	diag "$1: output differs"
	diag_text got "$2"
	diag_text want "$3"
	return 1
}

# check_search NAME CMD K METRIC QUERY [--no-index] [FILTERS...]
#   `vexctl CMD $MNT ...` must print exactly what `vexctl expect-search
#   --stat` computes over ENTRIES; that must not be empty unless NAME ends
#   in _no_match.
check_search() {
	cs_name=$1 cs_cmd=$2 cs_k=$3 cs_metric=$4 cs_query=$5
	shift 5
	cs_st=0
	if vx "$cs_cmd" "$AT" --k "$cs_k" --metric "$cs_metric" "$@" -- "$cs_query"; then
		if [ "$cs_cmd" = search ]; then
			SEARCHES=$((SEARCHES + 1))
		else
			HYBRIDS=$((HYBRIDS + 1))
		fi
	else
		diag "vexctl $cs_cmd: $ERR"
		cs_st=1
	fi
	cs_got=$OUT
	[ "$1" = --no-index ] && shift
	# shellcheck disable=SC2086  # ENTRIES: one word per entry
	if ! vx expect-search --stat --k "$cs_k" --metric "$cs_metric" "$@" \
		-- "$cs_query" $ENTRIES; then
		diag "expect-search: $ERR"
		cs_st=1
	fi
	case $cs_name in
	*_no_match) [ -z "$OUT" ] || { diag "expectation not empty"; cs_st=1; } ;;
	*) [ -n "$OUT" ] || { diag "empty expectation"; cs_st=1; } ;;
	esac
	[ $cs_st -eq 0 ] && { same "$cs_name" "$cs_got" "$OUT" || cs_st=1; }
	ok $cs_st "$cs_name"
}

# check_errno NAME ERRNO VEXCTL-ARGS...: vexctl exits 1 with (errno=ERRNO)
check_errno() {
	ce_name=$1 ce_want=$2
	shift 2
	vx "$@"
	ce_rc=$?
	case "$ce_rc $ERR" in
	"1 "*"(errno=$ce_want)") ok 0 "$ce_name" ;;
	*)
		diag "vexctl $*: exit $ce_rc, stderr '$ERR'; want exit 1, errno $ce_want"
		ok 1 "$ce_name"
		;;
	esac
}

# get_matches PATH VECTOR TAG: GET_VECTOR gives back VECTOR and TAG
get_matches() {
	gm_st=0
	if vx get "$1"; then
		[ "$OUT" = "$2" ] || { diag "get $1: got '$OUT' want '$2'"; gm_st=1; }
	else
		diag "get $1: $ERR"; gm_st=1
	fi
	if vx get --show-tag "$1"; then
		[ "$OUT" = "$3" ] || { diag "get --show-tag $1: got '$OUT' want '$3'"; gm_st=1; }
	else
		diag "get --show-tag $1: $ERR"; gm_st=1
	fi
	return $gm_st
}
check_get() { get_matches "$2" "$3" "$4"; ok $? "$1"; }	# check_get NAME PATH VECTOR TAG

# check_index_info NAME: `index info` as the model predicts it
# (bytes: > 0 iff an index is present)
check_index_info() {
	ci_st=0
	if vx index "$AT" info; then
		ci_n=0
		[ $IDX -eq 1 ] && ci_n=$NV
		ci_want="present $IDX${NL}dim $DIM${NL}nr_entries $ci_n${NL}generation $GEN"
		same "$1" "${OUT%"$NL"bytes *}" "$ci_want" || ci_st=1
		ci_bytes=${OUT##*bytes }
		case $IDX:$ci_bytes in
		0:0|1:[1-9]*) ;;
		*) diag "bytes '$ci_bytes' with index_present $IDX"; ci_st=1 ;;
		esac
	else
		diag "index info: $ERR"; ci_st=1
	fi
	ok $ci_st "$1"
}

# want_stats DIM NR ADDED REMOVED SEARCHES HYBRIDS BUILDS PRESENT ENTRIES GEN
want_stats() {
	WANT="abi_version 1${NL}dim $1${NL}nr_vectors $2${NL}vectors_added $3"
	WANT="$WANT${NL}vectors_removed $4${NL}searches $5${NL}hybrid_searches $6"
	WANT="$WANT${NL}index_builds $7${NL}index_present $8${NL}index_entries $9"
	WANT="$WANT${NL}index_generation ${10}"
}
model_stats() {	# the main mount's stats as the model predicts them
	ms_n=0
	[ $IDX -eq 1 ] && ms_n=$NV
	want_stats $DIM $NV $ADDED $REMOVED $SEARCHES $HYBRIDS $BUILDS $IDX $ms_n $GEN
}

# check_mount_fails NAME OPTIONS: mount -o OPTIONS fails with EINVAL
check_mount_fails() {
	if mount -t vexfs -o "$2" none "$MNT.bad" 2> "$TMP.err"; then
		diag "mount -o $2 succeeded"
		umount "$MNT.bad"
		ok 1 "$1"
		return
	fi
	read -r cm_err < "$TMP.err"
	case $cm_err in
	*"Invalid argument"*) ok 0 "$1" ;;
	*) diag "mount -o $2: $cm_err (want EINVAL)"; ok 1 "$1" ;;
	esac
}

mounted() { grep -q " $1 $FSTYPE " /proc/mounts; }

# ------------------------------------------------------------------ tests
mkdir -p "$(dirname "$TMP")" "$MNT"
echo "$MARK" > /dev/kmsg 2>/dev/null

echo "KTAP version 1"
echo "1..$PLAN"

# --- module load
# (an init that oopses kills insmod and leaves the module "Loading" for good:
# then nothing below may touch it, a second insmod would wait for it forever)
insmod "$KO" 2> "$TMP.err"
st=$?
[ $st -ne 0 ] && diag "insmod $KO: exit $st: $(cat "$TMP.err")"
LOADED=
if grep -q "^$MOD .* Live " /proc/modules; then
	LOADED=1
else
	diag "$MOD is not Live: $(grep "^$MOD " /proc/modules)"
	st=1
fi
ok $st insmod

MOUNTED=
if [ -z "$LOADED" ]; then
	skip insmod_again_eexist "module not loaded"
	skip mount "module not loaded"
else
	if insmod "$KO" 2> "$TMP.err"; then
		diag "second insmod succeeded"
		ok 1 insmod_again_eexist
	else
		read -r err < "$TMP.err"
		case $err in
		*"File exists"*) ok 0 insmod_again_eexist ;;
		*) diag "second insmod: $err (want EEXIST)"; ok 1 insmod_again_eexist ;;
		esac
	fi

	# --- mount: options, per-mount dim and counters
	subtest_begin mount 7
	if lacks mount; then
		# the device's nodes live on a tmpfs at the mount point
		st=0
		mount -t tmpfs none "$MNT" 2> "$TMP.err" ||
			{ diag "mount tmpfs: $(cat "$TMP.err")"; st=1; }
		DEV_MAJOR=10	# MISC_MAJOR; the minor from /proc/misc
		DEV_MINOR=$(awk -v n="$DEVNAME" '$2 == n { print $1 }' /proc/misc)
		[ -n "$DEV_MINOR" ] || { diag "$DEVNAME not in /proc/misc"; st=1; }
		[ $st -eq 0 ] && { mkfile "$AT" || st=1; }
		MOUNTED=$([ $st -eq 0 ] && echo 1)
		ok $st dim4
		skip dim0_einval "$WHY"
		skip dim4097_einval "$WHY"
		skip dim_not_a_number_einval "$WHY"
		skip unknown_option_einval "$WHY"
		skip default_and_max_dim "$WHY"
		skip dim3_separate "$WHY"
	else
		mount -t vexfs -o dim=$DIM none "$MNT" 2> "$TMP.err"
		st=$?
		[ $st -ne 0 ] && diag "mount: $(cat "$TMP.err")"
		MOUNTED=$([ $st -eq 0 ] && echo 1)
		ok $st dim4
		mkdir -p "$MNT.bad"
		check_mount_fails dim0_einval dim=0
		check_mount_fails dim4097_einval dim=4097
		check_mount_fails dim_not_a_number_einval dim=abc
		check_mount_fails unknown_option_einval bogus=1
		rmdir "$MNT.bad"

		st=0
		mkdir -p "$MNT.2"
		if mount -t vexfs none "$MNT.2" 2> "$TMP.err"; then
			grep -q " $MNT.2 vexfs .*dim=$DIM" /proc/mounts ||
				{ diag "default dim: $(grep " $MNT.2 " /proc/mounts)"; st=1; }
			umount "$MNT.2" || st=1
		else
			diag "mount without dim=: $(cat "$TMP.err")"; st=1
		fi
		if mount -t vexfs -o dim=4096 none "$MNT.2" 2> "$TMP.err"; then
			umount "$MNT.2" || st=1
		else
			diag "mount -o dim=4096: $(cat "$TMP.err")"; st=1
		fi
		ok $st default_and_max_dim

		if ! have_vexctl; then
			skip dim3_separate "vexctl not found"
		elif mount -t vexfs -o dim=3 none "$MNT.2" 2> "$TMP.err"; then
			st=0
			vx search "$MNT.2" --k 5 --metric l2 1,2,3 || { diag "search: $ERR"; st=1; }
			[ -z "$OUT" ] || { diag "search on an empty mount: $OUT"; st=1; }
			: > "$MNT.2/only"
			vx add "$MNT.2/only" 1,2,3 || { diag "add dim 3: $ERR"; st=1; }
			vx add "$MNT.2/only" 1,2,3,4 && { diag "add dim 4 on a dim=3 mount succeeded"; st=1; }
			vx search "$MNT.2" --k 5 --metric dot 1,0,0 || { diag "search: $ERR"; st=1; }
			got=$OUT
			vx expect-search --stat --k 5 --metric dot 1,0,0 "$MNT.2/only=1,2,3"
			same search_dim3 "$got" "$OUT" || st=1
			vx stats "$MNT.2" || { diag "stats: $ERR"; st=1; }
			want_stats 3 1 1 0 2 0 0 0 0 0	# other mounts' counters are not seen
			same stats_dim3 "$OUT" "$WANT" || st=1
			if mount -o remount,dim=5 "$MNT.2" 2>/dev/null; then
				diag "remount with dim=5 succeeded"; st=1
			fi
			umount "$MNT.2" || st=1
			ok $st dim3_separate
		else
			diag "mount -o dim=3: $(cat "$TMP.err")"
			ok 1 dim3_separate
		fi
		rmdir "$MNT.2"
	fi
	subtest_end
fi

# --- plain filesystem operations (ramfs-like behaviour)
if [ -n "$MOUNTED" ] && lacks fsops; then
	skip fs_basic_ops "$WHY"
elif [ -n "$MOUNTED" ]; then
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

RUN_VEXCTL=
if [ -z "$MOUNTED" ]; then
	why="not mounted"
elif ! have_vexctl; then
	why="vexctl not found"
else
	RUN_VEXCTL=1
fi

# --- ADD_VECTOR / GET_VECTOR / DEL_VECTOR, names through rename/link/unlink
LONG=long_alpha_name_$(printf '%070d' 0)	# 86 bytes; results show 63 of them
if [ -n "$RUN_VEXCTL" ]; then
	subtest_begin vectors 9
	mkdir "$MNT/sub"
	st=0
	while read -r path vec tag; do
		mkfile "$MNT/$path"
		do_add "$MNT/$path" "$vec" "$tag" || { diag "add $path: $ERR"; st=1; }
	done <<EOF
doc_alpha 1,0,0,0 kind=doc
doc_beta 0.5,-1.25,2,0 kind=doc
img_alpha -3,0.75,0,1 kind=img
img_gamma 255.5,-256,0,0.0625 kind=img
notes 0,0,0,0
dup_a 1,1,1,1 kind=dup
dup_b 1,1,1,1 kind=dup
$LONG -0.3,0.1,0.7,-0.9 kind=doc
sub/deep 2,2,-2,-2
EOF
	[ "$NV" -eq 9 ] || { diag "model has $NV vectors, want 9"; st=1; }
	ok $st add_vector

	st=0
	for e in $ENTRIES; do
		path=${e%%=*} rest=${e#*=}
		vec=${rest%%=*} tag=
		case $rest in *=*) tag=${rest#*=} ;; esac
		get_matches "$path" "$vec" "$tag" || st=1
	done
	ok $st get_vector_roundtrip

	do_add "$MNT/doc_beta" 0.25,0.25,-0.5,4 kind=memo || diag "replace: $ERR"
	check_get add_replaces_vector_and_tag "$MNT/doc_beta" 0.25,0.25,-0.5,4 kind=memo

	mkfile "$MNT/tmp1"
	st=0
	do_add "$MNT/tmp1" 9,9,9,9 || { diag "add tmp1: $ERR"; st=1; }
	do_del "$MNT/tmp1" || { diag "del tmp1: $ERR"; st=1; }
	ok $st del_vector
	check_errno get_after_del_enodata ENODATA get "$MNT/tmp1"
	check_errno del_twice_enodata ENODATA del "$MNT/tmp1"
	rm "$MNT/tmp1"

	# rename: the vector follows the inode, results show the new name
	st=0
	if lacks rename; then
		skip rename_keeps_vector "$WHY"
	else
		mv "$MNT/img_gamma" "$MNT/img_delta" &&
			entry_rename "$MNT/img_gamma" "$MNT/img_delta" || st=1
		mv "$MNT/sub/deep" "$MNT/deeper" && entry_rename "$MNT/sub/deep" "$MNT/deeper" ||
			st=1
		if [ $st -eq 0 ]; then
			check_get rename_keeps_vector "$MNT/img_delta" 255.5,-256,0,0.0625 kind=img
		else
			ok 1 rename_keeps_vector
		fi
	fi

	# hard link: same vector, name unchanged; unlinking the link keeps it
	st=0
	ln "$MNT/doc_alpha" "$MNT/alias" || st=1
	get_matches "$MNT/alias" 1,0,0,0 kind=doc || st=1
	rm "$MNT/alias" || st=1
	get_matches "$MNT/doc_alpha" 1,0,0,0 kind=doc || st=1
	ok $st hard_link_shares_vector

	# unlinking the last name frees the vector (nr_vectors, vectors_removed)
	if lacks unlink; then
		skip unlink_frees_vector "$WHY"
	else
		st=0
		rm "$MNT/notes" && model_unlinked "$MNT/notes" || st=1
		vx stats "$AT" || { diag "stats: $ERR"; st=1; }
		model_stats
		same unlink "$OUT" "$WANT" || st=1
		ok $st unlink_frees_vector
	fi
	subtest_end
else
	skip vectors "$why"
fi

# --- SEARCH (scan; the index is tested below)
if [ -n "$RUN_VEXCTL" ]; then
	subtest_begin search 11
	check_search l2_k3 search 3 l2 0.9,0.1,0,0
	check_search l2_tie_by_ino search 4 l2 1,1,1,1
	check_search l2_k_exceeds_count search 256 l2 -1,-1,-1,-1
	check_search l2_k1 search 1 l2 0,0,0,0
	check_search l2_fractional_query search 5 l2 0.3,-0.7,1.1,0.01
	check_search dot_k3 search 3 dot 0.9,0.1,0,0
	check_search dot_negative_scores search 8 dot -1,0.5,0,-0.25
	check_search dot_tie_by_ino search 5 dot 1,1,1,1
	check_search dot_large_components search 8 dot 256,-256,256,-256
	check_search dot_k_exceeds_count search 256 dot 0.01,0.02,-0.03,0.04
	check_search no_index_flag search 4 l2 0.5,0.5,0.5,0.5 --no-index
	subtest_end
else
	skip search "$why"
fi

# --- HYBRID_SEARCH: every filter kind, alone and combined
if [ -n "$RUN_VEXCTL" ]; then
	PREFIX64=${LONG%??????????????????????}	# the first 64 bytes (filter max)
	subtest_begin hybrid_search 14
	check_search name_prefix_l2 hybrid-search 10 l2 0,0,0,0 --name-prefix doc
	check_search name_prefix_dot hybrid-search 10 dot 1,-1,0,0.5 --name-prefix img
	check_search name_substr_l2 hybrid-search 10 l2 0.9,0.1,0,0 --name-substr alpha
	check_search name_substr_dot_k3 hybrid-search 3 dot 0.1,0.2,0.3,0.4 --name-substr _
	check_search tag_eq_l2 hybrid-search 10 l2 0,1,0,0 --tag-eq kind=doc
	check_search tag_eq_dot_tie hybrid-search 2 dot 1,1,1,1 --tag-eq kind=dup
	check_search tag_eq_empty_matches_untagged hybrid-search 10 l2 0,0,0,0 --tag-eq ""
	check_search filter_none hybrid-search 256 l2 1,2,3,4 --filter-none
	check_search prefix_and_tag hybrid-search 10 dot 1,0,1,0 \
		--name-prefix doc --tag-eq kind=doc
	check_search four_filters hybrid-search 10 l2 0,0,0,0 \
		--filter-none --name-prefix d --name-substr _ --tag-eq kind=dup
	check_search long_name_prefix hybrid-search 10 l2 0,0,0,0 --name-prefix "$PREFIX64"
	check_search k1 hybrid-search 1 dot 1,1,1,1 --name-substr a
	check_search prefix_no_match hybrid-search 10 l2 0,0,0,0 --name-prefix zzz
	check_search tag_no_match hybrid-search 10 dot 0,0,0,0 --tag-eq kind=none
	subtest_end
else
	skip hybrid_search "$why"
fi

# --- MANAGE_INDEX: create/drop/rebuild/info, kept up to date, same results
if [ -n "$RUN_VEXCTL" ]; then
	subtest_begin index 22
	check_index_info info_absent
	check_errno drop_absent_enoent ENOENT index "$AT" drop
	check_errno rebuild_absent_enoent ENOENT index "$AT" rebuild
	if do_index create; then
		check_index_info create
	else
		diag "index create: $ERR"
		ok 1 create
	fi
	check_errno create_again_eexist EEXIST index "$AT" create
	check_search search_l2 search 5 l2 0.9,0.1,0,0
	check_search search_dot search 8 dot -1,0.5,0,-0.25
	check_search hybrid_search hybrid-search 10 l2 1,1,1,1 --name-prefix d
	check_search search_no_index_flag search 3 dot 1,1,1,1 --no-index

	mkfile "$MNT/late"
	do_add "$MNT/late" 0.9,0.1,0.0001,0 kind=doc || diag "add late: $ERR"
	check_index_info tracks_add
	check_search search_after_add search 3 l2 0.9,0.1,0,0
	do_add "$MNT/dup_b" -1,-1,-1,-1 kind=dup || diag "replace dup_b: $ERR"
	check_search search_after_replace search 4 dot 1,1,1,1
	do_del "$MNT/dup_a" || diag "del dup_a: $ERR"
	check_index_info tracks_del
	check_search search_after_del search 256 l2 1,1,1,1
	if lacks unlink; then
		skip tracks_unlink "$WHY"
	else
		rm "$MNT/img_alpha" && model_unlinked "$MNT/img_alpha"
		check_index_info tracks_unlink
	fi
	if lacks rename; then
		skip hybrid_after_rename "$WHY"
	else
		mv "$MNT/doc_alpha" "$MNT/doc_first" &&
			entry_rename "$MNT/doc_alpha" "$MNT/doc_first"
		check_search hybrid_after_rename hybrid-search 5 l2 1,0,0,0 --name-prefix doc
	fi

	if do_index rebuild; then
		check_index_info rebuild
	else
		diag "index rebuild: $ERR"
		ok 1 rebuild
	fi
	check_search search_after_rebuild search 256 dot 0.5,-0.5,0.25,1
	if do_index drop; then
		check_index_info drop
	else
		diag "index drop: $ERR"
		ok 1 drop
	fi
	check_errno drop_again_enoent ENOENT index "$AT" drop
	check_search search_after_drop search 256 dot 0.5,-0.5,0.25,1
	# left in place: stats count it, umount must free it
	if do_index create; then
		check_index_info create_after_drop
	else
		diag "index create: $ERR"
		ok 1 create_after_drop
	fi
	subtest_end
else
	skip index "$why"
fi

# --- error paths: vexctl exits 1 with the expected errno (and, checked by
# the stats test, failed calls change no counter)
if [ -n "$RUN_VEXCTL" ]; then
	mkfile "$MNT/novec"
	: > "$TMP.plain"
	mkdir -p "$TMP.dir"
	BIG=1
	i=1
	while [ $i -lt 4097 ]; do BIG="$BIG,1"; i=$((i + 1)); done
	subtest_begin errors 21
	check_errno add_wrong_dim_einval EINVAL add "$MNT/novec" 1,2,3
	check_errno add_dim_over_max_e2big E2BIG add "$MNT/novec" "$BIG"
	check_errno add_component_over_256_einval EINVAL add "$MNT/novec" 1,256.5,0,0
	check_errno add_component_under_minus_256_einval EINVAL add "$MNT/novec" 0,0,-256.5,0
	if lacks dirs; then
		skip get_on_directory_eisdir "$WHY"
	else
		check_errno get_on_directory_eisdir EISDIR get "$MNT"
	fi
	check_errno get_no_vector_enodata ENODATA get "$MNT/novec"
	check_errno del_no_vector_enodata ENODATA del "$MNT/novec"
	check_errno get_non_vexfs_enotty ENOTTY get "$TMP.plain"
	check_errno search_non_vexfs_enotty ENOTTY search "$TMP.dir" --k 1 --metric l2 1,0,0,0
	check_errno stats_non_vexfs_enotty ENOTTY stats "$TMP.dir"
	check_errno index_non_vexfs_enotty ENOTTY index "$TMP.dir" info
	check_errno search_k0_einval EINVAL search "$AT" --k 0 --metric l2 1,0,0,0
	check_errno search_k257_e2big E2BIG search "$AT" --k 257 --metric l2 1,0,0,0
	check_errno search_bad_metric_einval EINVAL search "$AT" --k 1 --metric 2 1,0,0,0
	check_errno search_bad_flags_einval EINVAL search "$AT" --k 1 --metric l2 --flags 2 1,0,0,0
	check_errno search_wrong_dim_einval EINVAL search "$AT" --k 1 --metric dot 1,0,0
	check_errno search_query_range_einval EINVAL search "$AT" --k 1 --metric l2 300,0,0,0
	check_errno hybrid_k0_einval EINVAL hybrid-search "$AT" --k 0 --metric l2 \
		--name-prefix d 1,0,0,0
	check_errno hybrid_k257_e2big E2BIG hybrid-search "$AT" --k 257 --metric dot \
		--tag-eq a=b 1,0,0,0
	check_errno hybrid_bad_metric_einval EINVAL hybrid-search "$AT" --k 1 --metric 9 \
		--filter-none 1,0,0,0
	check_errno index_bad_op_einval EINVAL index "$AT" 4
	subtest_end
	rm -r "$MNT/novec" "$TMP.plain" "$TMP.dir"
else
	skip errors "$why"
fi

# --- GET_STATS: every counter as the model predicts it
if [ -n "$RUN_VEXCTL" ]; then
	st=0
	if vx stats "$AT"; then
		model_stats
		same stats "$OUT" "$WANT" || st=1
	else
		diag "stats: $ERR"; st=1
	fi
	ok $st stats
else
	skip stats "$why"
fi

# --- ioctl_smoke (C, raw ioctls) as a nested KTAP subtest, on a fresh mount
if lacks smoke; then
	skip ioctl_smoke "$WHY"
elif [ -n "$MOUNTED" ] && [ -x "$SMOKE" ]; then
	mkdir -p "$MNT.smoke"
	if mount -t vexfs -o dim=4 none "$MNT.smoke"; then
		"$SMOKE" "$MNT.smoke" "$TMP.nonvexfs" > "$TMP.smoke" 2>&1
		st=$?
		first=1
		while IFS= read -r line; do
			echo "  $line"
			case $first$line in
			"1KTAP version"*) echo "  # Subtest: ioctl_smoke" ;;
			esac
			first=
		done < "$TMP.smoke"
		umount "$MNT.smoke" || st=1
	else
		st=1
	fi
	rmdir "$MNT.smoke"
	ok $st ioctl_smoke
else
	skip ioctl_smoke "ioctl_smoke not found or not mounted"
fi

# --- unload
if [ -n "$MOUNTED" ]; then
	# dev: an open node is what pins the module
	[ "$TARGET" = dev ] && exec 3< "$AT"
	if rmmod "$MOD" 2>/dev/null; then
		diag "rmmod succeeded with $MOD in use"
		ok 1 rmmod_busy_while_mounted
	else
		grep -q "^$MOD " /proc/modules
		ok $? rmmod_busy_while_mounted
	fi
	[ "$TARGET" = dev ] && { exec 3<&-; rm -f "$AT"; }
	umount "$MNT"
	st=$?
	mounted "$MNT" && { diag "still mounted"; st=1; }
	ok $st umount
else
	skip rmmod_busy_while_mounted "not mounted"
	skip umount "not mounted"
fi

if [ -n "$LOADED" ]; then
	rmmod "$MOD" 2> "$TMP.err"
	st=$?
	[ $st -ne 0 ] && diag "rmmod: $(cat "$TMP.err")"
	grep -q "^$MOD " /proc/modules && { diag "$MOD still loaded"; st=1; }
	ok $st rmmod
else
	skip rmmod "module not loaded"
fi

# --- dmesg scan (only messages after our start marker)
dmesg > "$TMP.dmesg" 2>/dev/null
awk -v m="$MARK" 'f; index($0, m) { f = 1 }' "$TMP.dmesg" |
	grep -E 'BUG|WARNING|Oops|Call Trace|general protection|KASAN|UBSAN|kmemleak|refcount_t|list_(add|del) corruption' \
	> "$TMP.bad"
if [ -s "$TMP.bad" ]; then
	while IFS= read -r line; do diag "dmesg: $line"; done < "$TMP.bad"
	ok 1 dmesg_clean
else
	ok 0 dmesg_clean
fi

[ "$N" -eq "$PLAN" ] || diag "planned $PLAN tests, ran $N"
rm -f "$TMP.err" "$TMP.smoke" "$TMP.nonvexfs" "$TMP.dmesg" "$TMP.bad"
diag "$((N - FAILED)) passed, $FAILED failed"
[ $FAILED -eq 0 ] && [ "$N" -eq "$PLAN" ]

/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * VexFS ioctl ABI -- the single source of truth.
 *
 * Userspace mirrors (Rust) must match this file byte for byte; the
 * kernel/tests/abi_dump.c program prints every struct size/alignment,
 * field offset/size, ioctl number and constant so the mirrors can be
 * diffed mechanically.
 *
 * Rules followed here:
 *   - only fixed-width __u8/__u16/__u32/__u64/__s32/__s64 types;
 *   - user pointers are carried as __u64;
 *   - every struct is 8-byte aligned with explicit padding (no implicit
 *     holes, no tail padding);
 *   - all "reserved"/"__pad" fields are IN: must be zero (else -EINVAL),
 *     OUT: written as zero by the kernel.
 *   - strings are byte arrays (__u8), NUL terminated / NUL padded.
 *
 * Fixed point: vector components are __s32 in Q16.16 (value * 65536).
 * No floating point is used in the kernel.
 *
 * Component bound: every component c (stored or query) must satisfy
 *   -VEXFS_COMPONENT_MAX <= c <= VEXFS_COMPONENT_MAX   (else -EINVAL)
 * i.e. |value| <= 256.0.  With dim <= VEXFS_MAX_DIM (4096 = 2^12) this
 * guarantees the s64 accumulators below never overflow:
 *   L2:  (2 * 2^24)^2 * 2^12 = 2^62 < 2^63
 *   DOT: (2^24 * 2^24) * 2^12 = 2^60
 *
 * SCORES (computed in s64, single shift at the end):
 *   VEXFS_METRIC_L2:  score = (sum_i (q_i - v_i)^2) >> 16
 *                     (squared Euclidean distance in Q16.16, >= 0)
 *   VEXFS_METRIC_DOT: score = (sum_i q_i * v_i) >> 16
 *                     (dot product in Q16.16; arithmetic shift, i.e.
 *                      rounds toward negative infinity)
 *
 * RESULT ORDER (total order, by the reported score value):
 *   L2:  ascending score; DOT: descending score;
 *   ties (equal score) broken by ascending inode number.
 *   The first min(k, number of candidates) entries of that order are
 *   returned.  Searching with or without an index gives identical results.
 *
 * NAMES: each vector remembers the name (last path component) through
 * which the file was opened when ADD_VECTOR was called; it is updated when
 * that file is renamed.  It is not changed by link()/unlink(). Result names
 * are that name truncated to VEXFS_NAME_LEN - 1 bytes, NUL padded.  Name
 * filters match against the full (untruncated) name.
 *
 * METADATA TAG: ADD_VECTOR carries an optional tag string (conventionally
 * "key=value", at most VEXFS_TAG_LEN - 1 bytes, NUL terminated, all bytes
 * after the first NUL must be zero).  An all-zero tag means "no tag".
 * VEXFS_FILTER_TAG_EQ matches files whose tag equals the filter value
 * exactly.
 *
 * Common errno values for all ioctls:
 *   -ENOTTY  unknown ioctl command (also: ioctl on a non-vexfs file)
 *   -EFAULT  a struct or user pointer could not be copied
 *   -EINVAL  bad argument (nonzero reserved/pad, unknown flag/metric/op,
 *            dim != mount dim, k == 0, component out of range, ...)
 *   -E2BIG   dim > VEXFS_MAX_DIM or k > VEXFS_MAX_K
 *   -ENOMEM  allocation failure
 */
#ifndef _UAPI_LINUX_VEXFS_H
#define _UAPI_LINUX_VEXFS_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define VEXFS_IOC_MAGIC		'V'
#define VEXFS_ABI_VERSION	1
#define VEXFS_SUPER_MAGIC	0x56455846	/* "VEXF", statfs f_type */

#define VEXFS_FIXED_SHIFT	16
#define VEXFS_FIXED_ONE		65536		/* 1 << VEXFS_FIXED_SHIFT */
#define VEXFS_COMPONENT_MAX	16777216	/* 1 << 24 == 256.0 */

#define VEXFS_DEFAULT_DIM	4		/* mount without dim= */
#define VEXFS_MAX_DIM		4096
#define VEXFS_MAX_K		256
#define VEXFS_NAME_LEN		64		/* result name field size */
#define VEXFS_TAG_LEN		64		/* metadata tag field size */
#define VEXFS_FILTER_MAX	4		/* max filters per hybrid search */
#define VEXFS_FILTER_VALUE_LEN	64		/* filter value field size */

/* Metrics (vexfs_search_request.metric). */
#define VEXFS_METRIC_L2		0
#define VEXFS_METRIC_DOT	1

/* Search request flags (vexfs_*search_request.flags). */
#define VEXFS_SEARCH_F_NO_INDEX	1	/* force a scan even if an index exists */
#define VEXFS_SEARCH_F_ALL	1	/* mask of all valid request flags */

/* Search response flags (vexfs_*search_response.flags). */
#define VEXFS_SEARCH_RF_INDEX	1	/* the index was used */

/* Index operations (vexfs_manage_index_request.op). */
#define VEXFS_INDEX_CREATE	0	/* build; -EEXIST if one exists */
#define VEXFS_INDEX_DROP	1	/* free; -ENOENT if none */
#define VEXFS_INDEX_REBUILD	2	/* rebuild from scratch; -ENOENT if none */
#define VEXFS_INDEX_INFO	3	/* report only */

/* Hybrid filter kinds (vexfs_filter.kind). All filters are ANDed. */
#define VEXFS_FILTER_NONE	0	/* matches everything (len must be 0) */
#define VEXFS_FILTER_NAME_PREFIX 1	/* name starts with value */
#define VEXFS_FILTER_NAME_SUBSTR 2	/* name contains value */
#define VEXFS_FILTER_TAG_EQ	3	/* tag == value exactly ("key=value") */

/*
 * VEXFS_IOC_ADD_VECTOR (in) / VEXFS_IOC_GET_VECTOR (in/out).
 * Only on regular files of a vexfs mount (-EISDIR on a directory,
 * -EINVAL on other file types).
 *
 * ADD_VECTOR: attach or replace the file's vector and tag.  Requires write
 *   permission on the file (-EACCES/-EPERM otherwise, as for write()).
 *     dim   IN  number of components; must equal the mount's dim
 *               (-E2BIG if > VEXFS_MAX_DIM, else -EINVAL if != mount dim)
 *     flags IN  must be 0
 *     data  IN  user pointer to __s32[dim], Q16.16, bounded by
 *               VEXFS_COMPONENT_MAX (-EINVAL)
 *     tag   IN  optional metadata, see "METADATA TAG" above (-EINVAL if
 *               not NUL terminated or garbage after the NUL)
 * GET_VECTOR: copy the file's vector out.  -ENODATA if it has none.
 *     dim   IN  capacity of the buffer at data, in components
 *           OUT the vector's dim (written also when failing with -E2BIG)
 *     flags IN  must be 0
 *     data  IN  user pointer to __s32[capacity]; OUT: first dim entries
 *     tag   OUT the file's tag (NUL padded); ignored on input
 *   -E2BIG if the capacity is smaller than the vector's dim (the needed
 *   dim is then reported in dim).
 */
struct vexfs_vector_request {
	__u32 dim;
	__u32 flags;
	__u64 data;
	__u8 tag[VEXFS_TAG_LEN];
	__u64 reserved[2];
};

/*
 * One search hit (array of k entries at vexfs_search_request.results;
 * only the first nr_results entries are written).
 */
struct vexfs_search_result {
	__u64 ino;			/* OUT inode number */
	__s64 score;			/* OUT see SCORES above */
	__u8 name[VEXFS_NAME_LEN];	/* OUT see NAMES above */
};

/*
 * VEXFS_IOC_SEARCH: k-nearest-neighbour search over all files of the mount
 * that carry a vector.  Issued on any file or directory of the mount.
 */
struct vexfs_search_request {
	__u32 dim;		/* IN  query dim; must equal mount dim */
	__u32 k;		/* IN  1..VEXFS_MAX_K (0: -EINVAL, >max: -E2BIG) */
	__u32 metric;		/* IN  VEXFS_METRIC_* */
	__u32 flags;		/* IN  VEXFS_SEARCH_F_* */
	__u64 query;		/* IN  user ptr to __s32[dim] (Q16.16) */
	__u64 results;		/* IN  user ptr to struct vexfs_search_result[k] */
	__u64 reserved[2];	/* IN  must be 0 */
};

struct vexfs_search_response {
	__u32 nr_results;	/* OUT entries written, min(k, candidates) */
	__u32 flags;		/* OUT VEXFS_SEARCH_RF_* */
	__u64 nr_candidates;	/* OUT vectors that were scored */
	__u64 index_generation;	/* OUT generation of index used, 0 if none */
	__u64 reserved[2];	/* OUT 0 (ignored on input) */
};

struct vexfs_search {
	struct vexfs_search_request req;
	struct vexfs_search_response resp;
};

/*
 * Hybrid search filter.  value holds len bytes (no NUL inside them);
 * bytes value[len..] must be zero.  len <= VEXFS_FILTER_VALUE_LEN.
 */
struct vexfs_filter {
	__u32 kind;		/* IN  VEXFS_FILTER_* */
	__u32 len;		/* IN  bytes used in value */
	__u64 reserved;		/* IN  must be 0 (also gives 8-byte alignment) */
	__u8 value[VEXFS_FILTER_VALUE_LEN];
};

/*
 * VEXFS_IOC_HYBRID_SEARCH: like SEARCH, but only files matching all of
 * filters[0..nr_filters) are candidates.  Unused filter slots
 * (index >= nr_filters) must be all zero.
 */
struct vexfs_hybrid_search_request {
	__u32 dim;		/* IN  as vexfs_search_request */
	__u32 k;		/* IN  as vexfs_search_request */
	__u32 metric;		/* IN  as vexfs_search_request */
	__u32 flags;		/* IN  as vexfs_search_request */
	__u64 query;		/* IN  as vexfs_search_request */
	__u64 results;		/* IN  as vexfs_search_request */
	__u32 nr_filters;	/* IN  0..VEXFS_FILTER_MAX (>max: -E2BIG) */
	__u32 __pad;		/* IN  must be 0 */
	struct vexfs_filter filters[VEXFS_FILTER_MAX];
	__u64 reserved[2];	/* IN  must be 0 */
};

struct vexfs_hybrid_search_response {
	__u32 nr_results;	/* OUT entries written */
	__u32 flags;		/* OUT VEXFS_SEARCH_RF_* */
	__u64 nr_candidates;	/* OUT vectors that passed the filters (scored) */
	__u64 nr_examined;	/* OUT vectors examined by the filters */
	__u64 index_generation;	/* OUT generation of index used, 0 if none */
	__u64 reserved[2];	/* OUT 0 */
};

struct vexfs_hybrid_search {
	struct vexfs_hybrid_search_request req;
	struct vexfs_hybrid_search_response resp;
};

/*
 * VEXFS_IOC_MANAGE_INDEX: the per-mount index is an ino-sorted snapshot
 * array of all vectors, kept up to date incrementally once built.
 * Every op (including failing CREATE/DROP/REBUILD) fills resp with the
 * state after the op.  Errors: -EEXIST (CREATE, exists),
 * -ENOENT (DROP/REBUILD, none), -EINVAL (bad op/flags/reserved).
 */
struct vexfs_manage_index_request {
	__u32 op;		/* IN  VEXFS_INDEX_* */
	__u32 flags;		/* IN  must be 0 */
	__u64 reserved[2];	/* IN  must be 0 */
};

struct vexfs_manage_index_response {
	__u32 present;		/* OUT 1 if an index exists, else 0 */
	__u32 dim;		/* OUT mount dim */
	__u64 nr_entries;	/* OUT vectors in the index (0 if none) */
	__u64 generation;	/* OUT bumped by every CREATE/REBUILD; 0 if none */
	__u64 bytes;		/* OUT memory used by the index, bytes */
	__u64 reserved[2];	/* OUT 0 */
};

struct vexfs_manage_index {
	struct vexfs_manage_index_request req;
	struct vexfs_manage_index_response resp;
};

/* VEXFS_IOC_GET_STATS: all fields OUT, counters since mount. */
struct vexfs_stats {
	__u32 abi_version;	/* VEXFS_ABI_VERSION */
	__u32 dim;		/* mount dim */
	__u64 nr_vectors;	/* files currently carrying a vector */
	__u64 vectors_added;	/* successful ADD_VECTOR calls */
	__u64 vectors_removed;	/* vectors freed (DEL_VECTOR or file freed) */
	__u64 searches;		/* successful SEARCH calls */
	__u64 hybrid_searches;	/* successful HYBRID_SEARCH calls */
	__u64 index_builds;	/* successful CREATE + REBUILD */
	__u32 index_present;	/* 1 if an index exists */
	__u32 __pad;		/* 0 */
	__u64 index_entries;	/* entries in the index */
	__u64 index_generation;	/* current index generation, 0 if none */
	__u64 reserved[4];	/* 0 */
};

#define VEXFS_IOC_ADD_VECTOR	_IOW(VEXFS_IOC_MAGIC, 1, struct vexfs_vector_request)
#define VEXFS_IOC_GET_VECTOR	_IOWR(VEXFS_IOC_MAGIC, 2, struct vexfs_vector_request)
#define VEXFS_IOC_SEARCH	_IOWR(VEXFS_IOC_MAGIC, 3, struct vexfs_search)
#define VEXFS_IOC_HYBRID_SEARCH	_IOWR(VEXFS_IOC_MAGIC, 4, struct vexfs_hybrid_search)
#define VEXFS_IOC_MANAGE_INDEX	_IOWR(VEXFS_IOC_MAGIC, 5, struct vexfs_manage_index)
#define VEXFS_IOC_GET_STATS	_IOR(VEXFS_IOC_MAGIC, 6, struct vexfs_stats)
/* Detach the file's vector (regular file, write permission); -ENODATA if none. */
#define VEXFS_IOC_DEL_VECTOR	_IO(VEXFS_IOC_MAGIC, 7)

#endif /* _UAPI_LINUX_VEXFS_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * abi_dump: print the VexFS ioctl ABI as seen by a C compiler.
 *
 * Build: gcc -Wall -Wextra -I kernel/include/uapi -o abi_dump kernel/tests/abi_dump.c
 *        (also works with -I kernel/include and #include <uapi/vexfs.h>)
 *
 * Output: one item per line, already sorted in `LC_ALL=C sort` order
 * (byte-wise strcmp), no trailing spaces, numbers in decimal unless noted:
 *   struct <c_name> size <n> align <n>
 *   field <c_struct>.<field> offset <n> size <n>
 *   ioctl <NAME> 0x<8 lowercase hex digits>
 *   const <NAME> <decimal>
 * <c_name> is the C struct tag without "struct " (e.g. vexfs_stats).
 * Array fields are listed once with their total size; nested struct
 * fields are listed once as a whole (their own fields appear under the
 * nested struct's own name).  The Rust mirror prints the same format and
 * the two outputs are diffed.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdalign.h>
#include "vexfs.h"

#define MAXLINES 512
static char *lines[MAXLINES];
static int nlines;

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static void emit(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (nlines >= MAXLINES) {
		fprintf(stderr, "too many lines\n");
		exit(1);
	}
	lines[nlines] = strdup(buf);
	if (!lines[nlines]) {
		perror("strdup");
		exit(1);
	}
	nlines++;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

#define S(t) emit("struct %s size %zu align %zu", #t, sizeof(struct t), \
		  alignof(struct t))
#define F(t, f) emit("field %s.%s offset %zu size %zu", #t, #f, \
		     offsetof(struct t, f), sizeof(((struct t *)0)->f))
#define IOC(n) emit("ioctl %s 0x%08x", #n, (unsigned int)(n))
#define C(n) emit("const %s %lld", #n, (long long)(n))

int main(void)
{
	int i;

	S(vexfs_vector_request);
	F(vexfs_vector_request, dim);
	F(vexfs_vector_request, flags);
	F(vexfs_vector_request, data);
	F(vexfs_vector_request, tag);
	F(vexfs_vector_request, reserved);

	S(vexfs_search_result);
	F(vexfs_search_result, ino);
	F(vexfs_search_result, score);
	F(vexfs_search_result, name);

	S(vexfs_search_request);
	F(vexfs_search_request, dim);
	F(vexfs_search_request, k);
	F(vexfs_search_request, metric);
	F(vexfs_search_request, flags);
	F(vexfs_search_request, query);
	F(vexfs_search_request, results);
	F(vexfs_search_request, reserved);

	S(vexfs_search_response);
	F(vexfs_search_response, nr_results);
	F(vexfs_search_response, flags);
	F(vexfs_search_response, nr_candidates);
	F(vexfs_search_response, index_generation);
	F(vexfs_search_response, reserved);

	S(vexfs_search);
	F(vexfs_search, req);
	F(vexfs_search, resp);

	S(vexfs_filter);
	F(vexfs_filter, kind);
	F(vexfs_filter, len);
	F(vexfs_filter, reserved);
	F(vexfs_filter, value);

	S(vexfs_hybrid_search_request);
	F(vexfs_hybrid_search_request, dim);
	F(vexfs_hybrid_search_request, k);
	F(vexfs_hybrid_search_request, metric);
	F(vexfs_hybrid_search_request, flags);
	F(vexfs_hybrid_search_request, query);
	F(vexfs_hybrid_search_request, results);
	F(vexfs_hybrid_search_request, nr_filters);
	F(vexfs_hybrid_search_request, __pad);
	F(vexfs_hybrid_search_request, filters);
	F(vexfs_hybrid_search_request, reserved);

	S(vexfs_hybrid_search_response);
	F(vexfs_hybrid_search_response, nr_results);
	F(vexfs_hybrid_search_response, flags);
	F(vexfs_hybrid_search_response, nr_candidates);
	F(vexfs_hybrid_search_response, nr_examined);
	F(vexfs_hybrid_search_response, index_generation);
	F(vexfs_hybrid_search_response, reserved);

	S(vexfs_hybrid_search);
	F(vexfs_hybrid_search, req);
	F(vexfs_hybrid_search, resp);

	S(vexfs_manage_index_request);
	F(vexfs_manage_index_request, op);
	F(vexfs_manage_index_request, flags);
	F(vexfs_manage_index_request, reserved);

	S(vexfs_manage_index_response);
	F(vexfs_manage_index_response, present);
	F(vexfs_manage_index_response, dim);
	F(vexfs_manage_index_response, nr_entries);
	F(vexfs_manage_index_response, generation);
	F(vexfs_manage_index_response, bytes);
	F(vexfs_manage_index_response, reserved);

	S(vexfs_manage_index);
	F(vexfs_manage_index, req);
	F(vexfs_manage_index, resp);

	S(vexfs_stats);
	F(vexfs_stats, abi_version);
	F(vexfs_stats, dim);
	F(vexfs_stats, nr_vectors);
	F(vexfs_stats, vectors_added);
	F(vexfs_stats, vectors_removed);
	F(vexfs_stats, searches);
	F(vexfs_stats, hybrid_searches);
	F(vexfs_stats, index_builds);
	F(vexfs_stats, index_present);
	F(vexfs_stats, __pad);
	F(vexfs_stats, index_entries);
	F(vexfs_stats, index_generation);
	F(vexfs_stats, reserved);

	IOC(VEXFS_IOC_ADD_VECTOR);
	IOC(VEXFS_IOC_GET_VECTOR);
	IOC(VEXFS_IOC_SEARCH);
	IOC(VEXFS_IOC_HYBRID_SEARCH);
	IOC(VEXFS_IOC_MANAGE_INDEX);
	IOC(VEXFS_IOC_GET_STATS);
	IOC(VEXFS_IOC_DEL_VECTOR);

	C(VEXFS_IOC_MAGIC);
	C(VEXFS_ABI_VERSION);
	C(VEXFS_SUPER_MAGIC);
	C(VEXFS_FIXED_SHIFT);
	C(VEXFS_FIXED_ONE);
	C(VEXFS_COMPONENT_MAX);
	C(VEXFS_DEFAULT_DIM);
	C(VEXFS_MAX_DIM);
	C(VEXFS_MAX_K);
	C(VEXFS_NAME_LEN);
	C(VEXFS_TAG_LEN);
	C(VEXFS_FILTER_MAX);
	C(VEXFS_FILTER_VALUE_LEN);
	C(VEXFS_METRIC_L2);
	C(VEXFS_METRIC_DOT);
	C(VEXFS_SEARCH_F_NO_INDEX);
	C(VEXFS_SEARCH_F_ALL);
	C(VEXFS_SEARCH_RF_INDEX);
	C(VEXFS_INDEX_CREATE);
	C(VEXFS_INDEX_DROP);
	C(VEXFS_INDEX_REBUILD);
	C(VEXFS_INDEX_INFO);
	C(VEXFS_FILTER_NONE);
	C(VEXFS_FILTER_NAME_PREFIX);
	C(VEXFS_FILTER_NAME_SUBSTR);
	C(VEXFS_FILTER_TAG_EQ);

	qsort(lines, nlines, sizeof(lines[0]), cmp);
	for (i = 0; i < nlines; i++) {
		puts(lines[i]);
		free(lines[i]);
	}
	return 0;
}

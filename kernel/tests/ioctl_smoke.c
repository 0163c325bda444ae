// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl_smoke: exercise every VexFS ioctl against a mounted vexfs with
 * dim=4 and compare search results with an independent userspace
 * computation.  Prints KTAP v1.  Exit status 0 iff every case passed.
 *
 * usage: ioctl_smoke MOUNTDIR [NON_VEXFS_FILE]
 * build: gcc -O2 -Wall -Wextra -static -I kernel/include/uapi \
 *            -o ioctl_smoke kernel/tests/ioctl_smoke.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vexfs.h"

#define DIM 4
#define FX(x) ((int32_t)((x) * VEXFS_FIXED_ONE))

static const char *mnt;
static int nr_test, nr_fail;

static void ok(int cond, const char *name)
{
	nr_test++;
	if (!cond)
		nr_fail++;
	printf("%sok %d %s\n", cond ? "" : "not ", nr_test, name);
	fflush(stdout);
}

static int open_at(const char *name, int flags)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", mnt, name);
	return open(path, flags, 0644);
}

/* returns 0 or -errno */
static int xioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

static int add_vec(const char *name, const int32_t *v, const char *tag)
{
	struct vexfs_vector_request r;
	int fd = open_at(name, O_RDWR | O_CREAT);
	int ret;

	if (fd < 0)
		return -errno;
	memset(&r, 0, sizeof(r));
	r.dim = DIM;
	r.data = (uintptr_t)v;
	if (tag)
		strncpy((char *)r.tag, tag, sizeof(r.tag) - 1);
	ret = xioctl(fd, VEXFS_IOC_ADD_VECTOR, &r);
	close(fd);
	return ret;
}

/* ---- userspace reference model ---- */
struct model {
	char name[256];
	char tag[VEXFS_TAG_LEN];
	uint64_t ino;
	int32_t v[DIM];
	int live;
};
#define MAXM 512
static struct model m[MAXM];
static int nm;

static uint64_t file_ino(const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", mnt, name);
	if (stat(path, &st))
		return 0;
	return st.st_ino;
}

static void model_set(const char *name, const int32_t *v, const char *tag)
{
	int i;

	for (i = 0; i < nm; i++)
		if (m[i].live && !strcmp(m[i].name, name))
			break;
	if (i == nm)
		nm++;
	snprintf(m[i].name, sizeof(m[i].name), "%s", name);
	snprintf(m[i].tag, sizeof(m[i].tag), "%s", tag ? tag : "");
	memcpy(m[i].v, v, sizeof(m[i].v));
	m[i].ino = file_ino(name);
	m[i].live = 1;
}

static int64_t score(int metric, const int32_t *a, const int32_t *b)
{
	int64_t acc = 0;
	int i;

	for (i = 0; i < DIM; i++) {
		if (metric == VEXFS_METRIC_L2) {
			int64_t d = (int64_t)a[i] - b[i];

			acc += d * d;
		} else {
			acc += (int64_t)a[i] * b[i];
		}
	}
	return acc >> VEXFS_FIXED_SHIFT;
}

struct exp { uint64_t ino; int64_t score; const char *name; };
static int g_metric;
static int exp_cmp(const void *x, const void *y)
{
	const struct exp *a = x, *b = y;

	if (a->score != b->score) {
		if (g_metric == VEXFS_METRIC_L2)
			return a->score < b->score ? -1 : 1;
		return a->score > b->score ? -1 : 1;
	}
	return a->ino < b->ino ? -1 : a->ino > b->ino;
}

/* filter: prefix (may be NULL) */
static int expected(int metric, const int32_t *q, unsigned int k,
		    const char *prefix, const char *tag, struct exp *out)
{
	struct exp all[MAXM];
	int n = 0, i;

	for (i = 0; i < nm; i++) {
		if (!m[i].live)
			continue;
		if (prefix && strncmp(m[i].name, prefix, strlen(prefix)))
			continue;
		if (tag && strcmp(m[i].tag, tag))
			continue;
		all[n].ino = m[i].ino;
		all[n].score = score(metric, q, m[i].v);
		all[n].name = m[i].name;
		n++;
	}
	g_metric = metric;
	qsort(all, n, sizeof(all[0]), exp_cmp);
	if ((unsigned int)n > k)
		n = k;
	memcpy(out, all, n * sizeof(all[0]));
	return n;
}

static int compare(const struct vexfs_search_result *r, unsigned int nr,
		   const struct exp *e, int ne)
{
	int i;

	if ((int)nr != ne) {
		printf("# count mismatch: got %u want %d\n", nr, ne);
		return 0;
	}
	for (i = 0; i < ne; i++) {
		if (r[i].ino != e[i].ino || r[i].score != e[i].score ||
		    strncmp((const char *)r[i].name, e[i].name,
			    VEXFS_NAME_LEN - 1)) {
			printf("# rank %d: got ino %llu score %lld name %.64s; want ino %llu score %lld name %s\n",
			       i, (unsigned long long)r[i].ino,
			       (long long)r[i].score, r[i].name,
			       (unsigned long long)e[i].ino,
			       (long long)e[i].score, e[i].name);
			return 0;
		}
	}
	return 1;
}

static int do_search(int fd, int metric, const int32_t *q, unsigned int k,
		     uint32_t flags, struct vexfs_search_result *res,
		     struct vexfs_search *s)
{
	memset(s, 0, sizeof(*s));
	s->req.dim = DIM;
	s->req.k = k;
	s->req.metric = metric;
	s->req.flags = flags;
	s->req.query = (uintptr_t)q;
	s->req.results = (uintptr_t)res;
	return xioctl(fd, VEXFS_IOC_SEARCH, s);
}

static int check_search(int fd, int metric, const int32_t *q, unsigned int k,
			uint32_t flags, uint32_t want_rflags)
{
	static struct vexfs_search_result res[VEXFS_MAX_K];
	struct exp e[MAXM];
	struct vexfs_search s;
	int ne, ret;

	ret = do_search(fd, metric, q, k, flags, res, &s);
	if (ret) {
		printf("# search failed: %s\n", strerror(-ret));
		return 0;
	}
	if ((s.resp.flags & VEXFS_SEARCH_RF_INDEX) != want_rflags) {
		printf("# rflags %u want %u\n", s.resp.flags, want_rflags);
		return 0;
	}
	ne = expected(metric, q, k, NULL, NULL, e);
	return compare(res, s.resp.nr_results, e, ne);
}

static int check_hybrid(int fd, int metric, const int32_t *q, unsigned int k,
			const char *prefix, const char *tag)
{
	static struct vexfs_search_result res[VEXFS_MAX_K];
	struct vexfs_hybrid_search h;
	struct exp e[MAXM];
	int ne, ret, nf = 0;

	memset(&h, 0, sizeof(h));
	h.req.dim = DIM;
	h.req.k = k;
	h.req.metric = metric;
	h.req.query = (uintptr_t)q;
	h.req.results = (uintptr_t)res;
	if (prefix) {
		h.req.filters[nf].kind = VEXFS_FILTER_NAME_PREFIX;
		h.req.filters[nf].len = strlen(prefix);
		memcpy(h.req.filters[nf].value, prefix, strlen(prefix));
		nf++;
	}
	if (tag) {
		h.req.filters[nf].kind = VEXFS_FILTER_TAG_EQ;
		h.req.filters[nf].len = strlen(tag);
		memcpy(h.req.filters[nf].value, tag, strlen(tag));
		nf++;
	}
	h.req.nr_filters = nf;
	ret = xioctl(fd, VEXFS_IOC_HYBRID_SEARCH, &h);
	if (ret) {
		printf("# hybrid failed: %s\n", strerror(-ret));
		return 0;
	}
	ne = expected(metric, q, k, prefix, tag, e);
	return compare(res, h.resp.nr_results, e, ne);
}

static int manage(int fd, uint32_t op, struct vexfs_manage_index *mi)
{
	memset(mi, 0, sizeof(*mi));
	mi->req.op = op;
	return xioctl(fd, VEXFS_IOC_MANAGE_INDEX, mi);
}

static uint32_t rnd_state = 12345;
static int32_t rnd_comp(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	/* values in [-8.0, 8.0) with coarse steps so that ties happen */
	return (int32_t)((rnd_state >> 16) % 64) * (VEXFS_FIXED_ONE / 4) -
	       FX(8);
}

int main(int argc, char **argv)
{
	static struct vexfs_search_result res[VEXFS_MAX_K + 1];
	const int32_t va[DIM] = { FX(1), FX(0), FX(0), FX(0) };
	const int32_t vb[DIM] = { FX(0), FX(1), FX(0), FX(0) };
	const int32_t vc[DIM] = { FX(1), FX(1), FX(0), FX(0) };
	const int32_t vd[DIM] = { FX(-2), FX(0.5), FX(3), FX(-1) };
	const int32_t q1[DIM] = { FX(0.9), FX(0.1), FX(0), FX(0) };
	int32_t big[DIM] = { VEXFS_COMPONENT_MAX + 1, 0, 0, 0 };
	int32_t out[DIM + 4];
	struct vexfs_vector_request vr;
	struct vexfs_search s;
	struct vexfs_manage_index mi;
	struct vexfs_stats st;
	int root, fd, ret, i, j, good;
	char name[64];

	if (argc < 2) {
		fprintf(stderr, "usage: %s MOUNTDIR [NON_VEXFS_FILE]\n", argv[0]);
		return 2;
	}
	mnt = argv[1];
	printf("KTAP version 1\n");
	printf("1..27\n");

	root = open(mnt, O_RDONLY | O_DIRECTORY);
	if (root < 0) {
		printf("Bail out! cannot open %s: %s\n", mnt, strerror(errno));
		return 1;
	}

	ret = add_vec("alpha", va, "color=red");
	model_set("alpha", va, "color=red");
	ret |= add_vec("beta", vb, "color=blue");
	model_set("beta", vb, "color=blue");
	ret |= add_vec("alpine", vc, "color=red");
	model_set("alpine", vc, "color=red");
	ret |= add_vec("delta", vd, NULL);
	model_set("delta", vd, NULL);
	ok(ret == 0, "add_vector");

	fd = open_at("delta", O_RDONLY);
	memset(&vr, 0, sizeof(vr));
	memset(out, 0x55, sizeof(out));
	vr.dim = DIM + 4;
	vr.data = (uintptr_t)out;
	ret = xioctl(fd, VEXFS_IOC_GET_VECTOR, &vr);
	ok(ret == 0 && vr.dim == DIM && !memcmp(out, vd, sizeof(vd)) &&
	   out[DIM] == 0x55555555, "get_vector_roundtrip");
	vr.dim = 2;
	ret = xioctl(fd, VEXFS_IOC_GET_VECTOR, &vr);
	ok(ret == -E2BIG && vr.dim == DIM, "get_vector_small_buffer_e2big");
	vr.dim = DIM;
	vr.reserved[1] = 1;
	ok(xioctl(fd, VEXFS_IOC_GET_VECTOR, &vr) == -EINVAL,
	   "get_vector_reserved_einval");
	close(fd);

	fd = open_at("plain", O_RDWR | O_CREAT);
	memset(&vr, 0, sizeof(vr));
	vr.dim = DIM;
	vr.data = (uintptr_t)out;
	ok(xioctl(fd, VEXFS_IOC_GET_VECTOR, &vr) == -ENODATA,
	   "get_vector_none_enodata");
	ok(xioctl(fd, VEXFS_IOC_DEL_VECTOR, NULL) == -ENODATA,
	   "del_vector_none_enodata");
	vr.dim = 3;
	vr.data = (uintptr_t)va;
	ok(xioctl(fd, VEXFS_IOC_ADD_VECTOR, &vr) == -EINVAL,
	   "add_vector_wrong_dim_einval");
	vr.dim = VEXFS_MAX_DIM + 1;
	ok(xioctl(fd, VEXFS_IOC_ADD_VECTOR, &vr) == -E2BIG,
	   "add_vector_huge_dim_e2big");
	vr.dim = DIM;
	vr.data = (uintptr_t)big;
	ok(xioctl(fd, VEXFS_IOC_ADD_VECTOR, &vr) == -EINVAL,
	   "add_vector_component_range_einval");
	vr.data = 16;	/* unmapped */
	ok(xioctl(fd, VEXFS_IOC_ADD_VECTOR, &vr) == -EFAULT,
	   "add_vector_bad_pointer_efault");
	ok(xioctl(fd, VEXFS_IOC_ADD_VECTOR, (void *)16) == -EFAULT,
	   "add_vector_bad_arg_efault");
	vr.data = (uintptr_t)va;
	vr.tag[VEXFS_TAG_LEN - 1] = 'x';	/* garbage after NUL */
	ok(xioctl(fd, VEXFS_IOC_ADD_VECTOR, &vr) == -EINVAL,
	   "add_vector_bad_tag_einval");
	ok(xioctl(fd, _IO(VEXFS_IOC_MAGIC, 99), NULL) == -ENOTTY,
	   "unknown_ioctl_enotty");
	close(fd);
	ok(xioctl(root, VEXFS_IOC_ADD_VECTOR, &vr) == -EISDIR,
	   "add_vector_on_dir_eisdir");

	ok(check_search(root, VEXFS_METRIC_L2, q1, 3, 0, 0) &&
	   check_search(root, VEXFS_METRIC_DOT, q1, 10, 0, 0),
	   "search_scan_matches_model");

	ret = do_search(root, VEXFS_METRIC_L2, q1, 0, 0, res, &s);
	good = ret == -EINVAL;
	ret = do_search(root, VEXFS_METRIC_L2, q1, VEXFS_MAX_K + 1, 0, res, &s);
	good &= ret == -E2BIG;
	ret = do_search(root, 7, q1, 1, 0, res, &s);
	good &= ret == -EINVAL;
	ret = do_search(root, VEXFS_METRIC_L2, q1, 1, 0x80, res, &s);
	good &= ret == -EINVAL;
	ok(good, "search_bad_args");

	ok(check_hybrid(root, VEXFS_METRIC_L2, q1, 10, "al", NULL) &&
	   check_hybrid(root, VEXFS_METRIC_DOT, q1, 10, NULL, "color=red") &&
	   check_hybrid(root, VEXFS_METRIC_DOT, q1, 10, "b", "color=red"),
	   "hybrid_matches_model");

	ret = manage(root, VEXFS_INDEX_CREATE, &mi);
	ok(ret == 0 && mi.resp.present == 1 && mi.resp.nr_entries == 4 &&
	   mi.resp.dim == DIM && mi.resp.generation > 0, "index_create");
	ok(manage(root, VEXFS_INDEX_CREATE, &mi) == -EEXIST, "index_create_eexist");
	ok(check_search(root, VEXFS_METRIC_L2, q1, 3, 0, VEXFS_SEARCH_RF_INDEX) &&
	   check_search(root, VEXFS_METRIC_L2, q1, 3, VEXFS_SEARCH_F_NO_INDEX, 0),
	   "search_index_matches_scan");

	/* rename + unlink + many more files, index kept up to date */
	{
		char a[512], b[512];

		snprintf(a, sizeof(a), "%s/beta", mnt);
		snprintf(b, sizeof(b), "%s/bravo", mnt);
		ret = rename(a, b);
		for (i = 0; i < nm; i++)
			if (!strcmp(m[i].name, "beta"))
				strcpy(m[i].name, "bravo");
		snprintf(a, sizeof(a), "%s/alpine", mnt);
		ret |= unlink(a);
		for (i = 0; i < nm; i++)
			if (!strcmp(m[i].name, "alpine"))
				m[i].live = 0;
	}
	good = ret == 0;
	for (i = 0; i < 200 && good; i++) {
		int32_t v[DIM];

		for (j = 0; j < DIM; j++)
			v[j] = rnd_comp();
		snprintf(name, sizeof(name), "%s%03d", i % 2 ? "odd" : "even", i);
		good = add_vec(name, v, i % 3 ? "k=a" : "k=b") == 0;
		model_set(name, v, i % 3 ? "k=a" : "k=b");
	}
	ok(good, "add_many");
	good = 1;
	for (i = 0; i < 20 && good; i++) {
		int32_t q[DIM];

		for (j = 0; j < DIM; j++)
			q[j] = rnd_comp();
		good = check_search(root, i % 2, q, 1 + i * 13 % 60, 0,
				    VEXFS_SEARCH_RF_INDEX) &&
		       check_search(root, i % 2, q, 1 + i * 13 % 60,
				    VEXFS_SEARCH_F_NO_INDEX, 0) &&
		       check_hybrid(root, i % 2, q, 25, "odd", "k=b");
	}
	ok(good, "random_queries_index_scan_model");

	ret = manage(root, VEXFS_INDEX_REBUILD, &mi);
	ok(ret == 0 && mi.resp.nr_entries == 203 && mi.resp.generation == 2,
	   "index_rebuild");
	ret = manage(root, VEXFS_INDEX_DROP, &mi);
	good = ret == 0 && mi.resp.present == 0;
	good &= manage(root, VEXFS_INDEX_DROP, &mi) == -ENOENT;
	good &= manage(root, VEXFS_INDEX_REBUILD, &mi) == -ENOENT;
	good &= manage(root, VEXFS_INDEX_INFO, &mi) == 0 && !mi.resp.present;
	ok(good, "index_drop_info");

	ret = xioctl(root, VEXFS_IOC_GET_STATS, &st);
	ok(ret == 0 && st.dim == DIM && st.nr_vectors == 203 &&
	   st.abi_version == VEXFS_ABI_VERSION && st.searches > 0 &&
	   st.hybrid_searches > 0 && st.index_builds == 2 &&
	   st.vectors_removed == 1, "stats");
	if (ret == 0)
		printf("# stats: nr_vectors=%llu added=%llu removed=%llu searches=%llu hybrid=%llu builds=%llu\n",
		       (unsigned long long)st.nr_vectors,
		       (unsigned long long)st.vectors_added,
		       (unsigned long long)st.vectors_removed,
		       (unsigned long long)st.searches,
		       (unsigned long long)st.hybrid_searches,
		       (unsigned long long)st.index_builds);

	fd = open_at("delta", O_RDWR);
	ok(xioctl(fd, VEXFS_IOC_DEL_VECTOR, NULL) == 0 &&
	   xioctl(fd, VEXFS_IOC_GET_VECTOR, &vr) == -ENODATA, "del_vector");
	close(fd);

	if (argc > 2) {
		fd = open(argv[2], O_RDWR | O_CREAT, 0644);
		ok(fd >= 0 && xioctl(fd, VEXFS_IOC_SEARCH, &s) == -ENOTTY,
		   "non_vexfs_file_enotty");
		if (fd >= 0)
			close(fd);
	} else {
		nr_test++;
		printf("ok %d non_vexfs_file_enotty # SKIP no file given\n",
		       nr_test);
	}
	close(root);
	printf("# %d passed, %d failed\n", nr_test - nr_fail, nr_fail);
	return nr_fail ? 1 : 0;
}

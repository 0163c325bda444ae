// SPDX-License-Identifier: GPL-2.0
/*
 * VexFS: a small in-memory (ramfs-like) filesystem whose regular files can
 * each carry one fixed-point vector, with k-NN and hybrid (vector + name /
 * tag filter) search ioctls and an optional per-mount index.
 *
 * The ioctl ABI is documented in include/uapi/vexfs.h.
 * Kernel version differences are confined to compat.h.
 *
 * Locking: every vector, the per-mount vector list, the index and the
 * statistics are protected by vexfs_sb_info.lock (a mutex).  inode->i_private
 * (the vector pointer) is only read or written under that mutex.  No user
 * memory is touched while it is held.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/list.h>
#include <linux/sort.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/seq_file.h>
#include <linux/statfs.h>
#include <linux/compat.h>

#include "include/uapi/vexfs.h"
#include "compat.h"

/* One file's vector (inode->i_private). */
struct vexfs_vec {
	struct list_head link;		/* sbi->vecs */
	u64 ino;
	u32 dim;
	u32 name_len;
	u32 tag_len;
	u8 tag[VEXFS_TAG_LEN];
	char name[NAME_MAX + 1];
	s32 data[];
};

struct vexfs_idx_ent {
	u64 ino;
	struct vexfs_vec *vec;		/* owner, for name/tag */
};

/* Index: ino-sorted snapshot copies of every vector (row i <-> ents[i]). */
struct vexfs_index {
	u32 nr;
	u32 cap;
	u64 generation;
	struct vexfs_idx_ent *ents;	/* cap entries */
	s32 *rows;			/* cap * dim components */
};

struct vexfs_sb_info {
	struct mutex lock;
	u32 dim;
	struct list_head vecs;
	struct vexfs_index *idx;
	u64 next_generation;
	/* statistics */
	u64 nr_vectors;
	u64 vectors_added;
	u64 vectors_removed;
	u64 searches;
	u64 hybrid_searches;
	u64 index_builds;
};

struct vexfs_fs_ctx {
	u32 dim;
	bool dim_set;
};

static inline struct vexfs_sb_info *VEXFS_SB(struct super_block *sb)
{
	return sb->s_fs_info;
}

/* ------------------------------------------------------------------ */
/* Index maintenance (all under sbi->lock)                             */

static void vexfs_index_free(struct vexfs_index *idx)
{
	if (!idx)
		return;
	kvfree(idx->ents);
	kvfree(idx->rows);
	kfree(idx);
}

static int vexfs_index_alloc_arrays(struct vexfs_index *idx, u32 cap, u32 dim)
{
	idx->ents = kvcalloc(cap, sizeof(*idx->ents), GFP_KERNEL);
	idx->rows = kvcalloc((size_t)cap * dim, sizeof(s32), GFP_KERNEL);
	if (!idx->ents || !idx->rows) {
		kvfree(idx->ents);
		kvfree(idx->rows);
		idx->ents = NULL;
		idx->rows = NULL;
		return -ENOMEM;
	}
	idx->cap = cap;
	return 0;
}

static int vexfs_ent_cmp(const void *a, const void *b)
{
	const struct vexfs_idx_ent *x = a, *y = b;

	if (x->ino < y->ino)
		return -1;
	return x->ino > y->ino;
}

static int vexfs_index_build(struct vexfs_sb_info *sbi)
{
	struct vexfs_index *idx;
	struct vexfs_vec *vec;
	u32 cap, i = 0;

	idx = kzalloc(sizeof(*idx), GFP_KERNEL);
	if (!idx)
		return -ENOMEM;
	cap = max_t(u32, 16, (u32)sbi->nr_vectors);
	if (vexfs_index_alloc_arrays(idx, cap, sbi->dim)) {
		kfree(idx);
		return -ENOMEM;
	}
	list_for_each_entry(vec, &sbi->vecs, link) {
		if (WARN_ON_ONCE(i >= cap))
			break;
		idx->ents[i].ino = vec->ino;
		idx->ents[i].vec = vec;
		i++;
	}
	idx->nr = i;
	sort(idx->ents, idx->nr, sizeof(*idx->ents), vexfs_ent_cmp, NULL);
	for (i = 0; i < idx->nr; i++)
		memcpy(idx->rows + (size_t)i * sbi->dim, idx->ents[i].vec->data,
		       sbi->dim * sizeof(s32));
	idx->generation = ++sbi->next_generation;
	vexfs_index_free(sbi->idx);
	sbi->idx = idx;
	sbi->index_builds++;
	return 0;
}

/* First position with ents[pos].ino >= ino. */
static u32 vexfs_index_lower_bound(const struct vexfs_index *idx, u64 ino)
{
	u32 lo = 0, hi = idx->nr;

	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;

		if (idx->ents[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index must mirror the vector set; on ENOMEM it is dropped (scan is used). */
static void vexfs_index_upsert(struct vexfs_sb_info *sbi, struct vexfs_vec *vec)
{
	struct vexfs_index *idx = sbi->idx;
	size_t dim = sbi->dim;
	u32 pos;

	if (!idx)
		return;
	pos = vexfs_index_lower_bound(idx, vec->ino);
	if (pos < idx->nr && idx->ents[pos].ino == vec->ino) {
		idx->ents[pos].vec = vec;
		memcpy(idx->rows + pos * dim, vec->data, dim * sizeof(s32));
		return;
	}
	if (idx->nr == idx->cap) {
		struct vexfs_index grown = { 0 };

		if (idx->cap > U32_MAX / 2 ||
		    vexfs_index_alloc_arrays(&grown, idx->cap * 2, sbi->dim)) {
			pr_warn_ratelimited("index dropped: out of memory\n");
			vexfs_index_free(idx);
			sbi->idx = NULL;
			return;
		}
		memcpy(grown.ents, idx->ents, idx->nr * sizeof(*idx->ents));
		memcpy(grown.rows, idx->rows, idx->nr * dim * sizeof(s32));
		kvfree(idx->ents);
		kvfree(idx->rows);
		idx->ents = grown.ents;
		idx->rows = grown.rows;
		idx->cap = grown.cap;
	}
	memmove(&idx->ents[pos + 1], &idx->ents[pos],
		(idx->nr - pos) * sizeof(*idx->ents));
	memmove(idx->rows + (pos + 1) * dim, idx->rows + pos * dim,
		(idx->nr - pos) * dim * sizeof(s32));
	idx->ents[pos].ino = vec->ino;
	idx->ents[pos].vec = vec;
	memcpy(idx->rows + pos * dim, vec->data, dim * sizeof(s32));
	idx->nr++;
}

static void vexfs_index_remove(struct vexfs_sb_info *sbi, u64 ino)
{
	struct vexfs_index *idx = sbi->idx;
	size_t dim = sbi->dim;
	u32 pos;

	if (!idx)
		return;
	pos = vexfs_index_lower_bound(idx, ino);
	if (pos >= idx->nr || idx->ents[pos].ino != ino)
		return;
	memmove(&idx->ents[pos], &idx->ents[pos + 1],
		(idx->nr - pos - 1) * sizeof(*idx->ents));
	memmove(idx->rows + pos * dim, idx->rows + (pos + 1) * dim,
		(idx->nr - pos - 1) * dim * sizeof(s32));
	idx->nr--;
}

static u64 vexfs_index_bytes(const struct vexfs_sb_info *sbi)
{
	const struct vexfs_index *idx = sbi->idx;

	if (!idx)
		return 0;
	return sizeof(*idx) + (u64)idx->cap *
	       (sizeof(*idx->ents) + (u64)sbi->dim * sizeof(s32));
}

/* Detach and return the inode's vector (caller frees it), under lock. */
static struct vexfs_vec *vexfs_detach_locked(struct vexfs_sb_info *sbi,
					     struct inode *inode)
{
	struct vexfs_vec *vec = inode->i_private;

	if (!vec)
		return NULL;
	inode->i_private = NULL;
	list_del(&vec->link);
	vexfs_index_remove(sbi, vec->ino);
	sbi->nr_vectors--;
	sbi->vectors_removed++;
	return vec;
}

/* ------------------------------------------------------------------ */
/* Scoring and top-k                                                   */

static s64 vexfs_score(u32 metric, const s32 *a, const s32 *b, u32 dim)
{
	s64 acc = 0;
	u32 i;

	if (metric == VEXFS_METRIC_L2) {
		for (i = 0; i < dim; i++) {
			s64 d = (s64)a[i] - (s64)b[i];

			acc += d * d;
		}
	} else {
		for (i = 0; i < dim; i++)
			acc += (s64)a[i] * (s64)b[i];
	}
	return acc >> VEXFS_FIXED_SHIFT;
}

struct vexfs_hit {
	u64 ino;
	s64 score;
	const struct vexfs_vec *vec;
};

struct vexfs_query {
	u32 k;
	u32 metric;
	u32 flags;
	u32 nr_filters;
	const s32 *q;
	const struct vexfs_filter *filters;
	/* outputs */
	u32 nr_hits;
	u32 rflags;
	u64 nr_candidates;
	u64 nr_examined;
	u64 generation;
	struct vexfs_hit *hits;		/* k entries */
};

/* Is a strictly before b in result order? */
static bool vexfs_before(u32 metric, s64 sa, u64 ia, s64 sb, u64 ib)
{
	if (sa != sb)
		return metric == VEXFS_METRIC_L2 ? sa < sb : sa > sb;
	return ia < ib;
}

static void vexfs_topk_add(struct vexfs_query *qr, u64 ino, s64 score,
			   const struct vexfs_vec *vec)
{
	u32 n = qr->nr_hits, pos;

	if (n == qr->k) {
		struct vexfs_hit *last = &qr->hits[n - 1];

		if (!vexfs_before(qr->metric, score, ino, last->score, last->ino))
			return;
		n--;			/* drop the worst */
	}
	pos = n;
	while (pos > 0 && vexfs_before(qr->metric, score, ino,
				       qr->hits[pos - 1].score,
				       qr->hits[pos - 1].ino)) {
		qr->hits[pos] = qr->hits[pos - 1];
		pos--;
	}
	qr->hits[pos].ino = ino;
	qr->hits[pos].score = score;
	qr->hits[pos].vec = vec;
	qr->nr_hits = n + 1;
}

static bool vexfs_contains(const char *hay, u32 hlen, const u8 *needle,
			   u32 nlen)
{
	u32 i;

	if (nlen > hlen)
		return false;
	for (i = 0; i + nlen <= hlen; i++)
		if (!memcmp(hay + i, needle, nlen))
			return true;
	return false;
}

static bool vexfs_filters_match(const struct vexfs_query *qr,
				const struct vexfs_vec *vec)
{
	u32 i;

	for (i = 0; i < qr->nr_filters; i++) {
		const struct vexfs_filter *f = &qr->filters[i];

		switch (f->kind) {
		case VEXFS_FILTER_NONE:
			break;
		case VEXFS_FILTER_NAME_PREFIX:
			if (f->len > vec->name_len ||
			    memcmp(vec->name, f->value, f->len))
				return false;
			break;
		case VEXFS_FILTER_NAME_SUBSTR:
			if (!vexfs_contains(vec->name, vec->name_len,
					    f->value, f->len))
				return false;
			break;
		case VEXFS_FILTER_TAG_EQ:
			if (f->len != vec->tag_len ||
			    memcmp(vec->tag, f->value, f->len))
				return false;
			break;
		default:
			return false;
		}
	}
	return true;
}

static void vexfs_consider(struct vexfs_query *qr, u32 dim, u64 ino,
			   const s32 *data, const struct vexfs_vec *vec)
{
	qr->nr_examined++;
	if (!vexfs_filters_match(qr, vec))
		return;
	qr->nr_candidates++;
	vexfs_topk_add(qr, ino, vexfs_score(qr->metric, qr->q, data, dim), vec);
}

/* Runs the query under sbi->lock and fills @out (kernel memory). */
static void vexfs_search_locked(struct vexfs_sb_info *sbi,
				struct vexfs_query *qr,
				struct vexfs_search_result *out)
{
	u32 i;

	if (sbi->idx && !(qr->flags & VEXFS_SEARCH_F_NO_INDEX)) {
		const struct vexfs_index *idx = sbi->idx;

		for (i = 0; i < idx->nr; i++)
			vexfs_consider(qr, sbi->dim, idx->ents[i].ino,
				       idx->rows + (size_t)i * sbi->dim,
				       idx->ents[i].vec);
		qr->rflags |= VEXFS_SEARCH_RF_INDEX;
		qr->generation = idx->generation;
	} else {
		struct vexfs_vec *vec;

		list_for_each_entry(vec, &sbi->vecs, link)
			vexfs_consider(qr, sbi->dim, vec->ino, vec->data, vec);
	}
	for (i = 0; i < qr->nr_hits; i++) {
		const struct vexfs_vec *vec = qr->hits[i].vec;
		u32 len = min_t(u32, vec->name_len, VEXFS_NAME_LEN - 1);

		out[i].ino = qr->hits[i].ino;
		out[i].score = qr->hits[i].score;
		memset(out[i].name, 0, sizeof(out[i].name));
		memcpy(out[i].name, vec->name, len);
	}
}

/* ------------------------------------------------------------------ */
/* ioctl helpers                                                       */

static bool vexfs_zero(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

/* Copies @dim Q16.16 components from user memory and range-checks them. */
static s32 *vexfs_copy_vector(u64 uptr, u32 dim, size_t extra, int *err)
{
	size_t bytes = (size_t)dim * sizeof(s32);
	s32 *buf;
	u32 i;

	buf = kvmalloc(bytes + extra, GFP_KERNEL);
	if (!buf) {
		*err = -ENOMEM;
		return NULL;
	}
	if (copy_from_user((u8 *)buf + extra, u64_to_user_ptr(uptr), bytes)) {
		kvfree(buf);
		*err = -EFAULT;
		return NULL;
	}
	for (i = 0; i < dim; i++) {
		s32 c = ((s32 *)((u8 *)buf + extra))[i];

		if (c > VEXFS_COMPONENT_MAX || c < -VEXFS_COMPONENT_MAX) {
			kvfree(buf);
			*err = -EINVAL;
			return NULL;
		}
	}
	return buf;
}

static int vexfs_check_dim(const struct vexfs_sb_info *sbi, u32 dim)
{
	if (dim > VEXFS_MAX_DIM)
		return -E2BIG;
	if (dim != sbi->dim)
		return -EINVAL;
	return 0;
}

static int vexfs_check_regular(struct inode *inode)
{
	if (S_ISDIR(inode->i_mode))
		return -EISDIR;
	if (!S_ISREG(inode->i_mode))
		return -EINVAL;
	return 0;
}

static long vexfs_ioc_add_vector(struct file *file, void __user *argp)
{
	struct inode *inode = file_inode(file);
	struct vexfs_sb_info *sbi = VEXFS_SB(inode->i_sb);
	struct vexfs_vector_request req;
	struct name_snapshot snap;
	struct vexfs_vec *vec, *old;
	u8 *nul;
	int err;

	err = vexfs_check_regular(inode);
	if (err)
		return err;
	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	if (req.flags || !vexfs_zero(req.reserved, sizeof(req.reserved)))
		return -EINVAL;
	err = vexfs_check_dim(sbi, req.dim);
	if (err)
		return err;
	nul = memchr(req.tag, 0, sizeof(req.tag));
	if (!nul || !vexfs_zero(nul, sizeof(req.tag) - (nul - req.tag)))
		return -EINVAL;
	err = file_permission(file, MAY_WRITE);
	if (err)
		return err;

	vec = (struct vexfs_vec *)vexfs_copy_vector(req.data, req.dim,
				offsetof(struct vexfs_vec, data), &err);
	if (!vec)
		return err;
	memset(vec, 0, offsetof(struct vexfs_vec, data));
	INIT_LIST_HEAD(&vec->link);
	vec->ino = inode->i_ino;
	vec->dim = req.dim;
	memcpy(vec->tag, req.tag, sizeof(vec->tag));
	vec->tag_len = nul - req.tag;

	take_dentry_name_snapshot(&snap, file->f_path.dentry);
	vec->name_len = min_t(u32, snap.name.len, NAME_MAX);
	memcpy(vec->name, snap.name.name, vec->name_len);
	vec->name[vec->name_len] = '\0';
	release_dentry_name_snapshot(&snap);

	mutex_lock(&sbi->lock);
	old = inode->i_private;
	if (old) {
		list_replace(&old->link, &vec->link);
	} else {
		list_add_tail(&vec->link, &sbi->vecs);
		sbi->nr_vectors++;
	}
	inode->i_private = vec;
	vexfs_index_upsert(sbi, vec);
	sbi->vectors_added++;
	mutex_unlock(&sbi->lock);

	kvfree(old);
	return 0;
}

static long vexfs_ioc_get_vector(struct file *file, void __user *argp)
{
	struct inode *inode = file_inode(file);
	struct vexfs_sb_info *sbi = VEXFS_SB(inode->i_sb);
	struct vexfs_vector_request req;
	struct vexfs_vec *vec;
	s32 *buf;
	u32 dim = 0;
	int err;

	err = vexfs_check_regular(inode);
	if (err)
		return err;
	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	if (req.flags || !vexfs_zero(req.reserved, sizeof(req.reserved)))
		return -EINVAL;

	buf = kvmalloc_array(sbi->dim, sizeof(s32), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;

	mutex_lock(&sbi->lock);
	vec = inode->i_private;
	if (!vec) {
		err = -ENODATA;
	} else {
		dim = vec->dim;
		if (req.dim < dim) {
			err = -E2BIG;
		} else {
			memcpy(buf, vec->data, dim * sizeof(s32));
			memcpy(req.tag, vec->tag, sizeof(req.tag));
		}
	}
	mutex_unlock(&sbi->lock);

	if (err == -E2BIG) {
		req.dim = dim;
		if (copy_to_user(argp, &req, sizeof(req)))
			err = -EFAULT;
	} else if (!err) {
		req.dim = dim;
		if (copy_to_user(u64_to_user_ptr(req.data), buf,
				 dim * sizeof(s32)) ||
		    copy_to_user(argp, &req, sizeof(req)))
			err = -EFAULT;
	}
	kvfree(buf);
	return err;
}

static long vexfs_ioc_del_vector(struct file *file)
{
	struct inode *inode = file_inode(file);
	struct vexfs_sb_info *sbi = VEXFS_SB(inode->i_sb);
	struct vexfs_vec *vec;
	int err;

	err = vexfs_check_regular(inode);
	if (err)
		return err;
	err = file_permission(file, MAY_WRITE);
	if (err)
		return err;
	mutex_lock(&sbi->lock);
	vec = vexfs_detach_locked(sbi, inode);
	mutex_unlock(&sbi->lock);
	if (!vec)
		return -ENODATA;
	kvfree(vec);
	return 0;
}

static int vexfs_check_filter(const struct vexfs_filter *f, bool used)
{
	if (!used)
		return vexfs_zero(f, sizeof(*f)) ? 0 : -EINVAL;
	if (f->kind > VEXFS_FILTER_TAG_EQ || f->reserved ||
	    f->len > VEXFS_FILTER_VALUE_LEN)
		return -EINVAL;
	if (f->kind == VEXFS_FILTER_NONE && f->len)
		return -EINVAL;
	if (memchr(f->value, 0, f->len))
		return -EINVAL;
	if (!vexfs_zero(f->value + f->len, sizeof(f->value) - f->len))
		return -EINVAL;
	return 0;
}

/*
 * Common search path.  @query_uptr/@results_uptr are user pointers;
 * on success the results are copied out and qr holds the statistics.
 */
static int vexfs_run_search(struct vexfs_sb_info *sbi, struct vexfs_query *qr,
			    u32 dim, u64 query_uptr, u64 results_uptr,
			    bool hybrid)
{
	struct vexfs_search_result *out = NULL;
	s32 *q = NULL;
	int err;

	err = vexfs_check_dim(sbi, dim);
	if (err)
		return err;
	if (qr->k > VEXFS_MAX_K)
		return -E2BIG;
	if (!qr->k || qr->metric > VEXFS_METRIC_DOT ||
	    (qr->flags & ~VEXFS_SEARCH_F_ALL))
		return -EINVAL;

	q = vexfs_copy_vector(query_uptr, dim, 0, &err);
	if (!q)
		return err;
	qr->q = q;
	qr->hits = kcalloc(qr->k, sizeof(*qr->hits), GFP_KERNEL);
	out = kvcalloc(qr->k, sizeof(*out), GFP_KERNEL);
	if (!qr->hits || !out) {
		err = -ENOMEM;
		goto out_free;
	}

	mutex_lock(&sbi->lock);
	vexfs_search_locked(sbi, qr, out);
	if (hybrid)
		sbi->hybrid_searches++;
	else
		sbi->searches++;
	mutex_unlock(&sbi->lock);

	if (qr->nr_hits &&
	    copy_to_user(u64_to_user_ptr(results_uptr), out,
			 qr->nr_hits * sizeof(*out)))
		err = -EFAULT;
out_free:
	kvfree(out);
	kfree(qr->hits);
	qr->hits = NULL;
	kvfree(q);
	qr->q = NULL;
	return err;
}

static long vexfs_ioc_search(struct file *file, void __user *argp)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(file_inode(file)->i_sb);
	struct vexfs_search s;
	struct vexfs_query qr = { 0 };
	int err;

	if (copy_from_user(&s.req, argp, sizeof(s.req)))
		return -EFAULT;
	if (!vexfs_zero(s.req.reserved, sizeof(s.req.reserved)))
		return -EINVAL;
	qr.k = s.req.k;
	qr.metric = s.req.metric;
	qr.flags = s.req.flags;
	err = vexfs_run_search(sbi, &qr, s.req.dim, s.req.query,
			       s.req.results, false);
	if (err)
		return err;
	memset(&s.resp, 0, sizeof(s.resp));
	s.resp.nr_results = qr.nr_hits;
	s.resp.flags = qr.rflags;
	s.resp.nr_candidates = qr.nr_candidates;
	s.resp.index_generation = qr.generation;
	if (copy_to_user(argp, &s, sizeof(s)))
		return -EFAULT;
	return 0;
}

static long vexfs_ioc_hybrid_search(struct file *file, void __user *argp)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(file_inode(file)->i_sb);
	struct vexfs_hybrid_search *s;
	struct vexfs_query qr = { 0 };
	u32 i;
	int err;

	s = kmalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	if (copy_from_user(&s->req, argp, sizeof(s->req))) {
		err = -EFAULT;
		goto out;
	}
	err = -EINVAL;
	if (s->req.__pad ||
	    !vexfs_zero(s->req.reserved, sizeof(s->req.reserved)))
		goto out;
	if (s->req.nr_filters > VEXFS_FILTER_MAX) {
		err = -E2BIG;
		goto out;
	}
	for (i = 0; i < VEXFS_FILTER_MAX; i++) {
		err = vexfs_check_filter(&s->req.filters[i],
					 i < s->req.nr_filters);
		if (err)
			goto out;
	}
	qr.k = s->req.k;
	qr.metric = s->req.metric;
	qr.flags = s->req.flags;
	qr.filters = s->req.filters;
	qr.nr_filters = s->req.nr_filters;
	err = vexfs_run_search(sbi, &qr, s->req.dim, s->req.query,
			       s->req.results, true);
	if (err)
		goto out;
	memset(&s->resp, 0, sizeof(s->resp));
	s->resp.nr_results = qr.nr_hits;
	s->resp.flags = qr.rflags;
	s->resp.nr_candidates = qr.nr_candidates;
	s->resp.nr_examined = qr.nr_examined;
	s->resp.index_generation = qr.generation;
	if (copy_to_user(argp, s, sizeof(*s)))
		err = -EFAULT;
out:
	kfree(s);
	return err;
}

static long vexfs_ioc_manage_index(struct file *file, void __user *argp)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(file_inode(file)->i_sb);
	struct vexfs_manage_index m;
	int err = 0;

	if (copy_from_user(&m.req, argp, sizeof(m.req)))
		return -EFAULT;
	if (m.req.flags || !vexfs_zero(m.req.reserved, sizeof(m.req.reserved)) ||
	    m.req.op > VEXFS_INDEX_INFO)
		return -EINVAL;

	mutex_lock(&sbi->lock);
	switch (m.req.op) {
	case VEXFS_INDEX_CREATE:
		err = sbi->idx ? -EEXIST : vexfs_index_build(sbi);
		break;
	case VEXFS_INDEX_DROP:
		if (sbi->idx) {
			vexfs_index_free(sbi->idx);
			sbi->idx = NULL;
		} else {
			err = -ENOENT;
		}
		break;
	case VEXFS_INDEX_REBUILD:
		err = sbi->idx ? vexfs_index_build(sbi) : -ENOENT;
		break;
	default:	/* VEXFS_INDEX_INFO */
		break;
	}
	memset(&m.resp, 0, sizeof(m.resp));
	m.resp.dim = sbi->dim;
	if (sbi->idx) {
		m.resp.present = 1;
		m.resp.nr_entries = sbi->idx->nr;
		m.resp.generation = sbi->idx->generation;
		m.resp.bytes = vexfs_index_bytes(sbi);
	}
	mutex_unlock(&sbi->lock);

	if (copy_to_user(argp, &m, sizeof(m)))
		return -EFAULT;
	return err;
}

static long vexfs_ioc_get_stats(struct file *file, void __user *argp)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(file_inode(file)->i_sb);
	struct vexfs_stats st;

	memset(&st, 0, sizeof(st));
	mutex_lock(&sbi->lock);
	st.abi_version = VEXFS_ABI_VERSION;
	st.dim = sbi->dim;
	st.nr_vectors = sbi->nr_vectors;
	st.vectors_added = sbi->vectors_added;
	st.vectors_removed = sbi->vectors_removed;
	st.searches = sbi->searches;
	st.hybrid_searches = sbi->hybrid_searches;
	st.index_builds = sbi->index_builds;
	if (sbi->idx) {
		st.index_present = 1;
		st.index_entries = sbi->idx->nr;
		st.index_generation = sbi->idx->generation;
	}
	mutex_unlock(&sbi->lock);

	if (copy_to_user(argp, &st, sizeof(st)))
		return -EFAULT;
	return 0;
}

static long vexfs_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case VEXFS_IOC_ADD_VECTOR:
		return vexfs_ioc_add_vector(file, argp);
	case VEXFS_IOC_GET_VECTOR:
		return vexfs_ioc_get_vector(file, argp);
	case VEXFS_IOC_DEL_VECTOR:
		return vexfs_ioc_del_vector(file);
	case VEXFS_IOC_SEARCH:
		return vexfs_ioc_search(file, argp);
	case VEXFS_IOC_HYBRID_SEARCH:
		return vexfs_ioc_hybrid_search(file, argp);
	case VEXFS_IOC_MANAGE_INDEX:
		return vexfs_ioc_manage_index(file, argp);
	case VEXFS_IOC_GET_STATS:
		return vexfs_ioc_get_stats(file, argp);
	default:
		return -ENOTTY;
	}
}

/* ------------------------------------------------------------------ */
/* VFS glue (ramfs-like)                                               */

static const struct inode_operations vexfs_file_iops;
static const struct inode_operations vexfs_dir_iops;
static const struct file_operations vexfs_file_fops;
static struct file_operations vexfs_dir_fops;	/* filled at init */
static const struct super_operations vexfs_super_ops;

VEXFS_DEFINE_AOPS

static struct inode *vexfs_get_inode(struct super_block *sb,
				     const struct inode *dir, umode_t mode,
				     dev_t dev)
{
	struct inode *inode = new_inode(sb);

	if (!inode)
		return NULL;
	inode->i_ino = get_next_ino();
	vexfs_inode_init_owner(inode, dir, mode);
	inode->i_mapping->a_ops = VEXFS_AOPS;
	mapping_set_gfp_mask(inode->i_mapping, GFP_HIGHUSER);
	mapping_set_unevictable(inode->i_mapping);
	vexfs_inode_init_times(inode);
	switch (mode & S_IFMT) {
	case S_IFREG:
		inode->i_op = &vexfs_file_iops;
		inode->i_fop = &vexfs_file_fops;
		break;
	case S_IFDIR:
		inode->i_op = &vexfs_dir_iops;
		inode->i_fop = &vexfs_dir_fops;
		inc_nlink(inode);	/* "." */
		break;
	default:
		init_special_inode(inode, mode, dev);
		break;
	}
	return inode;
}

static int vexfs_mknod(VEXFS_NS_PARAM struct inode *dir, struct dentry *dentry,
		       umode_t mode, dev_t dev)
{
	struct inode *inode = vexfs_get_inode(dir->i_sb, dir, mode, dev);

	if (!inode)
		return -ENOSPC;
	vexfs_d_pin(dentry, inode);
	vexfs_dir_touch(dir);
	return 0;
}

static int vexfs_create(VEXFS_NS_PARAM struct inode *dir, struct dentry *dentry,
			umode_t mode VEXFS_CREATE_EXCL_PARAM)
{
	return vexfs_mknod(VEXFS_NS_ARG dir, dentry, mode | S_IFREG, 0);
}

static VEXFS_MKDIR_RET_T vexfs_mkdir(VEXFS_NS_PARAM struct inode *dir,
				     struct dentry *dentry, umode_t mode)
{
	int err = vexfs_mknod(VEXFS_NS_ARG dir, dentry, mode | S_IFDIR, 0);

	if (!err)
		inc_nlink(dir);
	return VEXFS_MKDIR_RET(err);
}

static void vexfs_set_name(struct vexfs_vec *vec, const struct qstr *name)
{
	vec->name_len = min_t(u32, name->len, NAME_MAX);
	memcpy(vec->name, name->name, vec->name_len);
	vec->name[vec->name_len] = '\0';
}

static int vexfs_rename(VEXFS_NS_PARAM struct inode *old_dir,
			struct dentry *old_dentry, struct inode *new_dir,
			struct dentry *new_dentry, unsigned int flags)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(old_dir->i_sb);
	struct inode *old_inode = d_inode(old_dentry);
	struct inode *new_inode = d_inode(new_dentry);
	int err;

	err = vexfs_simple_rename(VEXFS_NS_ARG old_dir, old_dentry, new_dir,
				  new_dentry, flags);
	if (err)
		return err;
	/* d_move() has not happened yet: both names are still stable. */
	mutex_lock(&sbi->lock);
	if (old_inode && old_inode->i_private)
		vexfs_set_name(old_inode->i_private, &new_dentry->d_name);
	if ((flags & RENAME_EXCHANGE) && new_inode && new_inode->i_private)
		vexfs_set_name(new_inode->i_private, &old_dentry->d_name);
	mutex_unlock(&sbi->lock);
	return 0;
}

static void vexfs_evict_inode(struct inode *inode)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(inode->i_sb);
	struct vexfs_vec *vec = NULL;

	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
	if (S_ISREG(inode->i_mode) && sbi) {
		mutex_lock(&sbi->lock);
		vec = vexfs_detach_locked(sbi, inode);
		mutex_unlock(&sbi->lock);
	}
	kvfree(vec);
}

static int vexfs_show_options(struct seq_file *m, struct dentry *root)
{
	seq_printf(m, ",dim=%u", VEXFS_SB(root->d_sb)->dim);
	return 0;
}

static const struct super_operations vexfs_super_ops = {
	.statfs		= simple_statfs,
	.drop_inode	= VEXFS_DROP_INODE,
	.evict_inode	= vexfs_evict_inode,
	.show_options	= vexfs_show_options,
};

static const struct inode_operations vexfs_file_iops = {
	.setattr	= simple_setattr,
	.getattr	= simple_getattr,
};

static const struct inode_operations vexfs_dir_iops = {
	.create		= vexfs_create,
	.lookup		= simple_lookup,
	.link		= simple_link,
	.unlink		= simple_unlink,
	.mkdir		= vexfs_mkdir,
	.rmdir		= simple_rmdir,
	.mknod		= vexfs_mknod,
	.rename		= vexfs_rename,
	.setattr	= simple_setattr,
	.getattr	= simple_getattr,
};

static const struct file_operations vexfs_file_fops = {
	.owner		= THIS_MODULE,
	.read_iter	= generic_file_read_iter,
	.write_iter	= generic_file_write_iter,
	.mmap		= generic_file_mmap,
	.fsync		= noop_fsync,
	.splice_read	= VEXFS_SPLICE_READ,
	.splice_write	= iter_file_splice_write,
	.llseek		= generic_file_llseek,
	.unlocked_ioctl	= vexfs_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/* ------------------------------------------------------------------ */
/* Superblock / mount                                                  */

enum { Opt_dim };

static const struct fs_parameter_spec vexfs_fs_parameters[] = {
	fsparam_u32("dim", Opt_dim),
	{}
};

static int vexfs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct vexfs_fs_ctx *ctx = fc->fs_private;
	struct fs_parse_result result;
	int opt;

	opt = fs_parse(fc, vexfs_fs_parameters, param, &result);
	if (opt < 0)
		return opt;	/* -ENOPARAM -> "source" or -EINVAL by VFS */
	switch (opt) {
	case Opt_dim:
		if (result.uint_32 < 1 || result.uint_32 > VEXFS_MAX_DIM)
			return invalfc(fc, "dim must be 1..%u", VEXFS_MAX_DIM);
		ctx->dim = result.uint_32;
		ctx->dim_set = true;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

static int vexfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct vexfs_fs_ctx *ctx = fc->fs_private;
	struct vexfs_sb_info *sbi;
	struct inode *root;

	sbi = kzalloc(sizeof(*sbi), GFP_KERNEL);
	if (!sbi)
		return -ENOMEM;
	mutex_init(&sbi->lock);
	INIT_LIST_HEAD(&sbi->vecs);
	sbi->dim = ctx->dim;
	sb->s_fs_info = sbi;

	sb->s_maxbytes = MAX_LFS_FILESIZE;
	sb->s_blocksize = PAGE_SIZE;
	sb->s_blocksize_bits = PAGE_SHIFT;
	sb->s_magic = VEXFS_SUPER_MAGIC;
	sb->s_op = &vexfs_super_ops;
	sb->s_time_gran = 1;

	root = vexfs_get_inode(sb, NULL, S_IFDIR | 0755, 0);
	sb->s_root = d_make_root(root);
	if (!sb->s_root)
		return -ENOMEM;
	return 0;
}

static int vexfs_get_tree(struct fs_context *fc)
{
	return get_tree_nodev(fc, vexfs_fill_super);
}

static int vexfs_reconfigure(struct fs_context *fc)
{
	struct vexfs_fs_ctx *ctx = fc->fs_private;
	struct vexfs_sb_info *sbi = VEXFS_SB(fc->root->d_sb);

	if (ctx->dim_set && ctx->dim != sbi->dim)
		return invalfc(fc, "dim cannot be changed on remount");
	return 0;
}

static void vexfs_free_fc(struct fs_context *fc)
{
	kfree(fc->fs_private);
}

static const struct fs_context_operations vexfs_context_ops = {
	.free		= vexfs_free_fc,
	.parse_param	= vexfs_parse_param,
	.get_tree	= vexfs_get_tree,
	.reconfigure	= vexfs_reconfigure,
};

static int vexfs_init_fs_context(struct fs_context *fc)
{
	struct vexfs_fs_ctx *ctx;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return -ENOMEM;
	ctx->dim = VEXFS_DEFAULT_DIM;
	fc->fs_private = ctx;
	fc->ops = &vexfs_context_ops;
	return 0;
}

static void vexfs_kill_sb(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);

	vexfs_kill_super(sb);	/* evicts every inode, freeing vectors */
	if (!sbi)
		return;
	WARN_ON(!list_empty(&sbi->vecs));
	vexfs_index_free(sbi->idx);
	mutex_destroy(&sbi->lock);
	kfree(sbi);
}

static struct file_system_type vexfs_fs_type = {
	.owner			= THIS_MODULE,
	.name			= "vexfs",
	.init_fs_context	= vexfs_init_fs_context,
	.parameters		= vexfs_fs_parameters,
	.kill_sb		= vexfs_kill_sb,
};

static int __init vexfs_init(void)
{
	/* libfs directory ops plus our ioctl (layout differs per kernel). */
	vexfs_dir_fops = simple_dir_operations;
	vexfs_dir_fops.owner = THIS_MODULE;
	vexfs_dir_fops.unlocked_ioctl = vexfs_ioctl;
	vexfs_dir_fops.compat_ioctl = compat_ptr_ioctl;
	return register_filesystem(&vexfs_fs_type);
}

static void __exit vexfs_exit(void)
{
	unregister_filesystem(&vexfs_fs_type);
}

module_init(vexfs_init);
module_exit(vexfs_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("VexFS: in-memory filesystem with fixed-point vector search");
MODULE_AUTHOR("VexFS developers");
MODULE_ALIAS_FS("vexfs");

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VexFS kernel-version compatibility layer.
 *
 * Every difference between supported kernels (5.10 .. 7.x) lives here,
 * keyed on LINUX_VERSION_CODE.  vexfs_main.c uses only the VEXFS_* macros
 * and vexfs_* inline helpers defined below.
 */
#ifndef _VEXFS_COMPAT_H
#define _VEXFS_COMPAT_H

#include <linux/version.h>
#include <linux/fs.h>
#include <linux/dcache.h>
#include <linux/pagemap.h>

/*
 * Mount idmapping argument of inode operations:
 *   6.3+  struct mnt_idmap *
 *   5.12+ struct user_namespace *
 *   older: none
 * VEXFS_NS_PARAM declares it (with trailing comma), VEXFS_NS_ARG forwards
 * it, VEXFS_NS_INIT is the identity mapping for internal calls.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#define VEXFS_NS_PARAM	struct mnt_idmap *idmap,
#define VEXFS_NS_ARG	idmap,
#define VEXFS_NS_INIT	&nop_mnt_idmap,
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(5, 12, 0)
#define VEXFS_NS_PARAM	struct user_namespace *mnt_userns,
#define VEXFS_NS_ARG	mnt_userns,
#define VEXFS_NS_INIT	&init_user_ns,
#else
#define VEXFS_NS_PARAM
#define VEXFS_NS_ARG
#define VEXFS_NS_INIT
#endif

static inline void vexfs_inode_init_owner(struct inode *inode,
					  const struct inode *dir,
					  umode_t mode)
{
	inode_init_owner(VEXFS_NS_INIT inode, dir, mode);
}

/* Timestamps: 6.7+ has full accessors, 6.6 only ctime accessors. */
static inline void vexfs_inode_init_times(struct inode *inode)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	simple_inode_init_ts(inode);
#else
	inode->i_atime = inode->i_mtime = inode->i_ctime = current_time(inode);
#endif
}

/* Directory content changed: mtime = ctime = now. */
static inline void vexfs_dir_touch(struct inode *dir)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	inode_set_mtime_to_ts(dir, inode_set_ctime_current(dir));
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	dir->i_mtime = inode_set_ctime_current(dir);
#else
	dir->i_mtime = dir->i_ctime = current_time(dir);
#endif
}

/*
 * ->create lost its "bool excl" argument (verified absent on 7.3, present
 * on 6.12; the exact cut-off release is assumed to be 7.0).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 0, 0)
#define VEXFS_CREATE_EXCL_PARAM
#else
#define VEXFS_CREATE_EXCL_PARAM	, bool excl
#endif

/* ->mkdir returns struct dentry * since 6.15. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
#define VEXFS_MKDIR_RET_T		struct dentry *
#define VEXFS_MKDIR_RET(err)		ERR_PTR(err)
#else
#define VEXFS_MKDIR_RET_T		int
#define VEXFS_MKDIR_RET(err)		(err)
#endif

/*
 * Pinning of in-memory dentries.  6.19+ has d_make_persistent() (paired
 * with d_make_discardable() in simple_unlink/simple_rmdir) and no
 * kill_litter_super(); before that the extra reference is a plain dget()
 * and kill_litter_super() drops it.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 19, 0)
static inline void vexfs_d_pin(struct dentry *dentry, struct inode *inode)
{
	d_make_persistent(dentry, inode);
}
#define vexfs_kill_super(sb)	kill_anon_super(sb)
#else
static inline void vexfs_d_pin(struct dentry *dentry, struct inode *inode)
{
	d_instantiate(dentry, inode);
	dget(dentry);
}
#define vexfs_kill_super(sb)	kill_litter_super(sb)
#endif

/* ->drop_inode helper was renamed in 6.18. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 18, 0)
#define VEXFS_DROP_INODE	inode_just_drop
#else
#define VEXFS_DROP_INODE	generic_delete_inode
#endif

/* Page-cache splice helper. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
#define VEXFS_SPLICE_READ	filemap_splice_read
#else
#define VEXFS_SPLICE_READ	generic_file_splice_read
#endif

/* Address space operations for RAM-backed files (ram_aops since 6.0). */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 0, 0)
#define VEXFS_AOPS		(&ram_aops)
#define VEXFS_DEFINE_AOPS
#else
#define VEXFS_AOPS		(&vexfs_aops)
#define VEXFS_DEFINE_AOPS						\
static const struct address_space_operations vexfs_aops = {		\
	.readpage	= simple_readpage,				\
	.write_begin	= simple_write_begin,				\
	.write_end	= simple_write_end,				\
	.set_page_dirty	= __set_page_dirty_nobuffers,			\
};
#endif

static inline int vexfs_simple_rename(VEXFS_NS_PARAM struct inode *old_dir,
				      struct dentry *old_dentry,
				      struct inode *new_dir,
				      struct dentry *new_dentry,
				      unsigned int flags)
{
	return simple_rename(VEXFS_NS_ARG old_dir, old_dentry, new_dir,
			     new_dentry, flags);
}

#endif /* _VEXFS_COMPAT_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of erofs_rs: only what Rust cannot call in 6.12.
 *
 * Everything here is a one-line wrapper around a static inline function or macro of fscache.h,
 * netfs.h, pagemap.h, highmem.h, fs.h or ratelimit.h, which bindgen cannot turn into a callable
 * symbol, or (zlib.h, zstd.h, xz.h) a call whose stream structures would otherwise have to be
 * mirrored in Rust. Policy (what to read, how to react to a result) stays in Rust: see rust/fscache.rs and
 * rust/folio.rs for the safe wrappers that are the only users of these functions.
 */
#include <linux/bvec.h>
#include <linux/completion.h>
#include <linux/fs.h>
#include <linux/fscache.h>
#include <linux/highmem.h>
#include <linux/lockdep.h>
#include <linux/mutex.h>
#include <linux/netfs.h>
#include <linux/pagemap.h>
#include <linux/ratelimit.h>
#include <linux/seq_file.h>
#include <linux/statfs.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <linux/xattr.h>
#include <linux/xz.h>
#include <linux/posix_acl_xattr.h>
#include <linux/zlib.h>
#include <linux/zstd.h>

#include "shim.h"

/* rust/ffi.rs mirrors struct netfs_cache_resources as `CacheResources`: keep them identical. */
static_assert(sizeof(struct netfs_cache_resources) == 32);
static_assert(offsetof(struct netfs_cache_resources, ops) == 0);
static_assert(offsetof(struct netfs_cache_resources, cache_priv) == 8);
static_assert(offsetof(struct netfs_cache_resources, cache_priv2) == 16);
static_assert(offsetof(struct netfs_cache_resources, debug_id) == 24);
static_assert(offsetof(struct netfs_cache_resources, inval_counter) == 28);
static_assert(sizeof(enum netfs_io_source) == 1);
static_assert(NETFS_READ_FROM_CACHE == 3 && NETFS_INVALID_READ == 4);

/* --- fscache volumes and cookies (fs/netfs/fscache_{volume,cookie}.c) */

struct fscache_volume *erofs_rs_acquire_volume(const char *name)
{
	return fscache_acquire_volume(name, NULL, NULL, 0);
}

void erofs_rs_relinquish_volume(struct fscache_volume *volume)
{
	fscache_relinquish_volume(volume, NULL, false);
}

/* Acquired as in-tree erofs does: cachefiles refuses OPEN without WANT_CACHE_SIZE. */
struct fscache_cookie *erofs_rs_acquire_cookie(struct fscache_volume *volume,
					       const void *key, size_t key_len)
{
	struct fscache_cookie *cookie;

	cookie = fscache_acquire_cookie(volume, FSCACHE_ADV_WANT_CACHE_SIZE,
					key, key_len, NULL, 0, 0);
	if (cookie)
		fscache_use_cookie(cookie, false);
	return cookie;
}

void erofs_rs_relinquish_cookie(struct fscache_cookie *cookie)
{
	fscache_unuse_cookie(cookie, NULL, NULL);
	fscache_relinquish_cookie(cookie, false);
}

/* --- one read operation on a cookie (the loop around these is rust/fscache.rs) */

int erofs_rs_begin_read(struct netfs_cache_resources *cres,
			struct fscache_cookie *cookie)
{
	return fscache_begin_read_operation(cres, cookie);
}

/*
 * Returns the enum netfs_io_source. With @ask, on a hole cachefiles first asks the daemon for
 * [pos, pos + *len) (up to the next cached byte) and waits; without, a hole only returns
 * NETFS_DOWNLOAD_FROM_SERVER (a probe: nothing is sent).
 */
u8 erofs_rs_prepare_ondemand_read(struct netfs_cache_resources *cres,
				  loff_t pos, size_t *len, bool ask)
{
	unsigned long flags = ask ? 1 << NETFS_SREQ_ONDEMAND : 0;

	if (!cres->ops || !cres->ops->prepare_ondemand_read)
		return NETFS_INVALID_READ;
	return cres->ops->prepare_ondemand_read(cres, pos, len, LLONG_MAX,
						&flags, 0);
}

int erofs_rs_cache_read(struct netfs_cache_resources *cres, loff_t pos,
			struct iov_iter *iter, netfs_io_terminated_t term_fn,
			void *priv)
{
	return fscache_read(cres, pos, iter, NETFS_READ_HOLE_FAIL, term_fn, priv);
}

/* The blob size the daemon declared in its copen reply (0 before, or if it declared none). */
loff_t erofs_rs_cookie_object_size(const struct fscache_cookie *cookie)
{
	return READ_ONCE(cookie->object_size);
}

void erofs_rs_end_operation(struct netfs_cache_resources *cres)
{
	fscache_end_operation(cres);
}

size_t erofs_rs_iov_iter_count(const struct iov_iter *iter)
{
	return iov_iter_count(iter);
}

void erofs_rs_iov_iter_truncate(struct iov_iter *iter, size_t count)
{
	iov_iter_truncate(iter, count);
}

void erofs_rs_iov_iter_reexpand(struct iov_iter *iter, size_t count)
{
	iov_iter_reexpand(iter, count);
}

void erofs_rs_init_completion(struct completion *done)
{
	init_completion(done);
}

/* --- folios and the page cache */

loff_t erofs_rs_folio_pos(struct folio *folio)
{
	return folio_pos(folio);
}

size_t erofs_rs_folio_size(struct folio *folio)
{
	return folio_size(folio);
}

struct address_space *erofs_rs_folio_mapping(struct folio *folio)
{
	return folio->mapping;
}

void erofs_rs_folio_mark_uptodate(struct folio *folio)
{
	folio_mark_uptodate(folio);
}

void erofs_rs_folio_put(struct folio *folio)
{
	folio_put(folio);
}

/* Maps the page of @folio that holds byte @offset; unmap with erofs_rs_kunmap_local(). */
void *erofs_rs_kmap_local_folio(struct folio *folio, size_t offset)
{
	return kmap_local_folio(folio, offset);
}

void erofs_rs_kunmap_local(const void *addr)
{
	kunmap_local(addr);
}

/* Page @i of @folio (folio_page()): the pages of a run of folios, for vm_map_ram(). */
struct page *erofs_rs_folio_page(struct folio *folio, size_t i)
{
	return folio_page(folio, i);
}

/* An up-to-date, unlocked folio with a reference, or an ERR_PTR. */
struct folio *erofs_rs_read_mapping_folio(struct address_space *mapping,
					  pgoff_t index)
{
	return read_mapping_folio(mapping, index, NULL);
}

void erofs_rs_iter_mapping(struct iov_iter *iter, struct address_space *mapping,
			   loff_t start, size_t count)
{
	iov_iter_xarray(iter, ITER_DEST, &mapping->i_pages, start, count);
}

/*
 * Describes the @len bytes of the kernel buffer @buf (linear-mapped, e.g. kmalloc'ed, or
 * vmalloc'ed, e.g. kvmalloc'ed) as an ITER_DEST bvec iterator over @bv (room for @nr entries),
 * for a direct-I/O read from the cache file. Returns -EINVAL if @bv is too small or a byte of
 * @buf is neither linear-mapped nor vmalloc'ed.
 */
int erofs_rs_iter_kbuf(struct iov_iter *iter, struct bio_vec *bv, unsigned int nr, void *buf,
		       size_t len)
{
	unsigned int i = 0;
	size_t done = 0;

	while (done < len) {
		void *p = buf + done;
		size_t off = offset_in_page(p);
		size_t n = min_t(size_t, PAGE_SIZE - off, len - done);
		struct page *page;

		if (is_vmalloc_addr(p))
			page = vmalloc_to_page(p);
		else if (virt_addr_valid(p))
			page = virt_to_page(p);
		else
			page = NULL;
		if (i >= nr || !page)
			return -EINVAL;
		bvec_set_page(&bv[i++], page, n, off);
		done += n;
	}
	if (is_vmalloc_addr(buf))
		flush_kernel_vmap_range(buf, len);
	iov_iter_bvec(iter, ITER_DEST, bv, i, len);
	return 0;
}

/* After a read into @buf: its vmalloc alias may hold stale cache lines (no-op on x86). */
void erofs_rs_kbuf_read_done(void *buf, size_t len)
{
	if (is_vmalloc_addr(buf))
		invalidate_kernel_vmap_range(buf, len);
}

void erofs_rs_mapping_set_gfp_kernel(struct address_space *mapping)
{
	mapping_set_gfp_mask(mapping, GFP_KERNEL);
}

/*
 * Keeps the invalidate_lock of a file's page cache out of lockdep's ordering checks.
 *
 * The VM holds mapping->invalidate_lock (shared) around ->readahead and ->read_folio, and our
 * reads do direct I/O on the cachefiles backing file under it, which takes the backing
 * filesystem's i_rwsem (llseek(SEEK_DATA) in prepare_ondemand_read, the DIO read itself). The
 * daemon's pwrite() to the anon fd is a direct I/O write that pins its user buffer under that
 * same i_rwsem, so i_rwsem -> mmap_lock, and a page fault on one of our files takes
 * mmap_lock -> invalidate_lock: lockdep sees a cycle. It cannot deadlock: nothing ever takes
 * the invalidate_lock of an erofs_rs file exclusively (read-only: no truncate, hole punch,
 * fallocate or open for write, and filemap_invalidate_inode() is not used), so a shared
 * acquisition never waits and the lock cannot be part of a wait cycle. Lockdep cannot know
 * that (rwsem readers are not recursive for it). In-tree erofs and every netfs filesystem with
 * cachefiles carry the same latent report. Validation stays on for every other lock.
 */
void erofs_rs_mapping_lockdep_shared_only(struct address_space *mapping)
{
	lockdep_set_novalidate_class(&mapping->invalidate_lock);
}

/* --- inodes, dentries, directories */

void erofs_rs_mapping_set_large_folios(struct address_space *mapping)
{
	mapping_set_large_folios(mapping);
}

void erofs_rs_inode_set_owner(struct inode *inode, u32 uid, u32 gid)
{
	i_uid_write(inode, uid);
	i_gid_write(inode, gid);
}

void erofs_rs_inode_set_fop(struct inode *inode, const struct file_operations *fop)
{
	inode->i_fop = fop;
}

const unsigned char *erofs_rs_dentry_name(const struct dentry *dentry, u32 *len)
{
	*len = dentry->d_name.len;
	return dentry->d_name.name;
}

bool erofs_rs_dir_emit(struct dir_context *ctx, const char *name, int len,
		       u64 ino, unsigned int type)
{
	return dir_emit(ctx, name, len, ino, type);
}

void erofs_rs_seq_puts(struct seq_file *m, const char *s)
{
	seq_puts(m, s);
}

/* --- logging: one shared rate limit for all errors caused by images or daemons */

static DEFINE_RATELIMIT_STATE(erofs_rs_rs, 5 * HZ, 10);

bool erofs_rs_config_fs_dax(void)
{
	return IS_ENABLED(CONFIG_FS_DAX);
}

bool erofs_rs_ratelimit(void)
{
	return __ratelimit(&erofs_rs_rs);
}

/* struct kstatfs is opaque to 6.12's bindings: fill it as erofs_statfs() does. */
void erofs_rs_statfs_fill(struct kstatfs *buf, u64 type, u64 bsize, u64 blocks,
			  u64 inos, u64 namelen, const u8 *uuid)
{
	buf->f_type = type;
	buf->f_bsize = bsize;
	buf->f_blocks = blocks;
	buf->f_bfree = buf->f_bavail = 0;
	buf->f_files = ULLONG_MAX;
	buf->f_ffree = ULLONG_MAX - inos;
	buf->f_namelen = namelen;
	if (!uuid_is_null((const uuid_t *)uuid))
		buf->f_fsid = uuid_to_fsid((u8 *)uuid);
	else
		buf->f_fsid = u64_to_fsid(0);
}

/* The next folio of a readahead request: locked, its reference already dropped. */
struct folio *erofs_rs_readahead_folio(struct readahead_control *rac)
{
	return readahead_folio(rac);
}

/* The file a readahead request reads, and the byte range it has not handed out yet. */
struct address_space *erofs_rs_readahead_mapping(struct readahead_control *rac)
{
	return rac->mapping;
}

loff_t erofs_rs_readahead_pos(struct readahead_control *rac)
{
	return readahead_pos(rac);
}

size_t erofs_rs_readahead_length(struct readahead_control *rac)
{
	return readahead_length(rac);
}

/*
 * --- xattr handlers and POSIX ACLs (struct xattr_handler is opaque to 6.12's bindings).
 * The lookups themselves are Rust: erofs_rs_getxattr() in rust/xattr.rs.
 */
int erofs_rs_getxattr(struct inode *inode, int index, const char *name,
		      void *buffer, size_t size);

/* EROFS_XATTR_INDEX_* of the on-disk format */
#define EROFS_RS_XATTR_INDEX_USER		1
#define EROFS_RS_XATTR_INDEX_POSIX_ACL_ACCESS	2
#define EROFS_RS_XATTR_INDEX_POSIX_ACL_DEFAULT	3
#define EROFS_RS_XATTR_INDEX_TRUSTED		4
#define EROFS_RS_XATTR_INDEX_SECURITY		6

static int erofs_rs_xattr_get(const struct xattr_handler *handler,
			      struct dentry *unused, struct inode *inode,
			      const char *name, void *buffer, size_t size)
{
	return erofs_rs_getxattr(inode, handler->flags, name, buffer, size);
}

static bool erofs_rs_xattr_trusted_list(struct dentry *dentry)
{
	return capable(CAP_SYS_ADMIN);
}

static const struct xattr_handler erofs_rs_xattr_user_handler = {
	.prefix	= XATTR_USER_PREFIX,
	.flags	= EROFS_RS_XATTR_INDEX_USER,
	.get	= erofs_rs_xattr_get,
};

static const struct xattr_handler erofs_rs_xattr_trusted_handler = {
	.prefix	= XATTR_TRUSTED_PREFIX,
	.flags	= EROFS_RS_XATTR_INDEX_TRUSTED,
	.list	= erofs_rs_xattr_trusted_list,
	.get	= erofs_rs_xattr_get,
};

static const struct xattr_handler erofs_rs_xattr_security_handler = {
	.prefix	= XATTR_SECURITY_PREFIX,
	.flags	= EROFS_RS_XATTR_INDEX_SECURITY,
	.get	= erofs_rs_xattr_get,
};

const struct xattr_handler * const erofs_rs_xattr_handlers[] = {
	&erofs_rs_xattr_user_handler,
	&erofs_rs_xattr_trusted_handler,
	&erofs_rs_xattr_security_handler,
	NULL,
};

/* inode_operations.get_inode_acl, as erofs_get_acl() */
struct posix_acl *erofs_rs_get_acl(struct inode *inode, int type, bool rcu)
{
	struct posix_acl *acl;
	int prefix, rc;
	char *value = NULL;

	if (rcu)
		return ERR_PTR(-ECHILD);
	switch (type) {
	case ACL_TYPE_ACCESS:
		prefix = EROFS_RS_XATTR_INDEX_POSIX_ACL_ACCESS;
		break;
	case ACL_TYPE_DEFAULT:
		prefix = EROFS_RS_XATTR_INDEX_POSIX_ACL_DEFAULT;
		break;
	default:
		return ERR_PTR(-EINVAL);
	}
	rc = erofs_rs_getxattr(inode, prefix, "", NULL, 0);
	if (rc > 0) {
		value = kmalloc(rc, GFP_KERNEL);
		if (!value)
			return ERR_PTR(-ENOMEM);
		rc = erofs_rs_getxattr(inode, prefix, "", value, rc);
	}
	if (rc == -ENODATA)
		acl = NULL;
	else if (rc < 0)
		acl = ERR_PTR(rc);
	else
		acl = posix_acl_from_xattr(&init_user_ns, value, rc);
	kfree(value);
	return acl;
}

/* Serialises erofs_rs's domain and shared-cookie tables (rust/domain.rs). */
static DEFINE_MUTEX(erofs_rs_domain_mutex);

void erofs_rs_domain_lock(void)
{
	mutex_lock(&erofs_rs_domain_mutex);
}

void erofs_rs_domain_unlock(void)
{
	mutex_unlock(&erofs_rs_domain_mutex);
}

/*
 * --- decompressors: lib/zlib_inflate (DEFLATE), lib/zstd and lib/xz (MicroLZMA), as in-tree
 * erofs uses them
 */

size_t erofs_rs_inflate_workspace_size(void)
{
	return zlib_inflate_workspacesize();
}

/*
 * Inflates the raw DEFLATE stream at @src (32 KiB window, no zlib header) into @dst in one
 * zlib_inflate(Z_SYNC_FLUSH) call over both whole buffers: it stops at the stream's end, a
 * full @dst or the end of @src. @workspace holds erofs_rs_inflate_workspace_size() bytes.
 * Returns the bytes written and sets *@end if the stream ended, or -1 for malformed data.
 */
long erofs_rs_inflate(void *workspace, const u8 *src, size_t srclen, u8 *dst, size_t dstlen,
		      bool *end)
{
	struct z_stream_s z = { .workspace = workspace };
	int zerr;

	if (srclen > UINT_MAX || dstlen > UINT_MAX)
		return -1;
	if (zlib_inflateInit2(&z, -MAX_WBITS) != Z_OK)
		return -1;
	z.next_in = src;
	z.avail_in = srclen;
	z.next_out = dst;
	z.avail_out = dstlen;
	zerr = zlib_inflate(&z, Z_SYNC_FLUSH);
	zlib_inflateEnd(&z);
	if (zerr != Z_OK && zerr != Z_STREAM_END)
		return -1;
	*end = zerr == Z_STREAM_END;
	return dstlen - z.avail_out;
}

size_t erofs_rs_zstd_workspace_size(size_t max_window)
{
	return zstd_dstream_workspace_bound(max_window);
}

/*
 * Decodes the Zstandard frame at @src into @dst until @dst is full, the frame ends or @src
 * runs out. @workspace holds erofs_rs_zstd_workspace_size(@max_window) bytes: a frame that
 * needs a larger window fails. Returns the bytes written, or -1 for malformed data.
 */
long erofs_rs_zstd(void *workspace, size_t wssize, size_t max_window, const u8 *src,
		   size_t srclen, u8 *dst, size_t dstlen)
{
	zstd_in_buffer in = { .src = src, .size = srclen, .pos = 0 };
	zstd_out_buffer out = { .dst = dst, .size = dstlen, .pos = 0 };
	zstd_dstream *ds = zstd_init_dstream(max_window, workspace, wssize);

	if (!ds)
		return -1;
	while (out.pos < out.size) {
		size_t in0 = in.pos, out0 = out.pos;
		size_t zerr = zstd_decompress_stream(ds, &out, &in);

		if (zstd_is_error(zerr))
			return -1;
		/* the frame ended, or no progress: the input ran out */
		if (!zerr || (in.pos == in0 && out.pos == out0))
			break;
	}
	return out.pos;
}

struct xz_dec_microlzma *erofs_rs_microlzma_alloc(u32 dict_size)
{
	return xz_dec_microlzma_alloc(XZ_SINGLE, dict_size);
}

/*
 * Decodes the MicroLZMA stream that is exactly @src (its compressed size is @srclen) into
 * @dst with @s, a state from erofs_rs_microlzma_alloc(). With @exact, the stream must produce
 * exactly @dstlen bytes and end with the input (xz_dec_microlzma_reset's
 * uncomp_size_is_exact, as in-tree erofs for a whole pcluster); otherwise decoding stops once
 * @dst is full. Single-call mode (XZ_SINGLE): @dst is the dictionary, so the state is all
 * that is allocated; a match farther back than the state's dict_size is malformed data, as
 * in C's preallocated dictionary. Returns the bytes written, or -1 for malformed data.
 */
long erofs_rs_microlzma(struct xz_dec_microlzma *s, const u8 *src, size_t srclen, u8 *dst,
			size_t dstlen, bool exact)
{
	struct xz_buf b = { .in = src, .in_size = srclen, .out = dst, .out_size = dstlen };

	if (srclen > U32_MAX || dstlen > U32_MAX)
		return -1;
	xz_dec_microlzma_reset(s, srclen, dstlen, exact);
	/* XZ_OK in single-call mode: the input ran out before the output was complete */
	if (xz_dec_microlzma_run(s, &b) != XZ_STREAM_END)
		return -1;
	return b.out_pos;
}

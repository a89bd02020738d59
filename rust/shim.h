/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Prototypes of rust/shim.c. The Rust side declares the same functions in rust/ffi.rs.
 */
#ifndef EROFS_RS_SHIM_H
#define EROFS_RS_SHIM_H

#include <linux/types.h>
#include <linux/netfs.h>

struct address_space;
struct completion;
struct dentry;
struct dir_context;
struct file_operations;
struct folio;
struct fscache_cookie;
struct fscache_volume;
struct inode;
struct iov_iter;
struct kstatfs;
struct netfs_cache_resources;
struct readahead_control;
struct posix_acl;
struct seq_file;
struct xattr_handler;

struct fscache_volume *erofs_rs_acquire_volume(const char *name);
void erofs_rs_relinquish_volume(struct fscache_volume *volume);
void erofs_rs_domain_lock(void);
void erofs_rs_domain_unlock(void);
struct fscache_cookie *erofs_rs_acquire_cookie(struct fscache_volume *volume, const void *key, size_t key_len);
void erofs_rs_relinquish_cookie(struct fscache_cookie *cookie);
int erofs_rs_begin_read(struct netfs_cache_resources *cres, struct fscache_cookie *cookie);
u8 erofs_rs_prepare_ondemand_read(struct netfs_cache_resources *cres, loff_t pos, size_t *len,
				   bool ask);
int erofs_rs_cache_read(struct netfs_cache_resources *cres, loff_t pos, struct iov_iter *iter, netfs_io_terminated_t term_fn, void *priv);
void erofs_rs_end_operation(struct netfs_cache_resources *cres);
loff_t erofs_rs_cookie_object_size(const struct fscache_cookie *cookie);
size_t erofs_rs_iov_iter_count(const struct iov_iter *iter);
void erofs_rs_iov_iter_truncate(struct iov_iter *iter, size_t count);
void erofs_rs_iov_iter_reexpand(struct iov_iter *iter, size_t count);
void erofs_rs_init_completion(struct completion *done);
loff_t erofs_rs_folio_pos(struct folio *folio);
size_t erofs_rs_folio_size(struct folio *folio);
struct address_space *erofs_rs_folio_mapping(struct folio *folio);
void erofs_rs_folio_mark_uptodate(struct folio *folio);
void erofs_rs_folio_put(struct folio *folio);
void *erofs_rs_kmap_local_folio(struct folio *folio, size_t offset);
void erofs_rs_kunmap_local(const void *addr);
struct page *erofs_rs_folio_page(struct folio *folio, size_t i);
struct folio *erofs_rs_read_mapping_folio(struct address_space *mapping, pgoff_t index);
void erofs_rs_iter_mapping(struct iov_iter *iter, struct address_space *mapping, loff_t start, size_t count);
void erofs_rs_mapping_set_gfp_kernel(struct address_space *mapping);
int erofs_rs_iter_kbuf(struct iov_iter *iter, struct bio_vec *bv, unsigned int nr, void *buf, size_t len);
void erofs_rs_kbuf_read_done(void *buf, size_t len);
void erofs_rs_mapping_lockdep_shared_only(struct address_space *mapping);
void erofs_rs_mapping_set_large_folios(struct address_space *mapping);
void erofs_rs_inode_set_owner(struct inode *inode, u32 uid, u32 gid);
void erofs_rs_inode_set_fop(struct inode *inode, const struct file_operations *fop);
const unsigned char *erofs_rs_dentry_name(const struct dentry *dentry, u32 *len);
bool erofs_rs_dir_emit(struct dir_context *ctx, const char *name, int len, u64 ino, unsigned int type);
void erofs_rs_seq_puts(struct seq_file *m, const char *s);
bool erofs_rs_ratelimit(void);
/* IS_ENABLED(CONFIG_FS_DAX): C erofs refuses dax options without it. */
bool erofs_rs_config_fs_dax(void);
void erofs_rs_statfs_fill(struct kstatfs *buf, u64 type, u64 bsize, u64 blocks, u64 inos, u64 namelen, const u8 *uuid);

struct folio *erofs_rs_readahead_folio(struct readahead_control *rac);
struct address_space *erofs_rs_readahead_mapping(struct readahead_control *rac);
loff_t erofs_rs_readahead_pos(struct readahead_control *rac);
size_t erofs_rs_readahead_length(struct readahead_control *rac);

struct posix_acl *erofs_rs_get_acl(struct inode *inode, int type, bool rcu);
extern const struct xattr_handler * const erofs_rs_xattr_handlers[];

size_t erofs_rs_inflate_workspace_size(void);
long erofs_rs_inflate(void *workspace, const u8 *src, size_t srclen, u8 *dst, size_t dstlen,
		      bool *end);
size_t erofs_rs_zstd_workspace_size(size_t max_window);
long erofs_rs_zstd(void *workspace, size_t wssize, size_t max_window, const u8 *src,
		   size_t srclen, u8 *dst, size_t dstlen);
struct xz_dec_microlzma;
struct xz_dec_microlzma *erofs_rs_microlzma_alloc(u32 dict_size);
long erofs_rs_microlzma(struct xz_dec_microlzma *s, const u8 *src, size_t srclen, u8 *dst,
			size_t dstlen, bool exact);

#endif /* EROFS_RS_SHIM_H */

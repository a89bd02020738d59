// SPDX-License-Identifier: GPL-2.0

//! Declarations of the C functions erofs_rs calls that 6.12's `bindings` crate lacks.
//!
//! Two groups: the one-line wrappers of `rust/shim.c` (static inline functions and macros of
//! fscache.h, netfs.h, pagemap.h, ...), and exported kernel functions whose headers are not part of
//! 6.12's `bindings_helper.h`. Only `fscache.rs`, `folio.rs` and the VFS glue call these; everything
//! else uses their safe wrappers.

use kernel::ffi::{c_char, c_int, c_uint, c_void};
use kernel::bindings;

/// `struct netfs_cache_resources` (include/linux/netfs.h), which 6.12's bindings do not contain.
///
/// `rust/shim.c` checks size and offsets against the C definition with `static_assert`s.
#[repr(C)]
pub(crate) struct CacheResources {
    pub(crate) ops: *const c_void,
    pub(crate) cache_priv: *mut c_void,
    pub(crate) cache_priv2: *mut c_void,
    pub(crate) debug_id: c_uint,
    pub(crate) inval_counter: c_uint,
}

/// `netfs_io_terminated_t` in 6.12: (priv, bytes transferred or negative errno, was_async).
pub(crate) type TermFn = unsafe extern "C" fn(*mut c_void, isize, bool);

/// `NETFS_READ_FROM_CACHE` of `enum netfs_io_source` (a one-byte enum).
pub(crate) const NETFS_READ_FROM_CACHE: u8 = 3;
/// `NETFS_INVALID_READ` of `enum netfs_io_source`: the daemon failed the READ request.
pub(crate) const NETFS_INVALID_READ: u8 = 4;

/// Opaque `struct fscache_volume`.
#[repr(C)]
pub(crate) struct FscacheVolume {
    _p: [u8; 0],
}

/// Opaque `struct fscache_cookie`.
#[repr(C)]
pub(crate) struct FscacheCookie {
    _p: [u8; 0],
}

// The bindings types reached through these pointers contain empty structs (for example
// `mod_arch_specific`), which trips `improper_ctypes` although only pointers cross the boundary;
// 6.12's `bindings` crate allows the lint for the same reason.
#[allow(improper_ctypes)]
extern "C" {
    // rust/shim.c
    pub(crate) fn erofs_rs_acquire_volume(name: *const c_char) -> *mut FscacheVolume;
    pub(crate) fn erofs_rs_relinquish_volume(volume: *mut FscacheVolume);
    pub(crate) fn erofs_rs_domain_lock();
    pub(crate) fn erofs_rs_domain_unlock();
    pub(crate) fn erofs_rs_acquire_cookie(
        volume: *mut FscacheVolume,
        key: *const c_void,
        key_len: usize,
    ) -> *mut FscacheCookie;
    pub(crate) fn erofs_rs_relinquish_cookie(cookie: *mut FscacheCookie);
    pub(crate) fn erofs_rs_begin_read(cres: *mut CacheResources, cookie: *mut FscacheCookie)
        -> c_int;
    pub(crate) fn erofs_rs_prepare_ondemand_read(
        cres: *mut CacheResources,
        pos: i64,
        len: *mut usize,
        ask: bool,
    ) -> u8;
    pub(crate) fn erofs_rs_cache_read(
        cres: *mut CacheResources,
        pos: i64,
        iter: *mut bindings::iov_iter,
        term_fn: TermFn,
        priv_: *mut c_void,
    ) -> c_int;
    pub(crate) fn erofs_rs_end_operation(cres: *mut CacheResources);
    pub(crate) fn erofs_rs_cookie_object_size(cookie: *const FscacheCookie) -> i64;
    pub(crate) fn erofs_rs_iov_iter_count(iter: *const bindings::iov_iter) -> usize;
    pub(crate) fn erofs_rs_iov_iter_truncate(iter: *mut bindings::iov_iter, count: usize);
    pub(crate) fn erofs_rs_iov_iter_reexpand(iter: *mut bindings::iov_iter, count: usize);
    pub(crate) fn erofs_rs_init_completion(done: *mut bindings::completion);

    pub(crate) fn erofs_rs_folio_pos(folio: *mut bindings::folio) -> i64;
    pub(crate) fn erofs_rs_folio_size(folio: *mut bindings::folio) -> usize;
    pub(crate) fn erofs_rs_folio_mapping(folio: *mut bindings::folio)
        -> *mut bindings::address_space;
    pub(crate) fn erofs_rs_folio_mark_uptodate(folio: *mut bindings::folio);
    pub(crate) fn erofs_rs_folio_put(folio: *mut bindings::folio);
    pub(crate) fn erofs_rs_kmap_local_folio(folio: *mut bindings::folio, offset: usize)
        -> *mut c_void;
    pub(crate) fn erofs_rs_kunmap_local(addr: *const c_void);
    /// `folio_page(folio, i)`.
    pub(crate) fn erofs_rs_folio_page(folio: *mut bindings::folio, i: usize) -> *mut bindings::page;
    pub(crate) fn erofs_rs_read_mapping_folio(
        mapping: *mut bindings::address_space,
        index: usize,
    ) -> *mut bindings::folio;
    pub(crate) fn erofs_rs_iter_mapping(
        iter: *mut bindings::iov_iter,
        mapping: *mut bindings::address_space,
        start: i64,
        count: usize,
    );
    pub(crate) fn erofs_rs_iter_kbuf(
        iter: *mut bindings::iov_iter,
        bv: *mut bindings::bio_vec,
        nr: c_uint,
        buf: *mut c_void,
        len: usize,
    ) -> c_int;
    pub(crate) fn erofs_rs_kbuf_read_done(buf: *mut c_void, len: usize);
    pub(crate) fn erofs_rs_readahead_folio(rac: *mut bindings::readahead_control)
        -> *mut bindings::folio;
    pub(crate) fn erofs_rs_readahead_mapping(rac: *mut bindings::readahead_control)
        -> *mut bindings::address_space;
    pub(crate) fn erofs_rs_readahead_pos(rac: *mut bindings::readahead_control) -> i64;
    pub(crate) fn erofs_rs_readahead_length(rac: *mut bindings::readahead_control) -> usize;
    pub(crate) fn erofs_rs_mapping_set_gfp_kernel(mapping: *mut bindings::address_space);
    pub(crate) fn erofs_rs_mapping_lockdep_shared_only(mapping: *mut bindings::address_space);
    /// `mapping_set_large_folios`: the page cache may use folios larger than a page.
    pub(crate) fn erofs_rs_mapping_set_large_folios(mapping: *mut bindings::address_space);

    pub(crate) fn erofs_rs_inode_set_owner(inode: *mut bindings::inode, uid: u32, gid: u32);
    pub(crate) fn erofs_rs_inode_set_fop(
        inode: *mut bindings::inode,
        fop: *const bindings::file_operations,
    );
    pub(crate) fn erofs_rs_dentry_name(dentry: *const bindings::dentry, len: *mut u32)
        -> *const u8;
    pub(crate) fn erofs_rs_dir_emit(
        ctx: *mut bindings::dir_context,
        name: *const c_char,
        len: c_int,
        ino: u64,
        dtype: c_uint,
    ) -> bool;
    pub(crate) fn erofs_rs_seq_puts(m: *mut bindings::seq_file, s: *const c_char);
    pub(crate) fn erofs_rs_ratelimit() -> bool;
    /// `IS_ENABLED(CONFIG_FS_DAX)`.
    pub(crate) fn erofs_rs_config_fs_dax() -> bool;
    pub(crate) fn erofs_rs_statfs_fill(
        buf: *mut bindings::kstatfs,
        ftype: u64,
        bsize: u64,
        blocks: u64,
        inos: u64,
        namelen: u64,
        uuid: *const u8,
    );

    pub(crate) fn erofs_rs_get_acl(
        inode: *mut bindings::inode,
        acl_type: c_int,
        rcu: bool,
    ) -> *mut bindings::posix_acl;
    /// The NULL-terminated table of xattr handlers (user., trusted., security.).
    pub(crate) static erofs_rs_xattr_handlers: [*const bindings::xattr_handler; 4];

    /// `zlib_inflate_workspacesize()`.
    pub(crate) fn erofs_rs_inflate_workspace_size() -> usize;
    /// One raw-DEFLATE `zlib_inflate` over whole buffers: bytes written (`*end`: the stream
    /// ended) or -1 for malformed data.
    pub(crate) fn erofs_rs_inflate(
        workspace: *mut c_void,
        src: *const u8,
        srclen: usize,
        dst: *mut u8,
        dstlen: usize,
        end: *mut bool,
    ) -> core::ffi::c_long;
    /// `zstd_dstream_workspace_bound(max_window)`.
    pub(crate) fn erofs_rs_zstd_workspace_size(max_window: usize) -> usize;
    /// Decodes one Zstandard frame until `dst` is full: bytes written or -1 for malformed data.
    pub(crate) fn erofs_rs_zstd(
        workspace: *mut c_void,
        wssize: usize,
        max_window: usize,
        src: *const u8,
        srclen: usize,
        dst: *mut u8,
        dstlen: usize,
    ) -> core::ffi::c_long;
    /// `xz_dec_microlzma_alloc(XZ_SINGLE, dict_size)`: a decoder state, or null.
    pub(crate) fn erofs_rs_microlzma_alloc(dict_size: u32) -> *mut c_void;
    /// Decodes one MicroLZMA stream (`src` is all of it) with `state` in single-call mode:
    /// bytes written, or -1 for malformed data.
    pub(crate) fn erofs_rs_microlzma(
        state: *mut c_void,
        src: *const u8,
        srclen: usize,
        dst: *mut u8,
        dstlen: usize,
        exact: bool,
    ) -> core::ffi::c_long;

    // Exported by the kernel, declared in headers 6.12's bindings do not include (pagemap.h,
    // vmalloc.h, lz4.h, xz.h).
    /// Grows a readahead request to `[new_start, new_start + new_len)`, as far as it can (it
    /// stops at a page already cached or an allocation failure).
    pub(crate) fn readahead_expand(rac: *mut bindings::readahead_control, new_start: i64, new_len: usize);
    /// Maps `count` pages contiguously into the kernel's address space; null on failure.
    pub(crate) fn vm_map_ram(pages: *mut *mut bindings::page, count: c_uint, node: c_int) -> *mut c_void;
    /// Unmaps what `vm_map_ram` mapped (the same address and count).
    pub(crate) fn vm_unmap_ram(mem: *const c_void, count: c_uint);
    /// Frees a MicroLZMA decoder state.
    pub(crate) fn xz_dec_microlzma_end(state: *mut c_void);
    pub(crate) fn folio_unlock(folio: *mut bindings::folio);
    pub(crate) fn LZ4_decompress_safe(
        source: *const c_char,
        dest: *mut c_char,
        compressed_size: c_int,
        max_decompressed_size: c_int,
    ) -> c_int;
    pub(crate) fn LZ4_decompress_safe_partial(
        source: *const c_char,
        dest: *mut c_char,
        compressed_size: c_int,
        target_output_size: c_int,
        max_decompressed_size: c_int,
    ) -> c_int;
}

/// Returns the errno encoded in `ptr` if it is an `ERR_PTR`, as `IS_ERR()` does.
pub(crate) fn ptr_err<T>(ptr: *const T) -> Option<c_int> {
    let v = ptr as isize;
    if (-(bindings::MAX_ERRNO as isize)..0).contains(&v) {
        // The range check above makes the value fit in a c_int.
        Some(v as c_int)
    } else {
        None
    }
}

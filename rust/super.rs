// SPDX-License-Identifier: GPL-2.0

//! The super block: mount (`fill_super`), umount, statfs and `/proc/mounts` options.
//!
//! Mount follows in-tree erofs in fscache mode (fs/erofs/super.c, fscache.c): acquire the volume
//! `erofs,<domain_id|fsid>`, the cookie of the primary blob (`fsid`), read the superblock through
//! the blob's page cache (a miss becomes an on-demand READ), then one cookie per extra device.

use crate::domain::{CookieRef, DomainRef, VolumeRef};
use crate::fscache::{Cookie, Volume};
use crate::options::{self, Options};
use crate::{data, erofs_err, ffi, format, inode, Ops};
use kernel::ffi::{c_char, c_int, c_void};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVec};
use crate::{efscorrupted, eopnotsupp};
use kernel::bindings;
use kernel::error::{code::*, Error, Result};

/// `SB_RDONLY` and `SB_NOATIME` of include/linux/fs.h (`BIT()` macros bindgen does not expand).
const SB_RDONLY: usize = 1 << 0;
const SB_NOATIME: usize = 1 << 10;
pub(crate) const SB_POSIXACL: usize = 1 << 16;
/// `MAX_LFS_FILESIZE` on 64-bit.
const MAX_LFS_FILESIZE: i64 = i64::MAX;
/// `EROFS_NAME_LEN`.
pub(crate) const EROFS_NAME_LEN: u64 = 255;

/// The page cache of one blob's metadata: an anonymous inode whose `read_folio` reads the blob
/// through its cookie (like `erofs_fscache_meta_read_folio`). Released (iput) on drop.
///
/// # Invariants
///
/// `inode` was returned by `new_inode()` and we hold its only reference; its `i_private` points
/// to the cookie of `cookie`, whose address is stable and which outlives the inode.
pub(crate) struct BlobCache {
    inode: NonNull<bindings::inode>,
    cookie: CookieRef,
}

impl BlobCache {
    fn new(sb: *mut bindings::super_block, cookie: CookieRef, blkszbits: u8) -> Result<Self> {
        // SAFETY: `sb` is the super block being set up by `fill_super`.
        let inode = NonNull::new(unsafe { bindings::new_inode(sb) }).ok_or(ENOMEM)?;
        let i = inode.as_ptr();
        // SAFETY: `i` is a new inode that nobody else uses yet; the cookie box outlives it
        // because `BlobCache` drops the inode first (see `Drop`).
        unsafe {
            (*i).i_size = i64::MAX; // OFFSET_MAX: the blob's size is the cache's business
            (*i).i_blkbits = blkszbits;
            (*i).i_private = (&*cookie as *const Cookie).cast_mut().cast();
            (*(*i).i_mapping).a_ops = &data::META_AOPS.0;
            ffi::erofs_rs_mapping_set_gfp_kernel((*i).i_mapping);
        }
        // INVARIANT: see the comments above.
        Ok(Self { inode, cookie })
    }

    /// The page cache of the blob.
    pub(crate) fn mapping(&self) -> *mut bindings::address_space {
        // SAFETY: the inode is valid while we hold our reference (type invariant).
        unsafe { (*self.inode.as_ptr()).i_mapping }
    }

    /// The blob's cookie.
    pub(crate) fn cookie(&self) -> &Cookie {
        &self.cookie
    }
}

impl Drop for BlobCache {
    fn drop(&mut self) {
        // SAFETY: we hold the only reference (type invariant). `i_private` is cleared first so
        // that `evict_inode` does not take it for an `InodeInfo`. Eviction drops the page cache,
        // so no read on the cookie is in flight when the cookie box is freed after this.
        unsafe {
            (*self.inode.as_ptr()).i_private = core::ptr::null_mut();
            bindings::iput(self.inode.as_ptr());
        }
    }
}

/// The metadata blob as a `format::Source`: reads go through its page cache.
pub(crate) struct MetaSource<'a>(pub(crate) &'a BlobCache);

impl format::Source for MetaSource<'_> {
    fn read_exact(&self, pos: u64, buf: &mut [u8]) -> format::Result<()> {
        // SAFETY: the mapping belongs to the inode `self.0` holds a reference to.
        unsafe { crate::folio::read_mapping_bytes(self.0.mapping(), pos, buf) }
            .map_err(|_| format::Error::Io)
    }
}

/// Per-mount state, in `sb->s_fs_info`.
///
/// Fields drop in order: the page cache of the metadata blob before any cookie, cookies before
/// the volume.
pub(crate) struct SbInfo {
    /// Page cache and cookie of the primary blob; `None` once released by `kill_sb`.
    pub(crate) meta: Option<BlobCache>,
    /// Cookies of the extra devices (device ids 1..), in device-table order.
    pub(crate) devices: KVec<CookieRef>,
    /// The device table (slot `i` is device `i + 1`): sizes and `mapped_blkaddr` ranges for
    /// [`format::map_device`].
    pub(crate) slots: KVec<format::DeviceSlot>,
    /// The validated on-disk superblock.
    pub(crate) fs: format::SuperBlock,
    /// The compression configuration (`z_erofs_parse_cfgs`, read at every mount as in C:
    /// LZ4 with the superblock's defaults unless the image has `COMPR_CFGS`).
    pub(crate) compr: format::ComprConfig,
    /// The DEFLATE/Zstandard workspace and MicroLZMA state kept between reads (see
    /// [`crate::data::KernelDecoders`]).
    pub(crate) decoders: crate::data::DecoderSlots,
    /// Total blocks of all devices, for statfs.
    pub(crate) total_blocks: u64,
    /// Size in bytes of each device (0: the primary blob, then the extra devices), or 0 where
    /// the image does not say (mkfs.erofs 1.5 leaves device-table sizes at 0).
    pub(crate) device_bytes: KVec<u64>,
    /// The options the filesystem was mounted with (`opts.flags` as at mount; see `flags`).
    pub(crate) opts: Options,
    /// The options remount may change, current values.
    pub(crate) flags: AtomicFlags,
    /// The fscache volume (the mount's own, or its domain's): only held, dropped after every
    /// cookie.
    _volume: VolumeRef,
}

/// [`options::Flags`] that remount may change while readers look at them: packed in one
/// atomic word (bit 0 `user_xattr`, bit 1 `acl`, bit 2 `dax=never`, bits 8.. cache strategy).
pub(crate) struct AtomicFlags(AtomicU32);

impl AtomicFlags {
    fn new(f: options::Flags) -> Self {
        Self(AtomicU32::new(Self::pack(f)))
    }

    fn pack(f: options::Flags) -> u32 {
        // `fetch_kb` is at most MAX_FETCH_KB (< 2^16): bits 16..32.
        u32::from(f.user_xattr)
            | u32::from(f.acl) << 1
            | u32::from(f.dax_never) << 2
            | (f.cache_strategy as u32) << 8
            | f.fetch_kb.min(options::MAX_FETCH_KB) << 16
    }

    /// The current flags.
    pub(crate) fn get(&self) -> options::Flags {
        let v = self.0.load(Ordering::Relaxed);
        options::Flags {
            user_xattr: v & 1 != 0,
            acl: v & 2 != 0,
            dax_never: v & 4 != 0,
            dax_always: false,
            cache_strategy: options::CacheStrategy::from_u8((v >> 8) as u8),
            fetch_kb: v >> 16,
        }
    }

    fn set(&self, f: options::Flags) {
        self.0.store(Self::pack(f), Ordering::Relaxed);
    }
}

impl SbInfo {
    /// The `SbInfo` of a mounted erofs_rs super block.
    ///
    /// # Safety
    ///
    /// `sb` is an erofs_rs super block whose `fill_super` succeeded and that is not yet killed.
    pub(crate) unsafe fn from_sb<'a>(sb: *mut bindings::super_block) -> &'a SbInfo {
        // SAFETY: `s_fs_info` is set to a live `SbInfo` by `fill_super` (caller's guarantee).
        unsafe { &*(*sb).s_fs_info.cast::<SbInfo>() }
    }

    /// The `SbInfo` of `sb`, or `None` before `fill_super` has set it up.
    ///
    /// # Safety
    ///
    /// `sb` is an erofs_rs super block that `kill_sb` has not yet freed the `SbInfo` of.
    pub(crate) unsafe fn try_from_sb<'a>(sb: *mut bindings::super_block) -> Option<&'a SbInfo> {
        // SAFETY: `s_fs_info` is NULL or a live `SbInfo` (caller's guarantee).
        unsafe { (*sb).s_fs_info.cast::<SbInfo>().as_ref() }
    }

    /// `fetch_kb=` in bytes: the fetch granule, the aligned blocks of a blob a read that misses
    /// the cache asks the daemon for (0: only the bytes read).
    pub(crate) fn fetch_bytes(&self) -> u64 {
        u64::from(self.flags.get().fetch_kb) * 1024
    }

    /// The metadata blob (primary device).
    pub(crate) fn meta(&self) -> Result<&BlobCache> {
        self.meta.as_ref().ok_or(EIO)
    }

    /// The cookie of device `id` (0 = primary blob).
    pub(crate) fn cookie(&self, id: u16) -> Result<&Cookie> {
        match id {
            0 => Ok(self.meta()?.cookie()),
            n => self.devices.get(usize::from(n) - 1).map(|c| &**c).ok_or(efscorrupted()),
        }
    }
}

/// Maps a format error to an errno, as the C code does.
pub(crate) fn format_errno(e: format::Error) -> Error {
    match e {
        format::Error::Corrupted => efscorrupted(),
        format::Error::Unsupported => eopnotsupp(),
        format::Error::UnknownIncompat(_) | format::Error::BadMagic(_) => EINVAL,
        format::Error::Io => EIO,
    }
}

fn volume_name(opts: &Options) -> Result<KVec<u8>> {
    let id = opts.domain_id.as_ref().unwrap_or(&opts.fsid).as_bytes();
    let mut name = KVec::with_capacity(id.len() + 7, GFP_KERNEL)?;
    name.extend_from_slice(b"erofs,", GFP_KERNEL)?;
    name.extend_from_slice(id, GFP_KERNEL)?;
    name.push(0, GFP_KERNEL)?;
    Ok(name)
}

fn read_superblock(meta: &BlobCache, fsid: &[u8]) -> Result<format::SuperBlock> {
    // The superblock and the block its checksum covers lie in the first page of the blob.
    // SAFETY: the mapping belongs to the inode `meta` holds a reference to.
    let page0 = unsafe { crate::folio::CachedFolio::read(meta.mapping(), 0) }.inspect_err(|e| {
        if e.to_errno() == -(bindings::ENOBUFS as i32) {
            erofs_err!(
                "{}: cannot read the superblock: no cachefiles cache is bound (start an on-demand daemon)",
                BStr(fsid)
            );
        } else {
            erofs_err!("{}: cannot read the superblock: {:?}", BStr(fsid), e);
        }
    })?;
    let parsed = page0.with_page(0, |bytes| {
        // C's order: magic, block size, checksum, then the rest of the superblock.
        if !format::precheck(bytes)? {
            return Ok(None);
        }
        bytes
            .get(format::EROFS_SUPER_OFFSET as usize..)
            .ok_or(format::Error::Corrupted)
            .and_then(format::SuperBlock::parse)
            .map(Some)
    })?;
    let sb = parsed.map_err(|e| {
        match e {
            format::Error::BadMagic(m) => {
                erofs_err!("{}: cannot find valid erofs superblock (magic {:#x})", BStr(fsid), m)
            }
            format::Error::UnknownIncompat(bits) => erofs_err!(
                "{}: unidentified incompatible feature {:#x}, please upgrade kernel",
                BStr(fsid),
                bits
            ),
            format::Error::Unsupported => {
                erofs_err!("{}: unsupported superblock (block size or layout)", BStr(fsid))
            }
            format::Error::Corrupted => {
                erofs_err!("{}: corrupted superblock", BStr(fsid))
            }
            format::Error::Io => erofs_err!("{}: cannot read the superblock", BStr(fsid)),
        }
        format_errno(e)
    })?;
    let Some(sb) = sb else {
        // As in C (`erofs_superblock_csum_verify`): EBADMSG, not EFSCORRUPTED.
        erofs_err!("{}: invalid superblock checksum", BStr(fsid));
        return Err(Error::from_errno(-(bindings::EBADMSG as i32)));
    };
    let unsupported = sb.unsupported_incompat() & !COMPRESSION_INCOMPAT;
    if unsupported != 0 {
        erofs_err!(
            "{}: incompatible feature {:#x} is not supported by erofs_rs yet",
            BStr(fsid),
            unsupported
        );
        return Err(eopnotsupp());
    }
    Ok(sb)
}

/// The incompat bits of compressed images, on top of `format::SUPPORTED_INCOMPAT`: big
/// pclusters (and `COMPR_CFGS`, the same bit), the second HEAD type (the device-table bit),
/// inline tail pclusters (ztailpacking), fragments (and deduplication, the same bit).
/// Compressed files are read with LZ4 only: other algorithms refuse the mount in
/// [`read_compr_config`].
const COMPRESSION_INCOMPAT: u32 = format::EROFS_FEATURE_INCOMPAT_COMPR_CFGS
    | format::EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER
    | format::EROFS_FEATURE_INCOMPAT_COMPR_HEAD2
    | format::EROFS_FEATURE_INCOMPAT_ZTAILPACKING
    | format::EROFS_FEATURE_INCOMPAT_FRAGMENTS
    | format::EROFS_FEATURE_INCOMPAT_DEDUPE
    | format::EROFS_FEATURE_INCOMPAT_ZERO_PADDING;

/// The algorithm named by a `z_erofs` algorithm id, for log lines.
fn algorithm_name(id: u8) -> &'static str {
    match id {
        format::Z_EROFS_COMPRESSION_LZ4 => "lz4",
        format::Z_EROFS_COMPRESSION_LZMA => "lzma",
        format::Z_EROFS_COMPRESSION_DEFLATE => "deflate",
        format::Z_EROFS_COMPRESSION_ZSTD => "zstd",
        _ => "unknown",
    }
}

/// `z_erofs_parse_cfgs`: the compression configuration, read at every mount as C does (LZ4
/// with defaults when the image has no `COMPR_CFGS`). An algorithm erofs_rs cannot decode
/// (none today: see [`crate::data::KERNEL_DECODERS`]) would refuse the mount with
/// `EOPNOTSUPP`, as C does for algorithms its kernel was built without; a malformed record is
/// `EINVAL` and DEFLATE window bits above 15 `EOPNOTSUPP`, as in C.
fn read_compr_config(meta: &BlobCache, fs: &format::SuperBlock, fsid: &[u8]) -> Result<format::ComprConfig> {
    format::ComprConfig::read_with(&MetaSource(meta), fs, crate::data::KERNEL_DECODERS).map_err(|e| match e {
        format::ComprError::UnknownAlgorithms(bits) => {
            erofs_err!("{}: unidentified algorithms {:x}, please upgrade kernel", BStr(fsid), bits);
            eopnotsupp()
        }
        format::ComprError::UnsupportedAlgorithm(id) => {
            erofs_err!(
                "{}: compression algorithm {} ({}) is not supported by erofs_rs",
                BStr(fsid),
                algorithm_name(id),
                id
            );
            eopnotsupp()
        }
        format::ComprError::Config(id, format::Error::Unsupported) => {
            erofs_err!("{}: unsupported {} compression configuration", BStr(fsid), algorithm_name(id));
            eopnotsupp()
        }
        format::ComprError::Config(id, _) => {
            erofs_err!("{}: invalid {} compression configuration", BStr(fsid), algorithm_name(id));
            EINVAL
        }
        format::ComprError::Format(e) => {
            erofs_err!("{}: cannot read the compression configuration: {:?}", BStr(fsid), e);
            format_errno(e)
        }
    })
}

impl MetaSource<'_> {
    pub(crate) fn read_exact_kernel(&self, pos: u64, buf: &mut [u8]) -> Result {
        // SAFETY: the mapping belongs to the inode `self.0` holds a reference to.
        unsafe { crate::folio::read_mapping_bytes(self.0.mapping(), pos, buf) }
    }
}

/// What [`acquire_devices`] returns: the extra devices of a mount.
struct Devices {
    cookies: KVec<CookieRef>,
    slots: KVec<format::DeviceSlot>,
    /// Blocks of all devices, the primary's included.
    total_blocks: u64,
    /// Bytes of each device, the primary first (0 where unknown).
    sizes: KVec<u64>,
}

/// Acquires the cookies of the extra devices: `device=` values in order, else device-table tags.
fn acquire_devices(
    volume: &VolumeRef,
    meta: &BlobCache,
    fs: &format::SuperBlock,
    opts: &Options,
    fsid: &[u8],
) -> Result<Devices> {
    let n = usize::from(fs.extra_devices);
    if !opts.devices.is_empty() && opts.devices.len() != n {
        erofs_err!(
            "{}: {} device= options given, the image has {} extra devices",
            BStr(fsid),
            opts.devices.len(),
            n
        );
        return Err(EINVAL);
    }
    let mut cookies = KVec::with_capacity(n, GFP_KERNEL)?;
    let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
    let mut sizes = KVec::with_capacity(n + 1, GFP_KERNEL)?;
    sizes.push(fs.blocks << fs.blkszbits, GFP_KERNEL)?;
    let mut total = fs.blocks;
    for i in 0..fs.extra_devices {
        let pos = fs.device_slot_pos(i).map_err(format_errno)?;
        let mut raw = [0u8; 128];
        MetaSource(meta).read_exact_kernel(pos, &mut raw)?;
        let slot = format::DeviceSlot::parse(&raw).map_err(format_errno)?;
        total = total.checked_add(u64::from(slot.blocks)).ok_or(efscorrupted())?;
        sizes.push(u64::from(slot.blocks) << fs.blkszbits, GFP_KERNEL)?;
        let key: &[u8] = match opts.devices.get(usize::from(i)) {
            Some(v) => v.as_bytes(),
            None => {
                let len = slot.tag.iter().position(|&c| c == 0).unwrap_or(slot.tag.len());
                &slot.tag[..len]
            }
        };
        if key.is_empty() {
            // A missing mount option, not corruption: EINVAL, as C's erofs_init_device.
            erofs_err!("{}: device {} has no tag and no device= option", BStr(fsid), u32::from(i) + 1);
            return Err(EINVAL);
        }
        // Shared with other mounts of the domain that use the same blob, as in C.
        let cookie = volume.cookie(key, false).inspect_err(|_| {
            erofs_err!("{}: failed to get cookie for device {}", BStr(fsid), BStr(key));
        })?;
        cookies.push(cookie, GFP_KERNEL)?;
        slots.push(slot, GFP_KERNEL)?;
    }
    Ok(Devices { cookies, slots, total_blocks: total, sizes })
}

fn fill_super_inner(sb: *mut bindings::super_block, data: *mut c_void) -> Result {
    let raw: &[u8] = if data.is_null() {
        &[]
    } else {
        // SAFETY: legacy mount data is a NUL-terminated string of at most a page.
        unsafe { kernel::str::CStr::from_char_ptr(data.cast()) }.as_bytes()
    };
    let mut opts = match options::parse(raw).map(options::Parsed::into_options) {
        Ok(Some(o)) => o,
        Ok(None) => {
            kernel::pr_err!("fsid= is required: erofs_rs mounts blobs through fscache only\n");
            return Err(EINVAL);
        }
        Err((e, opt)) => {
            kernel::pr_err!("{}: '{}'\n", e.describe(), BStr(opt));
            return Err(e.errno());
        }
    };
    check_dax(&opts.flags)?;
    if opts.flags.dax_always {
        // As C: there is never a DAX device under fscache.
        erofs_err!("{}: DAX unsupported by block device. Turning off DAX.", BStr(opts.fsid.as_bytes()));
        opts.flags.dax_always = false;
    }
    // SAFETY: `sb` is the new super block `mount_nodev` hands to `fill_super`; nobody else uses
    // it yet.
    unsafe {
        (*sb).s_magic = bindings::EROFS_SUPER_MAGIC_V1 as usize;
        (*sb).s_flags |= SB_RDONLY | SB_NOATIME | if opts.flags.acl { SB_POSIXACL } else { 0 };
        (*sb).s_xattr = ffi::erofs_rs_xattr_handlers.as_ptr();
        (*sb).s_maxbytes = MAX_LFS_FILESIZE;
        (*sb).s_op = &SUPER_OPS.0;
        (*sb).s_time_gran = 1;
        (*sb).s_blocksize = bindings::PAGE_SIZE as _;
        (*sb).s_blocksize_bits = bindings::PAGE_SHIFT as _;
    }

    let fsid = opts.fsid.as_bytes();
    // A nodev super block starts with the no-op bdi, whose readahead window is 0: without a bdi
    // of its own every page would be a separate read (and on-demand request), as in C.
    // SAFETY: the super block is ours during `fill_super`.
    let ret = unsafe { bindings::super_setup_bdi(sb) };
    if ret != 0 {
        return Err(Error::from_errno(ret));
    }
    let name = volume_name(&opts)?;
    let volume_cstr = kernel::str::CStr::from_bytes_with_nul(&name).map_err(|_| EINVAL)?;
    let volume = match &opts.domain_id {
        Some(d) => VolumeRef::Domain(DomainRef::get(d.as_bytes(), volume_cstr)?),
        None => VolumeRef::Own(Volume::acquire(volume_cstr).inspect_err(|e| {
            erofs_err!(
                "failed to register volume for {}: {:?} (is a cachefiles daemon bound in ondemand mode?)",
                BStr(&name[..name.len() - 1]),
                e
            );
        })?),
    };
    // The primary blob must be new in its domain (EEXIST otherwise, as in C).
    let cookie = volume.cookie(fsid, true)?;
    let meta = BlobCache::new(sb, cookie, bindings::PAGE_SHIFT as u8)?;
    let fs = read_superblock(&meta, fsid)?;
    let compr = read_compr_config(&meta, &fs, fsid)?;
    let Devices { cookies: devices, slots, total_blocks, sizes: device_bytes } =
        acquire_devices(&volume, &meta, &fs, &opts, fsid)?;

    // SAFETY: as above, the super block is ours during `fill_super`.
    unsafe {
        (*sb).s_blocksize = 1 << fs.blkszbits;
        (*sb).s_blocksize_bits = fs.blkszbits;
        (*sb).s_uuid.b = fs.uuid;
        (*sb).s_uuid_len = 16;
    }
    let root_nid = fs.root_nid;
    drop(name);
    let info = KBox::new(
        SbInfo {
            meta: Some(meta),
            devices,
            slots,
            fs,
            compr,
            decoders: crate::data::DecoderSlots::new(),
            total_blocks,
            device_bytes,
            flags: AtomicFlags::new(opts.flags),
            opts,
            _volume: volume,
        },
        GFP_KERNEL,
    )?;
    // SAFETY: ownership of the box moves to `s_fs_info`; `kill_sb` takes it back.
    unsafe { (*sb).s_fs_info = KBox::into_raw(info).cast() };
    // SAFETY: just stored; lives until `kill_sb`.
    let fsid = unsafe { SbInfo::from_sb(sb) }.opts.fsid.as_bytes();

    let root = inode::iget(sb, root_nid)?;
    // SAFETY: `root` is a referenced inode of `sb`.
    let mode = u32::from(unsafe { (*root.as_ptr()).i_mode });
    if mode & bindings::S_IFMT != bindings::S_IFDIR {
        erofs_err!("{}: root inode {} is not a directory", BStr(fsid), root_nid);
        // SAFETY: we own the reference from `iget`.
        unsafe { bindings::iput(root.as_ptr()) };
        return Err(efscorrupted());
    }
    // SAFETY: `d_make_root` consumes the inode reference, also on failure.
    let dentry = unsafe { bindings::d_make_root(root.as_ptr()) };
    if dentry.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: the super block is ours during `fill_super`.
    unsafe { (*sb).s_root = dentry };
    Ok(())
}

/// `fill_super` callback of `mount_nodev`.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
unsafe extern "C" fn fill_super(sb: *mut bindings::super_block, data: *mut c_void, _silent: c_int)
    -> c_int
{
    match fill_super_inner(sb, data) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `file_system_type.mount`: a filesystem without a block device, like in-tree erofs with `fsid=`.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
pub(crate) unsafe extern "C" fn mount(
    fs_type: *mut bindings::file_system_type,
    flags: c_int,
    _dev_name: *const kernel::ffi::c_char,
    data: *mut c_void,
) -> *mut bindings::dentry {
    // SAFETY: arguments as the VFS passes them to `mount`; `fill_super` has the right type.
    unsafe { bindings::mount_nodev(fs_type, flags, data, Some(fill_super)) }
}

/// `file_system_type.kill_sb`.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
pub(crate) unsafe extern "C" fn kill_sb(sb: *mut bindings::super_block) {
    // SAFETY: `sb` is one of ours, being destroyed.
    let info = unsafe { (*sb).s_fs_info.cast::<SbInfo>() };
    if !info.is_null() {
        // Release the blob page cache (an internal inode) before the VFS shuts the super block
        // down and checks for busy inodes. Nothing reads metadata any more: the mount is gone,
        // or `fill_super` failed.
        // SAFETY: `info` came from `KBox::into_raw` in `fill_super`.
        unsafe { (*info).meta = None };
    }
    // SAFETY: a super block set up by `mount_nodev`.
    unsafe { bindings::kill_anon_super(sb) };
    if !info.is_null() {
        // SAFETY: `info` came from `KBox::into_raw`; every inode is gone, nothing uses it any more.
        drop(unsafe { KBox::from_raw(info) });
        // SAFETY: as above.
        unsafe { (*sb).s_fs_info = core::ptr::null_mut() };
    }
}

/// `super_operations.statfs`.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
unsafe extern "C" fn statfs(dentry: *mut bindings::dentry, buf: *mut bindings::kstatfs) -> c_int {
    // SAFETY: `dentry` belongs to a mounted erofs_rs super block.
    let sb = unsafe { (*dentry).d_sb };
    // SAFETY: as above.
    let info = unsafe { SbInfo::from_sb(sb) };
    // SAFETY: `buf` is the statfs buffer the VFS passes in; `uuid` is 16 bytes.
    unsafe {
        ffi::erofs_rs_statfs_fill(
            buf,
            (*sb).s_magic as u64,
            (*sb).s_blocksize as u64,
            info.total_blocks,
            info.fs.inos,
            EROFS_NAME_LEN,
            info.fs.uuid.as_ptr(),
        )
    };
    0
}

/// `super_operations.show_options`: the options `/proc/mounts` shows, as in-tree erofs.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
unsafe extern "C" fn show_options(m: *mut bindings::seq_file, root: *mut bindings::dentry) -> c_int {
    // SAFETY: `root` is the root of a mounted erofs_rs super block.
    let info = unsafe { SbInfo::from_sb((*root).d_sb) };
    let put = |s: &[u8]| {
        // SAFETY: `m` is the seq_file being shown; `s` is NUL-terminated.
        unsafe { ffi::erofs_rs_seq_puts(m, s.as_ptr().cast()) }
    };
    let flags = info.flags.get();
    put(if flags.user_xattr { b",user_xattr\0" } else { b",nouser_xattr\0" });
    put(if flags.acl { b",acl\0" } else { b",noacl\0" });
    put(b",cache_strategy=\0");
    put(flags.cache_strategy.name());
    if flags.dax_never {
        put(b",dax=never\0");
    }
    if flags.fetch_kb != options::DEFAULT_FETCH_KB {
        if let Ok(s) = kernel::str::CString::try_from_fmt(kernel::fmt!(",fetch_kb={}", flags.fetch_kb)) {
            put(s.as_bytes_with_nul());
        }
    }
    put(b",fsid=\0");
    put(info.opts.fsid.as_bytes_with_nul());
    if let Some(d) = &info.opts.domain_id {
        put(b",domain_id=\0");
        put(d.as_bytes_with_nul());
    }
    0
}

/// C refuses `dax` options when the kernel has no `CONFIG_FS_DAX`.
fn check_dax(flags: &options::Flags) -> Result {
    // SAFETY: reads a compile-time constant.
    if (flags.dax_always || flags.dax_never) && !unsafe { ffi::erofs_rs_config_fs_dax() } {
        kernel::pr_err!("erofs_rs: dax options not supported\n");
        return Err(EINVAL);
    }
    Ok(())
}

/// `super_operations.remount_fs`, as C's `erofs_fc_reconfigure`: the options are parsed again
/// from their defaults; `[no]user_xattr`, `[no]acl`, `cache_strategy=`, `dax=never` (and
/// erofs_rs's `fetch_kb=`) take effect, `fsid=`/`domain_id=` are ignored with a log line, and the super block stays read-only.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
unsafe extern "C" fn remount_fs(sb: *mut bindings::super_block, flags: *mut c_int, data: *mut c_char) -> c_int {
    // SAFETY: `sb` is a mounted erofs_rs super block.
    let info = unsafe { SbInfo::from_sb(sb) };
    let raw: &[u8] = if data.is_null() {
        &[]
    } else {
        // SAFETY: legacy mount data is a NUL-terminated string of at most a page.
        unsafe { kernel::str::CStr::from_char_ptr(data) }.as_bytes()
    };
    let parsed = match options::parse(raw) {
        Ok(p) => p,
        Err((e, opt)) => {
            kernel::pr_err!("{}: '{}'\n", e.describe(), BStr(opt));
            return e.errno().to_errno();
        }
    };
    if let Err(e) = check_dax(&parsed.flags) {
        return e.to_errno();
    }
    if parsed.fsid.is_some() || parsed.domain_id.is_some() {
        kernel::pr_info!("erofs_rs: {}: ignoring reconfiguration for fsid|domain_id.\n", BStr(info.opts.fsid.as_bytes()));
    }
    info.flags.set(parsed.flags);
    // SAFETY: `flags` points to the new `sb_flags` of the reconfiguration (caller's contract).
    unsafe {
        let mut f = *flags as usize;
        if parsed.flags.acl {
            f |= SB_POSIXACL;
        } else {
            f &= !SB_POSIXACL;
        }
        *flags = (f | SB_RDONLY) as c_int;
    }
    0
}

pub(crate) static SUPER_OPS: Ops<bindings::super_operations> = Ops(bindings::super_operations {
    statfs: Some(statfs),
    show_options: Some(show_options),
    remount_fs: Some(remount_fs),
    evict_inode: Some(inode::evict_inode),
    // SAFETY: all-zero is a valid `super_operations` (every hook unset).
    ..unsafe { core::mem::zeroed() }
});

/// Displays bytes from an image or an option as text, escaping what is not printable ASCII.
pub(crate) struct BStr<'a>(pub(crate) &'a [u8]);

impl core::fmt::Display for BStr<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &c in self.0 {
            if (0x20..0x7f).contains(&c) {
                core::fmt::Write::write_char(f, char::from(c))?;
            } else {
                write!(f, "\\x{:02x}", c)?;
            }
        }
        Ok(())
    }
}

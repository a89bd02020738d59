// SPDX-License-Identifier: GPL-2.0

//! Mount options, the same as in-tree erofs in fscache mode:
//! `fsid=<blob>[,domain_id=<domain>][,device=<blob>]...`, plus the generic erofs options that
//! C accepts in that mode: `[no]user_xattr`, `[no]acl`, `cache_strategy=`, `dax[=...]` and
//! `[no]directio` (the last two have no effect without a block device or backing file, as in C).
//! One option of erofs_rs's own: `fetch_kb=<n>` (see [`Flags::fetch_kb`]).

use kernel::alloc::{flags::GFP_KERNEL, KVec};
use kernel::error::{code::*, Result};

/// Longest accepted option value: a cookie key becomes a cache file name (NAME_MAX).
pub(crate) const MAX_VALUE_LEN: usize = 255;
/// Most `device=` options accepted (EROFS device ids are 16 bits; keep it sane).
pub(crate) const MAX_DEVICES: usize = 256;
/// Largest `fetch_kb=` accepted: 16 MiB per on-demand request.
pub(crate) const MAX_FETCH_KB: u32 = 16384;
/// `fetch_kb=` when not given: 1 MiB blocks (the chunk size of nydus-style and most chunked
/// images, and the default window of daemons that widen requests).
pub(crate) const DEFAULT_FETCH_KB: u32 = 1024;

/// A NUL-terminated copy of an option value (no interior NUL, 1..=MAX_VALUE_LEN bytes).
pub(crate) struct Value(KVec<u8>);

impl Value {
    fn new(v: &[u8]) -> Result<Self> {
        let mut buf = KVec::with_capacity(v.len() + 1, GFP_KERNEL)?;
        buf.extend_from_slice(v, GFP_KERNEL)?;
        buf.push(0, GFP_KERNEL)?;
        Ok(Self(buf))
    }

    /// The value without its terminating NUL.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.split_last().map(|(_, v)| v).unwrap_or(&[])
    }

    /// The value with its terminating NUL.
    pub(crate) fn as_bytes_with_nul(&self) -> &[u8] {
        &self.0
    }
}

/// `cache_strategy=`: only compressed images use it; accepted and shown as C does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheStrategy {
    /// `disabled`
    Disabled = 0,
    /// `readahead`
    ReadAhead = 1,
    /// `readaround` (the default)
    ReadAround = 2,
}

impl CacheStrategy {
    /// The option value, NUL-terminated, as `/proc/mounts` shows it.
    pub(crate) fn name(self) -> &'static [u8] {
        match self {
            CacheStrategy::Disabled => b"disabled\0",
            CacheStrategy::ReadAhead => b"readahead\0",
            CacheStrategy::ReadAround => b"readaround\0",
        }
    }

    /// The inverse of `as u8`.
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => CacheStrategy::Disabled,
            1 => CacheStrategy::ReadAhead,
            _ => CacheStrategy::ReadAround,
        }
    }
}

/// The options that can change on remount (C's `erofs_mount_opts`).
#[derive(Clone, Copy)]
pub(crate) struct Flags {
    /// `user_xattr` (default) or `nouser_xattr`: whether `user.` xattrs are visible.
    pub(crate) user_xattr: bool,
    /// `acl` (default) or `noacl`: POSIX ACLs (`SB_POSIXACL`).
    pub(crate) acl: bool,
    /// `cache_strategy=`.
    pub(crate) cache_strategy: CacheStrategy,
    /// `dax=never` (shown in `/proc/mounts`, as in C).
    pub(crate) dax_never: bool,
    /// `dax` or `dax=always`: C turns it off with a log line when there is no DAX device, which
    /// is always the case with `fsid=`; so does erofs_rs.
    pub(crate) dax_always: bool,
    /// `fetch_kb=<n>` (erofs_rs only; default [`DEFAULT_FETCH_KB`], a multiple of 4, at most
    /// [`MAX_FETCH_KB`]): the fetch granule. When a read misses the cache, the daemon is asked
    /// for the `n`-KiB-aligned blocks of the blob around the missing range (up to the blob's
    /// end, and only what is not cached yet), rather than only the bytes read: fewer, larger
    /// on-demand requests on cold reads, each block fetched once whatever the order of the
    /// reads. 0 asks for what is read, as in-tree erofs does.
    pub(crate) fetch_kb: u32,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            user_xattr: true,
            acl: true,
            cache_strategy: CacheStrategy::ReadAround,
            dax_never: false,
            dax_always: false,
            fetch_kb: DEFAULT_FETCH_KB,
        }
    }
}

/// Parsed mount options.
pub(crate) struct Options {
    /// The primary blob (`fsid=`): cookie key of the metadata blob.
    pub(crate) fsid: Value,
    /// `domain_id=`: volume shared by the mounts of one domain.
    pub(crate) domain_id: Option<Value>,
    /// `device=` values, in order: cookie keys of the extra blobs, overriding device-table tags.
    pub(crate) devices: KVec<Value>,
    /// The options that remount may change.
    pub(crate) flags: Flags,
}

/// What an option string holds; `fsid` is required at mount, not at remount.
pub(crate) struct Parsed {
    /// `fsid=`, if given.
    pub(crate) fsid: Option<Value>,
    /// `domain_id=`, if given.
    pub(crate) domain_id: Option<Value>,
    /// `device=` values, in order.
    pub(crate) devices: KVec<Value>,
    /// The other options (defaults where not given).
    pub(crate) flags: Flags,
}

impl Parsed {
    /// The options of a mount: `None` without `fsid=`.
    pub(crate) fn into_options(self) -> Option<Options> {
        let Parsed { fsid, domain_id, devices, flags } = self;
        fsid.map(|fsid| Options { fsid, domain_id, devices, flags })
    }
}

/// Why an option string was refused; the message names the offending option.
pub(crate) enum OptError {
    /// An option erofs_rs does not know.
    Unknown,
    /// `key` without `=value`, an empty value, or one that is too long.
    BadValue,
    /// Too many `device=` options.
    TooMany,
}

/// Parses a legacy mount data string (`key=value,key=value`).
///
/// On error returns the reason and the offending option, for the caller to log.
pub(crate) fn parse(data: &[u8]) -> core::result::Result<Parsed, (OptError, &[u8])> {
    let mut fsid = None;
    let mut domain_id = None;
    let mut devices = KVec::new();
    let mut flags = Flags::default();
    for opt in data.split(|&c| c == b',').filter(|o| !o.is_empty()) {
        let (key, value) = match opt.iter().position(|&c| c == b'=') {
            Some(i) => (opt.get(..i).unwrap_or(opt), opt.get(i + 1..)),
            None => (opt, None),
        };
        // Flags take no value; `dax` and `cache_strategy` take an enumerated one.
        let flag = |v: bool| if value.is_none() { Ok(v) } else { Err((OptError::BadValue, opt)) };
        match (key, value) {
            (b"user_xattr", _) => flags.user_xattr = flag(true)?,
            (b"nouser_xattr", _) => flags.user_xattr = flag(false)?,
            (b"acl", _) => flags.acl = flag(true)?,
            (b"noacl", _) => flags.acl = flag(false)?,
            (b"directio" | b"nodirectio", _) => {
                flag(true)?;
            }
            (b"dax", None | Some(b"always")) => {
                flags.dax_always = true;
                flags.dax_never = false;
            }
            (b"dax", Some(b"never")) => {
                flags.dax_always = false;
                flags.dax_never = true;
            }
            (b"cache_strategy", Some(b"disabled")) => flags.cache_strategy = CacheStrategy::Disabled,
            (b"cache_strategy", Some(b"readahead")) => flags.cache_strategy = CacheStrategy::ReadAhead,
            (b"cache_strategy", Some(b"readaround")) => flags.cache_strategy = CacheStrategy::ReadAround,
            (b"fetch_kb", Some(v)) => flags.fetch_kb = parse_kb(v).ok_or((OptError::BadValue, opt))?,
            (b"dax" | b"cache_strategy" | b"fetch_kb", _) => return Err((OptError::BadValue, opt)),
            _ => {}
        }
        let slot = match key {
            b"user_xattr" | b"nouser_xattr" | b"acl" | b"noacl" | b"directio" | b"nodirectio"
            | b"dax" | b"cache_strategy" | b"fetch_kb" => continue,
            b"fsid" => &mut fsid,
            b"domain_id" => &mut domain_id,
            b"device" => {
                if devices.len() >= MAX_DEVICES {
                    return Err((OptError::TooMany, opt));
                }
                let v = value_of(opt, value)?;
                devices.push(v, GFP_KERNEL).map_err(|_| (OptError::BadValue, opt))?;
                continue;
            }
            _ => return Err((OptError::Unknown, opt)),
        };
        // Given twice, the last one wins, as with C's fs_parse (and libmount's remount passes
        // the mounted options followed by the new ones).
        *slot = Some(value_of(opt, value)?);
    }
    Ok(Parsed { fsid, domain_id, devices, flags })
}

/// A `fetch_kb=` value: decimal digits, a multiple of 4 (whole pages), at most [`MAX_FETCH_KB`].
fn parse_kb(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 8 {
        return None;
    }
    let mut n = 0u32;
    for &c in v {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
    }
    (n <= MAX_FETCH_KB && n % 4 == 0).then_some(n)
}

fn value_of<'a>(opt: &'a [u8], value: Option<&[u8]>) -> core::result::Result<Value, (OptError, &'a [u8])> {
    match value {
        Some(v) if !v.is_empty() && v.len() <= MAX_VALUE_LEN && !v.contains(&0) => {
            Value::new(v).map_err(|_| (OptError::BadValue, opt))
        }
        _ => Err((OptError::BadValue, opt)),
    }
}

impl OptError {
    /// A short description for the log.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            OptError::Unknown => "unknown mount option",
            OptError::BadValue => "missing, empty, invalid or too long value for mount option",
            OptError::TooMany => "too many device= options",
        }
    }

    /// The errno for the mount.
    pub(crate) fn errno(&self) -> kernel::error::Error {
        EINVAL
    }
}

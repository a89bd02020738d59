// SPDX-License-Identifier: GPL-2.0

//! Mount options, the same as in-tree erofs in fscache mode:
//! `fsid=<blob>[,domain_id=<domain>][,device=<blob>]...`.

use kernel::alloc::{flags::GFP_KERNEL, KVec};
use kernel::error::{code::*, Result};

/// Longest accepted option value: a cookie key becomes a cache file name (NAME_MAX).
pub(crate) const MAX_VALUE_LEN: usize = 255;
/// Most `device=` options accepted (EROFS device ids are 16 bits; keep it sane).
pub(crate) const MAX_DEVICES: usize = 256;

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

/// Parsed mount options.
pub(crate) struct Options {
    /// The primary blob (`fsid=`): cookie key of the metadata blob.
    pub(crate) fsid: Value,
    /// `domain_id=`: volume shared by the mounts of one domain.
    pub(crate) domain_id: Option<Value>,
    /// `device=` values, in order: cookie keys of the extra blobs, overriding device-table tags.
    pub(crate) devices: KVec<Value>,
}

/// Why an option string was refused; the message names the offending option.
pub(crate) enum OptError {
    /// An option erofs_rs does not know.
    Unknown,
    /// `key` without `=value`, an empty value, or one that is too long.
    BadValue,
    /// `fsid=` or `domain_id=` given twice.
    Duplicate,
    /// Too many `device=` options.
    TooMany,
}

/// Parses a legacy mount data string (`key=value,key=value`).
///
/// On error returns the reason and the offending option, for the caller to log.
pub(crate) fn parse(data: &[u8]) -> core::result::Result<Option<Options>, (OptError, &[u8])> {
    let mut fsid = None;
    let mut domain_id = None;
    let mut devices = KVec::new();
    for opt in data.split(|&c| c == b',').filter(|o| !o.is_empty()) {
        let (key, value) = match opt.iter().position(|&c| c == b'=') {
            Some(i) => (&opt[..i], Some(&opt[i + 1..])),
            None => (opt, None),
        };
        let slot = match key {
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
        if slot.is_some() {
            return Err((OptError::Duplicate, opt));
        }
        *slot = Some(value_of(opt, value)?);
    }
    Ok(fsid.map(|fsid| Options { fsid, domain_id, devices }))
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
            OptError::BadValue => "missing, empty or too long value for mount option",
            OptError::Duplicate => "mount option given twice",
            OptError::TooMany => "too many device= options",
        }
    }

    /// The errno for the mount.
    pub(crate) fn errno(&self) -> kernel::error::Error {
        EINVAL
    }
}

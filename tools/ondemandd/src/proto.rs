// SPDX-License-Identifier: GPL-2.0
//! The cachefiles on-demand protocol (include/uapi/linux/cachefiles.h): message parsing and
//! reply encoding. Pure functions over bytes, no I/O.

/// `CACHEFILES_MSG_MAX_SIZE`: read() buffers must be at least this large.
pub const MSG_MAX_SIZE: usize = 1024;
/// `struct cachefiles_msg` header size.
pub const HDR_SIZE: usize = 16;
/// `CACHEFILES_IOC_READ_COMPLETE` = `_IOW(0x98, 1, int)`.
pub const IOC_READ_COMPLETE: u64 = 0x4004_9801;

pub const OP_OPEN: u32 = 0;
pub const OP_CLOSE: u32 = 1;
pub const OP_READ: u32 = 2;

/// A request from the kernel.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `CACHEFILES_OP_OPEN`: a cookie was looked up; reply with `copen`.
    Open {
        msg_id: u32,
        object_id: u32,
        /// Volume key without its trailing NUL (e.g. `erofs,<fsid or domain>`).
        volume_key: Vec<u8>,
        /// Cookie key (blob name: fsid or device tag).
        cookie_key: Vec<u8>,
        /// Anonymous fd the kernel installed in our fd table for this object.
        fd: u32,
        flags: u32,
    },
    /// `CACHEFILES_OP_CLOSE`: the object is gone; close its anon fd. No reply.
    Close { msg_id: u32, object_id: u32 },
    /// `CACHEFILES_OP_READ`: fill `[off, off + len)` of the blob, then complete `msg_id`.
    Read { msg_id: u32, object_id: u32, off: u64, len: u64 },
    /// An opcode this daemon does not know.
    Unknown { msg_id: u32, object_id: u32, opcode: u32 },
}

/// Why a message could not be parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer bytes than a header, or than the header's `len`, or than the payload needs.
    Truncated,
    /// The header's `len` does not match the bytes read.
    BadLength { header: u32, read: usize },
    /// Key sizes that do not fit the message.
    BadKeys,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Truncated => write!(f, "truncated message"),
            ParseError::BadLength { header, read } => {
                write!(f, "message length {header} but {read} bytes read")
            }
            ParseError::BadKeys => write!(f, "OPEN key sizes do not fit the message"),
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ParseError> {
    let s = b.get(off..off + 4).ok_or(ParseError::Truncated)?;
    Ok(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, ParseError> {
    let s = b.get(off..off + 8).ok_or(ParseError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_ne_bytes(a))
}

/// Parses one message as returned by one read() of the devnode.
pub fn parse(buf: &[u8]) -> Result<Request, ParseError> {
    if buf.len() < HDR_SIZE {
        return Err(ParseError::Truncated);
    }
    let msg_id = u32_at(buf, 0)?;
    let opcode = u32_at(buf, 4)?;
    let len = u32_at(buf, 8)?;
    let object_id = u32_at(buf, 12)?;
    if len as usize != buf.len() {
        return Err(ParseError::BadLength { header: len, read: buf.len() });
    }
    let p = &buf[HDR_SIZE..];
    match opcode {
        OP_OPEN => {
            let vsize = u32_at(p, 0)? as usize;
            let csize = u32_at(p, 4)? as usize;
            let fd = u32_at(p, 8)?;
            let flags = u32_at(p, 12)?;
            let data = &p[16..];
            let end = vsize.checked_add(csize).ok_or(ParseError::BadKeys)?;
            if vsize == 0 || end > data.len() {
                return Err(ParseError::BadKeys);
            }
            let mut volume_key = data[..vsize].to_vec();
            // The volume key's size includes its NUL.
            if volume_key.last() == Some(&0) {
                volume_key.pop();
            }
            let cookie_key = data[vsize..end].to_vec();
            Ok(Request::Open { msg_id, object_id, volume_key, cookie_key, fd, flags })
        }
        OP_CLOSE => Ok(Request::Close { msg_id, object_id }),
        OP_READ => {
            let off = u64_at(p, 0)?;
            let len = u64_at(p, 8)?;
            Ok(Request::Read { msg_id, object_id, off, len })
        }
        opcode => Ok(Request::Unknown { msg_id, object_id, opcode }),
    }
}

/// The `copen` reply: the blob size, or a negative errno to fail the OPEN.
pub fn copen(msg_id: u32, size_or_errno: i64) -> String {
    format!("copen {msg_id},{size_or_errno}")
}

/// The cache-file range to fill for a READ of `[off, off + len)` of a blob of `size` bytes:
/// widened to `align` (a power of two) and to at least `window` bytes, clipped to the blob.
/// Returns None if the request starts at or past the end of the blob.
pub fn fill_range(off: u64, len: u64, size: u64, align: u64, window: u64) -> Option<(u64, u64)> {
    if off >= size || align == 0 || !align.is_power_of_two() {
        return None;
    }
    let start = off & !(align - 1);
    let want_end = off.saturating_add(len.max(1));
    let mut end = want_end.checked_add(align - 1).map(|e| e & !(align - 1)).unwrap_or(u64::MAX);
    if end - start < window {
        end = start.saturating_add(window);
    }
    Some((start, end.min(size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(msg_id: u32, op: u32, len: u32, obj: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [msg_id, op, len, obj] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v
    }

    fn open_msg(vkey: &[u8], ckey: &[u8]) -> Vec<u8> {
        let len = HDR_SIZE + 16 + vkey.len() + ckey.len();
        let mut v = hdr(7, OP_OPEN, len as u32, 3);
        for x in [vkey.len() as u32, ckey.len() as u32, 42, 0] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v.extend_from_slice(vkey);
        v.extend_from_slice(ckey);
        v
    }

    #[test]
    fn parses_open() {
        let m = open_msg(b"erofs,meta\0", b"meta");
        assert_eq!(
            parse(&m),
            Ok(Request::Open {
                msg_id: 7,
                object_id: 3,
                volume_key: b"erofs,meta".to_vec(),
                cookie_key: b"meta".to_vec(),
                fd: 42,
                flags: 0
            })
        );
    }

    #[test]
    fn parses_read_and_close() {
        let mut m = hdr(9, OP_READ, 32, 5);
        m.extend_from_slice(&4096u64.to_ne_bytes());
        m.extend_from_slice(&8192u64.to_ne_bytes());
        assert_eq!(parse(&m), Ok(Request::Read { msg_id: 9, object_id: 5, off: 4096, len: 8192 }));
        let c = hdr(10, OP_CLOSE, 16, 5);
        assert_eq!(parse(&c), Ok(Request::Close { msg_id: 10, object_id: 5 }));
        let u = hdr(11, 77, 16, 5);
        assert_eq!(parse(&u), Ok(Request::Unknown { msg_id: 11, object_id: 5, opcode: 77 }));
    }

    #[test]
    fn rejects_bad_messages() {
        assert_eq!(parse(&[0u8; 10]), Err(ParseError::Truncated));
        let m = hdr(1, OP_READ, 32, 1);
        assert_eq!(parse(&m), Err(ParseError::BadLength { header: 32, read: 16 }));
        let m = hdr(1, OP_READ, 16, 1);
        assert_eq!(parse(&m), Err(ParseError::Truncated));
        let mut m = open_msg(b"erofs,x\0", b"x");
        // claim a cookie key far larger than the message
        m[HDR_SIZE + 4..HDR_SIZE + 8].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(parse(&m), Err(ParseError::BadKeys));
        let mut m = open_msg(b"erofs,x\0", b"x");
        m[HDR_SIZE..HDR_SIZE + 4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse(&m), Err(ParseError::BadKeys));
        let m = open_msg(b"", b"");
        assert_eq!(parse(&m), Err(ParseError::BadKeys));
    }

    #[test]
    fn encodes_copen() {
        assert_eq!(copen(12, 8192), "copen 12,8192");
        assert_eq!(copen(12, -2), "copen 12,-2");
    }

    #[test]
    fn fill_range_aligns_widens_and_clips() {
        assert_eq!(fill_range(100, 10, 1 << 20, 4096, 0), Some((0, 4096)));
        assert_eq!(fill_range(4096, 4096, 1 << 20, 4096, 0), Some((4096, 8192)));
        assert_eq!(fill_range(4096, 4096, 1 << 20, 4096, 65536), Some((4096, 69632)));
        assert_eq!(fill_range(8000, 10, 9000, 4096, 1 << 20), Some((4096, 9000)));
        assert_eq!(fill_range(9000, 10, 9000, 4096, 0), None);
        assert_eq!(fill_range(u64::MAX - 5, 100, u64::MAX, 4096, 0).map(|r| r.1), Some(u64::MAX));
    }
}

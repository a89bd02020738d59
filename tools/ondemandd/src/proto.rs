// SPDX-License-Identifier: GPL-2.0
//! The cachefiles on-demand protocol (include/uapi/linux/cachefiles.h): message parsing, reply
//! encoding and READ range arithmetic. Pure functions over bytes and integers, no I/O.

/// `CACHEFILES_MSG_MAX_SIZE`: a read() buffer must be at least this large (else -EMSGSIZE).
pub const MSG_MAX_SIZE: usize = 1024;
/// Size of `struct cachefiles_msg` (the header).
pub const HDR_SIZE: usize = 16;
/// Size of the fixed part of `struct cachefiles_open`.
pub const OPEN_FIXED_SIZE: usize = 16;
/// Size of `struct cachefiles_read`.
pub const READ_SIZE: usize = 16;
/// `CACHEFILES_IOC_READ_COMPLETE` = `_IOW(0x98, 1, int)`.
pub const IOC_READ_COMPLETE: u32 = 0x4004_9801;
/// Cache files are written with direct I/O: offsets (and buffers) aligned to this.
pub const PAGE: u64 = 4096;

pub const OP_OPEN: u32 = 0;
pub const OP_CLOSE: u32 = 1;
pub const OP_READ: u32 = 2;

/// `struct cachefiles_msg` without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub msg_id: u32,
    pub opcode: u32,
    /// Message length including the header.
    pub len: u32,
    pub object_id: u32,
}

/// A request from the kernel.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `CACHEFILES_OP_OPEN`: a cookie was looked up; reply with `copen`.
    Open {
        msg_id: u32,
        object_id: u32,
        /// Volume key without its trailing NUL (e.g. `erofs,<domain_id or fsid>`).
        volume_key: Vec<u8>,
        /// Cookie key: the blob name (fsid or device tag), arbitrary bytes.
        cookie_key: Vec<u8>,
        /// Anonymous fd the kernel installed in our fd table for this object.
        fd: i32,
        flags: u32,
    },
    /// `CACHEFILES_OP_CLOSE`: the object is gone; close its anon fd. No reply.
    Close { msg_id: u32, object_id: u32 },
    /// `CACHEFILES_OP_READ`: fill `[off, off + len)` of the blob, then complete `msg_id`.
    Read {
        msg_id: u32,
        object_id: u32,
        off: u64,
        len: u64,
    },
    /// An opcode this daemon does not know.
    Unknown {
        msg_id: u32,
        object_id: u32,
        opcode: u32,
    },
}

/// Why a message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer bytes than the header or the payload needs.
    Truncated { need: usize, have: usize },
    /// The header's `len` does not match the bytes read.
    BadLength { header: u32, read: usize },
    /// OPEN key sizes that do not add up to the message.
    BadKeys {
        volume: u32,
        cookie: u32,
        avail: usize,
    },
    /// An OPEN fd that cannot be a file descriptor.
    BadFd(u32),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Truncated { need, have } => {
                write!(f, "truncated message: need {need} bytes, have {have}")
            }
            ParseError::BadLength { header, read } => {
                write!(f, "message length field {header} but {read} bytes read")
            }
            ParseError::BadKeys {
                volume,
                cookie,
                avail,
            } => write!(
                f,
                "OPEN key sizes {volume}+{cookie} do not match the {avail} key bytes in the message"
            ),
            ParseError::BadFd(fd) => write!(f, "OPEN carries an invalid fd {fd}"),
        }
    }
}

impl std::error::Error for ParseError {}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ParseError> {
    let s = b.get(off..off + 4).ok_or(ParseError::Truncated {
        need: off + 4,
        have: b.len(),
    })?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Ok(u32::from_ne_bytes(a))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, ParseError> {
    let s = b.get(off..off + 8).ok_or(ParseError::Truncated {
        need: off + 8,
        have: b.len(),
    })?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_ne_bytes(a))
}

/// Parses the 16-byte header, without checking `len`.
pub fn parse_header(buf: &[u8]) -> Result<Header, ParseError> {
    Ok(Header {
        msg_id: u32_at(buf, 0)?,
        opcode: u32_at(buf, 4)?,
        len: u32_at(buf, 8)?,
        object_id: u32_at(buf, 12)?,
    })
}

/// Parses one message exactly as returned by one read() of the devnode.
pub fn parse(buf: &[u8]) -> Result<Request, ParseError> {
    let h = parse_header(buf)?;
    if h.len as usize != buf.len() {
        return Err(ParseError::BadLength {
            header: h.len,
            read: buf.len(),
        });
    }
    let p = &buf[HDR_SIZE..];
    let Header {
        msg_id,
        opcode,
        object_id,
        ..
    } = h;
    match opcode {
        OP_OPEN => {
            let vsize = u32_at(p, 0)?;
            let csize = u32_at(p, 4)?;
            let fd = u32_at(p, 8)?;
            let flags = u32_at(p, 12)?;
            let keys = &p[OPEN_FIXED_SIZE..];
            let bad = ParseError::BadKeys {
                volume: vsize,
                cookie: csize,
                avail: keys.len(),
            };
            // The volume key size counts its NUL, so it is never 0; the keys fill the message.
            let total = (vsize as usize)
                .checked_add(csize as usize)
                .ok_or(bad.clone())?;
            if vsize == 0 || total != keys.len() {
                return Err(bad);
            }
            let fd = i32::try_from(fd).map_err(|_| ParseError::BadFd(fd))?;
            let (vk, ck) = keys.split_at(vsize as usize);
            let vk = vk.strip_suffix(&[0]).unwrap_or(vk);
            Ok(Request::Open {
                msg_id,
                object_id,
                volume_key: vk.to_vec(),
                cookie_key: ck.to_vec(),
                fd,
                flags,
            })
        }
        OP_CLOSE => Ok(Request::Close { msg_id, object_id }),
        OP_READ => {
            if p.len() != READ_SIZE {
                return Err(ParseError::Truncated {
                    need: HDR_SIZE + READ_SIZE,
                    have: buf.len(),
                });
            }
            let off = u64_at(p, 0)?;
            let len = u64_at(p, 8)?;
            Ok(Request::Read {
                msg_id,
                object_id,
                off,
                len,
            })
        }
        opcode => Ok(Request::Unknown {
            msg_id,
            object_id,
            opcode,
        }),
    }
}

/// The `copen` reply: the blob size, or a negative errno (-1..-4095) to fail the OPEN.
pub fn copen(msg_id: u32, size_or_errno: i64) -> String {
    format!("copen {msg_id},{size_or_errno}")
}

/// The cache-file range `[start, end)` to fill for a READ of `[off, off + len)` of a blob of
/// `size` bytes: `start` rounded down and `end` rounded up to [`PAGE`], `end` widened to at
/// least `start + window` (0: no widening), then clipped to the blob size, so only the last
/// piece of a blob can end unaligned. None if nothing of the blob lies in the request.
pub fn fill_range(off: u64, len: u64, size: u64, window: u64) -> Option<(u64, u64)> {
    if len == 0 || off >= size {
        return None;
    }
    let start = off & !(PAGE - 1);
    let end = off.saturating_add(len);
    let end = end
        .checked_add(PAGE - 1)
        .map_or(u64::MAX, |e| e & !(PAGE - 1));
    let end = end.max(start.saturating_add(window)).min(size);
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push32(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_ne_bytes());
    }

    fn hdr(msg_id: u32, op: u32, len: u32, obj: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [msg_id, op, len, obj] {
            push32(&mut v, x);
        }
        v
    }

    /// An OPEN built field by field as `struct cachefiles_msg` + `struct cachefiles_open`.
    fn open_msg(vkey: &[u8], ckey: &[u8], fd: u32) -> Vec<u8> {
        let len = HDR_SIZE + OPEN_FIXED_SIZE + vkey.len() + ckey.len();
        let mut v = hdr(7, OP_OPEN, len as u32, 3);
        push32(&mut v, vkey.len() as u32);
        push32(&mut v, ckey.len() as u32);
        push32(&mut v, fd);
        push32(&mut v, 0x5);
        v.extend_from_slice(vkey);
        v.extend_from_slice(ckey);
        v
    }

    fn read_msg(off: u64, len: u64) -> Vec<u8> {
        let mut m = hdr(9, OP_READ, 32, 5);
        m.extend_from_slice(&off.to_ne_bytes());
        m.extend_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn parses_open() {
        let m = open_msg(b"erofs,domain\0", b"blob1", 42);
        assert_eq!(m.len(), 16 + 16 + 13 + 5);
        assert_eq!(
            parse(&m),
            Ok(Request::Open {
                msg_id: 7,
                object_id: 3,
                volume_key: b"erofs,domain".to_vec(),
                cookie_key: b"blob1".to_vec(),
                fd: 42,
                flags: 5
            })
        );
        // Arbitrary cookie bytes (a 64-byte device tag with NULs) are kept as they are.
        let tag = [0xabu8; 64];
        match parse(&open_msg(b"erofs,x\0", &tag, 4)) {
            Ok(Request::Open { cookie_key, .. }) => assert_eq!(cookie_key, tag.to_vec()),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn parses_read_close_unknown() {
        assert_eq!(
            parse(&read_msg(4096, 8192)),
            Ok(Request::Read {
                msg_id: 9,
                object_id: 5,
                off: 4096,
                len: 8192
            })
        );
        assert_eq!(
            parse(&hdr(10, OP_CLOSE, 16, 5)),
            Ok(Request::Close {
                msg_id: 10,
                object_id: 5
            })
        );
        assert_eq!(
            parse(&hdr(11, 77, 16, 5)),
            Ok(Request::Unknown {
                msg_id: 11,
                object_id: 5,
                opcode: 77
            })
        );
        assert_eq!(
            parse_header(&read_msg(0, 1)),
            Ok(Header {
                msg_id: 9,
                opcode: OP_READ,
                len: 32,
                object_id: 5
            })
        );
    }

    #[test]
    fn rejects_truncated_and_mismatched() {
        assert!(matches!(parse(&[]), Err(ParseError::Truncated { .. })));
        assert!(matches!(
            parse(&[0u8; 15]),
            Err(ParseError::Truncated { .. })
        ));
        // len says 32 but only the header was read
        assert_eq!(
            parse(&hdr(1, OP_READ, 32, 1)),
            Err(ParseError::BadLength {
                header: 32,
                read: 16
            })
        );
        // len consistent but no READ payload
        assert!(matches!(
            parse(&hdr(1, OP_READ, 16, 1)),
            Err(ParseError::Truncated { .. })
        ));
        // oversized READ
        let mut m = read_msg(0, 4096);
        m.extend_from_slice(&[0; 8]);
        m[8..12].copy_from_slice(&40u32.to_ne_bytes());
        assert!(matches!(parse(&m), Err(ParseError::Truncated { .. })));
        // more bytes than len says
        let mut m = read_msg(0, 4096);
        m.push(0);
        assert_eq!(
            parse(&m),
            Err(ParseError::BadLength {
                header: 32,
                read: 33
            })
        );
        // OPEN cut inside its fixed part
        let m = open_msg(b"erofs,x\0", b"x", 3);
        let mut t = m[..HDR_SIZE + 6].to_vec();
        let tl = t.len() as u32;
        t[8..12].copy_from_slice(&tl.to_ne_bytes());
        assert!(matches!(parse(&t), Err(ParseError::Truncated { .. })));
        // every prefix of valid messages: an error, never a panic
        for m in [open_msg(b"erofs,abc\0", b"abc", 3), read_msg(1, 2)] {
            for n in 0..m.len() {
                let mut t = m[..n].to_vec();
                if t.len() >= 12 {
                    t[8..12].copy_from_slice(&(n as u32).to_ne_bytes());
                }
                assert!(parse(&t).is_err(), "prefix {n}");
            }
        }
    }

    #[test]
    fn rejects_bogus_key_sizes() {
        let set = |m: &mut Vec<u8>, at: usize, x: u32| {
            m[HDR_SIZE + at..HDR_SIZE + at + 4].copy_from_slice(&x.to_ne_bytes())
        };
        let base = open_msg(b"erofs,x\0", b"x", 3);
        for (at, x) in [
            (4, u32::MAX),
            (0, u32::MAX),
            (0, 0),
            (0, 100),
            (4, 0),
            (4, 2),
            (0, 7),
        ] {
            let mut m = base.clone();
            set(&mut m, at, x);
            assert!(
                matches!(parse(&m), Err(ParseError::BadKeys { .. })),
                "{at} {x}"
            );
        }
        // both huge: the sum overflows 32 bits but must not wrap into a match
        let mut m = base.clone();
        set(&mut m, 0, u32::MAX);
        set(&mut m, 4, 10);
        assert!(matches!(parse(&m), Err(ParseError::BadKeys { .. })));
        assert!(matches!(
            parse(&open_msg(b"", b"", 3)),
            Err(ParseError::BadKeys { .. })
        ));
        assert_eq!(
            parse(&open_msg(b"erofs,x\0", b"x", u32::MAX)),
            Err(ParseError::BadFd(u32::MAX))
        );
    }

    #[test]
    fn encodes_copen() {
        assert_eq!(copen(12, 8192), "copen 12,8192");
        assert_eq!(copen(0, -2), "copen 0,-2");
        assert_eq!(copen(u32::MAX, 0), "copen 4294967295,0");
    }

    #[test]
    fn fill_range_aligns_and_clips() {
        const M: u64 = 1 << 20;
        assert_eq!(fill_range(100, 10, M, 0), Some((0, 4096)));
        assert_eq!(fill_range(4096, 4096, M, 0), Some((4096, 8192)));
        assert_eq!(fill_range(4095, 2, M, 0), Some((0, 8192)));
        // the last piece ends at EOF, unaligned
        assert_eq!(fill_range(8000, 10, 9000, 0), Some((4096, 8192)));
        assert_eq!(fill_range(8200, 10, 9000, 0), Some((8192, 9000)));
        assert_eq!(fill_range(0, 1 << 40, 9000, 0), Some((0, 9000)));
        // nothing to fill
        assert_eq!(fill_range(9000, 10, 9000, 0), None);
        assert_eq!(fill_range(100, 0, 9000, 0), None);
        // widening
        assert_eq!(fill_range(4096, 4096, M, 65536), Some((4096, 69632)));
        assert_eq!(fill_range(8000, 10, 9000, M), Some((4096, 9000)));
        // no overflow near u64::MAX
        assert_eq!(
            fill_range(u64::MAX - 5, 100, u64::MAX, 0),
            Some((u64::MAX - 4095, u64::MAX))
        );
        assert_eq!(
            fill_range(5, u64::MAX, u64::MAX, u64::MAX),
            Some((0, u64::MAX))
        );
    }
}

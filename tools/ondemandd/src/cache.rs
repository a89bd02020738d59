// SPDX-License-Identifier: GPL-2.0
//! Filling cache files through their anonymous fds, and completing READ requests.
//!
//! Writes to an anon fd go to the backing cache file with O_DIRECT semantics: the offset must be
//! 4 KiB aligned (cachefiles refuses others with ENOBUFS) and so should the buffer and length.
//! The backing file is created with the blob size rounded up to 4 KiB, so the EOF tail is
//! written padded with zeros to a whole page: every write is aligned in offset, length and
//! memory (an unaligned tail length would fail with EINVAL on xfs).

use crate::blobs::BlobRead;
use crate::digest::{hex, sha256, Digest};
use crate::proto::PAGE;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Largest piece copied at once.
pub const CHUNK: usize = 1 << 20;
/// Alignment of offsets, lengths and buffers of cache writes.
pub const ALIGN: usize = PAGE as usize;

/// A zero-initialised heap buffer aligned for direct I/O; its length is a multiple of ALIGN.
pub struct AlignedBuf {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: AlignedBuf owns its allocation exclusively (like a Box<[u8]>); nothing is shared.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// A buffer of at least `size` bytes (rounded up to ALIGN, at least ALIGN).
    pub fn new(size: usize) -> io::Result<AlignedBuf> {
        let size = size
            .max(ALIGN)
            .checked_next_multiple_of(ALIGN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffer too large"))?;
        let layout = Layout::from_size_align(size, ALIGN)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "cannot allocate I/O buffer",
            ));
        }
        // Touch every page now. A direct I/O write pins its buffer; pages never written are not
        // mapped yet (calloc'ed memory), so the pin would take the slow path of
        // pin_user_pages_fast(), with mmap_lock, under the backing file's i_rwsem. That order
        // is legal, but it needlessly feeds lockdep the i_rwsem -> mmap_lock edge of a cycle it
        // reports for page cache reads over cachefiles (see rust/shim.c), and costs a fault
        // per page on the first write. Volatile, so the stores are not optimised away.
        for off in (0..size).step_by(ALIGN) {
            // SAFETY: `off < size`, inside the allocation; a zero keeps it zero-initialised.
            unsafe { ptr.add(off).write_volatile(0) };
        }
        Ok(AlignedBuf { ptr, layout })
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is valid and initialised for `layout.size()` bytes (alloc_zeroed), and
        // `&mut self` makes this the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout, freed only here.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// pwrite() all of `buf` at `off`, retrying on EINTR and short writes.
pub fn pwrite_all(fd: BorrowedFd<'_>, buf: &[u8], off: u64) -> io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let pos = off
            .checked_add(done as u64)
            .and_then(|p| libc::off_t::try_from(p).ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset out of range"))?;
        let rest = &buf[done..];
        // SAFETY: `rest` is valid for reads of `rest.len()` bytes for the duration of the call;
        // `fd` is a live descriptor borrowed from its owner.
        let r = unsafe { libc::pwrite(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len(), pos) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "cache write wrote nothing",
            ));
        }
        done += r as usize;
    }
    Ok(())
}

/// Copies `[start, end)` of `blob` into the cache file behind `fd` at the same offsets, in
/// pieces of at most `buf.len()` bytes. `start` must be aligned; the EOF tail is zero-padded to
/// a whole page. Returns the number of blob bytes copied.
pub fn fill(
    fd: BorrowedFd<'_>,
    blob: &dyn BlobRead,
    start: u64,
    end: u64,
    buf: &mut AlignedBuf,
) -> io::Result<u64> {
    if start & (PAGE - 1) != 0 || end < start {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unaligned fill range [{start}, {end})"),
        ));
    }
    let buf = buf.as_mut_slice();
    let mut pos = start;
    while pos < end {
        let n = usize::try_from(end - pos).map_or(buf.len(), |r| r.min(buf.len()));
        blob.read_at(&mut buf[..n], pos)?;
        // Only the last piece can be short; pad it to a page (the cache file is that long).
        let wlen = n.next_multiple_of(ALIGN).min(buf.len());
        buf[n..wlen].fill(0);
        pwrite_all(fd, &buf[..wlen], pos)?;
        pos += n as u64;
    }
    Ok(end - start)
}

/// Largest blob whose whole-blob fetches are verified against the digest its key names (it is
/// held in memory until checked).
pub const VERIFY_MAX: u64 = 256 << 20;

/// What [`fill_checked`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filled {
    /// Blob bytes copied.
    pub bytes: u64,
    /// The whole blob was fetched and matched its digest.
    pub verified: bool,
}

/// A whole blob's contents do not hash to the digest its key names. Carried inside the
/// `io::Error` (kind InvalidData) of [`fill_checked`].
#[derive(Debug)]
pub struct DigestMismatch {
    pub want: Digest,
    pub got: Digest,
}

impl std::fmt::Display for DigestMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "digest mismatch: the key names sha256:{} but the contents hash to sha256:{}; nothing written to the cache",
            hex(&self.want),
            hex(&self.got)
        )
    }
}

impl std::error::Error for DigestMismatch {}

impl DigestMismatch {
    /// The mismatch inside `e`, if it is one.
    pub fn of(e: &io::Error) -> Option<&DigestMismatch> {
        e.get_ref()?.downcast_ref()
    }
}

/// Like [`fill`], but when `want` is the digest the blob's key names and `[start, end)` is the
/// whole blob (at most [`VERIFY_MAX`] bytes), the blob is read whole and checked against
/// `want` before anything is written: on a mismatch nothing is written and the error carries a
/// [`DigestMismatch`].
pub fn fill_checked(
    fd: BorrowedFd<'_>,
    blob: &dyn BlobRead,
    start: u64,
    end: u64,
    buf: &mut AlignedBuf,
    want: Option<&Digest>,
) -> io::Result<Filled> {
    let size = blob.size();
    let Some(want) = want.filter(|_| start == 0 && end >= size && size <= VERIFY_MAX) else {
        return fill(fd, blob, start, end, buf).map(|bytes| Filled {
            bytes,
            verified: false,
        });
    };
    let n = size as usize;
    let mut own;
    let data = if n <= buf.as_mut_slice().len() {
        buf.as_mut_slice()
    } else {
        own = AlignedBuf::new(n)?;
        own.as_mut_slice()
    };
    blob.read_at(&mut data[..n], 0)?;
    let got = sha256(&data[..n]);
    if got != *want {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            DigestMismatch { want: *want, got },
        ));
    }
    if n > 0 {
        let wlen = n.next_multiple_of(ALIGN);
        data[n..wlen].fill(0);
        pwrite_all(fd, &data[..wlen], 0)?;
    }
    Ok(Filled {
        bytes: size,
        verified: true,
    })
}

/// `ioctl(fd, CACHEFILES_IOC_READ_COMPLETE, msg_id)`: the msg_id is passed by value.
pub fn complete(fd: BorrowedFd<'_>, msg_id: u32) -> io::Result<()> {
    // SAFETY: an ioctl on a live descriptor whose argument is an integer passed by value; the
    // kernel reads no memory of ours for this request.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            crate::proto::IOC_READ_COMPLETE as _,
            msg_id as libc::c_ulong,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::tests::TempDir;
    use crate::blobs::Blob;
    use crate::proto::fill_range;
    use std::os::fd::AsFd;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ (i >> 12) as u8).collect()
    }

    #[test]
    fn buffer_is_aligned() {
        for size in [0, 1, 4096, 5000, CHUNK] {
            let mut b = AlignedBuf::new(size).unwrap();
            let len = b.as_mut_slice().len();
            assert_eq!(len % ALIGN, 0);
            assert!(len >= size.max(ALIGN));
            assert_eq!(b.as_mut_slice().as_ptr() as usize % ALIGN, 0);
            assert!(b.as_mut_slice().iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn fill_copies_ranges_aligned() {
        let d = TempDir::new("cache");
        let size = 3 * CHUNK + 100;
        let data = pattern(size);
        std::fs::write(d.0.join("blob"), &data).unwrap();
        let blob = Blob::open(d.0.join("blob")).unwrap();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(d.0.join("cache"))
            .unwrap();
        let mut buf = AlignedBuf::new(CHUNK).unwrap();

        // a small read in the middle: one page
        let (s, e) = fill_range(5000, 10, blob.size, 0).unwrap();
        assert_eq!(fill(out.as_fd(), &blob, s, e, &mut buf).unwrap(), 4096);
        let got = std::fs::read(d.0.join("cache")).unwrap();
        assert_eq!(got.len(), 8192);
        assert_eq!(&got[4096..8192], &data[4096..8192]);
        assert!(got[..4096].iter().all(|&b| b == 0));

        // from an aligned offset to EOF: several chunks and a padded tail
        let (s, e) = fill_range(8192 + 17, u64::MAX / 2, blob.size, 0).unwrap();
        assert_eq!((s, e), (8192, size as u64));
        assert_eq!(
            fill(out.as_fd(), &blob, s, e, &mut buf).unwrap(),
            size as u64 - 8192
        );
        let got = std::fs::read(d.0.join("cache")).unwrap();
        assert_eq!(
            got.len(),
            size.next_multiple_of(ALIGN),
            "tail padded to a page"
        );
        assert_eq!(&got[4096..size], &data[4096..]);
        assert!(got[size..].iter().all(|&b| b == 0));

        // unaligned start is refused
        assert!(fill(out.as_fd(), &blob, 100, 200, &mut buf).is_err());
        // a blob that shrank since OPEN: error, not a panic
        let short = Blob {
            size: size as u64 + 10000,
            ..Blob::open(d.0.join("blob")).unwrap()
        };
        let e = fill(out.as_fd(), &short, 3 * CHUNK as u64, short.size, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn whole_blob_fills_are_verified() {
        let d = TempDir::new("verify");
        let data = pattern(CHUNK + 5000);
        let good = sha256(&data);
        std::fs::write(d.0.join("blob"), &data).unwrap();
        let blob = Blob::open(d.0.join("blob")).unwrap();
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(d.0.join(name))
                .unwrap()
        };
        let mut buf = AlignedBuf::new(CHUNK).unwrap();
        let size = data.len() as u64;
        // whole and matching: verified, written padded
        let out = open("c1");
        let f = fill_checked(out.as_fd(), &blob, 0, size, &mut buf, Some(&good)).unwrap();
        assert_eq!(
            f,
            Filled {
                bytes: size,
                verified: true
            }
        );
        let got = std::fs::read(d.0.join("c1")).unwrap();
        assert_eq!(got.len(), data.len().next_multiple_of(ALIGN));
        assert_eq!(&got[..data.len()], &data[..]);
        // whole but wrong: nothing written, the error says so
        let mut bad = good;
        bad[0] ^= 1;
        let out = open("c2");
        let e = fill_checked(out.as_fd(), &blob, 0, size, &mut buf, Some(&bad)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let m = DigestMismatch::of(&e).expect("a digest mismatch");
        assert_eq!((m.want, m.got), (bad, good));
        assert!(e.to_string().contains(&hex(&good)), "{e}");
        assert_eq!(std::fs::metadata(d.0.join("c2")).unwrap().len(), 0);
        // a part of the blob: not verifiable, copied as is
        let f = fill_checked(out.as_fd(), &blob, 4096, size, &mut buf, Some(&bad)).unwrap();
        assert_eq!(
            f,
            Filled {
                bytes: size - 4096,
                verified: false
            }
        );
        let f = fill_checked(out.as_fd(), &blob, 0, 4096, &mut buf, Some(&bad)).unwrap();
        assert!(!f.verified);
        // no digest: plain fill
        let f = fill_checked(out.as_fd(), &blob, 0, size, &mut buf, None).unwrap();
        assert!(!f.verified);
        assert!(DigestMismatch::of(&io::Error::other("x")).is_none());
        // a small blob fetched in one go, and an empty one
        std::fs::write(d.0.join("small"), b"abc").unwrap();
        let small = Blob::open(d.0.join("small")).unwrap();
        let out = open("c3");
        let f = fill_checked(out.as_fd(), &small, 0, 3, &mut buf, Some(&sha256(b"abc"))).unwrap();
        assert!(f.verified);
        std::fs::write(d.0.join("empty"), b"").unwrap();
        let empty = Blob::open(d.0.join("empty")).unwrap();
        let f = fill_checked(out.as_fd(), &empty, 0, 0, &mut buf, Some(&sha256(b""))).unwrap();
        assert_eq!(
            f,
            Filled {
                bytes: 0,
                verified: true
            }
        );
    }

    #[test]
    fn complete_on_a_regular_file_fails_cleanly() {
        let d = TempDir::new("ioctl");
        let f = std::fs::File::create(d.0.join("f")).unwrap();
        assert!(complete(f.as_fd(), 1).is_err());
    }
}

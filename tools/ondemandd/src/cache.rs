// SPDX-License-Identifier: GPL-2.0
//! Filling a cache file through its anonymous fd, and completing READ requests.

use crate::blobs::Blob;
use std::alloc::{alloc, dealloc, Layout};
use std::io;
use std::os::fd::RawFd;

/// Largest piece copied at once.
pub const CHUNK: usize = 1 << 20;
/// Writes into the cache file are direct I/O: buffers and offsets aligned to this.
pub const ALIGN: usize = 4096;

/// A heap buffer aligned for direct I/O.
pub struct AlignedBuf {
    ptr: *mut u8,
    layout: Layout,
}

impl AlignedBuf {
    pub fn new(size: usize) -> AlignedBuf {
        let layout = Layout::from_size_align(size.max(ALIGN), ALIGN).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, layout }
    }

    pub fn as_mut_slice(&mut self, len: usize) -> &mut [u8] {
        let len = len.min(self.layout.size());
        // SAFETY: `ptr` is valid for `layout.size()` bytes and we hold it exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// Copies `[start, end)` of `blob` into the cache file behind `fd` at the same offsets.
/// Returns the number of bytes written.
pub fn fill(fd: RawFd, blob: &Blob, start: u64, end: u64, buf: &mut AlignedBuf) -> io::Result<u64> {
    let mut pos = start;
    while pos < end {
        let n = ((end - pos) as usize).min(CHUNK);
        let piece = buf.as_mut_slice(n);
        blob.read_at(piece, pos)?;
        let mut done = 0usize;
        while done < n {
            // SAFETY: `piece[done..n]` is valid memory; fd is the object's anon fd.
            let r = unsafe {
                libc::pwrite(fd, piece[done..].as_ptr().cast(), n - done, (pos + done as u64) as i64)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "cache write returned 0"));
            }
            done += r as usize;
        }
        pos += n as u64;
    }
    Ok(end - start)
}

/// `ioctl(fd, CACHEFILES_IOC_READ_COMPLETE, msg_id)`: the msg_id is passed by value.
pub fn complete(fd: RawFd, msg_id: u32) -> io::Result<()> {
    // SAFETY: a plain ioctl on a descriptor we own; the argument is an integer.
    let r = unsafe { libc::ioctl(fd, crate::proto::IOC_READ_COMPLETE as _, msg_id as libc::c_ulong) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn fill_copies_ranges() {
        let d = std::env::temp_dir().join(format!("ondemandd-cache-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let data: Vec<u8> = (0..3 * CHUNK as u32 + 100).map(|i| (i % 251) as u8).collect();
        std::fs::write(d.join("blob"), &data).unwrap();
        let blob = Blob::open(d.join("blob")).unwrap();
        let out = std::fs::OpenOptions::new().create(true).truncate(true).write(true).read(true)
            .open(d.join("cache")).unwrap();
        let mut buf = AlignedBuf::new(CHUNK);
        let end = data.len() as u64;
        assert_eq!(fill(out.as_raw_fd(), &blob, 4096, end, &mut buf).unwrap(), end - 4096);
        let got = std::fs::read(d.join("cache")).unwrap();
        assert_eq!(&got[4096..], &data[4096..]);
        assert!(got[..4096].iter().all(|&b| b == 0));
        assert_eq!(buf.as_mut_slice(CHUNK).as_ptr() as usize % ALIGN, 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

// SPDX-License-Identifier: GPL-2.0
//! Request handling: OPEN → resolve the blob and `copen`; READ → fill the cache file and
//! complete; CLOSE → release the object. Kernel-facing side effects go through [`Kernel`] so
//! the dispatch can be tested without /dev/cachefiles.

use crate::blobs::{self, Blob};
use crate::cache::{self, AlignedBuf};
use crate::devnode::Devnode;
use crate::log;
use crate::log::Level;
use crate::proto::{self, ParseError, Request};
use crate::stats::{self, Stats};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Instant;

/// The kernel-facing effects of handling a request.
pub trait Kernel {
    /// Writes a reply command (`copen ...`) to the devnode.
    fn reply(&mut self, cmd: &str) -> io::Result<()>;
    /// Completes READ `msg_id` on the object's anon fd.
    fn complete(&mut self, anon_fd: BorrowedFd<'_>, msg_id: u32) -> io::Result<()>;
}

impl Kernel for &Devnode {
    fn reply(&mut self, cmd: &str) -> io::Result<()> {
        self.command(cmd)
    }

    fn complete(&mut self, anon_fd: BorrowedFd<'_>, msg_id: u32) -> io::Result<()> {
        cache::complete(anon_fd, msg_id)
    }
}

pub struct Options {
    pub blob_dir: PathBuf,
    pub stats_file: Option<PathBuf>,
    /// Minimum bytes filled per READ (0: just the request, page aligned).
    pub window: u64,
}

/// An opened cache object: its anon fd and the blob behind it.
struct Object {
    fd: OwnedFd,
    blob: Blob,
}

pub struct Daemon<K: Kernel> {
    opts: Options,
    kernel: K,
    objects: HashMap<u32, Object>,
    pub stats: Stats,
    buf: AlignedBuf,
}

/// The errno to fail an OPEN with for a blob lookup/open error.
fn open_errno(e: &io::Error) -> i32 {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::InvalidInput => libc::ENOENT,
        _ => match e.raw_os_error() {
            Some(n) if (1..4096).contains(&n) => n,
            _ => libc::EIO,
        },
    }
}

impl<K: Kernel> Daemon<K> {
    pub fn new(opts: Options, kernel: K) -> io::Result<Daemon<K>> {
        Ok(Daemon {
            opts,
            kernel,
            objects: HashMap::new(),
            stats: Stats::default(),
            buf: AlignedBuf::new(cache::CHUNK)?,
        })
    }

    /// Rewrites the stats file, if any.
    pub fn write_stats(&self) {
        if let Some(p) = &self.opts.stats_file {
            if let Err(e) = stats::write_atomic(p, &self.stats.render()) {
                log!(Level::Warn, "cannot write {}: {e}", p.display());
            }
        }
    }

    /// Handles one message as read from the devnode, then updates the stats file.
    pub fn handle_message(&mut self, msg: &[u8]) {
        match proto::parse(msg) {
            Ok(req) => self.handle(req),
            Err(e) => self.bad_message(msg, e),
        }
        self.write_stats();
    }

    /// A message that does not parse: answer what can be answered so no request hangs.
    fn bad_message(&mut self, msg: &[u8], e: ParseError) {
        self.stats.errors += 1;
        let Ok(h) = proto::parse_header(msg) else {
            log!(
                Level::Error,
                "bad message from the kernel ({} bytes): {e}",
                msg.len()
            );
            return;
        };
        log!(
            Level::Error,
            "bad message {} (opcode {}, object {}): {e}",
            h.msg_id,
            h.opcode,
            h.object_id
        );
        match h.opcode {
            proto::OP_OPEN => {
                // The fd field cannot be trusted, so it is left alone.
                if let Err(e) = self
                    .kernel
                    .reply(&proto::copen(h.msg_id, -(libc::EINVAL as i64)))
                {
                    log!(Level::Error, "copen {}: {e}", h.msg_id);
                }
            }
            proto::OP_READ => {
                if let Some(obj) = self.objects.get(&h.object_id) {
                    if let Err(e) = self.kernel.complete(obj.fd.as_fd(), h.msg_id) {
                        log!(Level::Error, "READ {}: completion failed: {e}", h.msg_id);
                    }
                }
            }
            _ => {}
        }
    }

    pub fn handle(&mut self, req: Request) {
        match req {
            Request::Open {
                msg_id,
                object_id,
                volume_key,
                cookie_key,
                fd,
                flags,
            } => {
                // SAFETY: the kernel installed `fd` in our table for this OPEN message (the fd
                // field was range-checked by the parser); nothing else owns or closes it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                self.open(msg_id, object_id, &volume_key, &cookie_key, fd, flags)
            }
            Request::Read {
                msg_id,
                object_id,
                off,
                len,
            } => self.read(msg_id, object_id, off, len),
            Request::Close { msg_id, object_id } => {
                self.stats.closes += 1;
                match self.objects.remove(&object_id) {
                    Some(obj) => log!(
                        Level::Debug,
                        "CLOSE {msg_id} object {object_id} ({})",
                        obj.blob.path.display()
                    ),
                    None => log!(Level::Warn, "CLOSE {msg_id} for unknown object {object_id}"),
                }
            }
            Request::Unknown {
                msg_id,
                object_id,
                opcode,
            } => {
                self.stats.errors += 1;
                log!(
                    Level::Warn,
                    "message {msg_id} (object {object_id}): unknown opcode {opcode}, ignored"
                );
            }
        }
    }

    fn open(
        &mut self,
        msg_id: u32,
        object_id: u32,
        vkey: &[u8],
        ckey: &[u8],
        fd: OwnedFd,
        flags: u32,
    ) {
        self.stats.opens += 1;
        let vk = String::from_utf8_lossy(vkey);
        let ck = String::from_utf8_lossy(ckey);
        match blobs::resolve(&self.opts.blob_dir, ckey).and_then(Blob::open) {
            Ok(blob) => {
                let size = blob.size;
                log!(Level::Info, "OPEN {msg_id} object {object_id}: volume {vk:?} cookie {ck:?} -> {} ({size} bytes, flags {flags:#x})", blob.path.display());
                let Ok(isize) = i64::try_from(size) else {
                    self.fail_open(msg_id, libc::EFBIG, fd);
                    return;
                };
                match self.kernel.reply(&proto::copen(msg_id, isize)) {
                    Ok(()) => {
                        if self
                            .objects
                            .insert(object_id, Object { fd, blob })
                            .is_some()
                        {
                            log!(
                                Level::Warn,
                                "OPEN {msg_id}: object {object_id} was already open; replaced"
                            );
                        }
                    }
                    Err(e) => {
                        self.stats.errors += 1;
                        log!(Level::Error, "copen {msg_id}: {e}");
                    }
                }
            }
            Err(e) => {
                let errno = open_errno(&e);
                log!(Level::Warn, "OPEN {msg_id} object {object_id}: volume {vk:?} cookie {ck:?}: {e}: failing it with -{errno}");
                self.fail_open(msg_id, errno, fd);
            }
        }
    }

    /// Fails an OPEN with `-errno`, then closes the anon fd.
    fn fail_open(&mut self, msg_id: u32, errno: i32, fd: OwnedFd) {
        self.stats.errors += 1;
        if let Err(e) = self.kernel.reply(&proto::copen(msg_id, -(errno as i64))) {
            log!(Level::Error, "copen {msg_id}: {e}");
        }
        drop(fd);
    }

    fn read(&mut self, msg_id: u32, object_id: u32, off: u64, len: u64) {
        self.stats.reads += 1;
        log!(
            Level::Debug,
            "READ {msg_id} object {object_id}: off {off} len {len}"
        );
        let t = Instant::now();
        let Some(obj) = self.objects.get(&object_id) else {
            // The completion ioctl must be issued on the object's own anon fd: nothing to do.
            self.stats.errors += 1;
            log!(
                Level::Error,
                "READ {msg_id} for unknown object {object_id}: cannot complete it"
            );
            return;
        };
        let result = match proto::fill_range(off, len, obj.blob.size, self.opts.window) {
            Some((start, end)) => cache::fill(obj.fd.as_fd(), &obj.blob, start, end, &mut self.buf),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("nothing to fill: blob size {}", obj.blob.size),
            )),
        };
        match result {
            Ok(n) => {
                self.stats.bytes_fetched += n;
                log!(
                    Level::Debug,
                    "READ {msg_id}: wrote {n} bytes in {:?}",
                    t.elapsed()
                );
            }
            Err(e) => {
                self.stats.errors += 1;
                log!(Level::Error, "READ {msg_id} object {object_id} off {off} len {len} ({}): {e}; completing anyway (the reader gets EIO)", obj.blob.path.display());
            }
        }
        // Always complete: an uncompleted request blocks the reader.
        if let Err(e) = self.kernel.complete(obj.fd.as_fd(), msg_id) {
            self.stats.errors += 1;
            log!(Level::Error, "READ {msg_id}: completion ioctl failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::tests::TempDir;
    use std::os::fd::IntoRawFd;
    use std::os::unix::fs::MetadataExt;

    /// Records replies and completions (with the inode of the fd completed on).
    #[derive(Default)]
    struct Mock {
        replies: Vec<String>,
        completed: Vec<(u32, u64)>,
    }

    impl Kernel for &mut Mock {
        fn reply(&mut self, cmd: &str) -> io::Result<()> {
            self.replies.push(cmd.to_string());
            Ok(())
        }
        fn complete(&mut self, fd: BorrowedFd<'_>, msg_id: u32) -> io::Result<()> {
            let f = std::fs::File::from(fd.try_clone_to_owned()?);
            self.completed.push((msg_id, f.metadata()?.ino()));
            Ok(())
        }
    }

    fn msg(msg_id: u32, op: u32, obj: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [msg_id, op, (16 + payload.len()) as u32, obj] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn open_payload(vkey: &[u8], ckey: &[u8], fd: i32) -> Vec<u8> {
        let mut p = Vec::new();
        for x in [vkey.len() as u32, ckey.len() as u32, fd as u32, 0] {
            p.extend_from_slice(&x.to_ne_bytes());
        }
        p.extend_from_slice(vkey);
        p.extend_from_slice(ckey);
        p
    }

    fn read_payload(off: u64, len: u64) -> Vec<u8> {
        [off.to_ne_bytes(), len.to_ne_bytes()].concat()
    }

    /// Is `fd` open on inode `ino`? (Other tests may reuse a closed fd number concurrently.)
    fn fd_is_open(fd: i32, ino: u64) -> bool {
        // SAFETY: `st` is plain data for fstat to fill; fstat only queries the descriptor.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: see above; `st` is a valid, writable stat buffer.
        unsafe { libc::fstat(fd, &mut st) == 0 && st.st_ino == ino }
    }

    #[test]
    fn open_read_close_round_trip() {
        let d = TempDir::new("daemon");
        let blobs = d.0.join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(blobs.join("fsid1.img"), &data).unwrap();
        let stats_file = d.0.join("stats");
        let mut mock = Mock::default();
        let opts = Options {
            blob_dir: blobs.clone(),
            stats_file: Some(stats_file.clone()),
            window: 0,
        };
        let mut dm = Daemon::new(opts, &mut mock).unwrap();

        // A regular file stands in for the anon fd the kernel would install.
        let cache = std::fs::File::create(d.0.join("cachefile")).unwrap();
        let ino = cache.metadata().unwrap().ino();
        let cfd = cache.into_raw_fd();
        dm.handle_message(&msg(
            1,
            proto::OP_OPEN,
            5,
            &open_payload(b"erofs,fsid1\0", b"fsid1", cfd),
        ));
        dm.handle_message(&msg(2, proto::OP_READ, 5, &read_payload(5000, 100)));
        dm.handle_message(&msg(3, proto::OP_READ, 5, &read_payload(9000, 4096)));
        dm.handle_message(&msg(4, proto::OP_READ, 5, &read_payload(20000, 4096))); // past EOF
        dm.handle_message(&msg(5, proto::OP_READ, 6, &read_payload(0, 4096))); // unknown object
        let got = std::fs::read(d.0.join("cachefile")).unwrap();
        assert_eq!(got.len(), 12288);
        assert!(got[..4096].iter().all(|&b| b == 0));
        assert_eq!(&got[4096..10_000], &data[4096..]);
        assert!(fd_is_open(cfd, ino));
        dm.handle_message(&msg(6, proto::OP_CLOSE, 5, &[]));
        assert!(!fd_is_open(cfd, ino), "CLOSE closes the anon fd");

        // unknown blob and unsafe key: -ENOENT and the fd is closed
        for key in [&b"nope"[..], b"../blobs/fsid1.img"] {
            let f = std::fs::File::open(d.0.join("cachefile"))
                .unwrap()
                .into_raw_fd();
            dm.handle_message(&msg(
                7,
                proto::OP_OPEN,
                8,
                &open_payload(b"erofs,x\0", key, f),
            ));
            assert!(!fd_is_open(f, ino));
        }
        // garbage OPEN (len mismatch) still gets an answer; unknown opcodes are ignored
        let mut bad = msg(
            9,
            proto::OP_OPEN,
            9,
            &open_payload(b"erofs,x\0", b"x", 1000),
        );
        bad.truncate(bad.len() - 1);
        dm.handle_message(&bad);
        dm.handle_message(&msg(10, 42, 9, &[]));

        let s = dm.stats.clone();
        assert_eq!(std::fs::read_to_string(&stats_file).unwrap(), s.render());
        drop(dm);
        assert_eq!(
            mock.replies,
            ["copen 1,10000", "copen 7,-2", "copen 7,-2", "copen 9,-22"]
        );
        assert_eq!(mock.completed, [(2, ino), (3, ino), (4, ino)]);
        assert_eq!((s.opens, s.reads, s.closes), (3, 4, 1));
        assert_eq!(s.bytes_fetched, 4096 + (10_000 - 8192));
        // past-EOF read, unknown object, two failed opens, bad message, unknown opcode
        assert_eq!(s.errors, 6);
    }
}

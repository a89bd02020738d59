// SPDX-License-Identifier: GPL-2.0
//! The cachefiles control device (/dev/cachefiles): opening it, text commands, poll and read.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

pub struct Devnode {
    file: File,
}

/// What woke up [`Devnode::wait`].
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Requests are pending on the devnode.
    Readable,
    /// The other descriptor (the signal fd) is readable.
    Other,
    /// The devnode reported POLLERR/POLLHUP/POLLNVAL without POLLIN.
    Hangup,
}

/// A human explanation of why opening the devnode failed.
pub fn open_error_hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EBUSY) => "is busy: another daemon (cachefilesd?) has it open",
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
            "cachefiles not available (CONFIG_CACHEFILES / modprobe cachefiles)"
        }
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "permission denied: needs CAP_SYS_ADMIN (run as root)"
        }
        _ => "cannot be opened",
    }
}

/// A human explanation of why `bind ondemand` failed.
pub fn bind_error_hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EOPNOTSUPP) => {
            "the cache directory's filesystem lacks features cachefiles needs (user xattrs, \
             O_DIRECT, O_TMPFILE, SEEK_DATA/SEEK_HOLE), e.g. tmpfs: use ext4 or xfs; or the kernel \
             lacks CONFIG_CACHEFILES_ONDEMAND"
        }
        Some(libc::EBUSY) => "a cache is already bound on this descriptor",
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => "the cache directory does not exist",
        Some(libc::EEXIST) => "another cache with this tag is already bound (use --tag)",
        Some(libc::ENOBUFS) | Some(libc::ENOSPC) => {
            "not enough free space/files on the cache filesystem"
        }
        _ => "",
    }
}

impl Devnode {
    pub fn open(path: &Path) -> Result<Devnode, String> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(|file| Devnode { file })
            .map_err(|e| {
                format!(
                    "{}: {}: {e}",
                    path.display(),
                    open_error_hint(e.raw_os_error())
                )
            })
    }

    /// A devnode already open (and bound), e.g. received from an fd store.
    pub fn from_fd(fd: std::os::fd::OwnedFd) -> Devnode {
        Devnode {
            file: File::from(fd),
        }
    }

    /// Sends one text command in a single write(), as cachefiles requires.
    pub fn command(&self, cmd: &str) -> io::Result<()> {
        loop {
            match (&self.file).write(cmd.as_bytes()) {
                Ok(n) if n == cmd.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("short write of command ({n} of {} bytes)", cmd.len()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// `dir <cache_dir>`, `tag <tag>` if any, `bind ondemand`. Creates the directory if needed.
    pub fn bind(&self, cache_dir: &Path, tag: Option<&str>) -> Result<(), String> {
        std::fs::create_dir_all(cache_dir)
            .map_err(|e| format!("cannot create {}: {e}", cache_dir.display()))?;
        let dir = cache_dir
            .canonicalize()
            .map_err(|e| format!("{}: {e}", cache_dir.display()))?;
        let dir = dir
            .to_str()
            .filter(|d| !d.contains(['\n', '\0']))
            .ok_or_else(|| format!("{}: unusable cache directory name", dir.display()))?;
        self.command(&format!("dir {dir}"))
            .map_err(|e| format!("'dir {dir}' failed: {e}"))?;
        if let Some(tag) = tag {
            self.command(&format!("tag {tag}"))
                .map_err(|e| format!("'tag {tag}' failed: {e}"))?;
        }
        self.command("bind ondemand").map_err(|e| {
            let hint = bind_error_hint(e.raw_os_error());
            if hint.is_empty() {
                format!("'bind ondemand' failed: {e}")
            } else {
                format!("'bind ondemand' failed: {e}: {hint}")
            }
        })
    }

    /// Waits until the devnode or `other` is readable. EINTR is reported as `Other` only if
    /// `other` is readable, else retried.
    pub fn wait(&self, other: BorrowedFd<'_>) -> io::Result<Event> {
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.file.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: other.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two initialised pollfds for the whole call.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if fds[1].revents != 0 {
                return Ok(Event::Other);
            }
            if fds[0].revents & libc::POLLIN != 0 {
                return Ok(Event::Readable);
            }
            if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Ok(Event::Hangup);
            }
        }
    }

    /// Reads one message into `buf` (at least [`crate::proto::MSG_MAX_SIZE`] bytes). Returns
    /// 0 when nothing is pending.
    pub fn read_msg(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match (&self.file).read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsFd for Devnode {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        assert!(open_error_hint(Some(libc::EBUSY)).contains("cachefilesd"));
        assert!(open_error_hint(Some(libc::ENOENT)).contains("modprobe cachefiles"));
        assert!(open_error_hint(Some(libc::EPERM)).contains("CAP_SYS_ADMIN"));
        assert!(bind_error_hint(Some(libc::EOPNOTSUPP)).contains("tmpfs"));
        let e = Devnode::open(Path::new("/nonexistent/cachefiles"))
            .err()
            .unwrap_or_default();
        assert!(e.contains("cachefiles not available"), "{e}");
    }

    #[test]
    fn commands_are_single_writes() {
        // A pipe stands in for the devnode: each command arrives as written, no newline.
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() returns.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        use std::os::fd::FromRawFd;
        // SAFETY: pipe() just created these descriptors; each is owned once.
        let (r, w) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        let dev = Devnode { file: w };
        dev.command("bind ondemand").unwrap();
        drop(dev);
        let mut s = String::new();
        (&r).read_to_string(&mut s).unwrap();
        assert_eq!(s, "bind ondemand");
    }
}

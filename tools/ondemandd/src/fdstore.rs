// SPDX-License-Identifier: GPL-2.0
//! `erofs-ondemandd hold --socket PATH` and `--fd-store PATH`: keep /dev/cachefiles open in a
//! separate holder process, handed over with SCM_RIGHTS on a Unix socket.
//!
//! The holder listens on a SOCK_SEQPACKET socket. Each daemon that connects gets one message:
//! `NONE` (nothing held yet: the daemon opens and binds the device itself, then sends `PUT` with
//! the descriptor; the holder keeps it and answers `OK`), or `FD <n>` with the descriptor
//! attached (the device is already bound; `n` counts the hand-overs). A daemon that got the
//! descriptor writes `restore` and serves on, like a restarted `--supervise` worker. The holder
//! never reads requests, so it holds no anon fds; it keeps the cache alive until it gets
//! SIGTERM/SIGINT. Unlike `--supervise`, nothing restarts the daemon: whoever started it (a
//! service manager, a script) does, possibly with a new binary.

use crate::devnode::Devnode;
use crate::log;
use crate::log::Level;
use crate::signals::SignalFd;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Longest message of the protocol.
const MSG_MAX: usize = 64;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The address of socket `path`.
fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= a.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path empty, too long or with a NUL",
        ));
    }
    for (d, &s) in a.sun_path.iter_mut().zip(bytes) {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((a, len as libc::socklen_t))
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: socket() just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A listening socket at `path` (a stale socket file there is replaced), mode 0600.
pub fn listen(path: &Path) -> io::Result<OwnedFd> {
    let (a, len) = sockaddr(path)?;
    let s = socket()?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            std::fs::remove_file(path)?
        }
        _ => {}
    }
    // SAFETY: `a` is a valid sockaddr_un of which `len` bytes are used.
    cvt(unsafe { libc::bind(s.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    // SAFETY: listen() takes no pointers.
    cvt(unsafe { libc::listen(s.as_raw_fd(), 8) })?;
    Ok(s)
}

pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let (a, len) = sockaddr(path)?;
    let s = socket()?;
    // SAFETY: `a` is a valid sockaddr_un of which `len` bytes are used.
    cvt(unsafe { libc::connect(s.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })?;
    set_timeout(s.as_fd(), 10)?;
    Ok(s)
}

fn accept(l: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: no address is asked for (null pointers are allowed).
    let fd = cvt(unsafe {
        libc::accept4(
            l.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: accept4() just returned this descriptor; nothing else owns it.
    let s = unsafe { OwnedFd::from_raw_fd(fd) };
    set_timeout(s.as_fd(), 10)?;
    Ok(s)
}

/// Receive and send timeouts of `secs` seconds, so a stuck peer cannot block us for good.
fn set_timeout(s: BorrowedFd<'_>, secs: libc::time_t) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: secs,
        tv_usec: 0,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `tv` is a valid timeval of the size passed.
        cvt(unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

/// Room for one descriptor's control message, aligned for cmsghdr.
#[repr(C)]
union Cmsg {
    buf: [u8; 64],
    _align: libc::cmsghdr,
}

/// Sends `data` as one message, with descriptor `fd` attached if any.
pub fn send(s: BorrowedFd<'_>, data: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cm = Cmsg { buf: [0; 64] };
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        let raw = fd.as_raw_fd();
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) };
        // SAFETY: writing the union's byte view; `cm` is 64 bytes, more than `space` (24).
        msg.msg_control = unsafe { cm.buf.as_mut_ptr() }.cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` writable, aligned bytes, so the first header
        // and its data (CMSG_LEN(sizeof int) bytes) fit; the fd is written unaligned-safe.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), raw);
        }
    }
    // SAFETY: `msg` points at `iov` (valid for `data.len()` bytes) and `cm`, both alive for
    // the call.
    let n = unsafe { libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one message into `buf`: its length and the descriptor attached, if any.
pub fn recv(s: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cm = Cmsg { buf: [0; 64] };
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: taking the address of the union's byte view.
    msg.msg_control = unsafe { cm.buf.as_mut_ptr() }.cast();
    msg.msg_controllen = 64;
    // SAFETY: `msg` points at `iov` (valid for `buf.len()` writable bytes) and at the 64
    // bytes of `cm`, alive for the call.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fd = None;
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR/NXTHDR stay within
    // them, and each SCM_RIGHTS header carries (cmsg_len - CMSG_LEN(0)) / sizeof(int) fds,
    // installed in our table for us to own.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let nfds = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<libc::c_int>();
                for i in 0..nfds {
                    let raw = std::ptr::read_unaligned(data.add(i));
                    let owned = OwnedFd::from_raw_fd(raw);
                    // Keep the first; extra ones are closed by dropping them.
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "control data truncated",
        ));
    }
    Ok((n as usize, fd))
}

/// `--fd-store PATH`: the bound devnode from the holder at `path` (and the holder's count of
/// hand-overs, > 0), or, if it holds none yet, one from `open_bind` (count 0), handed to the
/// holder to keep.
pub fn get_or_put(
    path: &Path,
    open_bind: impl FnOnce() -> Result<Devnode, String>,
) -> Result<(Devnode, u64), String> {
    let ctx = |e: io::Error| format!("--fd-store {}: {e}", path.display());
    let s = connect(path).map_err(|e| {
        format!(
            "--fd-store {}: {e} (is 'erofs-ondemandd hold --socket {}' running?)",
            path.display(),
            path.display()
        )
    })?;
    let mut buf = [0u8; MSG_MAX];
    let (n, fd) = recv(s.as_fd(), &mut buf).map_err(ctx)?;
    let greeting = String::from_utf8_lossy(&buf[..n]).to_string();
    match (greeting.split_once(' '), fd) {
        (Some(("FD", count)), Some(fd)) => {
            let count = count
                .parse()
                .map_err(|_| format!("--fd-store: bad greeting {greeting:?}"))?;
            Ok((Devnode::from_fd(fd), count))
        }
        _ if greeting == "NONE" => {
            let dev = open_bind()?;
            send(s.as_fd(), b"PUT", Some(dev.as_fd())).map_err(ctx)?;
            let (n, _) = recv(s.as_fd(), &mut buf).map_err(ctx)?;
            if &buf[..n] != b"OK" {
                return Err(format!(
                    "--fd-store: the holder did not take the descriptor: {:?}",
                    String::from_utf8_lossy(&buf[..n])
                ));
            }
            Ok((dev, 0))
        }
        _ => Err(format!("--fd-store: bad greeting {greeting:?}")),
    }
}

/// `erofs-ondemandd hold --socket PATH`: hold the devnode for daemons, until SIGTERM/SIGINT.
pub fn hold(path: &Path, pid_file: Option<&Path>) -> Result<(), String> {
    let sigfd = SignalFd::termination().map_err(|e| format!("signalfd: {e}"))?;
    let l = listen(path).map_err(|e| format!("--socket {}: {e}", path.display()))?;
    if let Some(p) = pid_file {
        crate::stats::write_atomic(p, &format!("{}\n", std::process::id()))
            .map_err(|e| format!("--pid-file {}: {e}", p.display()))?;
    }
    log!(Level::Info, "hold: listening on {}", path.display());
    let mut held: Option<OwnedFd> = None;
    let mut handed = 0u64;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two initialised pollfds for the whole call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if fds[1].revents != 0 {
            if let Some(sig) = sigfd.take() {
                log!(
                    Level::Info,
                    "hold: signal {sig}: exiting{}",
                    if held.is_some() {
                        " (closing /dev/cachefiles: the cache goes)"
                    } else {
                        ""
                    }
                );
                let _ = std::fs::remove_file(path);
                if let Some(p) = pid_file {
                    let _ = std::fs::remove_file(p);
                }
                return Ok(());
            }
        }
        if fds[0].revents == 0 {
            continue;
        }
        let c = match accept(l.as_fd()) {
            Ok(c) => c,
            Err(e) => {
                log!(Level::Warn, "hold: accept: {e}");
                continue;
            }
        };
        let res = match &held {
            Some(fd) => {
                handed += 1;
                send(
                    c.as_fd(),
                    format!("FD {handed}").as_bytes(),
                    Some(fd.as_fd()),
                )
                .map(|()| log!(Level::Info, "hold: handed the device over ({handed})"))
            }
            None => serve_put(c.as_fd()).map(|fd| {
                log!(Level::Info, "hold: holding the device");
                held = fd;
            }),
        };
        if let Err(e) = res {
            log!(Level::Warn, "hold: {e}");
        }
    }
}

/// Greets with NONE and takes the descriptor a `PUT` brings.
fn serve_put(c: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    send(c, b"NONE", None)?;
    let mut buf = [0u8; MSG_MAX];
    let (n, fd) = recv(c, &mut buf)?;
    match (&buf[..n], fd) {
        (b"PUT", Some(fd)) => {
            send(c, b"OK", None)?;
            Ok(Some(fd))
        }
        (b"", _) => Ok(None), // the daemon went away (e.g. failed to bind)
        (m, _) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected message {:?}", String::from_utf8_lossy(m)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::tests::TempDir;
    use std::io::{Read, Seek, Write};

    #[test]
    fn passes_a_descriptor() {
        let d = TempDir::new("fdstore");
        let sock = d.0.join("s");
        let l = listen(&sock).unwrap();
        let c = connect(&sock).unwrap();
        let a = accept(l.as_fd()).unwrap();
        let mut f = std::fs::File::create(d.0.join("f")).unwrap();
        f.write_all(b"hello").unwrap();
        send(c.as_fd(), b"PUT", Some(f.as_fd())).unwrap();
        let mut buf = [0u8; MSG_MAX];
        let (n, fd) = recv(a.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"PUT");
        // the same open file: it shares the offset
        let mut g = std::fs::File::from(fd.unwrap());
        g.rewind().unwrap();
        let mut s = String::new();
        std::fs::File::open(d.0.join("f"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello");
        assert_eq!(f.stream_position().unwrap(), 0, "shared file position");
        send(a.as_fd(), b"NONE", None).unwrap();
        let (n, fd) = recv(c.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fd.is_none()), (&b"NONE"[..], true));
        drop(a);
        let (n, _) = recv(c.as_fd(), &mut buf).unwrap();
        assert_eq!(n, 0, "EOF when the peer is gone");
        // a second listen on the same path replaces the stale socket
        drop(l);
        assert!(listen(&sock).is_ok());
        assert!(sockaddr(Path::new("")).is_err());
        assert!(sockaddr(&d.0.join("x".repeat(200))).is_err());
    }
}

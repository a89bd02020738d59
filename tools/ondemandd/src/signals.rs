// SPDX-License-Identifier: GPL-2.0
//! Signals (SIGTERM/SIGINT, and SIGCHLD for the supervisor) as a pollable signalfd.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub struct SignalFd(OwnedFd);

impl SignalFd {
    /// Blocks SIGTERM and SIGINT in this thread (threads spawned later inherit the mask) and
    /// returns a signalfd that becomes readable when one is pending.
    pub fn termination() -> io::Result<SignalFd> {
        SignalFd::new(&[libc::SIGTERM, libc::SIGINT])
    }

    /// The same for `signals`.
    pub fn new(signals: &[libc::c_int]) -> io::Result<SignalFd> {
        // SAFETY: sigset_t is plain data; all-zero is a valid value to initialise with
        // sigemptyset, and every pointer passed is to this local.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            set
        };
        // SAFETY: `set` is an initialised sigset; the old mask is not requested.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        // SAFETY: `set` is an initialised sigset; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd just returned this descriptor; nothing else owns it.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Waits until a signal is pending (or `timeout_ms` passed, -1: no limit).
    pub fn wait(&self, timeout_ms: i32) -> io::Result<()> {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `p` is one valid, initialised pollfd for the whole call.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The number of a pending signal, if any (consumes it).
    pub fn take(&self) -> Option<u32> {
        // SAFETY: signalfd_siginfo is plain data; all-zero is a valid value.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading at most `size` bytes into `info`, which is `size` bytes long.
        let n = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n == size as isize).then_some(info.ssi_signo)
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

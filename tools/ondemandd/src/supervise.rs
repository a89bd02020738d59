// SPDX-License-Identifier: GPL-2.0
//! `--supervise`: keep /dev/cachefiles open across daemon crashes.
//!
//! Closing the last descriptor of /dev/cachefiles withdraws the cache and fails every pending
//! and later request with EIO. The supervisor opens and binds the device, then forks the worker
//! (the daemon proper), which inherits the descriptor. The supervisor never reads requests, so
//! it holds no anonymous fds: when the worker dies (crash, `kill -9`) its anonymous fds close
//! with it, but the device stays open and bound. The supervisor then forks a new worker, which
//! writes `restore` to the device (6.8+: requests the dead worker had read are marked new
//! again) and serves on: cachefiles re-sends an OPEN (a new object id and anon fd) for each
//! object whose anon fd was closed before handing out its READs again.
//!
//! SIGTERM/SIGINT to the supervisor stop the worker (SIGTERM), then the supervisor. A worker
//! that exits with status 0 (it was told to stop) stops the supervisor too. A worker dying
//! otherwise is restarted, at most [`MAX_RESTARTS`] times within [`RESTART_WINDOW`]; past that
//! the supervisor gives up and exits 1 (closing the device: readers get EIO, not a hang).

use crate::log::Level;
use crate::signals::SignalFd;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::time::{Duration, Instant};

pub const MAX_RESTARTS: usize = 10;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// A worker that dies sooner than this after its start is restarted after [`BACKOFF`].
pub const QUICK_DEATH: Duration = Duration::from_secs(1);
pub const BACKOFF: Duration = Duration::from_millis(500);

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Exited(c) => write!(f, "exited with status {c}"),
            End::Signaled(s) => write!(f, "was killed by signal {s}"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The worker stopped on purpose: stop too, with this exit status.
    Stop(i32),
    /// Start a new worker after this pause.
    Restart(Duration),
    /// Too many restarts lately.
    GiveUp,
}

/// What to do after a worker that ran for `ran` ended with `end`; `recent` holds the times of
/// the restarts so far (pruned and updated here).
pub fn decide(end: End, ran: Duration, recent: &mut VecDeque<Instant>, now: Instant) -> Decision {
    if end == End::Exited(0) {
        return Decision::Stop(0);
    }
    while recent
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) > RESTART_WINDOW)
    {
        recent.pop_front();
    }
    if recent.len() >= MAX_RESTARTS {
        return Decision::GiveUp;
    }
    recent.push_back(now);
    Decision::Restart(if ran < QUICK_DEATH {
        BACKOFF
    } else {
        Duration::ZERO
    })
}

/// Forks; the child runs `work(restarts)`, which does not return.
fn spawn(work: &dyn Fn(u64) -> Infallible, restarts: u64) -> io::Result<libc::pid_t> {
    // SAFETY: the supervisor has a single thread (it never spawns any), so the child gets a
    // consistent copy of the whole process and may go on running ordinary code; fork() itself
    // takes no pointers.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // Does not return.
        work(restarts);
    }
    Ok(pid)
}

/// The end of child `pid` if it has ended (reaps it).
fn try_wait(pid: libc::pid_t) -> io::Result<Option<End>> {
    let mut status = 0;
    // SAFETY: `status` is a valid int for waitpid to store into.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if r == 0 {
        return Ok(None);
    }
    if libc::WIFSIGNALED(status) {
        Ok(Some(End::Signaled(libc::WTERMSIG(status))))
    } else {
        Ok(Some(End::Exited(libc::WEXITSTATUS(status))))
    }
}

fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill() takes no pointers; `pid` is our own child, not yet reaped.
    unsafe { libc::kill(pid, sig) };
}

/// Stops worker `pid`: SIGTERM, then SIGKILL if it is still there after 10 s.
fn stop(pid: libc::pid_t) {
    kill(pid, libc::SIGTERM);
    let t = Instant::now();
    loop {
        match try_wait(pid) {
            Ok(Some(end)) => {
                log!(Level::Info, "supervisor: worker {pid} {end}");
                return;
            }
            Ok(None) => {}
            Err(e) => {
                log!(Level::Error, "supervisor: waitpid({pid}): {e}");
                return;
            }
        }
        if t.elapsed() > Duration::from_secs(10) {
            log!(
                Level::Warn,
                "supervisor: worker {pid} ignores SIGTERM: SIGKILL"
            );
            kill(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs workers until told to stop (SIGTERM/SIGINT on `sigfd`, which must also take SIGCHLD).
/// `work(n)` runs the worker, `n` counting from `first` (> 0: the device had been used by an
/// earlier daemon, see `--fd-store`). Returns the supervisor's exit status.
pub fn run(sigfd: &SignalFd, first: u64, work: &dyn Fn(u64) -> Infallible) -> i32 {
    let mut recent = VecDeque::new();
    let mut restarts = first;
    loop {
        let started = Instant::now();
        let pid = match spawn(work, restarts) {
            Ok(p) => p,
            Err(e) => {
                log!(Level::Error, "supervisor: fork: {e}");
                return 1;
            }
        };
        log!(
            Level::Info,
            "supervisor: worker {pid} started (restart {restarts})"
        );
        let end = loop {
            if let Err(e) = sigfd.wait(-1) {
                log!(Level::Error, "supervisor: poll: {e}");
                stop(pid);
                return 1;
            }
            while let Some(sig) = sigfd.take() {
                if sig != libc::SIGCHLD as u32 {
                    log!(
                        Level::Info,
                        "supervisor: signal {sig}: stopping worker {pid}"
                    );
                    stop(pid);
                    return 0;
                }
            }
            match try_wait(pid) {
                Ok(Some(end)) => break end,
                Ok(None) => {}
                Err(e) => {
                    log!(Level::Error, "supervisor: waitpid({pid}): {e}");
                    return 1;
                }
            }
        };
        match decide(end, started.elapsed(), &mut recent, Instant::now()) {
            Decision::Stop(code) => {
                log!(Level::Info, "supervisor: worker {pid} {end}: stopping");
                return code;
            }
            Decision::GiveUp => {
                log!(Level::Error, "supervisor: worker {pid} {end}; {MAX_RESTARTS} restarts within {RESTART_WINDOW:?}: giving up (the cache goes with the device)");
                return 1;
            }
            Decision::Restart(pause) => {
                log!(
                    Level::Warn,
                    "supervisor: worker {pid} {end}: restarting it in {pause:?}; the device stays open"
                );
                std::thread::sleep(pause);
                restarts += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_until_too_many() {
        let mut recent = VecDeque::new();
        let t0 = Instant::now();
        let long = Duration::from_secs(5);
        assert_eq!(
            decide(End::Exited(0), long, &mut recent, t0),
            Decision::Stop(0)
        );
        assert_eq!(
            decide(End::Signaled(9), long, &mut recent, t0),
            Decision::Restart(Duration::ZERO)
        );
        assert_eq!(
            decide(End::Exited(1), Duration::from_millis(10), &mut recent, t0),
            Decision::Restart(BACKOFF),
            "a quick death waits a little"
        );
        for _ in 2..MAX_RESTARTS {
            assert!(matches!(
                decide(End::Signaled(11), long, &mut recent, t0),
                Decision::Restart(_)
            ));
        }
        assert_eq!(
            decide(End::Signaled(11), long, &mut recent, t0),
            Decision::GiveUp
        );
        // restarts older than the window are forgotten
        let later = t0 + RESTART_WINDOW + Duration::from_secs(1);
        assert_eq!(
            decide(End::Signaled(9), long, &mut recent, later),
            Decision::Restart(Duration::ZERO)
        );
        assert_eq!(recent.len(), 1);
        assert_eq!(End::Signaled(9).to_string(), "was killed by signal 9");
        assert_eq!(End::Exited(1).to_string(), "exited with status 1");
    }
}

// SPDX-License-Identifier: GPL-2.0
//! Leveled logging to stderr: `erofs-ondemandd: <level>: <message>`.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "error" => Level::Error,
            "warn" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn set_level(l: Level) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}

pub fn enabled(l: Level) -> bool {
    l as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes `line` and a newline to stderr in one `write(2)`.
///
/// `eprintln!` is unbuffered and issues one write per formatted piece; the daemon, its
/// supervisor, its worker and `hold` often share one log file, and their lines must not
/// interleave mid-line (tests grep them).
pub fn emit(mut line: String) {
    use std::io::Write;
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `say!("fmt", args...)`: one whole line to stderr (see [`emit`]).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::log::emit(format!($($arg)*))
    };
}

/// `log!(Level::Info, "fmt", args...)`
#[macro_export]
macro_rules! log {
    ($lvl:expr, $($arg:tt)*) => {{
        let lvl: $crate::log::Level = $lvl;
        if $crate::log::enabled(lvl) {
            $crate::log::emit(format!("erofs-ondemandd: {}: {}", lvl.name(), format_args!($($arg)*)));
        }
    }};
}

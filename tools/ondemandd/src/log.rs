// SPDX-License-Identifier: GPL-2.0
//! Leveled logging to stderr, one line per record: `erofs-ondemandd: <level>: <message>`
//! (`--log-format text`, the default), or one JSON object per line (`--log-format json`):
//! `{"time":"2026-12-02T02:49:14.123Z","level":"warn","pid":42,"msg":"..."}`, for log
//! collectors.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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
static JSON: AtomicBool = AtomicBool::new(false);

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

pub fn set_format(f: Format) {
    JSON.store(f == Format::Json, Ordering::Relaxed);
}

/// A record at `level` (None: an unleveled message of `say!`, shown as `info` in JSON).
pub fn record(level: Option<Level>, msg: std::fmt::Arguments<'_>) {
    if JSON.load(Ordering::Relaxed) {
        let msg = msg.to_string();
        let msg = msg.strip_prefix("erofs-ondemandd: ").unwrap_or(&msg);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        emit(json_line(
            now,
            level.unwrap_or(Level::Info),
            std::process::id(),
            msg,
        ));
    } else {
        match level {
            Some(l) => emit(format!("erofs-ondemandd: {}: {msg}", l.name())),
            None => emit(msg.to_string()),
        }
    }
}

/// One JSON record (no newline).
fn json_line(now: std::time::Duration, level: Level, pid: u32, msg: &str) -> String {
    let mut out = String::with_capacity(msg.len() + 80);
    out.push_str("{\"time\":\"");
    out.push_str(&rfc3339(now));
    out.push_str("\",\"level\":\"");
    out.push_str(level.name());
    out.push_str(&format!("\",\"pid\":{pid},\"msg\":\""));
    for c in msg.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("\"}");
    out
}

/// `since_epoch` as an RFC 3339 UTC time with milliseconds.
fn rfc3339(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm), in unsigned arithmetic:
    // shifted to 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

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
        $crate::log::record(None, format_args!($($arg)*))
    };
}

/// `log!(Level::Info, "fmt", args...)`
#[macro_export]
macro_rules! log {
    ($lvl:expr, $($arg:tt)*) => {{
        let lvl: $crate::log::Level = $lvl;
        if $crate::log::enabled(lvl) {
            $crate::log::record(Some(lvl), format_args!($($arg)*));
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day of a century leap year), 2026-12-02
        assert_eq!(
            rfc3339(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(Duration::from_millis(1_796_179_754_123)),
            "2026-12-02T02:49:14.123Z"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(4_107_542_399)),
            "2100-02-28T23:59:59.000Z"
        );
    }

    #[test]
    fn json_records_escape_everything_json_needs() {
        let l = json_line(
            Duration::from_millis(1500),
            Level::Warn,
            7,
            "a \"b\" c\\d\ne\u{1}\u{e9}",
        );
        assert_eq!(
            l,
            "{\"time\":\"1970-01-01T00:00:01.500Z\",\"level\":\"warn\",\"pid\":7,\
             \"msg\":\"a \\\"b\\\" c\\\\d\\ne\\u0001\u{e9}\"}"
        );
    }
}

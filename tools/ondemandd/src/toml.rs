// SPDX-License-Identifier: GPL-2.0
//! A small TOML reader (std only) for the subset the config file needs: `[table]` and
//! `[[array.of.tables]]` headers, bare, quoted and dotted keys, basic ("...") and literal ('...')
//! strings, integers, booleans, and arrays of those (across lines, trailing comma allowed),
//! `#` comments. Not supported (a clear error): inline tables, floats, dates, multi-line strings.
//! Every value keeps the line it was written on, for error messages.

/// A value and the line (1-based) it was written on.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Item>),
    Table(Table),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Bool(_) => "a boolean",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// Keys in the order they were written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table(pub Vec<(String, Item)>);

impl Table {
    pub fn get(&self, key: &str) -> Option<&Item> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Item> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// A parse error: the line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub line: usize,
    pub msg: String,
}

type Res<T> = Result<T, Error>;

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn err<T>(&self, msg: impl Into<String>) -> Res<T> {
        Err(Error {
            line: self.line,
            msg: msg.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips spaces and tabs.
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace, newlines and comments (inside arrays and between statements).
    fn ws_nl(&mut self) -> Res<()> {
        loop {
            self.ws();
            match self.peek() {
                Some(b'\n') => {
                    self.bump();
                }
                Some(b'\r') if self.s.get(self.pos + 1) == Some(&b'\n') => {
                    self.pos += 1;
                }
                Some(b'#') => self.comment()?,
                _ => return Ok(()),
            }
        }
    }

    fn comment(&mut self) -> Res<()> {
        while let Some(c) = self.peek() {
            if c == b'\n' {
                break;
            }
            if c < 0x20 && c != b'\t' && c != b'\r' {
                return self.err("control character in a comment");
            }
            self.pos += 1;
        }
        Ok(())
    }

    /// After a statement: optional spaces and comment, then a newline or the end.
    fn end_of_line(&mut self) -> Res<()> {
        self.ws();
        if self.peek() == Some(b'#') {
            self.comment()?;
        }
        if self.peek() == Some(b'\r') {
            self.pos += 1;
        }
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.bump();
                Ok(())
            }
            Some(c) => self.err(format!(
                "expected the end of the line, found {:?}",
                c as char
            )),
        }
    }

    /// One key part: bare, "basic" or 'literal'.
    fn key_part(&mut self) -> Res<String> {
        self.ws();
        match self.peek() {
            Some(b'"') => self.basic_string(),
            Some(b'\'') => self.literal_string(),
            _ => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                {
                    self.pos += 1;
                }
                if start == self.pos {
                    return match self.peek() {
                        None | Some(b'\n') => self.err("expected a key"),
                        Some(c) => self.err(format!("expected a key, found {:?}", c as char)),
                    };
                }
                Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
            }
        }
    }

    /// A dotted key: `a.b."c d"`.
    fn key(&mut self) -> Res<Vec<String>> {
        let mut parts = vec![self.key_part()?];
        loop {
            self.ws();
            if self.peek() != Some(b'.') {
                return Ok(parts);
            }
            self.pos += 1;
            parts.push(self.key_part()?);
        }
    }

    fn basic_string(&mut self) -> Res<String> {
        self.pos += 1; // opening quote
        if self.s[self.pos..].starts_with(b"\"\"") {
            return self.err("multi-line strings are not supported");
        }
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return self.err("unterminated string");
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\n' => {
                    self.pos -= 1;
                    return self.err("unterminated string (newline before the closing quote)");
                }
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return self.err("unterminated string");
                    };
                    self.pos += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'e' => '\u{1b}',
                        b'u' | b'U' => {
                            let n = if e == b'u' { 4 } else { 8 };
                            let hex = self.s.get(self.pos..self.pos + n).unwrap_or_default();
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .filter(|h| {
                                    h.len() == n && h.bytes().all(|b| b.is_ascii_hexdigit())
                                })
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            let Some(ch) = code.and_then(char::from_u32) else {
                                return self.err(format!("bad \\{} escape", e as char));
                            };
                            self.pos += n;
                            ch
                        }
                        other => {
                            return self.err(format!("bad escape \\{}", other as char));
                        }
                    };
                    let mut b = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                }
                c if c < 0x20 && c != b'\t' => {
                    return self.err("control character in a string");
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).or_else(|_| self.err("string is not valid UTF-8"))
    }

    fn literal_string(&mut self) -> Res<String> {
        self.pos += 1;
        if self.s[self.pos..].starts_with(b"''") {
            return self.err("multi-line strings are not supported");
        }
        let start = self.pos;
        loop {
            match self.peek() {
                None | Some(b'\n') => return self.err("unterminated string"),
                Some(b'\'') => break,
                Some(_) => self.pos += 1,
            }
        }
        let s = &self.s[start..self.pos];
        self.pos += 1;
        String::from_utf8(s.to_vec()).or_else(|_| self.err("string is not valid UTF-8"))
    }

    fn value(&mut self) -> Res<Item> {
        self.ws();
        let line = self.line;
        let value = match self.peek() {
            Some(b'"') => Value::Str(self.basic_string()?),
            Some(b'\'') => Value::Str(self.literal_string()?),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.ws_nl()?;
                    match self.peek() {
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        None => {
                            return self.err(format!("unterminated array (opened on line {line})"))
                        }
                        _ => {}
                    }
                    items.push(self.value()?);
                    self.ws_nl()?;
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        None => {
                            return self.err(format!("unterminated array (opened on line {line})"))
                        }
                        Some(c) => {
                            return self.err(format!(
                                "expected ',' or ']' in an array, found {:?}",
                                c as char
                            ))
                        }
                    }
                }
                Value::Array(items)
            }
            Some(b'{') => return self.err("inline tables are not supported: use a [table]"),
            None | Some(b'\n' | b'#' | b'\r') => return self.err("expected a value"),
            Some(_) => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"+-_.:".contains(&c))
                {
                    self.pos += 1;
                }
                let word = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                match word.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "" => {
                        let c = self.peek().unwrap_or(b' ') as char;
                        return self.err(format!("expected a value, found {c:?}"));
                    }
                    w => Value::Int(parse_int(w).ok_or_else(|| Error {
                        line,
                        msg: format!(
                            "bad value {w:?}: expected a string (in quotes), an integer, true, false or an array"
                        ),
                    })?),
                }
            }
        };
        Ok(Item { line, value })
    }
}

/// A TOML integer: decimal with optional sign and `_` between digits, or 0x/0o/0b.
fn parse_int(w: &str) -> Option<i64> {
    let digits_ok = |d: &str, radix: u32| {
        !d.is_empty()
            && !d.starts_with('_')
            && !d.ends_with('_')
            && !d.contains("__")
            && d.chars().all(|c| c == '_' || c.is_digit(radix))
    };
    for (p, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(d) = w.strip_prefix(p) {
            return digits_ok(d, radix)
                .then(|| i64::from_str_radix(&d.replace('_', ""), radix).ok())
                .flatten();
        }
    }
    let d = w.strip_prefix(['+', '-']).unwrap_or(w);
    if !digits_ok(d, 10) || (d.len() > 1 && d.starts_with('0')) {
        return None;
    }
    w.replace('_', "").parse().ok()
}

/// Where a header or key path leads: a table to put keys in (created as needed). With
/// `implicit_ok`, a path through an array of tables goes to its last table.
fn descend<'t>(
    mut t: &'t mut Table,
    path: &[String],
    line: usize,
    implicit_ok: bool,
) -> Res<&'t mut Table> {
    for (i, k) in path.iter().enumerate() {
        let idx = match t.0.iter().position(|(n, _)| n == k) {
            Some(idx) => idx,
            None => {
                t.0.push((
                    k.clone(),
                    Item {
                        line,
                        value: Value::Table(Table::default()),
                    },
                ));
                t.0.len() - 1
            }
        };
        let item = &t.0[idx].1;
        let ok = match &item.value {
            Value::Table(_) => true,
            Value::Array(v) => {
                implicit_ok && v.last().is_some_and(|x| matches!(x.value, Value::Table(_)))
            }
            _ => false,
        };
        if !ok {
            return Err(Error {
                line,
                msg: format!(
                    "key {:?} is already {} (line {}), not a table",
                    path[..=i].join("."),
                    item.value.type_name(),
                    item.line
                ),
            });
        }
        t = match &mut t.0[idx].1.value {
            Value::Table(sub) => sub,
            Value::Array(v) => match v.last_mut().map(|x| &mut x.value) {
                Some(Value::Table(sub)) => sub,
                _ => unreachable!("checked above"),
            },
            _ => unreachable!("checked above"),
        };
    }
    Ok(t)
}

/// Parses a whole document.
pub fn parse(text: &str) -> Result<Table, Error> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let mut root = Table::default();
    // The current table's path (from the last header) and headers already defined.
    let mut cur: Vec<String> = Vec::new();
    let mut defined: Vec<Vec<String>> = Vec::new();
    loop {
        p.ws_nl()?;
        let Some(c) = p.peek() else { break };
        let line = p.line;
        if c == b'[' {
            p.pos += 1;
            let array = p.peek() == Some(b'[');
            if array {
                p.pos += 1;
            }
            let path = p.key()?;
            p.ws();
            let close: &[u8] = if array { b"]]" } else { b"]" };
            if !p.s[p.pos..].starts_with(close) {
                return p.err(format!(
                    "expected {:?} to close the table header",
                    String::from_utf8_lossy(close)
                ));
            }
            p.pos += close.len();
            p.end_of_line()?;
            let (last, parent) = path.split_last().expect("a key has a part");
            let t = descend(&mut root, parent, line, true)?;
            if array {
                match t.get_mut(last) {
                    None => t.0.push((
                        last.clone(),
                        Item {
                            line,
                            value: Value::Array(vec![]),
                        },
                    )),
                    Some(Item {
                        value: Value::Array(v),
                        ..
                    }) if v.iter().all(|x| matches!(x.value, Value::Table(_))) => {}
                    Some(it) => {
                        return Err(Error {
                            line,
                            msg: format!(
                                "[[{}]]: {:?} is already {} (line {})",
                                path.join("."),
                                last,
                                it.value.type_name(),
                                it.line
                            ),
                        })
                    }
                }
                if let Some(Item {
                    value: Value::Array(v),
                    ..
                }) = t.get_mut(last)
                {
                    v.push(Item {
                        line,
                        value: Value::Table(Table::default()),
                    });
                }
                // Sub-tables of the new element may be defined again.
                defined.retain(|d| !d.starts_with(&path));
            } else {
                if defined.contains(&path) {
                    return Err(Error {
                        line,
                        msg: format!("table [{}] is defined twice", path.join(".")),
                    });
                }
                if let Some(it) = t.get(last) {
                    if !matches!(it.value, Value::Table(_)) {
                        return Err(Error {
                            line,
                            msg: format!(
                                "[{}]: {:?} is already {} (line {})",
                                path.join("."),
                                last,
                                it.value.type_name(),
                                it.line
                            ),
                        });
                    }
                }
                descend(t, std::slice::from_ref(last), line, false)?;
                defined.push(path.clone());
            }
            cur = path;
            continue;
        }
        let key = p.key()?;
        p.ws();
        if p.peek() != Some(b'=') {
            return p.err(format!("expected '=' after key {:?}", key.join(".")));
        }
        p.pos += 1;
        let item = p.value()?;
        p.end_of_line()?;
        let t = descend(&mut root, &cur, line, true)?;
        let (last, parent) = key.split_last().expect("a key has a part");
        let t = descend(t, parent, line, false)?;
        if let Some(old) = t.get(last) {
            return Err(Error {
                line,
                msg: format!(
                    "key {:?} is given twice (first on line {})",
                    key.join("."),
                    old.line
                ),
            });
        }
        t.0.push((last.clone(), item));
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn parses_the_subset() {
        let t = parse(
            "# top\ncache_dir = \"/var/cache/erofs\" # trailing\nwindow = 1_048_576\nneg = -3\n\
             hex = 0x10\non = true\n\"quoted key\" = 'lit\\eral'\na.b = \"dotted\"\n\
             esc = \"q\\\"\\\\\\n\\u00e9\"\n\
             [[source]]\nvolume = \"erofs,x\"\nblobs = [\n  \"meta\", # c\n  \"blob1\",\n]\n\
             [[source]]\ndir = \"/srv\"\n[prefetch]\nbandwidth = \"20M\"\nempty = []\n\
             [x.\"y z\"]\nk = 1\n",
        )
        .unwrap();
        assert_eq!(t.get("cache_dir").unwrap().value, s("/var/cache/erofs"));
        assert_eq!(t.get("cache_dir").unwrap().line, 2);
        assert_eq!(t.get("window").unwrap().value, Value::Int(1 << 20));
        assert_eq!(t.get("neg").unwrap().value, Value::Int(-3));
        assert_eq!(t.get("hex").unwrap().value, Value::Int(16));
        assert_eq!(t.get("on").unwrap().value, Value::Bool(true));
        assert_eq!(t.get("quoted key").unwrap().value, s("lit\\eral"));
        assert_eq!(t.get("esc").unwrap().value, s("q\"\\\né"));
        let Value::Table(a) = &t.get("a").unwrap().value else {
            panic!()
        };
        assert_eq!(a.get("b").unwrap().value, s("dotted"));
        let Value::Array(src) = &t.get("source").unwrap().value else {
            panic!()
        };
        assert_eq!(src.len(), 2);
        let Value::Table(s0) = &src[0].value else {
            panic!()
        };
        assert_eq!(s0.get("volume").unwrap().line, 11);
        let Value::Array(b) = &s0.get("blobs").unwrap().value else {
            panic!()
        };
        assert_eq!(b.iter().map(|i| i.line).collect::<Vec<_>>(), [13, 14]);
        assert_eq!(b[1].value, s("blob1"));
        let Value::Table(s1) = &src[1].value else {
            panic!()
        };
        assert_eq!(s1.get("dir").unwrap().value, s("/srv"));
        let Value::Table(pf) = &t.get("prefetch").unwrap().value else {
            panic!()
        };
        assert_eq!(pf.get("empty").unwrap().value, Value::Array(vec![]));
        let Value::Table(x) = &t.get("x").unwrap().value else {
            panic!()
        };
        assert!(matches!(x.get("y z").unwrap().value, Value::Table(_)));
        assert!(parse("").unwrap().0.is_empty());
        assert!(parse("a = 1\r\nb = 2\r\n").is_ok());
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            ("a = 1\nb = \n", 2, "expected a value"),
            ("a = 1\na = 2\n", 2, "given twice (first on line 1)"),
            ("\n\na = \"x\n", 3, "unterminated string"),
            ("a = {b = 1}\n", 1, "inline tables"),
            ("a = 1.5\n", 1, "bad value \"1.5\""),
            ("a = 1 2\n", 1, "expected the end of the line"),
            ("[t]\n[t]\n", 2, "defined twice"),
            ("a = 1\n[a]\n", 2, "already an integer"),
            ("a = [\"x\",\n\"y\"\n", 3, "unterminated array"),
            ("a = [\"x\" \"y\"]\n", 1, "expected ',' or ']'"),
            ("[t\n", 1, "to close the table header"),
            ("= 1\n", 1, "expected a key"),
            ("a 1\n", 1, "expected '='"),
            ("a = \"\\q\"\n", 1, "bad escape"),
            ("a = 0123\n", 1, "bad value"),
            ("a = yes\n", 1, "bad value"),
            ("a = \"\"\"x\"\"\"\n", 1, "multi-line"),
            ("x = 1\n[[x]]\n", 2, "already an integer"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e:?}");
            assert!(e.msg.contains(what), "{text:?}: {e:?}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let alphabet: Vec<char> = "ab =[].\"'#,\n\\u0x_+-{}1tfrue\té".chars().collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut t = String::new();
            for _ in 0..(next() % 40) {
                t.push(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
            if let Err(e) = parse(&t) {
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                assert!(
                    e.line >= 1 && e.line <= t.lines().count() + 1,
                    "{t:?}: {e:?}"
                );
            }
        }
        let n = N.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            n > 10_000 && n < 20_000,
            "{n} errors: some inputs parse, most do not"
        );
    }
}

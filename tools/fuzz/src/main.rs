// SPDX-License-Identifier: GPL-2.0

//! `erofs-fuzz`: a deterministic mutation fuzzer for the format layer on stable Rust.
//!
//! It needs no nightly compiler and no sanitizer: the targets are the same as the libFuzzer ones
//! (`erofs_fuzz::Target`), built with overflow checks and debug assertions. Inputs are mutations
//! of the seed corpus: bit flips and byte sets in the metadata, and field-aware edits (nids, block
//! addresses, sizes, name offsets, chunk indexes, device ids, xattr counts, ...) with values
//! chosen to hit bounds. The PRNG seed is fixed, so a run with an iteration bound is
//! reproducible. A panic is a finding: the input is saved and the run fails; an input that runs
//! longer than `--timeout` is saved as a hang and the run stops.
//!
//! ```text
//! erofs-fuzz [--target NAME]... [--iters N] [--seconds S] [--seed N] [--timeout S]
//!            [--crash-dir DIR] [CORPUS_DIR_OR_FILE]...
//! erofs-fuzz --replay [--target NAME]... FILE...
//! ```
//!
//! Without corpus arguments it uses `tools/fuzz/corpus`. `--iters` is per target (default
//! 10000, 0 = unbounded); `--seconds` is the total time, split evenly between the targets.

use erofs_fuzz::{field_map, FieldMap, Kind, Stats, Target, TARGETS};
use std::collections::{BTreeMap, HashMap};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// splitmix64: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// A seed image and where its fields are.
struct Seed {
    name: String,
    data: Vec<u8>,
    map: FieldMap,
    /// Original values of the fields of each kind: values worth copying elsewhere.
    pool: HashMap<Kind, Vec<u64>>,
}

fn read_le(d: &[u8], pos: usize, width: u8) -> Option<u64> {
    let b = d.get(pos..pos + usize::from(width))?;
    let mut a = [0u8; 8];
    a[..b.len()].copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

fn write_le(d: &mut [u8], pos: usize, width: u8, v: u64) {
    if let Some(b) = d.get_mut(pos..pos + usize::from(width)) {
        b.copy_from_slice(&v.to_le_bytes()[..usize::from(width)]);
    }
}

impl Seed {
    fn new(name: String, data: Vec<u8>) -> Seed {
        // Mapping mounts the seed: a target bug can show up here already (as a crash of the
        // seed itself, reported when the seeds run); mutate blindly then.
        IN_TARGET.with(|f| f.set(true));
        let map = panic::catch_unwind(|| field_map(&data)).unwrap_or_default();
        IN_TARGET.with(|f| f.set(false));
        let mut pool: HashMap<Kind, Vec<u64>> = HashMap::new();
        for f in &map.fields {
            if let Some(v) = read_le(&data, f.pos, f.width) {
                let e = pool.entry(f.kind).or_default();
                if !e.contains(&v) {
                    e.push(v);
                }
            }
        }
        Seed {
            name,
            data,
            map,
            pool,
        }
    }
}

/// A value for a field of `kind`, `width` bytes, currently `v`.
fn field_value(rng: &mut Rng, seed: &Seed, kind: Kind, width: u8, v: u64) -> u64 {
    let max = if width == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let blksz = seed.map.blksz;
    let len = seed.data.len() as u64;
    // Generic edits half of the time.
    if rng.below(2) == 0 {
        let small = 1 + rng.below(16);
        return match rng.below(8) {
            0 => 0,
            1 => max,
            2 => max - 1,
            3 => v ^ (1 << rng.below(8 * u64::from(width))),
            4 => v.wrapping_add(small),
            5 => v.wrapping_sub(small),
            6 => rng.next(),
            _ => match seed.pool.get(&kind) {
                Some(p) if !p.is_empty() => rng.pick(p),
                _ => v.wrapping_add(1),
            },
        } & max;
    }
    let choices: Vec<u64> = match kind {
        Kind::Nid => vec![
            v.wrapping_add(1),
            v.wrapping_add(2),
            v.wrapping_sub(1),
            len / 32,
            (len / 32).saturating_sub(1),
            1 << 58,
            1 << 59,
            u64::MAX >> 5,
            (len / 32).saturating_sub(2),
        ],
        Kind::BlkAddr => vec![
            len / blksz,
            (len / blksz).saturating_sub(1),
            v.wrapping_add(1),
            0xFFFF_FFFF,
            0xFFFF_FFFE,
            1 << 20,
            1 << 31,
        ],
        Kind::Size => vec![
            0,
            1,
            blksz - 1,
            blksz,
            blksz + 1,
            2 * blksz + 1,
            4095,
            4096,
            v.wrapping_mul(2),
            v.wrapping_add(blksz),
            v.wrapping_add(1),
            i64::MAX as u64,
            1 << 63,
            u64::from(u32::MAX),
            len,
            len + 1,
        ],
        Kind::NameOff => vec![
            0,
            12,
            24,
            v.wrapping_add(1),
            v.wrapping_sub(1),
            v.wrapping_add(12),
            v.wrapping_sub(12),
            blksz - 1,
            blksz,
            blksz + 1,
            13,
        ],
        Kind::DeviceId => vec![0, 1, 2, 3, 4, 255, 0x8000, 0xFFFF],
        Kind::Count => vec![
            0,
            1,
            2,
            3,
            v.wrapping_add(1),
            v.wrapping_sub(1),
            v.wrapping_mul(2),
            127,
            128,
            255,
        ],
        Kind::Bits => vec![
            v ^ 1,
            v ^ 2,
            v ^ 4,
            v ^ 8,
            v ^ 0x10,
            v ^ 0x20,
            v ^ 0x40,
            v ^ 0x80,
            8,
            9,
            10,
            11,
            12,
            13,
            0x1F,
            0x3F,
        ],
        Kind::Mode => {
            let perm = v & 0o7777;
            vec![
                0o040000 | perm,
                0o100000 | perm,
                0o120000 | perm,
                0o020000 | perm,
                0o060000 | perm,
                0o010000 | perm,
                0o140000 | perm,
                0o170000 | perm,
                perm,
            ]
        }
        Kind::Offset => vec![
            0,
            1,
            v.wrapping_add(1),
            v.wrapping_sub(1),
            8,
            32,
            len / 4,
            len / 128,
        ],
        Kind::XattrId => vec![
            0,
            v.wrapping_add(1),
            v.wrapping_sub(1),
            len / 4,
            1 << 30,
            v.wrapping_add(3),
        ],
        Kind::NameLen => vec![
            0,
            1,
            254,
            255,
            v.wrapping_add(1),
            v.wrapping_sub(1),
            v.wrapping_add(4),
        ],
        Kind::ValueSize => vec![
            0,
            1,
            0xFFFF,
            0xFFFC,
            v.wrapping_add(1),
            v.wrapping_sub(1),
            v.wrapping_add(4),
            4096,
        ],
        Kind::NameIndex => vec![0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0x81, 0xFF],
        Kind::FileType => vec![0, 1, 2, 3, 7, 8, 0xFF],
    };
    rng.pick(&choices) & max
}

const INTERESTING_BYTES: [u8; 10] = [0, 1, 0x7F, 0x80, 0xFF, 0xFE, 12, 32, 9, 0x20];

/// Applies 1 to 4 mutations of `seed` into `out`.
fn mutate(rng: &mut Rng, seed: &Seed, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seed.data);
    if out.is_empty() {
        out.push(0);
    }
    let n = 1 + rng.below(4);
    for _ in 0..n {
        let what = rng.below(32);
        if what < 20 && !seed.map.fields.is_empty() {
            let f = rng.pick(&seed.map.fields);
            if let Some(v) = read_le(out, f.pos, f.width) {
                let nv = field_value(rng, seed, f.kind, f.width, v);
                write_le(out, f.pos, f.width, nv);
            }
            continue;
        }
        // A position in the metadata, or anywhere.
        let pos = if what < 29 && !seed.map.meta.is_empty() {
            let (start, len) = rng.pick(&seed.map.meta);
            start + rng.below(len.max(1) as u64) as usize
        } else {
            rng.below(out.len() as u64) as usize
        };
        let Some(b) = out.get_mut(pos) else {
            continue;
        };
        match what {
            0..=25 => *b ^= 1 << rng.below(8),
            26..=29 => *b = rng.pick(&INTERESTING_BYTES),
            30 => *b = rng.next() as u8,
            _ => {
                // Truncate: the device ends early.
                let cut = 1024 + rng.below(out.len().saturating_sub(1024).max(1) as u64) as usize;
                out.truncate(cut);
            }
        }
    }
}

fn fnv64(d: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in d {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The input being run, for the watchdog: (target, start, bytes).
type Current = Arc<Mutex<Option<(Target, Instant, Vec<u8>)>>>;

fn save(dir: &Path, prefix: &str, target: Target, data: &[u8]) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let p = dir.join(format!(
        "{prefix}{}-{:016x}.img",
        target.name(),
        fnv64(data)
    ));
    if let Err(e) = std::fs::write(&p, data) {
        eprintln!("erofs-fuzz: cannot save {}: {e}", p.display());
    }
    p
}

fn watchdog(current: Current, timeout: Duration, crash_dir: PathBuf) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250));
        let guard = current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((target, start, data)) = guard.as_ref() {
            if start.elapsed() > timeout {
                let p = save(&crash_dir, "hang-", *target, data);
                eprintln!(
                    "erofs-fuzz: HANG: target {} ran longer than {:?} on an input, saved as {}",
                    target.name(),
                    timeout,
                    p.display()
                );
                std::process::exit(1);
            }
        }
    });
}

static LAST_PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

thread_local! {
    /// Whether a target is running on this thread (its panics are findings, reported later).
    static IN_TARGET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Records the panics of targets instead of printing them; others (bugs of the driver) print.
fn quiet_panics() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !IN_TARGET.with(|f| f.get()) {
            default(info);
            return;
        }
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info.to_string();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some((loc, msg));
    }));
}

struct Args {
    targets: Vec<Target>,
    iters: u64,
    seconds: Option<f64>,
    seed: u64,
    timeout: u64,
    crash_dir: PathBuf,
    replay: bool,
    paths: Vec<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: erofs-fuzz [--target NAME]... [--iters N] [--seconds S] [--seed N] [--timeout S] \
         [--crash-dir DIR] [CORPUS_DIR_OR_FILE]...\n       erofs-fuzz --replay [--target NAME]... FILE...\n\
         targets: {}",
        TARGETS.map(|t| t.name()).join(", ")
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        targets: Vec::new(),
        iters: 10000,
        seconds: None,
        seed: 1,
        timeout: 10,
        crash_dir: here.join("../../build/fuzz/crashes"),
        replay: false,
        paths: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--target" => {
                let v = val();
                a.targets
                    .push(Target::from_name(&v).unwrap_or_else(|| usage()));
            }
            "--iters" => a.iters = val().parse().unwrap_or_else(|_| usage()),
            "--seconds" => a.seconds = Some(val().parse().unwrap_or_else(|_| usage())),
            "--seed" => a.seed = val().parse().unwrap_or_else(|_| usage()),
            "--timeout" => a.timeout = val().parse().unwrap_or_else(|_| usage()),
            "--crash-dir" => a.crash_dir = PathBuf::from(val()),
            "--replay" => a.replay = true,
            "-h" | "--help" => usage(),
            s if s.starts_with('-') => usage(),
            _ => a.paths.push(PathBuf::from(arg)),
        }
    }
    if a.targets.is_empty() {
        a.targets = TARGETS.to_vec();
    }
    if a.paths.is_empty() && !a.replay {
        a.paths.push(here.join("corpus"));
    }
    a
}

fn load(paths: &[PathBuf]) -> Vec<(String, Vec<u8>)> {
    let mut files = BTreeMap::new();
    for p in paths {
        if p.is_dir() {
            let Ok(rd) = std::fs::read_dir(p) else {
                eprintln!("erofs-fuzz: cannot read {}", p.display());
                std::process::exit(2);
            };
            for e in rd.flatten() {
                if e.path().is_file() {
                    files.insert(e.path(), ());
                }
            }
        } else {
            files.insert(p.clone(), ());
        }
    }
    files
        .into_keys()
        .map(|p| {
            let d = std::fs::read(&p).unwrap_or_else(|e| {
                eprintln!("erofs-fuzz: cannot read {}: {e}", p.display());
                std::process::exit(2);
            });
            (p.display().to_string(), d)
        })
        .collect()
}

fn fmt_stats(s: &Stats) -> String {
    format!(
        "mounted {}, inodes {}, dir blocks {}, dirents {}, xattrs {} ({} shared, {} long prefix), \
         maps {} ({} chunk, {} tail), devices {}, compressed inodes {}, zmaps {} ({} inline, \
         {} big), extents decoded {}, lz4 blocks {}, format errors {}",
        s.mounts,
        s.inodes,
        s.dir_blocks,
        s.dirents,
        s.xattrs,
        s.shared_xattrs,
        s.long_prefixes,
        s.maps,
        s.chunk_maps,
        s.tail_maps,
        s.devices,
        s.zinodes,
        s.zmaps,
        s.zmeta,
        s.zbig,
        s.zdecoded,
        s.lz4_blocks,
        s.errors
    )
}

fn replay(a: &Args) -> ExitCode {
    for (name, data) in load(&a.paths) {
        for &t in &a.targets {
            let st = t.run(&data);
            println!("{name}: {}: ok: {}", t.name(), fmt_stats(&st));
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let a = parse_args();
    if a.replay {
        return replay(&a);
    }
    quiet_panics();
    let seeds: Vec<Seed> = load(&a.paths)
        .into_iter()
        .map(|(n, d)| Seed::new(n, d))
        .collect();
    if seeds.is_empty() {
        eprintln!("erofs-fuzz: no seeds");
        return ExitCode::from(2);
    }
    for s in &seeds {
        println!(
            "seed {}: {} bytes, {} fields, {} metadata ranges",
            s.name,
            s.data.len(),
            s.map.fields.len(),
            s.map.meta.len()
        );
    }
    let current: Current = Arc::new(Mutex::new(None));
    watchdog(
        current.clone(),
        Duration::from_secs(a.timeout),
        a.crash_dir.clone(),
    );
    let per_target = a
        .seconds
        .map(|s| Duration::from_secs_f64(s / a.targets.len() as f64));
    let mut rng = Rng(a.seed);
    let mut crashes: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    let mut total_execs = 0u64;
    let mut buf = Vec::new();
    for &t in &a.targets {
        let start = Instant::now();
        let mut st = Stats::default();
        let mut execs = 0u64;
        let mut run = |input: &[u8], st: &mut Stats| {
            *current.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((t, Instant::now(), input.to_vec()));
            IN_TARGET.with(|f| f.set(true));
            let r = panic::catch_unwind(AssertUnwindSafe(|| t.run(input)));
            IN_TARGET.with(|f| f.set(false));
            *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
            match r {
                Ok(s) => st.add(&s),
                Err(_) => {
                    let (loc, msg) = LAST_PANIC
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                        .unwrap_or_default();
                    let key = format!("{}:{loc}", t.name());
                    if let std::collections::btree_map::Entry::Vacant(e) = crashes.entry(key) {
                        let p = save(&a.crash_dir, "crash-", t, input);
                        println!(
                            "CRASH in {}: {msg}\n  input saved as {}",
                            t.name(),
                            p.display()
                        );
                        e.insert((msg, p));
                    }
                }
            }
        };
        // The seeds as they are, then mutants.
        for s in &seeds {
            run(&s.data, &mut st);
            execs += 1;
        }
        while a.iters == 0 || execs < a.iters + seeds.len() as u64 {
            if per_target.is_some_and(|d| start.elapsed() >= d) {
                break;
            }
            let s = &seeds[rng.below(seeds.len() as u64) as usize];
            mutate(&mut rng, s, &mut buf);
            run(&buf, &mut st);
            execs += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{}: {execs} inputs in {secs:.1} s ({:.0}/s): {}",
            t.name(),
            execs as f64 / secs.max(1e-9),
            fmt_stats(&st)
        );
        total_execs += execs;
    }
    println!(
        "erofs-fuzz: {total_execs} inputs, {} distinct crash(es) (seed {})",
        crashes.len(),
        a.seed
    );
    for (key, (msg, p)) in &crashes {
        println!("  {key}: {}\n    {}", msg.replace('\n', " "), p.display());
    }
    if crashes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

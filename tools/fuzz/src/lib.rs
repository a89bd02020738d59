// SPDX-License-Identifier: GPL-2.0

//! Fuzzing of erofs_rs's on-disk format layer (`rust/format`, compiled here exactly as in the
//! kernel module).
//!
//! [`Target`]s (one per parser) are run by the cargo-fuzz/libFuzzer binaries in `fuzz/` and by
//! the stable-Rust driver `erofs-fuzz` (`src/main.rs`), which mutates the seed corpus with the
//! help of [`field_map`]. See Documentation/testing.md, "Fuzzing".

#![allow(dead_code)]

#[path = "../../../rust/format/mod.rs"]
mod format;

mod fields;
mod harness;

pub use fields::{field_map, Field, FieldMap, Kind};
pub use harness::{Stats, Target, TARGETS};

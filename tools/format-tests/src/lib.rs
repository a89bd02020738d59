// SPDX-License-Identifier: GPL-2.0

//! User-space test harness for the kernel module's on-disk format layer.
//!
//! The format code is compiled here exactly as in the kernel module (`core` only).

#![allow(dead_code)]

#[path = "../../../rust/format/mod.rs"]
mod format;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ztests;

/// The fuzz targets of tools/fuzz, compiled here against the same format code.
#[cfg(test)]
#[path = "../../fuzz/src/harness.rs"]
mod harness;

#[cfg(test)]
mod fuzz_regressions;

// SPDX-License-Identifier: GPL-2.0
//! libFuzzer target `superblock`: see erofs_fuzz::Target::Superblock.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    erofs_fuzz::Target::Superblock.run(data);
});

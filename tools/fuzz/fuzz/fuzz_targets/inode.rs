// SPDX-License-Identifier: GPL-2.0
//! libFuzzer target `inode`: see erofs_fuzz::Target::Inode.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    erofs_fuzz::Target::Inode.run(data);
});

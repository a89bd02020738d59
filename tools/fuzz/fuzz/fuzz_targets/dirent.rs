// SPDX-License-Identifier: GPL-2.0
//! libFuzzer target `dirent`: see erofs_fuzz::Target::Dirent.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    erofs_fuzz::Target::Dirent.run(data);
});

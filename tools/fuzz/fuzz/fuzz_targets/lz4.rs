// SPDX-License-Identifier: GPL-2.0
//! libFuzzer target `lz4`: see erofs_fuzz::Target::Lz4.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    erofs_fuzz::Target::Lz4.run(data);
});

// SPDX-License-Identifier: GPL-2.0
//! libFuzzer target `zmap`: see erofs_fuzz::Target::Zmap.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    erofs_fuzz::Target::Zmap.run(data);
});

// SPDX-License-Identifier: GPL-2.0
//! libFuzzer target `xattr`: see erofs_fuzz::Target::Xattr.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    erofs_fuzz::Target::Xattr.run(data);
});

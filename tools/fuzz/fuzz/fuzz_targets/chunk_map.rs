// SPDX-License-Identifier: GPL-2.0
//! libFuzzer target `chunk_map`: see erofs_fuzz::Target::ChunkMap.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    erofs_fuzz::Target::ChunkMap.run(data);
});

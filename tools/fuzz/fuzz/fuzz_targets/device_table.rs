// SPDX-License-Identifier: GPL-2.0
//! libFuzzer target `device_table`: see erofs_fuzz::Target::DeviceTable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    erofs_fuzz::Target::DeviceTable.run(data);
});

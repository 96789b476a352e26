//! One value through one converter, with the column type, width, precision, scale, key
//! flag and encoding taken from the first three bytes. See `check_value` in `src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cusip_loader_fuzz::check_value(data));

//! Arbitrary bytes as a PIP file: the record reader, the field split and every field's
//! encoder, for each of the three layouts. See `check_file` in `src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cusip_loader_fuzz::check_file(data));

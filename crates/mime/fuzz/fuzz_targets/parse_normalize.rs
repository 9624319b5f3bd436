//! Fuzz parse + normalize + fingerprint + Graph conversion + repair on arbitrary bytes.
//! Run with `cargo +nightly fuzz run parse_normalize` from `crates/mime`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    o365_migrate_mime::fuzzing::parse_normalize(data);
});

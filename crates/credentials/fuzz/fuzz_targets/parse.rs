//! Fuzz target: any bytes (first byte picks the options) → a report with located problems,
//! never a panic. Run with `cargo +nightly fuzz run parse` from `crates/credentials`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    o365_migrate_credentials::fuzzing::fuzz_parse(data);
});

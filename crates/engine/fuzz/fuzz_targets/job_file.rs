//! Fuzz target: any bytes as a job file → a job or a located error, never a panic.
//! Run with `cargo +nightly fuzz run job_file` from `crates/engine`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    o365_migrate_engine::fuzzing::parse_job(data);
});

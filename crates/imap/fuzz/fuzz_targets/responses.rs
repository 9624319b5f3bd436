//! Fuzzes the response path: framing, literal handling, imap-proto parsing and conversion.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = o365_migrate_imap::core::fuzz_responses(data);
});

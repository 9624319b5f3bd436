//! The body of the `parse` fuzz target, callable from ordinary tests (cargo-fuzz needs nightly).

use crate::{HeaderMode, ReadOptions, parse_bytes};

/// Reads `data` as a credentials file with options chosen by its first byte, and checks the
/// invariants every input must keep: no panic, options accepted, every problem located on a
/// real line and column, counts consistent, JSON and text rendering succeed.
///
/// Panics when an invariant is broken (that is what the fuzzer looks for).
pub fn fuzz_parse(data: &[u8]) {
    let (selector, body) = match data.split_first() {
        Some((s, rest)) => (*s, rest),
        None => (0, data),
    };
    let mut options = ReadOptions::default();
    if let Some(d) = match selector & 0b111 {
        1 => Some(','),
        2 => Some(';'),
        3 => Some('\t'),
        4 => Some('|'),
        _ => None,
    } {
        options = options.delimiter(d);
    }
    if selector & 0b1000 != 0 {
        options.passwords_required = false;
    }
    if selector & 0b1_0000 != 0 {
        options.mapping = "login,password,target".parse().ok();
        options.header = if selector & 0b10_0000 != 0 {
            HeaderMode::Absent
        } else {
            HeaderMode::Auto
        };
    }
    let mut body = body;
    if selector & 0b1000_0000 != 0
        && let [login, password, rest @ ..] = body
    {
        // Arbitrary column positions (including far beyond the data) from the next two bytes.
        options.mapping = Some(
            crate::ColumnMapping::new()
                .with(
                    crate::Field::Login,
                    crate::ColumnRef::Index(usize::from(*login)),
                )
                .with(
                    crate::Field::Password,
                    crate::ColumnRef::Index(usize::from(*password)),
                ),
        );
        body = rest;
    }
    if selector & 0b100_0000 != 0 {
        options.row_limit = Some(3);
    }
    let parsed = match parse_bytes(body, "fuzz.csv", &options) {
        Ok(p) => p,
        Err(e) => panic!("valid options were refused: {e}"),
    };
    let report = parsed.report();
    let lines = 2 + body.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
    for p in &report.problems {
        assert!(
            p.location.line >= 1 && p.location.line <= lines,
            "bad line in {p}"
        );
        assert!(p.location.column >= 1, "bad column in {p}");
        assert!(!p.hint.is_empty(), "problem without hint: {p}");
    }
    assert_eq!(report.errors + report.warnings, report.problems.len());
    assert!(parsed.records().len() <= report.rows);
    assert_eq!(parsed.records().len(), report.records.len());
    let json = report.to_json();
    assert!(
        serde_json::from_str::<serde_json::Value>(&json).is_ok(),
        "report JSON does not parse"
    );
    let _ = report.render_human(10);
    let _ = parsed.into_credentials();
}

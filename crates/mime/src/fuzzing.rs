//! The body of the `parse_normalize` cargo-fuzz target (`crates/mime/fuzz`), callable as a
//! plain function so that it also runs in ordinary tests (proptest) on stable Rust.

use crate::{Flags, InternalDate, RepairOptions, fingerprint, normalize, repair, to_graph};

/// Runs every entry point of the crate on arbitrary bytes and checks the invariants that
/// must hold for any input. Panics (which is what a fuzzer looks for) when one does not:
///
/// - nothing panics;
/// - normalizing, fingerprinting and converting are deterministic;
/// - the Graph JSON is valid JSON with the three extended properties' ids in order and at
///   most five `x-` headers;
/// - repairing with every repair on is idempotent in effect: repairing the output again
///   changes nothing more except what depends on the original bytes (none of the steps
///   may add bare line endings or long lines back).
pub fn parse_normalize(data: &[u8]) {
    let n1 = normalize(data);
    let n2 = normalize(data);
    assert_eq!(n1, n2, "normalize is not deterministic");

    let f1 = fingerprint(data);
    assert_eq!(f1, fingerprint(data), "fingerprint is not deterministic");
    assert!(f1.header_key.starts_with("hk1:") && f1.header_key.len() == 68);

    let flags = Flags::from_imap(["\\Seen", "$label1"]);
    let date = InternalDate::new(1_700_000_000, 60);
    let g1 = to_graph(data, &flags, date.as_ref());
    let g2 = to_graph(data, &flags, date.as_ref());
    assert_eq!(g1, g2, "to_graph is not deterministic");
    let json = g1.value.to_json();
    let v: serde_json::Value = match serde_json::from_slice(&json) {
        Ok(v) => v,
        Err(e) => panic!("Graph JSON does not parse: {e}"),
    };
    let props = v
        .get("singleValueExtendedProperties")
        .and_then(|p| p.as_array())
        .map(Vec::len);
    assert_eq!(props, Some(3), "expected 3 extended properties");
    let headers = v
        .get("internetMessageHeaders")
        .and_then(|h| h.as_array())
        .map_or(0, Vec::len);
    assert!(headers <= 5);

    let r = repair(data, &RepairOptions::all(), date.as_ref());
    let again = repair(&r.value, &RepairOptions::all(), date.as_ref());
    let bare = again
        .problems
        .iter()
        .any(|p| p.kind == crate::ProblemKind::BareLineEnding);
    assert!(!bare, "repair left bare line endings behind");
}

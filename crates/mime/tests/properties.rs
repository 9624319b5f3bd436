//! Property tests: arbitrary bytes never panic, everything is deterministic, the
//! fingerprint is stable.

use o365_migrate_mime::{Flags, fingerprint, fuzzing, normalize, to_graph};
use proptest::prelude::*;

/// Message-ish bytes: a header block built from arbitrary pieces plus an arbitrary body,
/// so the generator reaches deep into the parser instead of stopping at "no headers".
fn messageish() -> impl Strategy<Value = Vec<u8>> {
    let header_names = prop::sample::select(vec![
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "MIME-Version",
        "X-Priority",
        "Received",
        "Reply-To",
        "Importance",
        "X-A",
    ]);
    let value = prop::collection::vec(any::<u8>(), 0..60);
    let header = (header_names, value);
    let boundary_body = prop::collection::vec(
        prop_oneof![
            Just(b"--b\r\n".to_vec()),
            Just(b"--b--\r\n".to_vec()),
            Just(b"Content-Type: text/html; charset=iso-8859-1\r\n\r\n".to_vec()),
            Just(b"Content-Transfer-Encoding: base64\r\n\r\nSGVsbG8=\r\n".to_vec()),
            Just(b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\n".to_vec()),
            prop::collection::vec(any::<u8>(), 0..80),
        ],
        0..12,
    );
    (prop::collection::vec(header, 0..12), boundary_body).prop_map(|(headers, body)| {
        let mut out = Vec::new();
        out.extend_from_slice(b"Content-Type: multipart/mixed; boundary=b\r\n");
        for (n, v) in headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        for chunk in body {
            out.extend_from_slice(&chunk);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::parse_normalize(&data);
    }

    #[test]
    fn messageish_bytes_never_panic_and_are_deterministic(data in messageish()) {
        fuzzing::parse_normalize(&data);
    }

    #[test]
    fn fingerprint_ignores_body_for_header_key_and_tracks_content(
        subject in "[ -~]{0,40}",
        body1 in "[ -~\r\n]{0,200}",
        body2 in "[ -~\r\n]{0,200}",
    ) {
        let a = format!("From: a@b\r\nSubject: {subject}\r\nDate: Mon, 6 May 2024 09:15:00 +0200\r\n\r\n{body1}");
        let b = format!("From: a@b\r\nSubject: {subject}\r\nDate: Mon, 6 May 2024 09:15:00 +0200\r\n\r\n{body2}");
        let fa = fingerprint(a.as_bytes());
        let fb = fingerprint(b.as_bytes());
        prop_assert_eq!(&fa.header_key, &fb.header_key);
        prop_assert_eq!(fa.content_sha256 == fb.content_sha256, body1 == body2);
        prop_assert_eq!(fa, fingerprint(a.as_bytes()));
    }

    #[test]
    fn header_key_is_insensitive_to_folding(subject in "[a-z]{1,10}( [a-z]{1,10}){0,5}") {
        let folded = subject.replace(' ', "\r\n ");
        let a = format!("Subject: {subject}\r\n\r\nx");
        let b = format!("Subject: {folded}\r\n\r\nx");
        prop_assert_eq!(fingerprint(a.as_bytes()).header_key, fingerprint(b.as_bytes()).header_key);
    }

    #[test]
    fn normalized_subject_round_trips_printable_ascii(subject in "[!-~]([ -~]{0,60}[!-~])?") {
        prop_assume!(!subject.contains("=?"));
        let raw = format!("Subject: {subject}\r\nMessage-ID: <x@y>\r\n\r\nbody");
        let n = normalize(raw.as_bytes());
        prop_assert_eq!(n.value.subject.as_deref(), Some(subject.as_str()));
        let g = to_graph(raw.as_bytes(), &Flags::default(), None);
        prop_assert_eq!(g.value.subject(), subject.as_str());
    }
}

/// Pinned values of the documented identity algorithm: if these change, every stored
/// dedupe key in the wild changes, so the algorithm version (`hk1`) must be bumped.
#[test]
fn fingerprint_is_stable_across_versions() {
    let raw = b"Received: from a by b; Mon, 6 May 2024 09:00:00 +0000\r\n\
From: Alice <alice@example.com>\r\nSubject: Hello\r\n world\r\n\
Date: Mon, 6 May 2024 09:15:00 +0200\r\n\r\nBody\r\n";
    let id = fingerprint(raw);
    assert_eq!(id.message_id, None);
    // Computed independently (Python hashlib) from the documented preimage:
    // "date:Mon, 6 May 2024 09:15:00 +0200\nfrom:Alice <alice@example.com>\n
    //  subject:Hello world\nreceived:from a by b; Mon, 6 May 2024 09:00:00 +0000\n"
    assert_eq!(
        id.header_key,
        "hk1:0a5a251d57323ce4e18a004d0f178362f4b49cc6c6b72bc2389150846ee0e864"
    );
    use sha2::Digest;
    assert_eq!(id.content_sha256_hex(), hex(&sha2::Sha256::digest(raw)));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

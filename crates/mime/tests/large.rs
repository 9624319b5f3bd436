//! Large messages, built at test time: a 25 MB attachment, many mid-size attachments that
//! overflow the 4 MB request budget, and an attachment over the upload-session limit.

use base64::Engine as _;
use o365_migrate_mime::{
    Flags, GraphOptions, ProblemKind, Severity, fingerprint, normalize, to_graph, to_graph_with,
};

fn wrap76(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 76 * 2 + 2);
    for chunk in s.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push_str("\r\n");
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift) so the data does not compress to nothing.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn message_with(attachments: &[(String, Vec<u8>)]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut m = String::from(
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n\
Date: Mon, 6 May 2024 09:15:00 +0200\r\nMessage-ID: <big@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee files\r\n",
    );
    for (name, bytes) in attachments {
        m.push_str(&format!(
            "--B\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        m.push_str(&wrap76(&b64.encode(bytes)));
    }
    m.push_str("--B--\r\n");
    m.into_bytes()
}

#[test]
fn attachment_of_25_mb_goes_to_an_upload_session() {
    let payload = data(25 * 1024 * 1024, 7);
    let raw = message_with(&[
        ("big.bin".into(), payload.clone()),
        ("small.txt".into(), b"hi".to_vec()),
    ]);
    let n = normalize(&raw);
    assert_eq!(n.value.attachments.len(), 2);
    assert_eq!(n.value.attachments[0].size, payload.len());

    let g = to_graph(&raw, &Flags::default(), None);
    let large = g.value.large_attachments();
    assert_eq!(large.len(), 1);
    assert_eq!(large[0].name, "big.bin");
    assert!(large[0].needs_upload_session());
    assert_eq!(&large[0].data[..], &payload[..], "bytes survive decoding");
    assert_eq!(g.value.inline_attachments().len(), 1);
    assert_eq!(g.value.inline_attachments()[0].name, "small.txt");
    let json = g.value.to_json();
    assert!(json.len() < 4_000_000);
    assert!(!g.problems.iter().any(|p| p.severity == Severity::Lost));
    let id = fingerprint(&raw);
    assert_eq!(id, fingerprint(&raw));
}

#[test]
fn request_budget_spills_small_attachments() {
    // Eight 900 KB files: each fits under 3 MB, but not all fit in one 4 MB request.
    let files: Vec<_> = (0..8)
        .map(|i| (format!("f{i}.bin"), data(900 * 1024, i + 1)))
        .collect();
    let raw = message_with(&files);
    let g = to_graph(&raw, &Flags::default(), None).value;
    let inline = g.inline_attachments().len();
    let large = g.large_attachments().len();
    assert_eq!(inline + large, 8);
    assert!(inline >= 3 && large >= 1, "inline {inline}, large {large}");
    assert!(g.to_json().len() <= 4_000_000);
    // Spilled ones are small: the writer POSTs them one by one.
    for a in g.large_attachments() {
        assert!(!a.needs_upload_session());
        let fa = a.to_file_attachment();
        let back = base64::engine::general_purpose::STANDARD
            .decode(&fa.content_bytes)
            .unwrap();
        assert_eq!(back, &a.data[..]);
    }
    // Order of all attachments is the MIME order.
    let mut names: Vec<_> = g
        .inline_attachments()
        .iter()
        .map(|a| a.name.clone())
        .collect();
    names.extend(g.large_attachments().iter().map(|a| a.name.clone()));
    names.sort();
    assert_eq!(
        names,
        (0..8).map(|i| format!("f{i}.bin")).collect::<Vec<_>>()
    );
}

#[test]
fn attachment_over_the_upload_limit_is_reported_lost() {
    let raw = message_with(&[("huge.bin".into(), data(200_000, 3))]);
    let mut opts = GraphOptions::default();
    opts.upload_session_limit = 100_000;
    let g = to_graph_with(&raw, &Flags::default(), None, &opts);
    assert!(g.value.large_attachments().is_empty());
    assert!(g.value.inline_attachments().is_empty());
    let p = g
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::AttachmentTooLarge)
        .expect("reported");
    assert_eq!(p.severity, Severity::Lost);
    assert!(p.detail.contains("huge.bin"));
}

#[test]
fn oversized_body_is_reported() {
    let body = "x".repeat(5_000_000);
    let raw = format!("Subject: long\r\nMessage-ID: <l@x>\r\n\r\n{body}");
    let g = to_graph(raw.as_bytes(), &Flags::default(), None);
    assert!(
        g.problems
            .iter()
            .any(|p| p.kind == ProblemKind::RequestTooLarge)
    );
}

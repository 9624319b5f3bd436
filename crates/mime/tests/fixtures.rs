//! Fixture-driven tests: every `fixtures/mime/*.eml` has two insta snapshots beside it,
//! `<name>.normalized.snap` (normalized view + problems + identity) and `<name>.graph.snap`
//! (Graph request JSON + large attachments + problems).

use std::path::{Path, PathBuf};

use o365_migrate_mime::{Flags, InternalDate, fingerprint, normalize, to_graph};
use serde_json::json;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mime")
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/mime exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// IMAP state used for a fixture: drafts are `\Draft`, `flagged-*` are flagged with
/// keywords, everything else is `\Seen`.
fn flags_for(name: &str) -> Flags {
    if name.starts_with("draft") {
        Flags::from_imap(["\\Draft"])
    } else if name.starts_with("flagged") {
        Flags::from_imap([
            "\\Flagged",
            "$label1",
            "Project X",
            "$Forwarded",
            "\\Answered",
        ])
    } else if name.starts_with("importance-low") {
        Flags::default()
    } else {
        Flags::from_imap(["\\Seen"])
    }
}

fn internal_date() -> InternalDate {
    InternalDate::parse_imap("06-May-2024 09:20:00 +0200").unwrap()
}

#[test]
fn at_least_sixty_fixtures() {
    assert!(fixtures().len() >= 60, "only {} fixtures", fixtures().len());
}

#[test]
fn snapshots() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(fixtures_dir());
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for (name, raw) in fixtures() {
            let n = normalize(&raw);
            let id = fingerprint(&raw);
            insta::assert_json_snapshot!(
                format!("{name}.normalized"),
                json!({
                    "identity": {
                        "message_id": id.message_id,
                        "header_key": id.header_key,
                        "content_sha256": id.content_sha256_hex(),
                        "dedupe_key": id.dedupe_key(),
                    },
                    "normalized": n.value,
                    "problems": n.problems,
                })
            );
            let g = to_graph(&raw, &flags_for(&name), Some(&internal_date()));
            let large: Vec<_> = g
                .value
                .large_attachments()
                .iter()
                .map(|a| json!({"name": a.name, "contentType": a.content_type, "size": a.size()}))
                .collect();
            insta::assert_json_snapshot!(
                format!("{name}.graph"),
                json!({
                    "request": g.value,
                    "is_draft": g.value.is_draft(),
                    "large_attachments": large,
                    "problems": g.problems,
                })
            );
        }
    });
}

#[test]
fn graph_invariants_hold_for_every_fixture() {
    for (name, raw) in fixtures() {
        let flags = flags_for(&name);
        let a = to_graph(&raw, &flags, Some(&internal_date()));
        let b = to_graph(&raw, &flags, Some(&internal_date()));
        assert_eq!(a, b, "{name}: conversion is not deterministic");
        let json = a.value.to_json();
        assert!(json.len() < 4_000_000, "{name}: request too large");
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let headers = v["internetMessageHeaders"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(headers.len() <= 5, "{name}");
        for h in &headers {
            let n = h["name"].as_str().unwrap().to_ascii_lowercase();
            assert!(
                n.starts_with("x-") && !n.starts_with("x-ms-exchange-"),
                "{name}: {n}"
            );
        }
        let props = v["singleValueExtendedProperties"].as_array().unwrap();
        assert_eq!(props[0]["id"], "Integer 0x0E07", "{name}");
        let bits: u32 = props[0]["value"].as_str().unwrap().parse().unwrap();
        assert_eq!(bits & 0x8 != 0, flags.draft, "{name}: draft bit");
        assert_eq!(bits & 0x1 != 0, flags.seen, "{name}: read bit");
        assert_eq!(v["isRead"], flags.seen, "{name}");
        for p in props {
            if p["id"].as_str().unwrap().starts_with("SystemTime") {
                let t = p["value"].as_str().unwrap();
                assert!(t.len() == 20 && t.ends_with('Z'), "{name}: {t}");
            }
        }
        assert!(a.value.internet_message_id().is_some(), "{name}");
        for att in v["attachments"].as_array().cloned().unwrap_or_default() {
            assert_eq!(att["@odata.type"], "#microsoft.graph.fileAttachment");
        }
        assert_eq!(fingerprint(&raw), fingerprint(&raw), "{name}");
    }
}

#[test]
fn specific_fixture_expectations() {
    let get = |n: &str| std::fs::read(fixtures_dir().join(format!("{n}.eml"))).unwrap();
    let flags = Flags::from_imap(["\\Seen"]);

    // Inline image goes inline with its Content-ID; body is HTML.
    let g = to_graph(&get("multipart-related-inline-image"), &flags, None).value;
    let v = serde_json::to_value(&g).unwrap();
    assert_eq!(v["body"]["contentType"], "html");
    assert_eq!(v["attachments"][0]["isInline"], true);
    assert_eq!(v["attachments"][0]["contentId"], "logo@example.com");

    // RFC 2231 continuation file name is decoded.
    let n = normalize(&get("rfc2231-filename-continuations")).value;
    assert_eq!(n.attachments[0].name, "Quartalsbericht für Q1 – 2024.pdf");

    // Charsets decode.
    let n = normalize(&get("charset-koi8-r")).value;
    assert_eq!(n.text_body.as_deref().map(str::trim), Some("Привет, мир!"));
    let n = normalize(&get("charset-shift-jis")).value;
    assert_eq!(
        n.text_body.as_deref().map(str::trim),
        Some("こんにちは、世界。")
    );
    let n = normalize(&get("charset-iso-2022-jp")).value;
    assert_eq!(n.subject.as_deref(), Some("日本語"));

    // Latin-1 8-bit headers become the right characters in Graph.
    let g = to_graph(&get("eight-bit-headers-latin1"), &flags, None).value;
    assert_eq!(g.subject(), "Grüße aus Köln");

    // S/MIME signature is kept and reported.
    let g = to_graph(&get("smime-signed"), &flags, None);
    assert!(
        g.value
            .inline_attachments()
            .iter()
            .any(|a| a.name == "smime.p7s")
    );
    assert!(
        g.problems
            .iter()
            .any(|p| p.kind == o365_migrate_mime::ProblemKind::Signature)
    );

    // Nested message kept whole as .eml.
    let n = normalize(&get("nested-rfc822")).value;
    assert_eq!(n.attachments[0].name, "Original question.eml");
    assert_eq!(n.attachments[0].content_type, "message/rfc822");
    let nested = normalize(&get("nested-rfc822")).value;
    assert_eq!(
        nested.attachments[0].kind,
        o365_migrate_mime::AttachmentKind::Message
    );

    // Missing Message-ID: deterministic synthesised id.
    let raw = get("no-message-id");
    let g = to_graph(&raw, &flags, None).value;
    assert!(g.message_id_synthesized());
    assert_eq!(
        g.internet_message_id(),
        Some(o365_migrate_mime::synthesized_message_id(&raw).as_str())
    );

    // Draft stays a draft.
    let g = to_graph(&get("draft-message"), &Flags::from_imap(["\\Draft"]), None).value;
    assert!(g.is_draft());
    assert_eq!(g.extended_properties()[0].value, "8");

    // Importance and read receipt.
    let v = serde_json::to_value(to_graph(&get("importance-high-x-priority"), &flags, None).value)
        .unwrap();
    assert_eq!(v["importance"], "high");
    let v = serde_json::to_value(to_graph(&get("read-receipt"), &flags, None).value).unwrap();
    assert_eq!(v["isReadReceiptRequested"], true);
}

#[test]
fn repairs_make_every_fixture_transport_clean() {
    use o365_migrate_mime::{EXCHANGE_IMAP_MAX_LINE, RepairOptions, repair};
    let date = internal_date();
    for (name, raw) in fixtures() {
        // Off by default: nothing changes.
        let none = repair(&raw, &RepairOptions::none(), Some(&date));
        assert_eq!(
            &none.value[..],
            &raw[..],
            "{name}: default repairs changed bytes"
        );
        assert!(none.problems.is_empty(), "{name}");

        let r = repair(&raw, &RepairOptions::all(), Some(&date));
        let out = &r.value[..];
        assert_eq!(
            r.value,
            repair(&raw, &RepairOptions::all(), Some(&date)).value,
            "{name}: not deterministic"
        );
        // Only CRLF line endings.
        for (i, &b) in out.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && out[i - 1] == b'\r', "{name}: bare LF at {i}");
            }
            if b == b'\r' {
                assert_eq!(out.get(i + 1), Some(&b'\n'), "{name}: bare CR at {i}");
            }
        }
        // No over-long line.
        for line in out.split(|&b| b == b'\n') {
            assert!(
                line.len() <= EXCHANGE_IMAP_MAX_LINE + 1,
                "{name}: long line"
            );
        }
        // ASCII-only header block, with a Date and a sane Message-ID.
        let n = normalize(out);
        assert!(
            n.value.message_id.is_some(),
            "{name}: no Message-ID after repair"
        );
        assert!(
            n.value.date.is_some() || name == "bad-date",
            "{name}: no Date after repair"
        );
        let header_end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(out.len());
        assert!(
            out[..header_end].is_ascii(),
            "{name}: 8-bit header bytes left"
        );
        // Repairs keep what a reader sees (subject and text body) where the input was
        // readable to begin with.
        let before = normalize(&raw).value;
        if name != "mixed-line-endings" {
            assert_eq!(n.value.subject, before.subject, "{name}: subject changed");
            assert_eq!(
                n.value
                    .attachments
                    .iter()
                    .map(|a| &a.sha256)
                    .collect::<Vec<_>>(),
                before
                    .attachments
                    .iter()
                    .map(|a| &a.sha256)
                    .collect::<Vec<_>>(),
                "{name}: attachments changed"
            );
        }
        // Every change is recorded.
        if out != &raw[..] {
            assert!(!r.problems.is_empty(), "{name}: unrecorded repair");
        }
    }
}

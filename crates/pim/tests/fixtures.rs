//! Fixture tests: every `fixtures/pim/<case>.vcf` / `.ics` is parsed and converted, and the
//! result (Graph JSON, `not_carried`, errors) must equal `<case>.expected.json` beside it.
//! Calendars are read with floating times in Europe/Berlin.
//!
//! To regenerate after an intended change: `PIM_BLESS=1 cargo test -p o365-migrate-pim --test
//! fixtures`, then review the diff of the expected files before committing them.

use std::path::{Path, PathBuf};

use base64::Engine;
use o365_migrate_pim::{CalendarItem, CalendarOptions, parse_calendar_with, parse_contacts};
use serde_json::{Value, json};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pim")
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn parse(s: &str) -> Value {
    serde_json::from_str(s).expect("the crate emits JSON")
}

fn occurrence(o: &o365_migrate_pim::Occurrence) -> Value {
    json!({ "local": o.local, "zone": o.zone, "utc": o.utc })
}

/// The verify window and the source occurrences in it (the first 12, and how many).
fn verify(ev: &o365_migrate_pim::Event) -> Value {
    let (from, to) = ev.verify_window();
    let occs = ev.occurrences((&from, &to));
    json!({
        "window": [from, to],
        "count": occs.len(),
        "occurrences": occs.iter().take(12).map(|o| format!("{} {} {}", o.start_utc, o.end_utc, o.subject)).collect::<Vec<_>>(),
    })
}

fn error(e: &o365_migrate_pim::Error) -> Value {
    json!({ "error": e.to_string(), "line": e.line() })
}

fn report(path: &Path) -> Value {
    let label = path.file_name().unwrap().to_string_lossy().to_string();
    let bytes = std::fs::read(path).unwrap();
    let items: Vec<Value> = if label.ends_with(".vcf") {
        match parse_contacts(&label, &bytes) {
            Err(e) => vec![error(&e)],
            Ok(items) => items
                .iter()
                .map(|r| match r {
                    Err(e) => error(e),
                    Ok(c) => json!({
                        "kind": "contact",
                        "line": c.line,
                        "uid": c.uid,
                        "fingerprint": c.fingerprint,
                        "graph": parse(&c.graph_json()),
                        "photo": c.photo.as_ref().map(|p| json!({ "contentType": p.content_type, "base64": b64(&p.bytes) })),
                        "not_carried": c.not_carried,
                    }),
                })
                .collect(),
        }
    } else {
        match parse_calendar_with(
            &label,
            &bytes,
            &CalendarOptions::with_floating_zone("Europe/Berlin"),
        ) {
            Err(e) => vec![error(&e)],
            Ok(items) => items
                .iter()
                .map(|r| match r {
                    Err(e) => error(e),
                    Ok(CalendarItem::Event(ev)) => json!({
                        "kind": "event",
                        "line": ev.line,
                        "uid": ev.uid,
                        "fingerprint": ev.fingerprint,
                        "graph": parse(&ev.graph_json()),
                        "attendees": parse(&ev.attendees_json()),
                        "series_not_expressible": ev.series_not_expressible,
                        "cancelled_occurrences": ev.cancelled_occurrences.iter().map(occurrence).collect::<Vec<_>>(),
                        "overrides": ev.overrides.iter().map(|o| json!({
                            "original_start": occurrence(&o.original_start),
                            "patch": parse(&o.patch_json()),
                            "not_carried": o.not_carried,
                        })).collect::<Vec<_>>(),
                        "attachments": ev.attachments.iter().map(|a| json!({
                            "name": a.name, "contentType": a.content_type, "base64": b64(&a.bytes),
                        })).collect::<Vec<_>>(),
                        "not_carried": ev.not_carried,
                        "verify": verify(ev),
                    }),
                    Ok(CalendarItem::Task(t)) => json!({
                        "kind": "task",
                        "line": t.line,
                        "uid": t.uid,
                        "fingerprint": t.fingerprint,
                        "graph": parse(&t.graph_json()),
                        "not_carried": t.not_carried,
                    }),
                    Ok(_) => json!({ "kind": "unknown" }),
                })
                .collect(),
        }
    };
    json!({ "items": items })
}

#[test]
fn fixtures_match_expected() {
    let bless = std::env::var_os("PIM_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("vcf" | "ics")))
        .collect();
    cases.sort();
    assert!(cases.len() >= 16, "fixtures missing: {cases:?}");
    let mut failed = Vec::new();
    for case in cases {
        let got = report(&case);
        let expected_path = case.with_extension("expected.json");
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if bless {
            std::fs::write(&expected_path, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != text {
            failed.push(format!(
                "{}:\n--- expected\n{expected}\n--- got\n{text}",
                case.display()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} fixture(s) differ (PIM_BLESS=1 regenerates):\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// The same source gives the same fingerprint; a change to it (not to DTSTAMP) another.
#[test]
fn fingerprints_ignore_volatile_properties_only() {
    let a = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T090000Z\r\nSUMMARY:A\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let b = String::from_utf8_lossy(a).replace("20260101T000000Z", "20261231T000000Z");
    let c = String::from_utf8_lossy(a).replace("SUMMARY:A", "SUMMARY:B");
    let fp = |s: &[u8]| match &parse_calendar_with("t", s, &CalendarOptions::default()).unwrap()[0]
    {
        Ok(CalendarItem::Event(e)) => e.fingerprint.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(fp(a), fp(b.as_bytes()));
    assert_ne!(fp(a), fp(c.as_bytes()));
}

/// Bad input never panics and always names the label.
#[test]
fn garbage_is_an_error_not_a_panic() {
    for input in [
        &b"\xff\xfe"[..],
        b"BEGIN:VCARD\r\n",
        b"END:VCARD\r\nBEGIN:VCARD",
        b":::",
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VTODO\r\n",
    ] {
        for r in parse_contacts("g.vcf", input).into_iter().flatten() {
            if let Err(e) = r {
                assert!(e.to_string().starts_with("g.vcf"), "{e}");
            }
        }
        if let Ok(items) = parse_calendar_with("g.ics", input, &CalendarOptions::default()) {
            for r in items {
                if let Err(e) = r {
                    assert!(e.to_string().starts_with("g.ics"), "{e}");
                }
            }
        }
    }
    assert!(parse_contacts("g.vcf", b"\xff").is_err());
}

/// Every prefix of every fixture, and each fixture with one byte changed, parses without a panic.
#[test]
fn truncated_and_mangled_fixtures_never_panic() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        let Some(ext) = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if ext != "vcf" && ext != "ics" {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let run = |b: &[u8]| {
            let _ = parse_contacts("m", b);
            let _ = parse_calendar_with(
                "m",
                b,
                &CalendarOptions::with_floating_zone("Nowhere/Special"),
            );
        };
        for cut in (0..bytes.len()).step_by(7) {
            run(&bytes[..cut]);
        }
        for (i, flip) in (0..bytes.len())
            .step_by(13)
            .zip([b':', b';', b'\n', b' ', b'=', b'9', b'-'].iter().cycle())
        {
            let mut m = bytes.clone();
            m[i] = *flip;
            run(&m);
        }
    }
}

//! Fixture-driven tests of the protocol functions: every `fixtures/dav/<name>.xml` is a
//! multistatus answer (its source, the request URL and what to read from it in comments at
//! its top) with `<name>.expected` beside it: what is read, rendered as text.
//!
//! `DAV_FIXTURES_BLESS=1 cargo test -p o365-migrate-dav fixtures` rewrites the `.expected`
//! files; review the diff before committing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::href::Href;
use crate::model::CollectionKind;
use crate::xml;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/dav")
}

/// The value of `<!-- key: value -->` in a fixture.
fn header(text: &str, key: &str) -> Option<String> {
    let start = text.find(&format!("<!-- {key}: "))? + key.len() + 7;
    let end = start + text[start..].find(" -->")?;
    Some(text[start..end].to_owned())
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// What a fixture reads, as text.
fn render(read: &str, body: &[u8], base: &Href) -> String {
    let ms = match xml::parse_multistatus(body, base) {
        Ok(ms) => ms,
        Err(e) => return format!("error: {e}\n"),
    };
    let mut out = String::new();
    match read {
        "principal" => {
            let p = xml::principal(&ms);
            let _ = writeln!(out, "principal: {}", p.map_or("-".into(), |p| p.url()));
        }
        "homes" => {
            let (books, cals) = xml::home_sets(&ms);
            for b in books {
                let _ = writeln!(out, "addressbook-home-set: {}", b.url());
            }
            for c in cals {
                let _ = writeln!(out, "calendar-home-set: {}", c.url());
            }
        }
        "collections" => {
            for c in xml::collections(&ms) {
                let _ = writeln!(out, "{}", c.href.url());
                let _ = writeln!(out, "  path: {}", c.href.path());
                let _ = writeln!(out, "  kind: {:?}", c.kind);
                let _ = writeln!(out, "  display name: {}", opt(&c.display_name));
                let _ = writeln!(out, "  components: {}", c.components.join(","));
                let _ = writeln!(out, "  ctag: {}", opt(&c.ctag));
                let _ = writeln!(out, "  sync-token: {}", opt(&c.sync_token));
                let _ = writeln!(out, "  supports sync-collection: {}", c.supports_sync);
            }
        }
        "items" => {
            for r in xml::item_refs(&ms, base) {
                let _ = writeln!(out, "{} etag {}", r.href.url(), opt(&r.etag));
            }
        }
        "sync" => match xml::sync_changes(&ms, base) {
            None => out.push_str("no sync-token\n"),
            Some(s) => {
                let _ = writeln!(out, "token: {}", s.token);
                let _ = writeln!(out, "truncated: {}", s.truncated);
                for c in s.changed {
                    let _ = writeln!(out, "changed: {} etag {}", c.href.url(), opt(&c.etag));
                }
                for d in s.deleted {
                    let _ = writeln!(out, "deleted: {}", d.url());
                }
            }
        },
        "multiget-addressbook" | "multiget-calendar" => {
            let kind = if read == "multiget-addressbook" {
                CollectionKind::AddressBook
            } else {
                CollectionKind::Calendar
            };
            let (items, missing) = xml::multiget_items(&ms, kind);
            for i in items {
                let _ = writeln!(out, "item: {} etag {}", i.href.url(), opt(&i.etag));
                let _ = writeln!(out, "  data: {:?}", String::from_utf8_lossy(&i.data));
            }
            for m in missing {
                let _ = writeln!(out, "missing: {}", m.url());
            }
        }
        other => panic!("unknown `read: {other}`"),
    }
    out
}

#[test]
fn fixtures() {
    let bless = std::env::var_os("DAV_FIXTURES_BLESS").is_some();
    let mut names: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/dav exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    names.sort();
    assert!(names.len() >= 12, "only {} fixtures", names.len());
    let mut failures = Vec::new();
    for path in &names {
        let body = std::fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&body);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            header(&text, "source").is_some(),
            "{name}: no source comment"
        );
        let base = header(&text, "base")
            .and_then(|b| Href::parse(&b))
            .unwrap_or_else(|| panic!("{name}: no usable base comment"));
        let read = header(&text, "read").unwrap_or_else(|| panic!("{name}: no read comment"));
        let got = render(&read, &body, &base);
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} is missing", expected_path.display()));
        if got != expected {
            failures.push(format!("--- {name}: expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

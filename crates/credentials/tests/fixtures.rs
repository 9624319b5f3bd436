//! Fixture tests: every file in `fixtures/csv` is read and its report compared with the expected
//! text (`NAME.expected`) and JSON (`NAME.expected.json`) beside it. Options for a fixture come
//! from `NAME.options` (`key=value` lines: delimiter, header, mapping, admin, row_limit, encoding, targets,
//! resolve_secrets).
//!
//! Regenerate with `UPDATE_EXPECT=1 cargo nextest run -p o365-migrate-credentials --test fixtures`
//! and review the diff.

use std::fs;
use std::path::{Path, PathBuf};

use o365_migrate_credentials::{
    HeaderMode, ReadOptions, TargetIdentity, TextEncoding, parse_delimiter, read_file,
};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/csv")
}

fn options_for(input: &Path) -> ReadOptions {
    let mut o = ReadOptions::default();
    let Ok(text) = fs::read_to_string(input.with_extension("options")) else {
        return o;
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (k, v) = line.split_once('=').expect("options line is key=value");
        o = match k {
            "delimiter" => o.delimiter(parse_delimiter(v).expect("delimiter")),
            "header" => o.header(match v {
                "present" => HeaderMode::Present,
                "absent" => HeaderMode::Absent,
                _ => HeaderMode::Auto,
            }),
            "mapping" => o.mapping(v.parse().expect("mapping")),
            "admin" if v == "true" => o.admin_mode(),
            "row_limit" => o.row_limit(v.parse().ok()),
            "encoding" => o.encoding(TextEncoding::from_name(v).expect("encoding")),
            "targets" => o.target_identity(match v {
                "address" => TargetIdentity::Address,
                "username" => TargetIdentity::Username,
                "folder-name" => TargetIdentity::FolderName,
                other => panic!("unknown target identity {other}"),
            }),
            "resolve_secrets" => o.resolve_secrets(v == "true"),
            other => panic!("unknown option {other} in {}", input.display()),
        };
    }
    o
}

fn inputs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(fixtures_dir())
        .expect("fixtures/csv exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("csv" | "txt" | "xlsx")
            )
        })
        .collect();
    v.sort();
    v
}

/// Reads one fixture as the CLI would (relative file name so outputs are stable).
fn check(input: &Path) -> (String, String) {
    let name = input
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 name")
        .to_owned();
    // Run from the fixtures folder so the report names the file without a machine path.
    let parsed = read_file(input, &options_for(input)).expect("options valid");
    let mut report = parsed.report().clone();
    // Locations carry the path as given; normalise to the bare file name.
    let full = input.display().to_string();
    report.file = name.clone();
    for p in &mut report.problems {
        if p.location.file == full {
            p.location.file = name.clone();
        }
    }
    (report.render_human(100) + "\n", report.to_json() + "\n")
}

fn compare(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        fs::write(path, actual).expect("write expected");
        return;
    }
    match fs::read_to_string(path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{} differs\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Err(_) => failures.push(format!("{} is missing; actual:\n{actual}", path.display())),
    }
}

#[test]
fn every_fixture_matches_its_expected_report() {
    let mut failures = Vec::new();
    let all = inputs();
    assert!(all.len() >= 20, "fixtures not found");
    for input in &all {
        let (text, json) = check(input);
        let stem = input.to_string_lossy().into_owned();
        compare(Path::new(&format!("{stem}.expected")), &text, &mut failures);
        compare(
            Path::new(&format!("{stem}.expected.json")),
            &json,
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

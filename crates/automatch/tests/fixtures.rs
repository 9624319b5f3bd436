//! Fixture-driven run: `fixtures/automatch/tenant/` holds the directory,
//! the sources, the `[matching]` table and a manual file, with the expected
//! mapping CSVs and one explanation beside them. `AUTOMATCH_BLESS=1`
//! rewrites the expected files (review the diff before committing).

use std::path::PathBuf;

use o365_migrate_automatch::{
    DirectoryUser, MatchConfig, Matcher, Overrides, SourceIdentity, diff, read_csv,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/automatch/tenant")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn check(name: &str, got: &str) {
    if std::env::var_os("AUTOMATCH_BLESS").is_some() {
        std::fs::write(dir().join(name), got).unwrap();
        return;
    }
    let want = read(name);
    assert_eq!(
        got, want,
        "{name} differs; rerun with AUTOMATCH_BLESS=1 and review"
    );
}

#[test]
fn tenant_fixture() {
    let directory: Vec<DirectoryUser> = serde_json::from_str(&read("directory.json")).unwrap();
    let sources: Vec<SourceIdentity> = serde_json::from_str(&read("sources.json")).unwrap();
    let config: MatchConfig = toml::from_str(&read("matching.toml")).unwrap();
    let matcher = Matcher::new(config, directory).unwrap();

    let first = matcher.run(&sources, &Overrides::new()).unwrap();
    let mut csv = Vec::new();
    first.write_csv(&mut csv).unwrap();
    check("expected-mapping.csv", &String::from_utf8(csv).unwrap());

    let manual = Overrides::read_csv(read("manual.csv").as_bytes()).unwrap();
    let second = matcher.run(&sources, &manual).unwrap();
    let mut csv = Vec::new();
    second.write_csv(&mut csv).unwrap();
    check(
        "expected-mapping-manual.csv",
        &String::from_utf8(csv).unwrap(),
    );

    let changes: Vec<String> = diff(&first.to_rows(), &second.to_rows())
        .iter()
        .map(|c| format!("{c}\n"))
        .collect();
    check("expected-diff.txt", &changes.concat());

    let jm = sources
        .iter()
        .find(|s| s.login.starts_with("jmueller"))
        .unwrap();
    check(
        "expected-explain.txt",
        &format!("{}\n", matcher.explain(jm, &manual)),
    );

    // The expected CSV parses back to the same rows.
    let rows = read_csv(read("expected-mapping.csv").as_bytes()).unwrap();
    assert_eq!(rows, first.to_rows());
}

//! Whole runs: mapping CSV round trip, manual file fed back, diff between
//! runs, explain, determinism.

mod common;

use common::{directory, short};
use o365_migrate_automatch::{
    Change, DomainMapping, MatchConfig, Matcher, Outcome, Overrides, Rule, SourceIdentity, Status,
    Verdict, default_rules, diff, read_csv, write_csv,
};

fn sources() -> Vec<SourceIdentity> {
    vec![
        SourceIdentity::new("alice@old.example"),
        SourceIdentity::new("bob.smith@old.example"),
        SourceIdentity::new("info@old.example"),
        SourceIdentity::new("jm@legacy.example").with_name("Jürgen", "Müller"),
        SourceIdentity::new("x9@legacy.example").with_display("Carol Smith"),
        SourceIdentity::new("alise.liddel@legacy.example"),
        SourceIdentity::new("quote\"comma,@legacy.example").with_display("Pat Doe"),
        SourceIdentity::new("svc-backup@old.example"),
    ]
}

fn config() -> MatchConfig {
    MatchConfig {
        exclude_sources: vec!["svc-*".into()],
        ..MatchConfig::default()
    }
}

fn with_domain_map() -> MatchConfig {
    let mut rules = default_rules();
    rules.insert(
        1,
        Rule::DomainMap {
            name: Some("old-to-new".into()),
            confidence: None,
            mappings: vec![DomainMapping {
                from: "old.example".into(),
                to: "new.example".into(),
            }],
        },
    );
    MatchConfig { rules, ..config() }
}

#[test]
fn mapping_csv_round_trip() {
    let m = Matcher::new(config(), directory()).unwrap();
    let report = m.run(&sources(), &Overrides::new()).unwrap();
    let mut csv = Vec::new();
    report.write_csv(&mut csv).unwrap();
    let text = String::from_utf8(csv.clone()).unwrap();
    assert!(
        text.starts_with("source,target,rule,status,note\n"),
        "{text}"
    );
    assert!(
        text.contains("\"quote\"\"comma,@legacy.example\""),
        "{text}"
    );
    // Rows read back are exactly the rows written.
    let rows = read_csv(csv.as_slice()).unwrap();
    assert_eq!(rows, report.to_rows());
    // Writing them again gives the same bytes.
    let mut again = Vec::new();
    write_csv(&rows, &mut again).unwrap();
    assert_eq!(again, csv);
}

#[test]
fn mapping_csv_fed_back_as_manual_pairs_reproduces_the_run() {
    let m = Matcher::new(config(), directory()).unwrap();
    let first = m.run(&sources(), &Overrides::new()).unwrap();
    let mut csv = Vec::new();
    first.write_csv(&mut csv).unwrap();
    let manual = Overrides::read_csv(csv.as_slice()).unwrap();
    let second = m.run(&sources(), &manual).unwrap();
    for (a, b) in first.results.iter().zip(&second.results) {
        assert_eq!(a.source, b.source);
        match (&a.outcome, &b.outcome) {
            (Outcome::Matched(x), Outcome::Matched(y)) => {
                assert_eq!(x.target, y.target, "{}", a.source);
                assert_eq!(y.rule, "manual");
            }
            (x, y) => assert_eq!(short(x), short(y), "{}", a.source),
        }
    }
    // Only target/rule changed: the diff lists exactly the matched rows
    // whose rule became manual.
    let changes = diff(&first.to_rows(), &second.to_rows());
    let matched = first.summary().matched + first.summary().conflict;
    assert_eq!(changes.len(), matched);
    assert!(
        changes
            .iter()
            .all(|c| matches!(c, Change::Changed { new, .. } if new.rule == "manual"))
    );
}

#[test]
fn edited_mapping_file_overrides_and_excludes() {
    let m = Matcher::new(config(), directory()).unwrap();
    let edited = "source,target,rule,status,note\n\
                  info@old.example,u-shared1,,ambiguous,admin picked one\n\
                  alice@old.example,bob.smith@new.example,,,\n\
                  \n\
                  bob.smith@old.example,,,excluded,\n\
                  x9@legacy.example,,,unmatched,left to the rules\n";
    let manual = Overrides::read_csv(edited.as_bytes()).unwrap();
    let r = m.run(&sources(), &manual).unwrap();
    let get = |l: &str| short(&r.get(l).unwrap().outcome);
    assert_eq!(get("info@old.example"), "matched u-shared1 manual 100");
    assert_eq!(get("alice@old.example"), "matched u-bob manual 100");
    assert_eq!(get("bob.smith@old.example"), "excluded");
    assert_eq!(get("x9@legacy.example"), "matched u-carol display-name 60");

    // A plain two-column pairs file works too.
    let pairs =
        Overrides::read_csv("source,target\nINFO@old.example,sales2@new.example\n".as_bytes())
            .unwrap();
    let r = m.run(&sources(), &pairs).unwrap();
    assert_eq!(
        short(&r.get("info@old.example").unwrap().outcome),
        "matched u-shared2 manual 100"
    );
}

#[test]
fn formula_cells_are_guarded_and_round_trip() {
    let rows = vec![o365_migrate_automatch::MappingRow {
        source: "=HYPERLINK(\"http://x\")@old.example".into(),
        target: "+1@new.example".into(),
        rule: "-rule".into(),
        status: Status::Matched,
        note: "'=already quoted".into(),
    }];
    let mut csv = Vec::new();
    write_csv(&rows, &mut csv).unwrap();
    let text = String::from_utf8(csv.clone()).unwrap();
    assert!(text.contains("\"'=HYPERLINK"), "{text}");
    assert!(
        text.contains(",'+1@new.example,'-rule,matched,''=already quoted"),
        "{text}"
    );
    assert_eq!(read_csv(csv.as_slice()).unwrap(), rows);
}

#[test]
fn bad_mapping_files_name_the_line() {
    let cases = [
        (
            "source,target,rule,status,note\na@x.example,u-bob,,maybe,\n",
            "line 2",
            "unknown status",
        ),
        (
            "source,target,rule,status,note\na@x.example,u-bob,,,\na@x.example,u-alice,,,\n",
            "line 3",
            "paired with both",
        ),
        ("login,target\na,b\n", "line 1", "source"),
        (
            "source,target,rule,status,note\n,u-bob,,matched,\n",
            "line 2",
            "empty source",
        ),
        ("source,target,rule,status,note\na,b,c\n", "line 2", ""),
    ];
    for (input, line, what) in cases {
        let e = Overrides::read_csv(input.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains(line) && e.contains(what), "{input:?}: {e}");
    }
}

#[test]
fn diff_between_two_runs() {
    let m1 = Matcher::new(config(), directory()).unwrap();
    let m2 = Matcher::new(with_domain_map(), directory()).unwrap();
    let mut s2 = sources();
    s2.retain(|s| s.login != "alise.liddel@legacy.example");
    s2.push(SourceIdentity::new("sales1@new.example"));
    let a = m1.run(&sources(), &Overrides::new()).unwrap().to_rows();
    let b = m2.run(&s2, &Overrides::new()).unwrap().to_rows();
    let changes: Vec<String> = diff(&a, &b).iter().map(ToString::to_string).collect();
    assert_eq!(
        changes,
        [
            "- alise.liddel@legacy.example: unmatched",
            "~ bob.smith@old.example: matched bob.smith@new.example (local-part) -> matched bob.smith@new.example (old-to-new)",
            "+ sales1@new.example: matched sales1@new.example (exact-address)",
        ]
    );
    assert!(diff(&a, &a).is_empty());
}

#[test]
fn explain_shows_every_rule() {
    let m = Matcher::new(with_domain_map(), directory()).unwrap();
    let s = SourceIdentity::new("bob.smith@old.example").with_name("Bob", "Smith");
    let e = m.explain(&s, &Overrides::new());
    let names: Vec<&str> = e.rules.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(
        names,
        [
            "exact-address",
            "old-to-new",
            "local-part",
            "name-pattern",
            "full-name",
            "display-name"
        ]
    );
    let decided: Vec<bool> = e.rules.iter().map(|r| r.decided).collect();
    assert_eq!(decided, [false, true, false, false, false, false]);
    assert_eq!(e.rules[0].verdict, Verdict::NoMatch);
    assert!(matches!(&e.rules[1].verdict, Verdict::Match(c) if c.target.id == "u-bob"));
    assert_eq!(e.rules[1].keys, ["bob.smith@new.example"]);
    // Later rules are evaluated too (and agree here).
    assert!(matches!(&e.rules[4].verdict, Verdict::Match(c) if c.target.id == "u-bob"));
    assert_eq!(short(&e.outcome), "matched u-bob old-to-new 95");
    let text = e.to_string();
    println!("{text}");
    assert!(
        text.contains(" *old-to-new [domain_map] keys: bob.smith@new.example"),
        "{text}"
    );
    assert!(
        text.contains("=> matched bob.smith@new.example (u-bob) by rule old-to-new"),
        "{text}"
    );

    // Not applicable rules say why; ambiguity lists candidates.
    let s = SourceIdentity::new("info@old.example");
    let e = m.explain(&s, &Overrides::new());
    assert!(matches!(&e.rules[0].verdict, Verdict::Ambiguous(c) if c.len() == 2));
    assert!(matches!(&e.rules[4].verdict, Verdict::NotApplicable { .. }));
    assert!(
        e.to_string()
            .contains("not applicable: source has no first+last name")
    );

    // Manual pair and exclusion are shown.
    let mut o = Overrides::new();
    o.pair("info@old.example", "u-shared1").unwrap();
    let e = m.explain(&s, &o);
    assert_eq!(e.manual.as_deref(), Some("u-shared1"));
    assert!(e.rules.iter().all(|r| !r.decided));
    assert_eq!(short(&e.outcome), "matched u-shared1 manual 100");
    let e = m.explain(&SourceIdentity::new("svc-x@old.example"), &Overrides::new());
    assert_eq!(e.excluded.as_deref(), Some("exclude_sources 'svc-*'"));
}

#[test]
fn same_input_same_output_regardless_of_order() {
    let mut dir = directory();
    let m1 = Matcher::new(config(), dir.clone()).unwrap();
    dir.reverse();
    let m2 = Matcher::new(config(), dir).unwrap();
    let mut s = sources();
    let r1 = m1.run(&s, &Overrides::new()).unwrap();
    s.reverse();
    let r2 = m2.run(&s, &Overrides::new()).unwrap();
    assert_eq!(r1, r2);
    let (mut c1, mut c2) = (Vec::new(), Vec::new());
    r1.write_csv(&mut c1).unwrap();
    r2.write_csv(&mut c2).unwrap();
    assert_eq!(c1, c2);
    // Status words as documented.
    let statuses: Vec<Status> = r1.to_rows().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&Status::Ambiguous));
    assert!(statuses.contains(&Status::Excluded));
    assert!(statuses.contains(&Status::Unmatched));
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Matcher>();
    check::<o365_migrate_automatch::MatchReport>();
    check::<Overrides>();
    check::<o365_migrate_automatch::Explanation>();
    check::<o365_migrate_automatch::Error>();
}

//! Table-driven tests per rule: collisions, case and diacritic variants,
//! primary versus secondary proxy addresses, manual pairs, exclusions,
//! duplicate targets, user creation.

mod common;

use common::{directory, short};
use o365_migrate_automatch::{
    CreateConfig, DirectoryUser, MatchConfig, Matcher, Normalization, Outcome, Overrides, Rule,
    SourceIdentity, default_rules,
};

fn src(login: &str) -> SourceIdentity {
    SourceIdentity::new(login)
}

fn with_domain_map(mut rules: Vec<Rule>) -> Vec<Rule> {
    rules.insert(
        1,
        Rule::domain_map([
            ("old.example", "new.example"),
            ("older.example", "new.example"),
        ]),
    );
    rules
}

fn run_one(config: MatchConfig, s: SourceIdentity) -> String {
    let m = Matcher::new(config, directory()).unwrap();
    let r = m.run(std::slice::from_ref(&s), &Overrides::new()).unwrap();
    short(&r.results[0].outcome)
}

#[test]
fn default_chain_table() {
    let cases: Vec<(&str, SourceIdentity, &str)> = vec![
        // exact address: UPN, case variant
        (
            "upn case",
            src("ALICE@NEW.EXAMPLE"),
            "matched u-alice exact-address 100",
        ),
        (
            "mail",
            src("alice@new.example"),
            "matched u-alice exact-address 100",
        ),
        // primary proxy with mixed case in the directory
        (
            "primary proxy",
            src("bob.smith@new.example"),
            "matched u-bob exact-address 100",
        ),
        (
            "primary SMTP only",
            src("sales1@new.example"),
            "matched u-shared1 exact-address 100",
        ),
        // secondary smtp: proxy: lower confidence
        (
            "secondary proxy",
            src("a.liddell@OLD.example"),
            "matched u-alice exact-address 95",
        ),
        (
            "address field",
            src("aliddell").with_address("alice@old.example"),
            "matched u-alice exact-address 95",
        ),
        // collision: two targets share a proxy address
        (
            "shared proxy",
            src("info@old.example"),
            "ambiguous exact-address u-shared1,u-shared2",
        ),
        // primary on one user, secondary on another: still ambiguous
        (
            "primary vs secondary collision",
            src("jobs@new.example"),
            "ambiguous exact-address u-prim,u-sec",
        ),
        // local part: plus tag, dots, case
        (
            "local plus+dots",
            src("Bob.Smith+news@legacy.example"),
            "matched u-bob local-part 85",
        ),
        (
            "local no dots",
            src("bobsmith@legacy.example"),
            "matched u-bob local-part 85",
        ),
        // local part: diacritics
        (
            "local diacritics",
            src("josé.garcía@legacy.example"),
            "matched u-jose local-part 85",
        ),
        (
            "local umlaut as ue",
            src("jürgen.müller@legacy.example"),
            "matched u-mueller local-part 85",
        ),
        // name patterns from the source names
        (
            "names umlaut",
            src("jm@legacy.example").with_name("Jürgen", "Müller"),
            "matched u-mueller name-pattern 75",
        ),
        (
            "names umlaut transliterated",
            src("jm@legacy.example").with_name("Juergen", "Mueller"),
            "matched u-mueller name-pattern 75",
        ),
        (
            "names decomposed accents",
            src("x1@legacy.example").with_name("Jose\u{301}", "Garci\u{301}a"),
            "matched u-jose name-pattern 75",
        ),
        (
            "names upper case",
            src("x2@legacy.example").with_name("JOSE", "GARCIA"),
            "matched u-jose name-pattern 75",
        ),
        // reverse: source local part against the target's name patterns
        (
            "reverse flast",
            src("bsmith@legacy.example"),
            "matched u-bob name-pattern 75",
        ),
        (
            "reverse last.first",
            src("liddell.alice@legacy.example"),
            "matched u-alice name-pattern 75",
        ),
        // full name (no address of the pattern shapes)
        (
            "full name",
            src("csmith77@legacy.example").with_name("Carol", "Smith"),
            "matched u-carol full-name 70",
        ),
        // display name: word order and punctuation ignored
        (
            "display",
            src("x9@legacy.example").with_display("Carol Smith"),
            "matched u-carol display-name 60",
        ),
        (
            "display diacritics",
            src("x8@legacy.example").with_display("GARCIA, Jose"),
            "matched u-jose display-name 60",
        ),
        (
            "display ambiguous",
            src("x7@legacy.example").with_display("Pat Doe"),
            "ambiguous display-name u-pat1,u-pat2",
        ),
        // nothing
        ("unmatched", src("nobody@legacy.example"), "unmatched"),
        ("not an address", src("nobody"), "unmatched"),
    ];
    let m = Matcher::new(MatchConfig::default(), directory()).unwrap();
    let mut failures = Vec::new();
    for (name, s, want) in cases {
        let r = m.run(std::slice::from_ref(&s), &Overrides::new()).unwrap();
        let got = short(&r.results[0].outcome);
        if got != want {
            failures.push(format!(
                "{name}: want '{want}', got '{got}'\n{}",
                m.explain(&s, &Overrides::new())
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn domain_mapping_table() {
    let config = MatchConfig {
        rules: with_domain_map(default_rules()),
        ..MatchConfig::default()
    };
    let cases = [
        ("bob.smith@old.example", "matched u-bob domain-map 95"),
        ("BOB.SMITH@Older.Example", "matched u-bob domain-map 95"),
        // exact still first
        ("alice@old.example", "matched u-alice exact-address 95"),
        // mapped address exists twice? sales1 only once: unique
        ("sales1@old.example", "matched u-shared1 domain-map 95"),
        // unmapped domain falls through to local part
        ("bob.smith@other.example", "matched u-bob local-part 85"),
    ];
    for (login, want) in cases {
        assert_eq!(run_one(config.clone(), src(login)), want, "{login}");
    }
}

#[test]
fn secondary_proxies_can_be_switched_off() {
    let mut rules = default_rules();
    rules[0] = Rule::ExactAddress {
        name: None,
        confidence: None,
        secondary_proxies: false,
    };
    let config = MatchConfig {
        rules,
        ..MatchConfig::default()
    };
    // Without secondary proxies the exact rule misses; the local-part rule
    // (which still reads every address) finds her with less confidence.
    assert_eq!(
        run_one(config.clone(), src("a.liddell@old.example")),
        "matched u-alice local-part 85"
    );
    // Primary-only collision is no longer a collision.
    assert_eq!(
        run_one(config, src("jobs@new.example")),
        "matched u-prim exact-address 100"
    );
}

#[test]
fn local_part_normalisations_can_be_switched_off() {
    let only_local = |n: Normalization| MatchConfig {
        rules: vec![Rule::LocalPart {
            name: Some("lp".into()),
            confidence: Some(80),
            normalize: n,
            domains: vec!["new.example".into()],
        }],
        ..MatchConfig::default()
    };
    let all = Normalization::default();
    let no_dots = Normalization { dots: false, ..all };
    let no_plus = Normalization {
        plus_tags: false,
        ..all
    };
    let no_diacritics = Normalization {
        diacritics: false,
        ..all
    };
    let case_sensitive = Normalization {
        case: false,
        diacritics: false,
        ..all
    };
    let cases = [
        (all, "bobsmith@x.example", "matched u-bob lp 80"),
        (no_dots, "bobsmith@x.example", "unmatched"),
        (no_dots, "bob.smith@x.example", "matched u-bob lp 80"),
        (all, "bob.smith+tag@x.example", "matched u-bob lp 80"),
        (no_plus, "bob.smith+tag@x.example", "unmatched"),
        (all, "josé.garcia@x.example", "matched u-jose lp 80"),
        (no_diacritics, "josé.garcia@x.example", "unmatched"),
        (
            no_diacritics,
            "JOSE.GARCIA@x.example",
            "matched u-jose lp 80",
        ),
        // case-sensitive: the directory writes Bob.Smith in the proxy address
        (case_sensitive, "Bob.Smith@x.example", "matched u-bob lp 80"),
        (case_sensitive, "BOB.SMITH@x.example", "unmatched"),
    ];
    for (n, login, want) in cases {
        assert_eq!(run_one(only_local(n), src(login)), want, "{login} {n:?}");
    }
    // Domain restriction: old.example addresses are not considered.
    assert_eq!(
        run_one(only_local(all), src("a.liddell@x.example")),
        "unmatched"
    );
}

#[test]
fn each_name_pattern_matches_its_shape() {
    let shapes = [
        ("first.last", "carl.jung"),
        ("f.last", "c.jung"),
        ("firstl", "carlj"),
        ("last.first", "jung.carl"),
        ("firstlast", "carljung"),
        ("first_last", "carl_jung"),
        ("flast", "cjung"),
        ("lastf", "jungc"),
        ("first-last", "carl-jung"),
    ];
    for (pattern, local) in shapes {
        let dir = vec![
            DirectoryUser::new("t1", format!("{local}@new.example")),
            DirectoryUser::new("t2", "someone.else@new.example"),
        ];
        let config = MatchConfig {
            rules: vec![Rule::NamePattern {
                name: Some("names".into()),
                confidence: None,
                patterns: vec![pattern.into()],
                domains: vec![],
            }],
            ..MatchConfig::default()
        };
        let m = Matcher::new(config, dir).unwrap();
        let s = src("cj42@legacy.example").with_name("Carl", "Jung");
        let r = m.run(std::slice::from_ref(&s), &Overrides::new()).unwrap();
        assert_eq!(
            short(&r.results[0].outcome),
            "matched t1 names 75",
            "pattern {pattern}"
        );
        // A different pattern does not produce this shape.
        let other = if pattern == "first.last" {
            "last.first"
        } else {
            "first.last"
        };
        let config = MatchConfig {
            rules: vec![Rule::NamePattern {
                name: Some("names".into()),
                confidence: None,
                patterns: vec![other.into()],
                domains: vec![],
            }],
            ..MatchConfig::default()
        };
        let dir = vec![DirectoryUser::new("t1", format!("{local}@new.example"))];
        let m = Matcher::new(config, dir).unwrap();
        let r = m.run(std::slice::from_ref(&s), &Overrides::new()).unwrap();
        assert_eq!(
            short(&r.results[0].outcome),
            "unmatched",
            "pattern {pattern} vs {other}"
        );
    }
}

#[test]
fn name_pattern_collision_is_ambiguous() {
    // jsmith fits both John and Jane.
    fn m_dir() -> Vec<DirectoryUser> {
        vec![
            DirectoryUser::new("john", "john.s@new.example").with_name("John", "Smith"),
            DirectoryUser::new("jane", "jane.s@new.example").with_name("Jane", "Smith"),
        ]
    }
    let m = Matcher::new(MatchConfig::default(), m_dir()).unwrap();
    let r = m
        .run(&[src("jsmith@old.example")], &Overrides::new())
        .unwrap();
    assert_eq!(
        short(&r.results[0].outcome),
        "ambiguous name-pattern jane,john"
    );
    // Names do not make the rule guess: the first rule with candidates decides.
    let s = src("jsmith@old.example").with_name("John", "Smith");
    let r = m.run(std::slice::from_ref(&s), &Overrides::new()).unwrap();
    assert_eq!(
        short(&r.results[0].outcome),
        "ambiguous name-pattern jane,john"
    );
    // The admin can put full_name before name_pattern.
    let mut rules = default_rules();
    let full = rules.remove(3);
    rules.insert(2, full);
    let m = Matcher::new(
        MatchConfig {
            rules,
            ..MatchConfig::default()
        },
        m_dir(),
    )
    .unwrap();
    let r = m.run(std::slice::from_ref(&s), &Overrides::new()).unwrap();
    assert_eq!(short(&r.results[0].outcome), "matched john full-name 70");
}

#[test]
fn manual_pairs_win_over_rules() {
    let m = Matcher::new(MatchConfig::default(), directory()).unwrap();
    let mut o = Overrides::new();
    // A rule would match alice; the manual file says bob (by UPN).
    o.pair("alice@new.example", "BOB.SMITH@new.example")
        .unwrap();
    // Ambiguous by rule; resolved by id.
    o.pair("info@old.example", "u-shared2").unwrap();
    // By a secondary proxy address.
    o.pair("someone@legacy.example", "a.liddell@old.example")
        .unwrap();
    // Target that does not exist.
    o.pair("ghost@legacy.example", "ghost@new.example").unwrap();
    // Manual target that is itself a shared address: ambiguous, not guessed.
    o.pair("shared@legacy.example", "info@old.example").unwrap();
    let sources = [
        src("alice@new.example"),
        src("info@old.example"),
        src("someone@legacy.example"),
        src("ghost@legacy.example"),
        src("shared@legacy.example"),
    ];
    let r = m.run(&sources, &o).unwrap();
    let got: Vec<(String, String)> = r
        .results
        .iter()
        .map(|x| (x.source.clone(), short(&x.outcome)))
        .collect();
    let want = [
        ("alice@new.example", "matched u-bob manual 100"),
        ("ghost@legacy.example", "unmatched"),
        ("info@old.example", "matched u-shared2 manual 100"),
        (
            "shared@legacy.example",
            "ambiguous manual u-shared1,u-shared2",
        ),
        // alice gets someone too: both flagged below
        ("someone@legacy.example", "matched u-alice manual 100"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want);
    let Outcome::Unmatched {
        reason: Some(reason),
        ..
    } = &r.get("ghost@legacy.example").unwrap().outcome
    else {
        panic!("ghost should be unmatched with a reason");
    };
    assert!(reason.contains("not in the directory"), "{reason}");
    // Manual pair for a source not in the run: a warning.
    let mut o2 = Overrides::new();
    o2.pair("absent@legacy.example", "u-bob").unwrap();
    let r = m.run(&[src("alice@new.example")], &o2).unwrap();
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    // Conflicting manual pairs for one source are refused.
    assert!(o2.pair("ABSENT@legacy.example", "u-alice").is_err());
    assert!(o2.pair("absent@legacy.example", "U-BOB").is_ok());
}

#[test]
fn exclusions() {
    let config = MatchConfig {
        exclude_sources: vec!["svc-*".into(), "postmaster@*".into()],
        exclude_targets: vec!["admin@*".into()],
        ..MatchConfig::default()
    };
    let m = Matcher::new(config, directory()).unwrap();
    let mut o = Overrides::new();
    o.exclude("bob.smith@new.example", "left the company")
        .unwrap();
    // A manual pair wins over a configured exclusion.
    o.pair("svc-alice@old.example", "u-alice").unwrap();
    let sources = [
        src("SVC-backup@old.example"),
        src("postmaster@old.example"),
        src("bob.smith@new.example"),
        src("admin@new.example"),
        src("svc-alice@old.example"),
    ];
    let r = m.run(&sources, &o).unwrap();
    let got: Vec<String> = r
        .results
        .iter()
        .map(|x| format!("{} {}", x.source, short(&x.outcome)))
        .collect();
    assert_eq!(
        got,
        [
            "admin@new.example unmatched",
            "bob.smith@new.example excluded",
            "postmaster@old.example excluded",
            "svc-alice@old.example matched u-alice manual 100",
            "SVC-backup@old.example excluded",
        ]
    );
    // The excluded target is named, and no other rule guesses instead.
    let Outcome::Unmatched {
        reason: Some(reason),
        hints,
    } = &r.get("admin@new.example").unwrap().outcome
    else {
        panic!()
    };
    assert!(reason.contains("only excluded targets"), "{reason}");
    assert!(hints.iter().all(|h| h.target.id != "u-admin"));
    let Outcome::Excluded { reason } = &r.get("bob.smith@new.example").unwrap().outcome else {
        panic!()
    };
    assert_eq!(reason, "left the company");
    // Both excluded and paired is refused.
    assert!(o.exclude("svc-alice@old.example", "x").is_err());
}

#[test]
fn two_sources_on_one_target_are_both_flagged() {
    let m = Matcher::new(MatchConfig::default(), directory()).unwrap();
    let sources = [
        src("alice@old.example"),
        src("alice@new.example"),
        src("bob.smith@new.example"),
    ];
    let r = m.run(&sources, &Overrides::new()).unwrap();
    let got: Vec<String> = r.results.iter().map(|x| short(&x.outcome)).collect();
    assert_eq!(
        got,
        [
            "matched u-alice exact-address 100 conflict",
            "matched u-alice exact-address 95 conflict",
            "matched u-bob exact-address 100",
        ]
    );
    let Outcome::Matched(m0) = &r.results[0].outcome else {
        panic!()
    };
    assert_eq!(m0.conflicts, ["alice@old.example"]);
    assert_eq!(r.summary().conflict, 2);
    let rows = r.to_rows();
    assert_eq!(rows[0].status.as_str(), "conflict");
    assert!(
        rows[0].note.contains("also mapped from alice@old.example"),
        "{}",
        rows[0].note
    );
}

#[test]
fn matched_target_without_mailbox_or_licence_is_noted() {
    let m = Matcher::new(MatchConfig::default(), directory()).unwrap();
    let r = m
        .run(&[src("fresh.user@new.example")], &Overrides::new())
        .unwrap();
    let Outcome::Matched(x) = &r.results[0].outcome else {
        panic!()
    };
    assert_eq!(
        x.notes,
        ["target has no mailbox yet", "target is not licensed"]
    );
}

#[test]
fn create_proposals_are_unique_and_complete() {
    let config = MatchConfig {
        rules: vec![Rule::ExactAddress {
            name: None,
            confidence: None,
            secondary_proxies: true,
        }],
        create: CreateConfig {
            enabled: true,
            domain: "New.Example".into(),
            upn_pattern: Some("first.last".into()),
            usage_location: "de".into(),
            sku: Some("ENTERPRISEPACK".into()),
        },
        ..MatchConfig::default()
    };
    let m = Matcher::new(config, directory()).unwrap();
    let mut o = Overrides::new();
    o.pair("chosen@legacy.example", "Chosen.Name@new.example")
        .unwrap();
    let sources = [
        src("z1@legacy.example").with_name("Zoë", "Ångström"),
        src("z2@legacy.example").with_name("Zoe", "Angstrom"),
        // Name already taken by an existing user.
        src("b1@legacy.example")
            .with_name("Bob", "Smith")
            .with_display("Bobby S."),
        // No names: the login's local part, plus tag dropped.
        src("Plain.Login+x@legacy.example"),
        // Nothing usable in ASCII.
        src("\u{4e2d}\u{6587}@legacy.example"),
        // Manual target that does not exist yet: create it as written.
        src("chosen@legacy.example"),
        // Ambiguous is never turned into a creation.
        src("info@old.example"),
    ];
    let r = m.run(&sources, &o).unwrap();
    let got: Vec<String> = r
        .results
        .iter()
        .map(|x| format!("{} {}", x.source, short(&x.outcome)))
        .collect();
    assert_eq!(
        got,
        [
            "b1@legacy.example create bob.smith2@new.example",
            "chosen@legacy.example create chosen.name@new.example",
            "info@old.example ambiguous exact-address u-shared1,u-shared2",
            "Plain.Login+x@legacy.example create plain.login@new.example",
            "z1@legacy.example create zoe.angstrom@new.example",
            "z2@legacy.example create zoe.angstrom2@new.example",
            "中文@legacy.example unmatched",
        ]
    );
    let Outcome::Create(p) = &r.get("b1@legacy.example").unwrap().outcome else {
        panic!()
    };
    assert_eq!(p.mail_nickname, "bob.smith2");
    assert_eq!(p.display_name, "Bobby S.");
    assert_eq!(p.usage_location, "DE");
    assert_eq!(p.sku.as_deref(), Some("ENTERPRISEPACK"));
    assert!(
        p.hints.iter().any(|h| h.target.id == "u-bob"),
        "{:?}",
        p.hints
    );
    let Outcome::Create(p) = &r.get("z1@legacy.example").unwrap().outcome else {
        panic!()
    };
    assert_eq!(p.display_name, "Zoë Ångström");
}

#[test]
fn unmatched_sources_get_index_based_hints() {
    let m = Matcher::new(MatchConfig::default(), directory()).unwrap();
    let cases = [
        // typo in the local part, surname word intact
        ("alise.liddell@legacy.example", "u-alice"),
        // typo in the surname: given name + edit distance
        ("bob.smyth@legacy.example", "u-bob"),
    ];
    let display_case = src("x@legacy.example").with_display("Carol Smyth");
    for (s, want) in cases
        .iter()
        .map(|(l, w)| (src(l), *w))
        .chain([(display_case, "u-carol")])
    {
        let login = s.login.clone();
        let r = m.run(&[s], &Overrides::new()).unwrap();
        let Outcome::Unmatched { hints, .. } = &r.results[0].outcome else {
            panic!("{login}: {:?}", r.results[0].outcome)
        };
        assert_eq!(
            hints.first().map(|h| h.target.id.as_str()),
            Some(want),
            "{login}: {hints:?}"
        );
        assert!(hints.len() <= 3);
    }
}

#[test]
fn invalid_input_is_an_error_not_a_panic() {
    let m = Matcher::new(MatchConfig::default(), directory()).unwrap();
    let e = m
        .run(&[src("a@x.example"), src("A@X.example")], &Overrides::new())
        .unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
    assert!(m.run(&[src("  ")], &Overrides::new()).is_err());
    let mut dir = directory();
    dir.push(DirectoryUser::new("u-bob", "dup@new.example"));
    let e = Matcher::new(MatchConfig::default(), dir).unwrap_err();
    assert!(e.to_string().contains("u-bob"), "{e}");
    let e = Matcher::new(
        MatchConfig::default(),
        vec![DirectoryUser::new(" ", "x@y.z")],
    )
    .unwrap_err();
    assert!(e.to_string().contains("empty id"), "{e}");
}

#[test]
fn a_bare_login_matches_by_local_part_under_any_target_domain() {
    let dir = vec![
        DirectoryUser::new("u-alice", "alice@new.example"),
        DirectoryUser::new("u-carl-new", "carl@new.example"),
        DirectoryUser::new("u-carl-other", "carl@other.example"),
    ];
    let m = Matcher::new(MatchConfig::default(), dir).unwrap();
    let r = m
        .run(
            &[src("alice"), src("carl"), src("nobody")],
            &Overrides::new(),
        )
        .unwrap();
    assert_eq!(
        short(&r.results[0].outcome),
        "matched u-alice local-part 85"
    );
    // The same local part in two domains: ambiguous, named as such.
    assert_eq!(
        short(&r.results[1].outcome),
        "ambiguous local-part u-carl-new,u-carl-other"
    );
    assert!(short(&r.results[2].outcome).starts_with("unmatched"));
}

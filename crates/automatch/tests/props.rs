//! Properties: no panic on arbitrary names, addresses and CSV; one result
//! per source; output independent of input order.

use o365_migrate_automatch::{
    CreateConfig, DirectoryUser, MatchConfig, Matcher, Overrides, Rule, SourceIdentity,
    default_rules, diff, read_csv,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z .'-]{0,12}",
        "\\PC{0,10}",
        Just("Müller".to_owned()),
        Just("Mu\u{308}ller".to_owned()),
        Just("José".to_owned()),
        Just(String::new()),
    ]
}

fn addr() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            "[a-z.+]{1,8}",
            prop_oneof![Just("old.example"), Just("new.example"), Just("x.example")]
        )
            .prop_map(|(l, d)| format!("{l}@{d}")),
        "\\PC{0,12}",
        Just("@".to_owned()),
        Just("a@".to_owned()),
    ]
}

fn source() -> impl Strategy<Value = SourceIdentity> {
    (
        addr(),
        proptest::option::of(addr()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
    )
        .prop_map(|(login, address, first, last, display)| SourceIdentity {
            login,
            address,
            first,
            last,
            display,
        })
}

fn user(i: usize) -> impl Strategy<Value = DirectoryUser> {
    (
        addr(),
        proptest::option::of(addr()),
        proptest::collection::vec(
            (
                prop_oneof![Just("SMTP:"), Just("smtp:"), Just("X500:"), Just("")],
                addr(),
            )
                .prop_map(|(p, a)| format!("{p}{a}")),
            0..3,
        ),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        any::<bool>(),
    )
        .prop_map(
            move |(upn, mail, proxy_addresses, given_name, surname, display_name, flag)| {
                DirectoryUser {
                    id: format!("id-{i}"),
                    user_principal_name: upn,
                    mail,
                    proxy_addresses,
                    given_name,
                    surname,
                    display_name,
                    has_mailbox: flag,
                    licensed: !flag,
                }
            },
        )
}

fn directory() -> impl Strategy<Value = Vec<DirectoryUser>> {
    (0usize..12).prop_flat_map(|n| (0..n).map(user).collect::<Vec<_>>())
}

fn config() -> MatchConfig {
    let mut rules = default_rules();
    rules.insert(1, Rule::domain_map([("old.example", "new.example")]));
    MatchConfig {
        rules,
        exclude_sources: vec!["*x*".into()],
        exclude_targets: vec!["?@*".into()],
        create: CreateConfig {
            enabled: true,
            domain: "new.example".into(),
            upn_pattern: None,
            usage_location: "DE".into(),
            sku: None,
        },
        hints: 3,
    }
}

fn unique(sources: Vec<SourceIdentity>) -> Vec<SourceIdentity> {
    let mut seen = std::collections::BTreeSet::new();
    sources
        .into_iter()
        .filter(|s| !s.login.trim().is_empty() && seen.insert(s.login.trim().to_lowercase()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn never_panics_and_is_order_independent(
        dir in directory(),
        sources in proptest::collection::vec(source(), 0..12),
        pair_target in addr(),
    ) {
        let sources = unique(sources);
        let m1 = Matcher::new(config(), dir.clone()).unwrap();
        let mut rev = dir;
        rev.reverse();
        let m2 = Matcher::new(config(), rev).unwrap();
        let mut o = Overrides::new();
        if let Some(s) = sources.first() {
            o.pair(&s.login, &pair_target).ok();
        }
        let r1 = m1.run(&sources, &o).unwrap();
        let mut back = sources.clone();
        back.reverse();
        let r2 = m2.run(&back, &o).unwrap();
        prop_assert_eq!(&r1, &r2);
        prop_assert_eq!(r1.results.len(), sources.len());
        // Explain agrees with the run for unflagged results.
        for s in &sources {
            let e = m1.explain(s, &o);
            let _ = e.to_string();
            let got = &r1.get(&s.login).unwrap().outcome;
            if let (o365_migrate_automatch::Outcome::Matched(a), o365_migrate_automatch::Outcome::Matched(b)) = (got, &e.outcome) {
                prop_assert_eq!(&a.target, &b.target);
            }
        }
        // CSV round trip and empty self-diff.
        let mut csv = Vec::new();
        r1.write_csv(&mut csv).unwrap();
        let rows = read_csv(csv.as_slice()).unwrap();
        prop_assert_eq!(&rows, &r1.to_rows());
        prop_assert!(diff(&rows, &rows).is_empty());
        Overrides::from_rows(&rows).unwrap();
    }

    #[test]
    fn reading_arbitrary_csv_never_panics(input in "\\PC{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = read_csv(input.as_bytes());
        let _ = Overrides::read_csv(input.as_bytes());
        let mut with_header = b"source,target,rule,status,note\n".to_vec();
        with_header.extend(bytes);
        let _ = Overrides::read_csv(with_header.as_slice());
    }

    #[test]
    fn arbitrary_toml_config_never_panics(input in "\\PC{0,120}") {
        if let Ok(c) = toml::from_str::<MatchConfig>(&input) {
            let _ = Matcher::new(c, Vec::new());
        }
    }
}

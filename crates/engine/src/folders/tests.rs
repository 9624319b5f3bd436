use super::*;
use crate::config::{FolderRule, FolderRules};
use WellKnownFolder::*;

fn mapper() -> FolderMapper {
    FolderMapper::new(&FolderRules::default(), &Filters::default()).unwrap()
}

fn wk(k: WellKnownFolder) -> Option<FolderTarget> {
    Some(FolderTarget::well_known(k))
}

fn path(parent: Option<WellKnownFolder>, segs: &[&str]) -> Option<FolderTarget> {
    Some(FolderTarget {
        parent,
        path: segs.iter().map(|s| (*s).to_owned()).collect(),
    })
}

/// Maps a single folder (plus INBOX) and returns the decision for it.
fn one(m: &FolderMapper, p: &str, delim: char, attrs: &[&str]) -> MappedFolder {
    let out = m.map(&[
        SourceFolder::new("INBOX", Some(delim), &[]),
        SourceFolder::new(p, Some(delim), attrs),
    ]);
    out.into_iter().find(|f| f.source.path == p).unwrap()
}

#[test]
fn name_table_is_multilingual_and_case_insensitive() {
    let cases: &[(&str, char, WellKnownFolder)] = &[
        ("Sent", '/', SentItems),
        ("Sent Items", '/', SentItems),
        ("Sent Messages", '/', SentItems),
        ("SENT MESSAGES", '/', SentItems),
        ("Gesendete Elemente", '/', SentItems),
        ("Gesendete Objekte", '.', SentItems),
        ("Éléments envoyés", '/', SentItems),
        ("éléments ENVOYÉS", '/', SentItems),
        ("Elementos enviados", '/', SentItems),
        ("Posta inviata", '/', SentItems),
        ("Elementy wysłane", '/', SentItems),
        ("Verzonden items", '/', SentItems),
        ("Trash", '/', DeletedItems),
        ("Deleted Items", '/', DeletedItems),
        ("Papierkorb", '/', DeletedItems),
        ("Corbeille", '/', DeletedItems),
        ("Gelöschte Elemente", '/', DeletedItems),
        ("Elementos eliminados", '/', DeletedItems),
        ("Posta eliminata", '/', DeletedItems),
        ("Kosz", '/', DeletedItems),
        ("Junk", '/', JunkEmail),
        ("Spam", '/', JunkEmail),
        ("Junk-E-Mail", '/', JunkEmail),
        ("Junk E-mail", '/', JunkEmail),
        ("Courrier indésirable", '/', JunkEmail),
        ("Correo no deseado", '/', JunkEmail),
        ("Posta indesiderata", '/', JunkEmail),
        ("Drafts", '/', Drafts),
        ("Entwürfe", '/', Drafts),
        ("Brouillons", '/', Drafts),
        ("Borradores", '/', Drafts),
        ("Bozze", '/', Drafts),
        ("Kopie robocze", '/', Drafts),
        ("Archive", '/', Archive),
        ("Archiv", '/', Archive),
        ("Archives", '/', Archive),
        ("Archivo", '/', Archive),
        ("Archivio", '/', Archive),
        // Under INBOX. / INBOX/ and [Gmail]/ prefixes.
        ("INBOX.Sent", '.', SentItems),
        ("INBOX.Papierkorb", '.', DeletedItems),
        ("INBOX/Drafts", '/', Drafts),
        ("inbox.spam", '.', JunkEmail),
        ("[Gmail]/Sent Mail", '/', SentItems),
        ("[Gmail]/Trash", '/', DeletedItems),
        ("[Gmail]/Bin", '/', DeletedItems),
        ("[Google Mail]/Spam", '/', JunkEmail),
        ("[Gmail]/Drafts", '/', Drafts),
    ];
    let m = mapper();
    for (p, d, k) in cases {
        let f = one(&m, p, *d, &[]);
        assert_eq!(f.target().cloned(), wk(*k), "{p}");
        assert!(
            matches!(
                f.decision,
                FolderDecision::Migrate {
                    reason: MapReason::NameTable(_),
                    ..
                }
            ),
            "{p}"
        );
    }
}

#[test]
fn names_deeper_in_the_tree_are_ordinary_folders() {
    let m = mapper();
    let f = one(&m, "Projects/Sent", '/', &[]);
    assert_eq!(f.target().cloned(), path(None, &["Projects", "Sent"]));
    let f = one(&m, "INBOX/Clients/Archive", '/', &[]);
    assert_eq!(
        f.target().cloned(),
        path(Some(Inbox), &["Clients", "Archive"])
    );
}

#[test]
fn special_use_wins_over_names_and_claims_the_kind() {
    let cases: &[(&str, &str, WellKnownFolder)] = &[
        ("Sent", "\\Sent", SentItems),
        ("Outgoing", "\\Sent", SentItems),
        ("Entwürfe", "\\Drafts", Drafts),
        ("Bin", "\\Trash", DeletedItems),
        ("Bulk", "\\Junk", JunkEmail),
        ("Old", "\\Archive", Archive),
        ("Weird", "\\SENT", SentItems),
    ];
    let m = mapper();
    for (p, a, k) in cases {
        let f = one(&m, p, '/', &[a]);
        assert_eq!(f.target().cloned(), wk(*k), "{p}");
        assert!(matches!(
            f.decision,
            FolderDecision::Migrate {
                reason: MapReason::SpecialUse(_),
                ..
            }
        ));
    }
    // "Sent Items" (by name) loses to "Outgoing" (\Sent) even though it sorts after it… and
    // before it: order does not matter.
    for order in [["Outgoing", "Sent Items"], ["Sent Items", "Outgoing"]] {
        let folders: Vec<SourceFolder> = order
            .iter()
            .map(|p| {
                SourceFolder::new(
                    p,
                    Some('/'),
                    if *p == "Outgoing" { &["\\Sent"] } else { &[] },
                )
            })
            .collect();
        let out = m.map(&folders);
        let out_outgoing = out.iter().find(|f| f.source.path == "Outgoing").unwrap();
        let out_sent = out.iter().find(|f| f.source.path == "Sent Items").unwrap();
        assert_eq!(out_outgoing.target().cloned(), wk(SentItems));
        assert_eq!(out_sent.target().cloned(), path(None, &["Sent Items"]));
        assert!(matches!(
            &out_sent.decision,
            FolderDecision::Migrate { reason: MapReason::KindTaken { kind: SentItems, by }, .. } if by == "Outgoing"
        ));
    }
}

#[test]
fn two_name_matches_for_one_kind_do_not_merge() {
    let out = mapper().map(&[
        SourceFolder::new("Sent", Some('/'), &[]),
        SourceFolder::new("Sent Items", Some('/'), &[]),
    ]);
    assert_eq!(out[0].target().cloned(), wk(SentItems));
    assert_eq!(out[1].target().cloned(), path(None, &["Sent Items"]));
}

#[test]
fn virtual_and_container_folders_are_skipped_with_reasons() {
    let cases: &[(&str, &[&str], SkipReason)] = &[
        (
            "[Gmail]/All Mail",
            &["\\All", "\\HasNoChildren"],
            SkipReason::Virtual("\\All".into()),
        ),
        (
            "[Gmail]/Starred",
            &["\\Flagged"],
            SkipReason::Virtual("\\Flagged".into()),
        ),
        (
            "[Gmail]/Important",
            &["\\Important"],
            SkipReason::Virtual("\\Important".into()),
        ),
        (
            "[Gmail]",
            &["\\Noselect", "\\HasChildren"],
            SkipReason::NoSelect,
        ),
        (
            "Virtual/All",
            &["\\all"],
            SkipReason::Virtual("\\All".into()),
        ),
        ("Gone", &["\\NonExistent"], SkipReason::NoSelect),
    ];
    let m = mapper();
    for (p, a, r) in cases {
        let f = one(&m, p, '/', a);
        assert_eq!(f.skip_reason(), Some(r), "{p}");
    }
}

#[test]
fn system_folders_skipped_by_default_and_reported() {
    let cases: &[(&str, char)] = &[
        ("Sync Issues", '/'),
        ("Sync Issues/Conflicts", '/'),
        ("Sync Issues/Local Failures", '/'),
        ("Sync Issues/Server Failures", '/'),
        ("Sync Issues (This computer only)", '/'),
        ("Conflicts", '/'),
        ("Local Failures", '/'),
        ("Server Failures", '/'),
        ("Outbox", '/'),
        ("INBOX.Outbox", '.'),
        ("Postausgang", '/'),
        ("Synchronisierungsprobleme/Konflikte", '/'),
        ("Boîte d'envoi", '/'),
        ("[Gmail]/All Mail", '/'),
        ("[Gmail]/Starred", '/'),
        ("[Gmail]/Important", '/'),
    ];
    let m = mapper();
    for (p, d) in cases {
        let f = one(&m, p, *d, &[]);
        assert!(
            matches!(f.skip_reason(), Some(SkipReason::System(_))),
            "{p}: {:?}",
            f.decision
        );
        let text = f.skip_reason().unwrap().to_string();
        assert!(text.contains("migrate_system_folders"), "{text}");
    }
    let rules = FolderRules {
        migrate_system_folders: true,
        map: vec![],
    };
    let m = FolderMapper::new(&rules, &Filters::default()).unwrap();
    let f = one(&m, "Sync Issues/Conflicts", '/', &[]);
    assert_eq!(
        f.target().cloned(),
        path(None, &["Sync Issues", "Conflicts"])
    );
    // Virtual folders stay skipped even then: their mail is elsewhere.
    let f = one(&m, "[Gmail]/All Mail", '/', &["\\All"]);
    assert!(matches!(f.skip_reason(), Some(SkipReason::Virtual(_))));
}

#[test]
fn files_is_not_special_here() {
    let f = one(&mapper(), "Files", '/', &[]);
    assert_eq!(f.target().cloned(), path(None, &["Files"]));
}

#[test]
fn hierarchy_follows_well_known_parents() {
    let out = mapper().map(&[
        SourceFolder::new("INBOX", Some('.'), &[]),
        SourceFolder::new("INBOX.Sent", Some('.'), &[]),
        SourceFolder::new("INBOX.Sent.2019", Some('.'), &[]),
        SourceFolder::new("INBOX.Projects", Some('.'), &[]),
        SourceFolder::new("INBOX.Projects.Alpha", Some('.'), &[]),
        SourceFolder::new("Archiv", Some('.'), &[]),
        SourceFolder::new("Archiv.2010.Q1", Some('.'), &[]),
    ]);
    let by = |p: &str| {
        out.iter()
            .find(|f| f.source.path == p)
            .unwrap()
            .target()
            .cloned()
    };
    assert_eq!(by("INBOX"), wk(Inbox));
    assert_eq!(by("INBOX.Sent"), wk(SentItems));
    assert_eq!(by("INBOX.Sent.2019"), path(Some(SentItems), &["2019"]));
    assert_eq!(by("INBOX.Projects"), path(Some(Inbox), &["Projects"]));
    assert_eq!(
        by("INBOX.Projects.Alpha"),
        path(Some(Inbox), &["Projects", "Alpha"])
    );
    assert_eq!(by("Archiv.2010.Q1"), path(Some(Archive), &["2010", "Q1"]));
}

#[test]
fn namespace_prefix_lifts_folders_to_the_root() {
    let m = mapper().with_namespace_prefix("INBOX.");
    let out = m.map(&[
        SourceFolder::new("INBOX", Some('.'), &[]),
        SourceFolder::new("INBOX.Projects", Some('.'), &[]),
        SourceFolder::new("INBOX.Projects.Alpha", Some('.'), &[]),
        SourceFolder::new("INBOX.Sent Messages", Some('.'), &[]),
    ]);
    let by = |p: &str| {
        out.iter()
            .find(|f| f.source.path == p)
            .unwrap()
            .target()
            .cloned()
    };
    assert_eq!(by("INBOX"), wk(Inbox));
    assert_eq!(by("INBOX.Projects"), path(None, &["Projects"]));
    assert_eq!(
        by("INBOX.Projects.Alpha"),
        path(None, &["Projects", "Alpha"])
    );
    assert_eq!(by("INBOX.Sent Messages"), wk(SentItems));
}

#[test]
fn gmail_labels_lose_the_gmail_prefix_only_for_unknown_children() {
    let f = one(&mapper(), "[Gmail]/Chats", '/', &[]);
    assert_eq!(f.target().cloned(), path(None, &["Chats"]));
    let f = one(&mapper(), "Work/Clients", '/', &[]);
    assert_eq!(f.target().cloned(), path(None, &["Work", "Clients"]));
}

#[test]
fn regex_rules_apply_after_special_use_and_names() {
    let rules = FolderRules {
        migrate_system_folders: false,
        map: vec![
            FolderRule {
                source: "^Old Mail/(.*)$".into(),
                target: Some("#Archive#/$1".into()),
                skip: false,
            },
            FolderRule {
                source: "(?i)^tmp".into(),
                target: None,
                skip: true,
            },
            FolderRule {
                source: "^Sent$".into(),
                target: Some("Never".into()),
                skip: false,
            },
            FolderRule {
                source: "^Team-(\\w+)$".into(),
                target: Some("Teams/${1}".into()),
                skip: false,
            },
        ],
    };
    let m = FolderMapper::new(&rules, &Filters::default()).unwrap();
    let f = one(&m, "Old Mail/2009", '/', &[]);
    assert_eq!(f.target().cloned(), path(Some(Archive), &["2009"]));
    let f = one(&m, "TMP-stuff", '/', &[]);
    assert_eq!(f.skip_reason(), Some(&SkipReason::Rule("(?i)^tmp".into())));
    let f = one(&m, "Sent", '/', &[]);
    assert_eq!(
        f.target().cloned(),
        wk(SentItems),
        "name table wins over rules"
    );
    let f = one(&m, "Team-Red", '/', &[]);
    assert_eq!(f.target().cloned(), path(None, &["Teams", "Red"]));
}

#[test]
fn include_exclude_by_glob_and_token() {
    let filters = Filters {
        include_folders: vec![
            FolderPattern::WellKnown(Inbox),
            FolderPattern::WellKnown(SentItems),
            FolderPattern::Glob("Projects/**".into()),
            FolderPattern::Glob("Clients/*".into()),
        ],
        exclude_folders: vec![
            FolderPattern::Glob("projects/secret".into()),
            FolderPattern::WellKnown(SentItems),
        ],
        ..Filters::default()
    };
    let m = FolderMapper::new(&FolderRules::default(), &filters).unwrap();
    let out = m.map(&[
        SourceFolder::new("INBOX", Some('/'), &[]),
        SourceFolder::new("Sent", Some('/'), &["\\Sent"]),
        SourceFolder::new("Projects", Some('/'), &[]),
        SourceFolder::new("Projects/Alpha/Deep", Some('/'), &[]),
        SourceFolder::new("Projects/Secret", Some('/'), &[]),
        SourceFolder::new("Clients/A", Some('/'), &[]),
        SourceFolder::new("Clients/A/B", Some('/'), &[]),
        SourceFolder::new("Other", Some('/'), &[]),
    ]);
    let by = |p: &str| {
        out.iter()
            .find(|f| f.source.path == p)
            .unwrap()
            .decision
            .clone()
    };
    assert!(matches!(by("INBOX"), FolderDecision::Migrate { .. }));
    assert_eq!(
        by("Sent"),
        FolderDecision::Skip {
            reason: SkipReason::Excluded("#SentItems#".into())
        }
    );
    assert!(matches!(by("Projects"), FolderDecision::Migrate { .. }));
    assert!(matches!(
        by("Projects/Alpha/Deep"),
        FolderDecision::Migrate { .. }
    ));
    assert_eq!(
        by("Projects/Secret"),
        FolderDecision::Skip {
            reason: SkipReason::Excluded("projects/secret".into())
        }
    );
    assert!(matches!(by("Clients/A"), FolderDecision::Migrate { .. }));
    assert_eq!(
        by("Clients/A/B"),
        FolderDecision::Skip {
            reason: SkipReason::NotIncluded
        }
    );
    assert_eq!(
        by("Other"),
        FolderDecision::Skip {
            reason: SkipReason::NotIncluded
        }
    );
}

#[test]
fn glob_translation() {
    let cases: &[(&str, &str, bool)] = &[
        ("A/*", "A/b", true),
        ("A/*", "A/b/c", false),
        ("A/**", "A", true),
        ("A/**", "A/b/c", true),
        ("A/**", "AB", false),
        ("**/Old", "x/y/Old", true),
        ("a?c", "abc", true),
        ("a?c", "a/c", false),
        ("Re: [x] (1)+", "re: [x] (1)+", true),
    ];
    for (g, p, want) in cases {
        let re = Regex::new(&glob_to_regex(g)).unwrap();
        assert_eq!(re.is_match(p), *want, "{g} vs {p}");
    }
}

#[test]
fn deterministic_regardless_of_input_order_and_duplicates() {
    let folders = vec![
        SourceFolder::new("Sent", Some('/'), &[]),
        SourceFolder::new("INBOX", Some('/'), &[]),
        SourceFolder::new("Sent Items", Some('/'), &[]),
        SourceFolder::new("Trash", Some('/'), &["\\Trash"]),
        SourceFolder::new("Deleted Items", Some('/'), &[]),
        SourceFolder::new("A/B", Some('/'), &[]),
        SourceFolder::new("INBOX", Some('/'), &[]),
    ];
    let a = mapper().map(&folders);
    let mut rev = folders.clone();
    rev.reverse();
    let b = mapper().map(&rev);
    assert_eq!(a, b);
    assert_eq!(a.len(), 6);
    let paths: Vec<&str> = a.iter().map(|f| f.source.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
}

#[test]
fn flat_namespace_and_display() {
    let out = mapper().map(&[SourceFolder::new("a.b", None, &[])]);
    assert_eq!(out[0].target().cloned(), path(None, &["a.b"]));
    assert_eq!(
        path(Some(SentItems), &["2019", "Q1"]).unwrap().to_string(),
        "#SentItems#/2019/Q1"
    );
    assert_eq!(WellKnownFolder::from_token("#JunkEmail#"), Some(JunkEmail));
    assert_eq!(JunkEmail.graph_name(), "junkemail");
    for k in WellKnownFolder::ALL {
        assert_eq!(WellKnownFolder::from_token(k.token()), Some(k));
    }
}

proptest::proptest! {
    #[test]
    fn mapping_never_panics_and_every_folder_gets_a_decision(
        names in proptest::collection::vec("[A-Za-z\\[\\]. /ä#*]{0,20}", 0..20),
        delim in proptest::sample::select(vec![Some('/'), Some('.'), None]),
    ) {
        let folders: Vec<SourceFolder> = names.iter().map(|n| SourceFolder::new(n, delim, &[])).collect();
        let out = mapper().with_namespace_prefix("INBOX.").map(&folders);
        let mut unique: Vec<&String> = names.iter().collect();
        unique.sort();
        unique.dedup();
        proptest::prop_assert_eq!(out.len(), unique.len());
    }
}

#[test]
fn folder_specs_follow_the_mapping() {
    let t = FolderTarget {
        parent: Some(WellKnownFolder::Archive),
        path: vec!["2022".into()],
    };
    assert_eq!(
        folder_spec("Archive/2022", &t).display_path(),
        "#Archive#/2022"
    );
    let root = FolderTarget {
        parent: None,
        path: vec!["Projects".into(), "Alpha".into()],
    };
    assert_eq!(
        folder_spec("Projects/Alpha", &root).display_path(),
        "Projects/Alpha"
    );
}
